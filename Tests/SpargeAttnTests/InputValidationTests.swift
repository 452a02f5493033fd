import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Bad input throws a typed error; nothing traps.
struct InputValidationTests {
    /// The float64 reference throws (it trapped on an index) for buffers, masks, maps or scales
    /// that do not fit the shape.
    @Test func float64ReferenceRejectsWhatDoesNotFit() throws {
        let s = AttentionShape(heads: 2, kvHeads: 1, queryLength: 10, keyLength: 12, headDim: 4)
        let q = [Float](repeating: 0.1, count: s.queryElements), kv = [Float](repeating: 0.2, count: s.keyElements)
        _ = try Float64Reference.attention(q: q, k: kv, v: kv, shape: s)
        #expect(throws: SpargeError.self) { _ = try Float64Reference.attention(q: Array(q.dropLast()), k: kv, v: kv, shape: s) }
        #expect(throws: SpargeError.self) { _ = try Float64Reference.attention(q: q, k: kv + kv, v: kv + kv, shape: s) }
        #expect(throws: SpargeError.self) { _ = try Float64Reference.attention(q: q, k: kv, v: kv, shape: s, softmaxScale: 0) }
        #expect(throws: SpargeError.self) {
            _ = try Float64Reference.attentionWithLSE(q: q, k: kv, v: kv, shape: s, keyMask: [true])
        }
        let map = try BlockMap.full(batch: 1, heads: 2, queryBlocks: 1, keyBlocks: 1)
        _ = try Float64Reference.attention(q: q, k: kv, v: kv, shape: s, blockMap: map)
        #expect(throws: SpargeError.self) { _ = try Float64Reference.attention(q: q, k: kv, v: kv, shape: s, blockMap: map, blockK: 4) }
        #expect(throws: SpargeError.self) { _ = try Float64Reference.attention(q: q, k: kv, v: kv, shape: s, blockMap: map, blockQ: 0) }
    }

    let shape = AttentionShape(batch: 1, heads: 2, queryLength: 10, headDim: 4)
    var zeros: [Float] { [Float](repeating: 0.1, count: 80) }

    @Test func shortBufferThrows() {
        #expect(throws: SpargeError.bufferTooSmall(name: "k", expected: 80, actual: 79)) {
            _ = try SpargeAttention.sparse(q: zeros, k: Array(zeros.dropLast()), v: zeros, shape: shape)
        }
    }

    @Test func badShapesThrow() {
        for s in [AttentionShape(heads: 3, kvHeads: 2, queryLength: 4, headDim: 4),
                  AttentionShape(heads: 1, queryLength: 0, headDim: 4),
                  AttentionShape(heads: 1, queryLength: 4, headDim: 257),
                  AttentionShape(batch: 0, heads: 1, queryLength: 4, headDim: 4)] {
            #expect(throws: SpargeError.self) { _ = try SpargeAttention.dense(q: [], k: [], v: [], shape: s) }
        }
    }

    @Test func outOfRangeParametersThrow() {
        var bad: [SpargeParameters] = []
        var p = SpargeParameters(); p.selection = .topK(1.5); bad.append(p)
        p = SpargeParameters(); p.selection = .cdf(-0.1); bad.append(p)
        p = SpargeParameters(); p.simThreshold = [0.1, 0.2, 0.3]; bad.append(p)
        p = SpargeParameters(); p.pvThreshold = -1; bad.append(p)
        p = SpargeParameters(); p.blockQ = 0; bad.append(p)
        p = SpargeParameters(); p.softmaxScale = .nan; bad.append(p)
        p = SpargeParameters(); p.simThreshold = PerHead(Float.nan); bad.append(p)
        for p in bad {
            #expect(throws: SpargeError.self, "\(p)") { _ = try SpargeAttention.sparse(q: zeros, k: zeros, v: zeros, shape: shape, parameters: p) }
        }
    }

    @Test func badStridesThrow() {
        let buf = [Float](repeating: 0, count: 80)
        buf.withUnsafeBufferPointer { p in
            var out = [Float](repeating: 0, count: 80)
            out.withUnsafeMutableBufferPointer { o in
                // NHD strides over a buffer one row too short.
                let short = AttentionInput(UnsafeBufferPointer(rebasing: p[0..<79]), layout: .nhd(heads: 2, tokens: 10, headDim: 4))
                #expect(throws: SpargeError.self) {
                    try SpargeAttention.dense(q: short, k: AttentionInput(p), v: AttentionInput(p), output: AttentionOutput(o), shape: shape)
                }
                let overlapping = AttentionInput(p, layout: TensorLayout(batchStride: 0, headStride: 40, tokenStride: 2))
                #expect(throws: SpargeError.self) {
                    try SpargeAttention.dense(q: overlapping, k: AttentionInput(p), v: AttentionInput(p), output: AttentionOutput(o), shape: shape)
                }
            }
        }
    }

    /// Inputs may share rows (a K broadcast to every head by a zero head stride); an output
    /// may not: two rows written to one place would race. Separated rows in any order pass.
    @Test func outputRowsMustNotShareMemory() throws {
        let shape = AttentionShape(batch: 2, heads: 3, queryLength: 5, headDim: 4)
        let x = [Float](repeating: 0.5, count: shape.queryElements)
        var out = [Float](repeating: 0, count: shape.queryElements)
        let b = shape.heads * shape.queryLength * shape.headDim, h = shape.queryLength * shape.headDim, t = shape.headDim
        let shared = [TensorLayout(batchStride: b, headStride: 0, tokenStride: t),          // heads on one place
                      TensorLayout(batchStride: 0, headStride: h, tokenStride: t),          // batch entries on one place
                      TensorLayout(batchStride: b, headStride: t, tokenStride: t),          // head h + 1 is token t + 1
                      TensorLayout(batchStride: b, headStride: h, tokenStride: 2)]          // rows half on each other
        for l in shared {
            let error = #expect(throws: SpargeError.self, "\(l)") {
                try x.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in
                    _ = try SpargeAttention.sparse(q: AttentionInput(p), k: AttentionInput(p), v: AttentionInput(p),
                                                   output: AttentionOutput(o, layout: l), shape: shape)
                } }
            }
            guard case .invalidShape(let message)? = error else { Issue.record("\(l): \(String(describing: error))"); continue }
            #expect(message.contains("'output'") && (message.contains("own") || message.contains("overlap")), "\(message)")
        }
        #expect(out.allSatisfy { $0 == 0 }, "nothing written")
        // B,N,H,D (tokens outermost within a batch entry) and a broadcast K pass.
        let bnhd = TensorLayout(batchStride: b, headStride: t, tokenStride: shape.heads * t)
        let broadcast = TensorLayout(batchStride: shape.queryLength * t, headStride: 0, tokenStride: t)
        try x.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in
            _ = try SpargeAttention.sparse(q: AttentionInput(p), k: AttentionInput(p, layout: broadcast), v: AttentionInput(p),
                                           output: AttentionOutput(o, layout: bnhd), shape: shape)
        } }
        #expect(out.allSatisfy { abs($0 - 0.5) < 1e-6 })
    }

    /// The GPU plan's resident-tensor calls check layouts without element counts: an output
    /// whose rows share memory is refused there as a host output view is; inputs may share rows.
    @Test func residentOutputRowsMustNotShareMemory() throws {
        let broadcast = TensorLayout(batchStride: 20, headStride: 0, tokenStride: 4)
        #expect(throws: SpargeError.self) {
            try SpargeAttention.checkResidentLayout(broadcast, name: "output", batch: 2, heads: 3, tokens: 5, headDim: 4, isOutput: true)
        }
        try SpargeAttention.checkResidentLayout(broadcast, name: "k", batch: 2, heads: 3, tokens: 5, headDim: 4, isOutput: false)
        let bnhd = TensorLayout(batchStride: 60, headStride: 4, tokenStride: 12)
        try SpargeAttention.checkResidentLayout(bnhd, name: "output", batch: 2, heads: 3, tokens: 5, headDim: 4, isOutput: true)
    }

    @Test func nonFiniteInputsAreRejectedByDefault() throws {
        var q = zeros
        q[13] = .nan
        let error = #expect(throws: SpargeError.self) {
            _ = try SpargeAttention.sparse(q: q, k: zeros, v: zeros, shape: shape)
        }
        guard case .nonFiniteInput(let name, let index, let value)? = error else {
            Issue.record("expected nonFiniteInput, got \(String(describing: error))")
            return
        }
        #expect(name == "q" && index == 13 && value.isNaN)
        var p = SpargeParameters(); p.nonFinitePolicy = .propagate
        _ = try SpargeAttention.sparse(q: q, k: zeros, v: zeros, shape: shape, parameters: p)
    }

    /// Sparse calls check finiteness on the pipeline's own passes (block means, V's overflow
    /// pass): the error is the upfront scan's (tensor, first flat index, value) wherever the
    /// NaN or infinity is, in one-shot and plan calls, and the output is not touched.
    @Test(arguments: ["q", "k", "v"])
    func sparseCallsReportTheFirstNonFiniteElement(tensor: String) throws {
        let s = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 300, keyLength: 260, headDim: 24)
        var rng = TestRNG(seed: 11)
        var q = rng.gaussians(s.queryElements), k = rng.gaussians(s.keyElements), v = rng.gaussians(s.keyElements)
        let count = tensor == "q" ? s.queryElements : s.keyElements
        for (first, later) in [(0, count - 1), (count / 2 + 7, count - 3), (count - 1, count - 1)] {
            var x = tensor == "q" ? q : tensor == "k" ? k : v
            x[later] = -.infinity
            x[first] = .nan
            if tensor == "q" { q = x } else if tensor == "k" { k = x } else { v = x }
            defer { q = rng.gaussians(s.queryElements); k = rng.gaussians(s.keyElements); v = rng.gaussians(s.keyElements) }
            let expected = SpargeError.nonFiniteInput(name: tensor, index: first, value: .nan)
            var out = [Float](repeating: 7, count: s.queryElements)
            let plan = try SpargePlan(shape: s, parameters: .recommended, threads: 2)
            let workspace = plan.makeWorkspace()
            for usePlan in [false, true] {
                let error = #expect(throws: SpargeError.self) {
                    try q.withUnsafeBufferPointer { qb in
                        try k.withUnsafeBufferPointer { kb in
                            try v.withUnsafeBufferPointer { vb in
                                try out.withUnsafeMutableBufferPointer { ob in
                                    if usePlan {
                                        try plan.run(q: AttentionInput(qb), k: AttentionInput(kb), v: AttentionInput(vb),
                                                     output: AttentionOutput(ob), workspace: workspace)
                                    } else {
                                        try SpargeAttention.sparse(q: AttentionInput(qb), k: AttentionInput(kb), v: AttentionInput(vb),
                                                                   output: AttentionOutput(ob), shape: s, threads: 2)
                                    }
                                }
                            }
                        }
                    }
                }
                #expect(error.map { "\($0)" } == "\(expected)", "\(tensor) first \(first), plan \(usePlan)")
                #expect(out.allSatisfy { $0 == 7 }, "the output is untouched")
            }
        }
    }

    /// The pipeline's own check under the options that change its passes: Q smoothing,
    /// fixed-point P.V, a caller's block map (no stage 1), key padding, causal GQA with
    /// Nq != Nk, bf16 inputs. A NaN in K (or an infinity in V) gives the upfront scan's error.
    @Test(arguments: ["smoothQ", "fixedPointPV", "blockMap", "keyPadding", "causal", "bf16", "noSmoothK"])
    func sparseCallsCatchNonFiniteInputsUnderEveryOption(option: String) throws {
        let s = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 200, keyLength: 330, headDim: 40)
        var rng = TestRNG(seed: 23)
        let q = rng.gaussians(s.queryElements), k0 = rng.gaussians(s.keyElements), v0 = rng.gaussians(s.keyElements)
        var p = SpargeParameters.recommended
        var map: BlockMap? = nil, padding: KeyPaddingMask? = nil
        switch option {
        case "smoothQ": p.smoothQ = true
        case "fixedPointPV": p.fixedPointPV = true
        case "blockMap":
            let (nq, nk) = s.blockCounts(blockQ: p.blockQ, blockK: p.blockK)
            map = try BlockMap.full(batch: s.batch, heads: s.heads, queryBlocks: nq, keyBlocks: nk)
        case "keyPadding": padding = try KeyPaddingMask(validLengths: [330, 200], keyLength: 330)
        case "causal": p.causal = true
        case "noSmoothK": p.smoothK = false
        default: break
        }
        for (tensor, index, value) in [("k", s.keyElements - 41, Float.nan), ("v", 1234, -Float.infinity)] {
            var k = k0, v = v0
            if tensor == "k" { k[index] = value } else { v[index] = value }
            var out = [Float](repeating: 7, count: s.queryElements)
            let error = #expect(throws: SpargeError.self, "\(option) \(tensor)") {
                if option == "bf16" {
                    let (qb, kb, vb) = (q.map(BFloat16.init), k.map(BFloat16.init), v.map(BFloat16.init))
                    _ = try qb.withUnsafeBufferPointer { qp in
                        try kb.withUnsafeBufferPointer { kp in
                            try vb.withUnsafeBufferPointer { vp in
                                try out.withUnsafeMutableBufferPointer { o in
                                    try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp),
                                                               output: AttentionOutput(o), shape: s, parameters: p, threads: 2)
                                }
                            }
                        }
                    }
                } else {
                    _ = try q.withUnsafeBufferPointer { qp in
                        try k.withUnsafeBufferPointer { kp in
                            try v.withUnsafeBufferPointer { vp in
                                try out.withUnsafeMutableBufferPointer { o in
                                    try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp),
                                                               output: AttentionOutput(o), shape: s, parameters: p, blockMap: map,
                                                               threads: 2, keyPadding: padding)
                                }
                            }
                        }
                    }
                }
            }
            let expected = SpargeError.nonFiniteInput(name: tensor, index: index, value: value)
            #expect(error.map { "\($0)" } == "\(expected)", "\(option) \(tensor)")
            #expect(out.allSatisfy { $0 == 7 }, "\(option): the output is untouched")
        }
    }

    /// Finite inputs whose block means overflow (|x| near the fp32 limit) look non-finite to
    /// the pipeline's check; the exact scan finds nothing and the call runs: the same output
    /// as with the check off (`.propagate`), finite.
    @Test func hugeFiniteInputsRunAfterTheExactScan() throws {
        let s = AttentionShape(heads: 2, queryLength: 256, headDim: 16)
        var rng = TestRNG(seed: 5)
        let k = rng.gaussians(s.keyElements), v = rng.gaussians(s.keyElements)
        let q = rng.gaussians(s.queryElements).map { 1e37 + abs($0) * 1e36 }  // every query block's sum overflows
        let checked = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s)
        var p = SpargeParameters.recommended; p.nonFinitePolicy = .propagate
        let unchecked = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p)
        #expect(checked.output.map(\.bitPattern) == unchecked.output.map(\.bitPattern))
        #expect(checked.output.allSatisfy { $0.isFinite })
    }

    /// A large fp32 input is scanned one head per work item on several threads: the element
    /// reported is still the first in flat order (an infinity in a later head and a NaN in an
    /// earlier one, which a worker may reach second), for contiguous rows and for rows with
    /// padding (whose NaNs are not elements).
    @Test(arguments: [1, 2, 3])
    func firstNonFiniteElementOfALargeInputWhateverTheThreads(threads: Int) throws {
        let (batch, heads, tokens, d) = (2, 4, 4096, 32)  // 2^20 elements
        let first = ((1 * heads + 2) * tokens + 100) * d + 5
        let temp = UnsafeMutablePointer<Float>.allocate(capacity: d)
        defer { temp.deallocate() }
        for stride in [d, d + 8] {
            var k = [Float](repeating: 0.5, count: batch * heads * tokens * stride)
            func at(_ flat: Int) -> Int { flat / d * stride + flat % d }
            k[at(((1 * heads + 3) * tokens + 0) * d + 1)] = .infinity
            k[at(first)] = .nan
            k[at(first + 40 * d)] = -.infinity
            if stride > d { k[at(((0 * heads + 1) * tokens + 7) * d) + d + 3] = .nan }  // padding, not an element
            let found = k.withUnsafeBufferPointer { kp in
                let view = TensorView(base: UnsafeRawPointer(kp.baseAddress!), batchStride: heads * tokens * stride,
                                      headStride: tokens * stride, rowStride: stride)
                return firstNonFiniteElement(view, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp, threads: threads)
            }
            #expect(found?.index == first && found?.value.isNaN == true, "row stride \(stride)")
        }
    }

    /// One head of 2^20 elements is cut into row ranges on several threads: fp32, fp16 and bf16
    /// (scanned as bits) report the first element in flat order whatever the threads (an
    /// infinity in a later range, a second NaN later in the same row).
    @Test(arguments: [ElementType.float32, .float16, .bfloat16], [1, 2, 3])
    func firstNonFiniteElementOfOneLargeHead(type: ElementType, threads: Int) throws {
        let (tokens, d) = (32768, 32)
        let first = 9000 * d + 5
        let temp = UnsafeMutablePointer<Float>.allocate(capacity: d)
        defer { temp.deallocate() }
        let (half, nan, inf): (UInt16, UInt16, UInt16) = type == .float16 ? (0x3800, 0x7E00, 0x7C00) : (0x3F00, 0x7FC0, 0xFF80)
        var bits = [UInt16](repeating: half, count: tokens * d)
        var floats = [Float](repeating: 0.5, count: tokens * d)
        for (i, isNaN) in [(first, true), (first + 2, true), (20000 * d + 1, false), (30000 * d, false)] {
            bits[i] = isNaN ? nan : inf
            floats[i] = isNaN ? .nan : -.infinity
        }
        let found = type == .float32
            ? floats.withUnsafeBytes { firstNonFiniteElement(TensorView(base: $0.baseAddress!, batchStride: 0, headStride: 0, rowStride: d),
                                                               batch: 1, heads: 1, tokens: tokens, d: d, temp: temp, threads: threads) }
            : bits.withUnsafeBytes { firstNonFiniteElement(TensorView(base: $0.baseAddress!, type: type, batchStride: 0, headStride: 0, rowStride: d),
                                                           batch: 1, heads: 1, tokens: tokens, d: d, temp: temp, threads: threads) }
        #expect(found?.index == first && found?.value.isNaN == true)
    }

    /// V's power-of-two unit and finiteness come out the same when one head is cut into row
    /// ranges on several threads (the largest |v| and a NaN sit in different ranges).
    @Test(arguments: [1, 2, 3])
    func valueUnitsOfOneLargeHeadWhateverTheThreads(threads: Int) throws {
        let (tokens, d) = (32768, 32)
        let shape = AttentionShape(batch: 1, heads: 1, queryLength: 1, keyLength: tokens, headDim: d)
        var v = [Float](repeating: 0.25, count: tokens * d)
        v[30000 * d + 3] = -1e37
        var units = [Float](repeating: 0, count: 1)
        let clean = v.withUnsafeBytes { raw in
            OverflowGuard.valueUnits(TensorView(base: raw.baseAddress!, batchStride: 0, headStride: 0, rowStride: d),
                                     shape: shape, into: &units, threads: threads)
        }
        #expect(clean.scaled && clean.finite && units[0] == OverflowGuard.unit(bound: Double(Float(1e37)) * Double(tokens), limit: OverflowGuard.valueLimit))
        v[100 * d] = .nan
        var reference = [Float](repeating: 0, count: 1)
        _ = v.withUnsafeBytes { raw in
            OverflowGuard.valueUnits(TensorView(base: raw.baseAddress!, batchStride: 0, headStride: 0, rowStride: d),
                                     shape: shape, into: &reference, threads: 1)
        }
        let poisoned = v.withUnsafeBytes { raw in
            OverflowGuard.valueUnits(TensorView(base: raw.baseAddress!, batchStride: 0, headStride: 0, rowStride: d),
                                     shape: shape, into: &units, threads: threads)
        }
        #expect(!poisoned.finite && units == reference, "the units of one thread")
    }

    @Test func mismatchedBlockMapThrows() throws {
        let map = try BlockMap.full(batch: 1, heads: 2, queryBlocks: 2, keyBlocks: 1)
        #expect(throws: SpargeError.self) {
            _ = try SpargeAttention.sparse(q: zeros, k: zeros, v: zeros, shape: shape, blockMap: map)
        }
        #expect(throws: SpargeError.self) { _ = try BlockMap(batch: 1, heads: 1, queryBlocks: 2, keyBlocks: 2, bits: [1, 0, 1]) }
    }
}

