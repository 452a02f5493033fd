import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The array layer (``TensorArray``, ``AttentionTensor``): the same results as the pointer API,
/// bit for bit, and bounds errors that name the tensor.
struct TensorArrayTests {
    static let heads = 2, headDim = 32, tokens = 200
    static var hd: Int { heads * headDim }
    static var row: Int { 3 * hd }
    /// A fused QKV buffer `[1, N, 3, H, D]`: q at 0, k at H*D, v at 2*H*D.
    static var fused: TensorLayout { TensorLayout(batchStride: tokens * row, headStride: headDim, tokenStride: row) }
    static var shape: AttentionShape { AttentionShape(heads: heads, queryLength: tokens, headDim: headDim) }

    static func fusedQKV<E>(_ convert: (Float) -> E, seed: UInt64 = 7) -> [E] {
        var rng = TestRNG(seed: seed)
        return rng.gaussians(tokens * row).map(convert)
    }

    static func bytes<E>(_ x: [E]) -> [UInt8] { x.withUnsafeBytes { Array($0) } }

    /// The one-shot sparse and dense calls and the plan over fused views of `E`: the array
    /// layer writes the same bytes as the pointer API.
    func fusedMatchesPointers<E: AttentionElement>(_ convert: (Float) -> E, zero: E) throws {
        let qkv = Self.fusedQKV(convert)
        let l = Self.fused, hd = Self.hd, shape = Self.shape
        var p = SpargeParameters.recommended
        p.causal = true
        var safe = [E](repeating: zero, count: shape.queryElements)
        var pointer = safe
        let q = TensorArray(qkv, offset: 0, layout: l), k = TensorArray(qkv, offset: hd, layout: l)
        let v = TensorArray(qkv, offset: 2 * hd, layout: l)

        let a = try SpargeAttention.sparse(q: q, k: k, v: v, output: &safe, shape: shape, parameters: p, captureLSE: true)
        var lse = [Float](repeating: 0, count: shape.heads * shape.queryLength)
        let b = try qkv.withUnsafeBufferPointer { f in
            try pointer.withUnsafeMutableBufferPointer { o in
                try lse.withUnsafeMutableBufferPointer { lp in
                    try SpargeAttention.sparse(q: E.attentionInput(UnsafeBufferPointer(rebasing: f[0...]), layout: l),
                                               k: E.attentionInput(UnsafeBufferPointer(rebasing: f[hd...]), layout: l),
                                               v: E.attentionInput(UnsafeBufferPointer(rebasing: f[(2 * hd)...]), layout: l),
                                               output: E.attentionOutput(o, layout: nil), shape: shape, parameters: p, lse: lp)
                }
            }
        }
        #expect(Self.bytes(safe) == Self.bytes(pointer))
        #expect(a.blockMap == b.blockMap)
        #expect(a.lse.map(Self.bytes) == Self.bytes(lse))

        try SpargeAttention.dense(q: q, k: k, v: v, output: &safe, shape: shape, causal: true)
        try qkv.withUnsafeBufferPointer { f in
            try pointer.withUnsafeMutableBufferPointer { o in
                try SpargeAttention.dense(q: E.attentionInput(UnsafeBufferPointer(rebasing: f[0...]), layout: l),
                                          k: E.attentionInput(UnsafeBufferPointer(rebasing: f[hd...]), layout: l),
                                          v: E.attentionInput(UnsafeBufferPointer(rebasing: f[(2 * hd)...]), layout: l),
                                          output: E.attentionOutput(o, layout: nil), shape: shape, causal: true)
            }
        }
        #expect(Self.bytes(safe) == Self.bytes(pointer))

        // The plan, its lse form, and an NHD output layout.
        let plan = try SpargePlan(shape: shape, parameters: p, threads: 2)
        let w1 = plan.makeWorkspace(), w2 = plan.makeWorkspace()
        let nhd = TensorLayout.nhd(heads: Self.heads, tokens: Self.tokens, headDim: Self.headDim)
        var planLSE = [Float](repeating: 0, count: shape.heads * shape.queryLength)
        let s1 = try plan.run(q: q, k: k, v: v, output: &safe, outputLayout: nhd, workspace: w1, lse: &planLSE)
        let s2 = try qkv.withUnsafeBufferPointer { f in
            try pointer.withUnsafeMutableBufferPointer { o in
                try plan.run(q: E.attentionInput(UnsafeBufferPointer(rebasing: f[0...]), layout: l),
                             k: E.attentionInput(UnsafeBufferPointer(rebasing: f[hd...]), layout: l),
                             v: E.attentionInput(UnsafeBufferPointer(rebasing: f[(2 * hd)...]), layout: l),
                             output: E.attentionOutput(o, layout: nhd), workspace: w2)
            }
        }
        #expect(Self.bytes(safe) == Self.bytes(pointer))
        #expect(s1.statistics == s2.statistics)
        #expect(Self.bytes(planLSE) == Self.bytes(lse))
        try plan.run(q: q, k: k, v: v, output: &safe, outputLayout: nhd, workspace: w1)   // no `_ =` needed
        #expect(Self.bytes(safe) == Self.bytes(pointer))
    }

