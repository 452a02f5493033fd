import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Causal attention with `Nq != Nk`: bottom-right (query `t` sees keys up to `t + Nk - Nq`,
/// the default) and top-left (keys up to `t`, torch's `is_causal`), against float64.
struct CausalAlignmentTests {
    /// (Nq, Nk, D, heads, kvHeads): Nq below and above Nk, N below a block, ragged, GQA, D 1-256.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int)] = [
        (5, 9, 3, 2, 1), (9, 5, 1, 1, 1), (200, 77, 64, 2, 2), (77, 300, 80, 4, 2),
        (130, 257, 256, 2, 1), (300, 129, 17, 3, 3), (1, 70, 128, 4, 2), (64, 200, 32, 2, 2),
    ]

    @Test(arguments: 0..<cases.count, CausalAlignment.allCases)
    func bothAlignmentsMatchFloat64(index: Int, alignment: CausalAlignment) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(900 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5)
        let v = rng.gaussians(shape.keyElements)
        let offset = alignment == .topLeft ? 0 : c.nk - c.nq
        let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: offset)
        // Dense: exact.
        let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: true, causalAlignment: alignment)
        #expect(try Accuracy(dense, reference: ref.output).relativeL2 <= 1e-5, "dense \(shape) \(alignment)")
        var denseOut = dense, denseLSE = [Float](repeating: 0, count: shape.batch * shape.heads * c.nq)
        try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try denseOut.withUnsafeMutableBufferPointer { o in try denseLSE.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: shape, causal: true, causalAlignment: alignment, lse: l)
            } } } } }
        // Rows that see no key (bottom-right with Nq > Nk) have lse -inf in both.
        #expect(ExtendedReference.maxLSEError(denseLSE, ref.lse) <= 1e-4, "dense lse \(shape) \(alignment)")
        // Sparse, every block marked, stage 2 off: only INT8 separates it from exact.
        var p = SpargeParameters()
        p.blockQ = 64
        p.blockK = 64
        p.causal = true
        p.causalAlignment = alignment
        p.pvThreshold = PerHead(Float.infinity)
        let (nq, nk) = shape.blockCounts(blockQ: 64, blockK: 64)
        let full = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: nq, keyBlocks: nk)
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full, captureLSE: true)
        let acc = try Accuracy(out, reference: ref.output)
        #expect(acc.cosine >= 0.999 && acc.relativeL2 <= 0.05, "sparse \(shape) \(alignment): \(acc.cosine) \(acc.relativeL2)")
        #expect(ExtendedReference.maxLSEError(try #require(result.lse), ref.lse) <= 0.15, "sparse lse \(shape) \(alignment)")
        // Stage 1: no selected block lies entirely in the causal future of its query block, and
        // the kernel equals the float64 reference restricted to the predicted map.
        p.selection = .topK(0.5)
        let (predictedOut, predicted) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        let map = try #require(predicted.blockMap)
        for b in 0..<2 { for h in 0..<c.h { for i in 0..<nq { for j in 0..<nk where map[b, h, i, j] {
            // The GPU code's block rule (ExactSemantics section 2, step 7), shifted by the offset.
            #expect(j * 64 < (i + 1) * 64 + offset, "block (\(i), \(j)) is in the causal future")
        } } } }
        let masked = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: offset,
                                                 blockMap: map, blockQ: 64, blockK: 64)
        #expect(try Accuracy(predictedOut, reference: masked.output).cosine >= 0.999, "predicted \(shape) \(alignment)")
    }

    /// Other backends (the GPU) take the offset from `causalOffset(for:)` (0 top-left, Nk - Nq
    /// bottom-right): the validation they share accepts both alignments.
    @Test func otherBackendsTakeEitherAlignment() throws {
        let shape = AttentionShape(heads: 1, queryLength: 8, keyLength: 16, headDim: 4)
        let x = [Float](repeating: 0.5, count: shape.keyElements)
        let qs = [Float](repeating: 0.5, count: shape.queryElements)
        var out = [Float](repeating: 0, count: shape.queryElements)
        var p = SpargeParameters()
        p.causal = true
        try x.withUnsafeBufferPointer { x in try qs.withUnsafeBufferPointer { qs in try out.withUnsafeMutableBufferPointer { o in
            let input = AttentionInput(x)
            for alignment in [CausalAlignment.topLeft, .bottomRight] {
                p.causalAlignment = alignment
                _ = try SpargeAttention.resolveSparseCall(q: AttentionInput(qs), k: input, v: input, output: AttentionOutput(o),
                                                          shape: shape, parameters: p, blockMap: nil)
            }
        } } }
        p.causalAlignment = .topLeft
        #expect(p.causalOffset(for: shape) == 0)
        p.causalAlignment = .bottomRight
        #expect(p.causalOffset(for: shape) == 8)
    }

    @Test func topLeftKVCacheIsRejected() throws {
        var p = SpargeParameters()
        p.causal = true
        p.causalAlignment = .topLeft
        #expect(throws: SpargeError.self) { try SpargeKVCache(heads: 1, headDim: 8, capacity: 16, parameters: p) }
    }
}
