import Testing
@testable import SpargeAttn
import SpargeTestSupport
import Foundation

/// Q smoothing (`SpargeParameters.smoothQ`): the same attention as without it up to INT8
/// rounding, with a smaller error when the queries share a large common component (as a
/// language model's do), stage 1 untouched, and every path that cannot honour it refusing it.
struct QuerySmoothingTests {
    /// (Nq, Nk, D, heads, kvHeads, causal, bq, bk): ragged, N below a block, D 1...256, GQA, Nq != Nk.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool, bq: Int, bk: Int)] = [
        (1, 1, 1, 1, 1, false, 128, 64), (5, 70, 3, 2, 1, true, 128, 64), (200, 200, 64, 4, 2, true, 128, 64),
        (130, 77, 80, 2, 2, false, 64, 128), (300, 300, 128, 2, 1, true, 64, 128), (70, 257, 256, 1, 1, false, 128, 64),
        (129, 600, 24, 3, 3, true, 128, 64), (256, 256, 64, 2, 2, false, 128, 64),
    ]

    /// Queries with a per-(head, channel) offset shared by every token, plus noise.
    static func offsetQueries(_ shape: AttentionShape, offset: Float, rng: inout TestRNG) -> [Float] {
        let d = shape.headDim
        let shared = rng.gaussians(shape.batch * shape.heads * d, scale: offset)
        var q = rng.gaussians(shape.queryElements)
        for i in q.indices {
            let bh = i / (shape.queryLength * d)
            q[i] += shared[bh * d + i % d]
        }
        return q
    }

    /// Full map, stage 2 off, both quantization variants: smoothed INT8 scores against exact
    /// float64 attention and log-sum-exp, never worse than without smoothing and at least
    /// twice as close on the larger blocks.
    @Test(arguments: 0..<cases.count)
    func smoothedQueriesMatchFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(1300 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = Self.offsetQueries(shape, offset: 4, rng: &rng)
        let k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.pvThreshold = PerHead(Float.infinity)
        let map = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: blockCount(c.nq, c.bq), keyBlocks: blockCount(c.nk, c.bk))
        let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil)
        for variant in QuantizationVariant.allCases {
            p.gpuReproduction.quantization = variant
            p.smoothQ = false
            let (plain, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: map)
            p.smoothQ = true
            let (smoothed, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: map, captureLSE: true)
            let errPlain = try Accuracy(plain, reference: ref.output).relativeL1
            let errSmoothed = try Accuracy(smoothed, reference: ref.output).relativeL1
            #expect(try Accuracy(smoothed, reference: ref.output).cosine >= 0.9995, "\(shape) \(variant)")
            #expect(errSmoothed <= errPlain * 1.05 + 1e-6, "\(shape) \(variant): \(errSmoothed) vs \(errPlain) unsmoothed")
            if c.nq >= 128 && c.d >= 24 {
                #expect(errSmoothed * 2 <= errPlain, "\(shape) \(variant): \(errSmoothed) vs \(errPlain) unsmoothed")
            }
            #expect(ExtendedReference.maxLSEError(try #require(r.lse), ref.lse) <= 0.05, "\(shape) \(variant) LSE")
        }
    }

    /// Stage 1 reads the raw queries: the block map and the selection statistics are those of
    /// the unsmoothed call; the output stays close to exact attention on that map; one thread
    /// and five give the same bits; the plan gives the one-shot call's bits.
    @Test(arguments: [2, 4, 6])
    func predictionUnchangedAndOutputsDeterministic(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(1400 + index))
        let shape = AttentionShape(batch: 1, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = Self.offsetQueries(shape, offset: 3, rng: &rng)
        let k = rng.gaussians(shape.keyElements, scale: 2), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.selection = .topK(0.5)
        p.pvThreshold = 12
        let (_, plain) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        p.smoothQ = true
        let (one, r1) = try expectDeterministicSparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(r1.blockMap == plain.blockMap)
        #expect(r1.statistics.selectedBlocks == plain.statistics.selectedBlocks)
        let masked = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil,
                                                 blockMap: r1.blockMap, blockQ: c.bq, blockK: c.bk)
        #expect(try Accuracy(one, reference: masked.output).cosine >= 0.999)
    }

    /// Decoding shapes (one or a few queries, GQA) where the grouped decode kernel would run:
    /// smoothing takes the per-head kernel, and a single query's scores are then exact fp32.
    @Test func decodingShapesUseExactScores() throws {
        var rng = TestRNG(seed: 1500)
        for nq in [1, 3] {
            let shape = AttentionShape(batch: 1, heads: 8, kvHeads: 2, queryLength: nq, keyLength: 700, headDim: 64)
            let q = Self.offsetQueries(shape, offset: 4, rng: &rng)
            let k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
            var p = SpargeParameters()
            p.causal = true
            p.selection = .topK(1)
            p.pvThreshold = PerHead(Float.infinity)
            p.smoothQ = true
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: 700 - nq)
            let err = try Accuracy(out, reference: ref.output).relativeL1
            #expect(err <= (nq == 1 ? 1e-5 : 5e-3), "Nq \(nq): relative L1 \(err)")
        }
    }

    /// Huge queries and keys (scores far beyond fp32) stay finite and close to exact.
    @Test func hugeInputsStayFinite() throws {
        var rng = TestRNG(seed: 1600)
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 150, keyLength: 150, headDim: 32)
        let q = Self.offsetQueries(shape, offset: 4, rng: &rng).map { $0 * 1e19 }
        let k = rng.gaussians(shape.keyElements).map { $0 * 1e19 }, v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        p.smoothQ = true
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(out.allSatisfy { $0.isFinite })
        let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape)
        #expect(try Accuracy(out, reference: ref).cosine >= 0.99)
    }

    /// The KV cache does not keep fp32 keys: it refuses, with a message that says what to do.
    @Test func kvCacheRefusesSmoothing() {
        var p = SpargeParameters()
        p.smoothQ = true
        #expect {
            _ = try SpargeKVCache(heads: 2, headDim: 16, capacity: 64, parameters: p)
        } throws: { error in
            guard case SpargeError.unsupported(let message) = error else { return false }
            return message.contains("smoothQ")
        }
    }
}
