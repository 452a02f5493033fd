import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The sparse INT8 path against the float64 reference on randomized shapes.
struct SparseVsReferenceTests {
    /// (Nq, Nk, D, causal, bq, bk): ragged, tiny, N smaller than a block, both GPU block pairs.
    static let cases: [(nq: Int, nk: Int, d: Int, causal: Bool, bq: Int, bk: Int)] = [
        (1, 1, 1, false, 128, 64), (5, 5, 3, true, 128, 64), (200, 200, 64, true, 128, 64),
        (130, 77, 80, false, 64, 128), (300, 300, 128, true, 64, 128), (70, 257, 256, false, 128, 64),
        (129, 129, 1, true, 128, 64), (33, 500, 3, false, 64, 128), (256, 256, 64, false, 128, 64),
    ]

    /// All blocks marked and stage 2 off: only INT8 quantization separates it from exact.
    @Test(arguments: 0..<cases.count)
    func fullMapMatchesFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(100 + index))
        let shape = AttentionShape(batch: 2, heads: 2, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.pvThreshold = PerHead(Float.infinity)
        let map = try BlockMap.full(batch: 2, heads: 2, queryBlocks: blockCount(c.nq, c.bq), keyBlocks: blockCount(c.nk, c.bk))
        for variant in QuantizationVariant.allCases {
            p.gpuReproduction.quantization = variant
            let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: map)
            let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.causal)
            let acc = try Accuracy(out, reference: ref)
            #expect(acc.cosine >= 0.999, "cosine \(acc.cosine) for \(shape) causal \(c.causal) \(variant)")
            #expect(result.statistics.skippedTiles == 0)
        }
    }

    /// A predicted (sparse) map: the kernel must equal exact attention restricted to that map.
    @Test(arguments: 0..<cases.count)
    func predictedMapMatchesMaskedFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(200 + index))
        let shape = AttentionShape(batch: 1, heads: 3, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
        let v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.selection = .topK([0.3, 0.5, 1.0])
        p.simThreshold = [-1, -0.1, 0.5]
        p.pvThreshold = PerHead(Float.infinity)
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.causal,
                                             blockMap: result.blockMap, blockQ: c.bq, blockK: c.bk)
        let acc = try Accuracy(out, reference: ref)
        #expect(acc.cosine >= 0.999, "cosine \(acc.cosine) for \(shape), density \(result.statistics.density)")
    }

    /// Stage 2 at lambda = 0 skips tiles but stays close; huge lambda never skips.
    @Test func stageTwoFilterSkipsOnlyNegligibleTiles() throws {
        var rng = TestRNG(seed: 7)
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 512, headDim: 64)
        // Peaked attention: queries aligned with a few keys.
        let k = rng.gaussians(shape.keyElements, scale: 3)
        var q = k
        for i in q.indices { q[i] = q[i] * 2 + rng.gaussian() * 0.1 }
        let v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.selection = .topK(1)
        p.simThreshold = -1
        p.pvThreshold = 8
        p.gpuReproduction.stage2ExemptTailBlocks = 0
        let (out, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(r.statistics.skippedTiles > 0)
        let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape)
        #expect(try Accuracy(out, reference: ref).cosine >= 0.999)
        p.pvThreshold = 1e9
        let (_, r2) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(r2.statistics.skippedTiles == 0)
    }

    /// Few query blocks: the key range is split across work items (split-K) and merged.
    @Test func splitKeyRangesMatchFloat64() throws {
        var rng = TestRNG(seed: 13)
        for causal in [false, true] {
            let shape = AttentionShape(batch: 1, heads: 1, queryLength: 700, headDim: 64)
            #expect(splitFactor(items: 6, keyBlocks: 11) > 1)
            let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
            let v = rng.gaussians(shape.keyElements)
            var p = SpargeParameters()
            p.causal = causal
            p.pvThreshold = PerHead(Float.infinity)
            let (out, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: causal, blockMap: r.blockMap)
            #expect(try Accuracy(out, reference: ref).cosine >= 0.9995)
            let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: causal)
            let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: causal)
            #expect(try Accuracy(dense, reference: exact).relativeL2 <= 1e-5)
            let (one, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 1)
            #expect(one.map(\.bitPattern) == out.map(\.bitPattern), "split-K output depends on the thread count")
        }
    }

    /// Same output bits for one thread and for all threads.
    @Test func outputIsBitwiseIdenticalAcrossThreadCounts() throws {
        var rng = TestRNG(seed: 9)
        let shape = AttentionShape(batch: 2, heads: 3, queryLength: 333, keyLength: 333, headDim: 48)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.causal = true
        p.pvThreshold = 4
        let (a, ra) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 1)
        let (b, rb) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 5)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(ra == rb)
        let d1 = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: true, threads: 1)
        let d2 = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: true, threads: 3)
        #expect(d1.map(\.bitPattern) == d2.map(\.bitPattern))
    }

    /// The fast self-similarity (norm of the summed unit rows) equals the literal Gram sum.
    @Test func selfSimilarityMatchesGramMatrix() {
        var rng = TestRNG(seed: 11)
        for (rows, d) in [(1, 1), (7, 3), (64, 64), (128, 32)] {
            let x = rng.gaussians(rows * d)
            var pooled = [Float](repeating: 0, count: d), scratch = [Float](repeating: 0, count: d)
            let fast = x.withUnsafeBufferPointer { xp in
                summarizeBlock(xp.baseAddress!, rows: rows, blockSize: rows, d: d, gpuRounding: false,
                               partialBlocks: .measure, pooled: &pooled, scratch: &scratch)
            }
            let slow = Stage1Reference.selfSimilarity(x, rows: rows, d: d)
            #expect(abs(Double(fast) - slow) < 1e-5, "rows \(rows) d \(d): \(fast) vs \(slow)")
        }
    }
}
