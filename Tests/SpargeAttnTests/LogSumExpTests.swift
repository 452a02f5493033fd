import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The per-row log-sum-exp option: equal to float64, and two halves of the keys merged by
/// their log-sum-exps equal the whole (chunked prefill, split-K across calls).
struct LogSumExpTests {
    /// (Nq, Nk, D, heads, kvHeads, causal): ragged, N below a block, D from 1 to 256, GQA, Nq != Nk.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool)] = [
        (1, 1, 1, 1, 1, false), (5, 9, 3, 2, 1, true), (200, 200, 64, 2, 2, true), (130, 77, 80, 4, 2, false),
        (70, 257, 256, 2, 1, true), (129, 300, 17, 3, 3, false), (1, 500, 64, 4, 1, true), (33, 20, 128, 2, 2, true),
    ]

    @Test(arguments: 0..<cases.count)
    func lseMatchesFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(700 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5)
        let v = rng.gaussians(shape.keyElements)
        let rows = shape.batch * shape.heads * shape.queryLength
        // Dense (exact): against float64 directly.
        var out = [Float](repeating: 0, count: shape.queryElements), lse = [Float](repeating: 0, count: rows)
        try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: shape, causal: c.causal, lse: l)
            } } } } }
        let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil)
        #expect(ExtendedReference.maxLSEError(lse, ref.lse) <= 1e-4, "dense \(shape)")
        #expect(try Accuracy(out, reference: ref.output).relativeL2 <= 1e-5)
        // Sparse with a predicted map, stage 2 off: against float64 from the call's own INT8
        // tensors restricted to that map (quantization is not what is tested here), the output
        // against the exact reference on that map; the plan gives the one-shot call's bits.
        var p = SpargeParameters()
        p.blockQ = 64
        p.blockK = 64
        p.causal = c.causal
        p.selection = .topK(0.5)
        p.pvThreshold = PerHead(Float.infinity)
        let (sparseOut, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p,
                                                        captureQuantized: true, captureLSE: true)
        let masked = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil,
                                                 blockMap: r.blockMap, blockQ: 64, blockK: 64)
        let sparseLSE = try #require(r.lse)
        let int8Reference = ExtendedReference.dequantizedLSE(
            q: q, tensors: try #require(r.quantized), shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil,
            map: try #require(r.blockMap), blockQ: 64, blockK: 64)
        #expect(ExtendedReference.maxLSEError(sparseLSE, int8Reference) <= 1e-4, "sparse \(shape)")
        // Against exact float64 the INT8 scores move each log-sum-exp by a few hundredths at most.
        #expect(ExtendedReference.maxLSEError(sparseLSE, masked.lse) <= 0.15, "sparse vs exact \(shape)")
        #expect(try Accuracy(sparseOut, reference: masked.output).cosine >= 0.999)
        let plan = try SpargePlan(shape: shape, parameters: p)
        let workspace = plan.makeWorkspace()
        var planOut = [Float](repeating: 0, count: shape.queryElements), planLSE = [Float](repeating: 0, count: rows)
        _ = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try planOut.withUnsafeMutableBufferPointer { o in try planLSE.withUnsafeMutableBufferPointer { l in
                try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o),
                             workspace: workspace, lse: l)
            } } } } }
        #expect(planLSE.map(\.bitPattern) == sparseLSE.map(\.bitPattern))
        #expect(planOut.map(\.bitPattern) == sparseOut.map(\.bitPattern))
    }

    /// Issue 16's check: attention over the first and the second half of the keys, merged by
    /// their log-sum-exps, equals attention over all keys (rel L2 <= 1e-5), on the dense path
    /// and on the sparse path with the whole call's map split in two (K smoothing off and the
    /// split on a key-block boundary, so the INT8 blocks of K are the same in both).
    @Test(arguments: [(64, 128, 32, 1), (200, 320, 64, 2), (1, 256, 128, 4), (37, 192, 5, 1)])
    func mergingTwoHalvesEqualsTheWhole(nq: Int, nk: Int, d: Int, groups: Int) throws {
        var rng = TestRNG(seed: UInt64(nq * 1000 + nk))
        let shape = AttentionShape(batch: 2, heads: 2 * groups, kvHeads: 2, queryLength: nq, keyLength: nk, headDim: d)
        let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
        let v = rng.gaussians(shape.keyElements)
        let split = (nk / 2 / 64) * 64
        let first = AttentionShape(batch: 2, heads: shape.heads, kvHeads: 2, queryLength: nq, keyLength: split, headDim: d)
        let second = AttentionShape(batch: 2, heads: shape.heads, kvHeads: 2, queryLength: nq, keyLength: nk - split, headDim: d)
        let (k1, v1) = (ExtendedReference.keys(k, shape: shape, 0..<split), ExtendedReference.keys(v, shape: shape, 0..<split))
        let (k2, v2) = (ExtendedReference.keys(k, shape: shape, split..<nk), ExtendedReference.keys(v, shape: shape, split..<nk))

        func dense(_ k: [Float], _ v: [Float], _ s: AttentionShape) throws -> ([Float], [Float]) {
            var out = [Float](repeating: 0, count: s.queryElements), lse = [Float](repeating: 0, count: s.batch * s.heads * nq)
            try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
                try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                    try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: s, lse: l)
                } } } } }
            return (out, lse)
        }
        let whole = try dense(k, v, shape), a = try dense(k1, v1, first), b = try dense(k2, v2, second)
        let merged = ExtendedReference.merge(a.0, a.1, b.0, b.1, d: d)
        #expect(try Accuracy(whole.0, reference: merged.output).relativeL2 <= 1e-5, "dense output")
        #expect(ExtendedReference.maxLSEError(whole.1, merged.lse) <= 1e-5, "dense lse")

        var p = SpargeParameters()
        p.blockQ = 64
        p.blockK = 64
        p.smoothK = false
        p.selection = .topK(0.6)
        p.pvThreshold = PerHead(Float.infinity)
        let (wholeOut, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, captureLSE: true)
        let map = try #require(r.blockMap)
        func part(_ blocks: Range<Int>) throws -> BlockMap {
            var m = try BlockMap(batch: map.batch, heads: map.heads, queryBlocks: map.queryBlocks, keyBlocks: blocks.count)
            for b in 0..<map.batch { for h in 0..<map.heads { for i in 0..<map.queryBlocks { for (n, j) in blocks.enumerated() {
                m[b, h, i, n] = map[b, h, i, j]
            } } } }
            return m
        }
        let (o1, r1) = try SpargeAttention.sparse(q: q, k: k1, v: v1, shape: first, parameters: p,
                                                  blockMap: part(0..<(split / 64)), captureLSE: true)
        let (o2, r2) = try SpargeAttention.sparse(q: q, k: k2, v: v2, shape: second, parameters: p,
                                                  blockMap: part((split / 64)..<map.keyBlocks), captureLSE: true)
        let sparseMerged = ExtendedReference.merge(o1, try #require(r1.lse), o2, try #require(r2.lse), d: d)
        #expect(try Accuracy(wholeOut, reference: sparseMerged.output).relativeL2 <= 1e-5, "sparse output")
        #expect(ExtendedReference.maxLSEError(try #require(r.lse), sparseMerged.lse) <= 1e-5, "sparse lse")
    }

    @Test func shortLSEBufferIsRejected() throws {
        let shape = AttentionShape(heads: 2, queryLength: 10, headDim: 8)
        let x = [Float](repeating: 0.5, count: shape.queryElements)
        var out = x, lse = [Float](repeating: 0, count: 19)
        #expect(throws: SpargeError.bufferTooSmall(name: "lse", expected: 20, actual: 19)) {
            try x.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.sparse(q: p, k: p, v: p, output: o, shape: shape, lse: l)
            } } }
        }
    }
}
