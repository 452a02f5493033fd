import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Every combination of layout x element type x GQA ratio x causal x (Nq, Nk): the dense path
/// matches the float64 reference of the same semantics, and the sparse path gives the same
/// block map and output as the core fp32 HND path on the same (rounded) data.
struct LayoutTypeMatrixTests {
    enum Layout: CaseIterable { case hnd, nhd, fused }

    /// Places `x` (dense fp32 HND `b x h x n x d`) in `layout`; returns the buffer length and layout.
    static func place(_ x: [Float], b: Int, h: Int, n: Int, d: Int, layout: Layout) -> (Int, TensorLayout, (Int) -> Int) {
        let l: TensorLayout
        switch layout {
        case .hnd: l = .hnd(heads: h, tokens: n, headDim: d)
        case .nhd: l = .nhd(heads: h, tokens: n, headDim: d)
        case .fused:  // rows of a QKV-like buffer: every token row holds 3 x h x d values.
            l = TensorLayout(batchStride: n * 3 * h * d, headStride: d, tokenStride: 3 * h * d)
        }
        let count = (l.lastOffset(batch: b, heads: h, tokens: n, headDim: d) ?? 0) + 1
        let index = { (i: Int) -> Int in
            let c = i % d, t = (i / d) % n, hh = (i / (d * n)) % h, bb = i / (d * n * h)
            return bb * l.batchStride + hh * l.headStride + t * l.tokenStride + c
        }
        return (count, l, index)
    }

    static func round(_ x: [Float], _ type: ElementType) -> [Float] {
        switch type {
        case .float32: return x
        case .float16: return x.map { Float(Float16($0)) }
        case .bfloat16: return x.map { BFloat16($0).float }
        }
    }

    /// Runs `body` with the three inputs and the output as typed, laid-out buffers.
    static func withTensors<R>(
        _ q: [Float], _ k: [Float], _ v: [Float], shape s: AttentionShape, layout: Layout, type: ElementType,
        _ body: (AttentionInput, AttentionInput, AttentionInput, AttentionOutput, () -> [Float]) throws -> R
    ) rethrows -> R {
        let (qn, ql, qi) = place(q, b: s.batch, h: s.heads, n: s.queryLength, d: s.headDim, layout: layout)
        let (kn, kl, ki) = place(k, b: s.batch, h: s.kvHeads, n: s.keyLength, d: s.headDim, layout: layout)
        let (on, ol, oi) = place(q, b: s.batch, h: s.heads, n: s.queryLength, d: s.headDim, layout: layout)
        func fill(_ x: [Float], _ n: Int, _ idx: (Int) -> Int) -> [Float] {
            var buf = [Float](repeating: 0, count: n)
            for i in x.indices { buf[idx(i)] = x[i] }
            return buf
        }
        let qb = fill(q, qn, qi), kb = fill(k, kn, ki), vb = fill(v, kn, ki)
        func read<T>(_ o: [T], _ f: (T) -> Float) -> [Float] { (0..<s.queryElements).map { f(o[oi($0)]) } }
        switch type {
        case .float32:
            var o = [Float](repeating: .nan, count: on)
            return try qb.withUnsafeBufferPointer { qp in try kb.withUnsafeBufferPointer { kp in try vb.withUnsafeBufferPointer { vp in
                try o.withUnsafeMutableBufferPointer { op in
                    try body(AttentionInput(qp, layout: ql), AttentionInput(kp, layout: kl), AttentionInput(vp, layout: kl),
                             AttentionOutput(op, layout: ol), { read(Array(op), { $0 }) })
                } } } }
        case .float16:
            let q16 = qb.map { Float16($0) }, k16 = kb.map { Float16($0) }, v16 = vb.map { Float16($0) }
            var o = [Float16](repeating: .nan, count: on)
            return try q16.withUnsafeBufferPointer { qp in try k16.withUnsafeBufferPointer { kp in try v16.withUnsafeBufferPointer { vp in
                try o.withUnsafeMutableBufferPointer { op in
                    try body(AttentionInput(qp, layout: ql), AttentionInput(kp, layout: kl), AttentionInput(vp, layout: kl),
                             AttentionOutput(op, layout: ol), { read(Array(op), { Float($0) }) })
                } } } }
        case .bfloat16:
            let q16 = qb.map { BFloat16($0) }, k16 = kb.map { BFloat16($0) }, v16 = vb.map { BFloat16($0) }
            var o = [BFloat16](repeating: BFloat16(bitPattern: 0x7FC0), count: on)
            return try q16.withUnsafeBufferPointer { qp in try k16.withUnsafeBufferPointer { kp in try v16.withUnsafeBufferPointer { vp in
                try o.withUnsafeMutableBufferPointer { op in
                    try body(AttentionInput(qp, layout: ql), AttentionInput(kp, layout: kl), AttentionInput(vp, layout: kl),
                             AttentionOutput(op, layout: ol), { read(Array(op), { $0.float }) })
                } } } }
        }
    }