/// A buffer given without a layout is read as the dense tensor of the shape and must hold
/// exactly that many elements: a longer one is nearly always a shape mistake (GQA's K passed
/// with every query head), which would otherwise read the wrong rows without a word.
struct ExactBufferSizeTests {
    @Test func longerBuffersWithoutALayoutThrow() throws {
        let shape = AttentionShape(heads: 4, kvHeads: 2, queryLength: 12, headDim: 8)
        var rng = TestRNG(seed: 81)
        let q = rng.gaussians(shape.queryElements), kv = rng.gaussians(shape.keyElements)
        let kvAllHeads = rng.gaussians(shape.queryElements)   // K with `heads` heads: the GQA mistake
        #expect(throws: SpargeError.bufferSizeMismatch(name: "k", expected: shape.keyElements, actual: shape.queryElements)) {
            _ = try SpargeAttention.sparse(q: q, k: kvAllHeads, v: kv, shape: shape)
        }
        #expect(throws: SpargeError.bufferSizeMismatch(name: "v", expected: shape.keyElements, actual: shape.queryElements)) {
            _ = try SpargeAttention.dense(q: q, k: kv, v: kvAllHeads, shape: shape)
        }
        var long = [Float](repeating: 0, count: shape.queryElements + 1)
        #expect(throws: SpargeError.bufferSizeMismatch(name: "output", expected: shape.queryElements, actual: shape.queryElements + 1)) {
            try SpargeAttention.sparse(q: q, k: kv, v: kv, output: &long, shape: shape)
        }
        #expect(throws: SpargeError.bufferSizeMismatch(name: "q", expected: shape.queryElements, actual: shape.queryElements + 8)) {
            _ = try SpargeAttention.sparse(q: q + [Float](repeating: 0, count: 8), k: kv, v: kv, shape: shape)
        }
        // A plan and a cache append take the same rule.
        let plan = try SpargePlan(shape: shape)
        var out = [Float](repeating: 0, count: shape.queryElements)
        #expect(throws: SpargeError.self) { try plan.run(q: q, k: kvAllHeads, v: kv, output: &out, workspace: plan.makeWorkspace()) }
        let cache = try SpargeKVCache(heads: 4, kvHeads: 2, headDim: 8, capacity: 20)
        #expect(throws: SpargeError.bufferSizeMismatch(name: "k", expected: 2 * 12 * 8, actual: 4 * 12 * 8)) {
            try cache.append(k: kvAllHeads, v: kv, tokens: 12)
        }
        #expect(cache.length == 0)
        // The same memory with a layout, or as a TensorArray view, may be longer: that is a choice.
        try SpargeAttention.sparse(q: q, k: TensorArray(kvAllHeads), v: kv, output: &out, shape: shape)
        try kvAllHeads.withUnsafeBufferPointer { big in
            try q.withUnsafeBufferPointer { qp in try kv.withUnsafeBufferPointer { vp in try out.withUnsafeMutableBufferPointer { o in
                _ = try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(big, layout: .hnd(heads: 2, tokens: 12, headDim: 8)),
                                               v: AttentionInput(vp), output: AttentionOutput(o), shape: shape)
            } } }
        }
    }

    @Test func packedBuffersWithoutALayoutMustFitExactly() throws {
        let batch = try VariableLengthBatch(cumulativeQueryLengths: [0, 5, 12])
        let heads = 2, d = 8, total = 12
        var rng = TestRNG(seed: 82)
        let x = rng.gaussians(total * heads * d)
        var out = [Float](repeating: 0, count: x.count)
        _ = try SpargeAttention.sparse(q: x, k: x, v: x, output: &out, batch: batch, heads: heads, headDim: d)
        #expect(throws: SpargeError.bufferSizeMismatch(name: "k", expected: x.count / 2, actual: x.count)) {
            try SpargeAttention.sparse(q: x, k: x, v: x, output: &out, batch: batch, heads: heads, kvHeads: 1, headDim: d)
        }
        var longOut = out + [0]
        #expect(throws: SpargeError.bufferSizeMismatch(name: "output", expected: x.count, actual: x.count + 1)) {
            try SpargeAttention.sparse(q: x, k: x, v: x, output: &longOut, batch: batch, heads: heads, headDim: d)
        }
    }
}