    @Test func fusedFloat32MatchesPointers() throws { try fusedMatchesPointers({ $0 }, zero: Float(0)) }
    @Test func fusedFloat16MatchesPointers() throws { try fusedMatchesPointers({ Float16($0) }, zero: Float16(0)) }
    @Test func fusedBFloat16MatchesPointers() throws { try fusedMatchesPointers({ BFloat16($0) }, zero: BFloat16(0)) }

    /// Arrays, slices (offset from the slice's first element) and contiguous arrays give the
    /// same output, and inputs of different element types mix.
    @Test func slicesAndContiguousArraysMatchArrays() throws {
        let shape = Self.shape
        var rng = TestRNG(seed: 11)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var expected = [Float](repeating: 0, count: shape.queryElements)
        try SpargeAttention.sparse(q: q, k: k, v: v, output: &expected, shape: shape)
        // The same tensors inside larger buffers: 5 elements of padding in front.
        let pad = [Float](repeating: 9, count: 5)
        let qSlice = (pad + q)[5...], kPadded = ContiguousArray(pad + k)
        var out = [Float](repeating: 0, count: shape.queryElements)
        try SpargeAttention.sparse(q: qSlice, k: TensorArray(kPadded, offset: 5), v: TensorArray((pad + v)[2...], offset: 3),
                                   output: &out, shape: shape)
        #expect(out.map(\.bitPattern) == expected.map(\.bitPattern))
        try SpargeAttention.sparse(q: ContiguousArray(q), k: k[...], v: v, output: &out, shape: shape)
        #expect(out.map(\.bitPattern) == expected.map(\.bitPattern))

        // Mixed types: fp16 q and k, bf16 v and output, against the pointer API.
        let q16 = q.map { Float16($0) }, k16 = k.map { Float16($0) }, vb = v.map { BFloat16($0) }
        var outB = [BFloat16](repeating: BFloat16(0), count: shape.queryElements), outP = outB
        try SpargeAttention.sparse(q: q16, k: k16, v: vb, output: &outB, shape: shape)
        _ = try q16.withUnsafeBufferPointer { qp in
            try k16.withUnsafeBufferPointer { kp in
                try vb.withUnsafeBufferPointer { vp in
                    try outP.withUnsafeMutableBufferPointer { op in
                        try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp),
                                                   output: AttentionOutput(op), shape: shape)
                    }
                }
            }
        }
        #expect(outB.map(\.bitPattern) == outP.map(\.bitPattern))
    }

    /// A view that reaches past its array throws viewOutOfBounds with the tensor's name, the
    /// elements needed (from the array's start) and the elements held; a short plain array
    /// throws bufferTooSmall; a negative offset throws invalidParameter. Nothing is written.
    @Test func outOfBoundsViewsNameTheTensor() throws {
        let qkv = Self.fusedQKV { Float16($0) }
        let l = Self.fused, hd = Self.hd, shape = Self.shape
        // The last element v's layout reaches from offset 0: the last token's last head's last channel.
        let extent = (Self.tokens - 1) * Self.row + (Self.heads - 1) * Self.headDim + Self.headDim
        var out = [Float](repeating: 7, count: shape.queryElements)
        let q = TensorArray(qkv, offset: 0, layout: l), k = TensorArray(qkv, offset: hd, layout: l)

        // v one head too far: it ends H*D elements past the array.
        #expect(throws: SpargeError.viewOutOfBounds(name: "v", offset: 3 * hd, needed: 3 * hd + extent, actual: qkv.count)) {
            try SpargeAttention.sparse(q: q, k: k, v: TensorArray(qkv, offset: 3 * hd, layout: l), output: &out, shape: shape)
        }
        // An offset beyond the array, on k, through the plan.
        let plan = try SpargePlan(shape: shape)
        let workspace = plan.makeWorkspace()
        #expect(throws: SpargeError.viewOutOfBounds(name: "k", offset: qkv.count + 1, needed: qkv.count + 1 + extent, actual: qkv.count)) {
            try plan.run(q: q, k: TensorArray(qkv, offset: qkv.count + 1, layout: l), v: k, output: &out, workspace: workspace)
        }
        #expect(throws: SpargeError.self) {
            try plan.run(q: TensorArray(qkv, offset: -1, layout: l), k: k, v: k, output: &out, workspace: workspace)
        }
        do {
            try plan.run(q: TensorArray(qkv, offset: -1, layout: l), k: k, v: k, output: &out, workspace: workspace)
        } catch let error as SpargeError {
            guard case .invalidParameter(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("'q'") && message.contains("-1"))
        }
        // A plain array one token short, and an output one element short.
        let short = [Float](repeating: 0, count: shape.keyElements - Self.headDim)
        let full = [Float](repeating: 0, count: shape.keyElements)
        #expect(throws: SpargeError.bufferTooSmall(name: "v", expected: shape.keyElements, actual: short.count)) {
            try SpargeAttention.sparse(q: full, k: full, v: short, output: &out, shape: shape)
        }
        var shortOut = [Float](repeating: 0, count: shape.queryElements - 1)
        #expect(throws: SpargeError.bufferTooSmall(name: "output", expected: shape.queryElements, actual: shape.queryElements - 1)) {
            try plan.run(q: full, k: full, v: full, output: &shortOut, workspace: workspace)
        }
        #expect(out.allSatisfy { $0 == 7 })
        // The message says where the view starts, what it needs and what the array holds.
        let text = SpargeError.viewOutOfBounds(name: "v", offset: 128, needed: 1000, actual: 900).description
        #expect(text.contains("'v'") && text.contains("128") && text.contains("999") && text.contains("900"))
    }

    /// The KV cache fed from fused fp16 views (prefill, then one token at a time) equals a cache
    /// fed the same views through pointers, bit for bit, for attend (with and without lse) and
    /// attendExact.
    @Test func kvCacheThroughArraysMatchesPointers() throws {
        let heads = 4, kvHeads = 2, d = 32, prompt = 100, steps = 5
        let rowWidth = (heads + 2 * kvHeads) * d, kOff = heads * d, vOff = (heads + kvHeads) * d
        var rng = TestRNG(seed: 5)
        let all = rng.gaussians((prompt + steps) * rowWidth).map { Float16($0) }
        var p = SpargeParameters.recommended
        p.causal = true
        let safe = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: 128, maxQueryLength: 1, parameters: p)
        let pointer = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: 128, maxQueryLength: 1, parameters: p)
        let promptLayout = TensorLayout(batchStride: prompt * rowWidth, headStride: d, tokenStride: rowWidth)
        let fusedPrompt = Array(all[0..<prompt * rowWidth])
        try safe.append(k: TensorArray(fusedPrompt, offset: kOff, layout: promptLayout),
                        v: TensorArray(fusedPrompt, offset: vOff, layout: promptLayout), tokens: prompt)
        try fusedPrompt.withUnsafeBufferPointer { f in
            try pointer.append(k: AttentionInput(UnsafeBufferPointer(rebasing: f[kOff...]), layout: promptLayout),
                               v: AttentionInput(UnsafeBufferPointer(rebasing: f[vOff...]), layout: promptLayout), tokens: prompt)
        }
        let tokenLayout = TensorLayout(batchStride: rowWidth, headStride: d, tokenStride: rowWidth)
        var a = [Float](repeating: 0, count: heads * d), b = a, lseA = [Float](repeating: 0, count: heads), lseB = lseA
        for step in 0..<steps {
            let t = prompt + step
            // A slice of the whole run's buffer: the offsets count from the slice's first element.
            let row = all[t * rowWidth..<(t + 1) * rowWidth]
            try safe.append(k: TensorArray(row, offset: kOff, layout: tokenLayout), v: TensorArray(row, offset: vOff, layout: tokenLayout),
                            tokens: 1)
            try safe.attend(q: TensorArray(row, layout: tokenLayout), output: &a, queries: 1, lse: &lseA)
            try row.withUnsafeBufferPointer { f in
                try pointer.append(k: AttentionInput(UnsafeBufferPointer(rebasing: f[kOff...]), layout: tokenLayout),
                                   v: AttentionInput(UnsafeBufferPointer(rebasing: f[vOff...]), layout: tokenLayout), tokens: 1)
                _ = try b.withUnsafeMutableBufferPointer { o in
                    try lseB.withUnsafeMutableBufferPointer { l in
                        try pointer.attend(q: AttentionInput(f, layout: tokenLayout), output: AttentionOutput(o), queries: 1, lse: l)
                    }
                }
            }
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "step \(step)")
            #expect(lseA.map(\.bitPattern) == lseB.map(\.bitPattern), "step \(step)")
            try safe.attend(q: TensorArray(row, layout: tokenLayout), output: &a, queries: 1)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "step \(step)")
        }
        let lastRow = all[(prompt + steps - 1) * rowWidth..<(prompt + steps) * rowWidth]
        try safe.attendExact(q: TensorArray(lastRow, layout: tokenLayout), output: &a, queries: 1)
        try lastRow.withUnsafeBufferPointer { f in
            try b.withUnsafeMutableBufferPointer { o in
                try pointer.attendExact(q: AttentionInput(f, layout: tokenLayout), output: AttentionOutput(o), queries: 1)
            }
        }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        // A view one element past the row names the tensor (and the cache keeps its length).
        #expect(throws: SpargeError.viewOutOfBounds(name: "k", offset: vOff + 1, needed: vOff + 1 + kvHeads * d, actual: rowWidth)) {
            try safe.append(k: TensorArray(lastRow, offset: vOff + 1, layout: tokenLayout),
                            v: TensorArray(lastRow, offset: vOff, layout: tokenLayout), tokens: 1)
        }
        #expect(safe.length == prompt + steps)
    }

    /// A token order (Hilbert with a CLS prefix) through the array one-shot call equals the
    /// pointer form with the same order, and a plan made with that order, bit for bit.
    @Test func tokenOrderThroughArraysMatchesPointers() throws {
        let order = try TokenOrder.hilbert(height: 8, width: 12, prefix: 1)
        let heads = 2, d = 32, n = order.count
        let shape = AttentionShape(heads: heads, queryLength: n, headDim: d)
        let layout = TensorLayout.nhd(heads: heads, tokens: n, headDim: d)
        var rng = TestRNG(seed: 13)
        let q = rng.gaussians(n * heads * d).map { Float16($0) }, k = rng.gaussians(n * heads * d).map { Float16($0) }
        let v = rng.gaussians(n * heads * d).map { Float16($0) }
        var a = [Float](repeating: 0, count: n * heads * d), b = a, c = a
        try SpargeAttention.sparse(q: TensorArray(q, layout: layout), k: TensorArray(k, layout: layout),
                                   v: TensorArray(v, layout: layout), output: &a, outputLayout: layout, shape: shape, tokenOrder: order)
        _ = try q.withUnsafeBufferPointer { qp in
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try b.withUnsafeMutableBufferPointer { o in
                        try SpargeAttention.sparse(q: AttentionInput(qp, layout: layout), k: AttentionInput(kp, layout: layout),
                                                   v: AttentionInput(vp, layout: layout), output: AttentionOutput(o, layout: layout),
                                                   shape: shape, tokenOrder: order)
                    }
                }
            }
        }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        let plan = try SpargePlan(shape: shape, tokenOrder: order)
        try plan.run(q: TensorArray(q, layout: layout), k: TensorArray(k, layout: layout), v: TensorArray(v, layout: layout),
                     output: &c, outputLayout: layout, workspace: plan.makeWorkspace())
        #expect(c.map(\.bitPattern) == b.map(\.bitPattern))
    }

    /// The variable-length call over arrays equals the pointer form bit for bit.
    @Test func variableLengthThroughArraysMatchesPointers() throws {
        let heads = 2, d = 32
        let batch = try VariableLengthBatch(cumulativeQueryLengths: [0, 70, 200, 233])
        var rng = TestRNG(seed: 9)
        let q = rng.gaussians(batch.totalQueries * heads * d), k = rng.gaussians(batch.totalKeys * heads * d)
        let v = rng.gaussians(batch.totalKeys * heads * d)
        var a = [Float](repeating: 0, count: q.count), b = a
        let ra = try SpargeAttention.sparse(q: q, k: k, v: v, output: &a, batch: batch, heads: heads, headDim: d)
        let rb = try q.withUnsafeBufferPointer { qp in
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try b.withUnsafeMutableBufferPointer { o in
                        try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp),
                                                   output: AttentionOutput(o), batch: batch, heads: heads, headDim: d)
                    }
                }
            }
        }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(ra.map(\.blockMap) == rb.map(\.blockMap))
    }
}