    static let lengths = [(37, 37), (5, 130), (130, 70)]

    @Test(arguments: ElementType.allCases, [4, 2, 1])
    func everyCombinationMatches(type: ElementType, kvHeads: Int) throws {
        var rng = TestRNG(seed: UInt64(kvHeads * 10 + type.size))
        for layout in Layout.allCases {
            for (nq, nk) in Self.lengths {
                for causal in [false, true] {
                    let s = AttentionShape(batch: 2, heads: 4, kvHeads: kvHeads, queryLength: nq, keyLength: nk, headDim: 24)
                    let q = Self.round(rng.gaussians(s.queryElements, scale: 1.5), type)
                    let k = Self.round(rng.gaussians(s.keyElements, scale: 1.5), type)
                    let v = Self.round(rng.gaussians(s.keyElements), type)
                    let label = "\(type) \(layout) Hkv=\(kvHeads) Nq=\(nq) Nk=\(nk) causal=\(causal)"
                    let outTolerance: Double = type == .float32 ? 1e-5 : (type == .float16 ? 2e-3 : 1e-2)
                    // Dense against float64.
                    let dense = try Self.withTensors(q, k, v, shape: s, layout: layout, type: type) { qi, ki, vi, o, read in
                        try SpargeAttention.dense(q: qi, k: ki, v: vi, output: o, shape: s, causal: causal)
                        return read()
                    }
                    let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: s, causal: causal)
                    #expect(try Accuracy(dense, reference: ref).relativeL2 <= outTolerance, "dense \(label)")
                    // Sparse against the core fp32 HND path on the same data.
                    var p = SpargeParameters()
                    p.blockQ = 32
                    p.blockK = 16
                    p.causal = causal
                    p.selection = .topK(0.5)
                    p.pvThreshold = 4
                    let (core, coreResult) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p)
                    let (sparse, result) = try Self.withTensors(q, k, v, shape: s, layout: layout, type: type) { qi, ki, vi, o, read in
                        let r = try SpargeAttention.sparse(q: qi, k: ki, v: vi, output: o, shape: s, parameters: p)
                        return (read(), r)
                    }
                    #expect(result.blockMap == coreResult.blockMap, "block map \(label)")
                    #expect(result.statistics == coreResult.statistics, "statistics \(label)")
                    let expected = Self.round(core, type)
                    #expect(sparse.map(\.bitPattern) == expected.map(\.bitPattern), "sparse output \(label)")
                }
            }
        }
    }

    /// The KV-cache convention: the queries are the last Nq tokens of the sequence.
    @Test func causalWithFewerQueriesIsTheTailOfTheFullSequence() throws {
        var rng = TestRNG(seed: 5)
        let full = AttentionShape(heads: 2, queryLength: 90, headDim: 16)
        let q = rng.gaussians(full.queryElements), k = rng.gaussians(full.keyElements), v = rng.gaussians(full.keyElements)
        let all = try SpargeAttention.dense(q: q, k: k, v: v, shape: full, causal: true)
        let tail = AttentionShape(heads: 2, queryLength: 7, keyLength: 90, headDim: 16)
        var qTail: [Float] = [], expected: [Float] = []
        for h in 0..<2 {
            let rows: Range<Int> = (h * 90 + 83) * 16..<(h * 90 + 90) * 16
            qTail += q[rows]
            expected += all[rows]
        }
        let out = try SpargeAttention.dense(q: qTail, k: k, v: v, shape: tail, causal: true)
        #expect(try Accuracy(out, reference: expected.map(Double.init)).relativeL2 <= 1e-6)
    }
}