/// The Triton quantization scales Q by `softmaxScale * log2(e)` before INT8 (in fp32, as the
/// Triton kernel): a block whose scale would be beyond fp32's range throws a typed error
/// instead of returning garbage; just inside the range the output is finite.
struct TritonQueryScaleTests {
    @Test func beyondFloatRangeThrowsAndJustInsideWorks() throws {
        let shape = AttentionShape(heads: 2, queryLength: 70, headDim: 16)
        var rng = TestRNG(seed: 83)
        var q = rng.gaussians(shape.queryElements).map { $0 * 1e19 }
        let k = rng.gaussians(shape.keyElements).map { $0 * 1e-30 }, v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters.triton
        p.softmaxScale = 1e30
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p) }
        let plan = try SpargePlan(shape: shape, parameters: p)
        var out = [Float](repeating: 0, count: shape.queryElements)
        #expect(throws: SpargeError.self) { try plan.run(q: q, k: k, v: v, output: &out, workspace: plan.makeWorkspace()) }
        var cacheParameters = SpargeKVCache.defaultParameters
        cacheParameters.gpuReproduction.quantization = .triton
        cacheParameters.softmaxScale = 1e30
        let cache = try SpargeKVCache(heads: 2, headDim: 16, capacity: 70, parameters: cacheParameters)
        try cache.append(k: k, v: v, tokens: 70)
        var step = [Float](repeating: 0, count: 2 * 16)
        #expect(throws: SpargeError.self) { try cache.attend(q: Array(q[0..<16] + q[70 * 16..<71 * 16]), output: &step, queries: 1) }
        // q * factor beyond fp32 (about 1e40) but the block scales (about 1e38) inside: finite.
        p.softmaxScale = 1e19
        q = q.map { $0 * 30 }
        let (inside, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(inside.allSatisfy { $0.isFinite })
    }
}
