import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Learned sink logits (`SpargeParameters.sinkLogits`, the dense calls' `sinkLogits:`): every
/// path against float64, including split-K, the grouped decode kernel, K smoothing's shifted
/// scores and the KV cache.
struct SinkLogitTests {
    /// (Nq, Nk, D, heads, kvHeads, causal): one query block with GQA (grouped decode), few query
    /// blocks and many keys (split-K), ragged and causal shapes with Nq != Nk.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool)] = [
        (1, 700, 64, 4, 2, true), (3, 2000, 32, 4, 1, false), (200, 77, 17, 2, 2, true), (77, 300, 128, 4, 2, false),
        (130, 257, 256, 2, 1, true), (9, 5, 1, 1, 1, true),
    ]

    /// Per-head sinks from far below the scores (no effect) to far above (the output near 0).
    static func sinks(heads: Int) -> PerHead { PerHead((0..<heads).map { [-30, 0.5, 3, 40][$0 % 4] }) }

    @Test(arguments: 0..<cases.count)
    func everyPathMatchesFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(1400 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5).map { $0 + 0.7 }
        let v = rng.gaussians(shape.keyElements)
        let sinks = Self.sinks(heads: c.h)
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil,
                                                        sinkLogits: sinks)
        let what = "\(shape) causal \(c.causal)"

        var dense = [Float](repeating: 0, count: shape.queryElements), denseLSE = [Float](repeating: 0, count: 2 * c.h * c.nq)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: shape, causal: c.causal, sinkLogits: sinks, lse: &denseLSE)
        #expect(try Accuracy(dense, reference: ref.output).relativeL2 <= 1e-5, "dense \(what)")
        #expect(ExtendedReference.maxLSEError(denseLSE, ref.lse) <= 1e-4, "dense lse \(what)")

        // Sparse with K smoothing (the kernel's scores are shifted by q . mean), every block, stage 2 off.
        var p = SpargeParameters()
        p.blockQ = 64
        p.causal = c.causal
        p.sinkLogits = sinks
        p.pvThreshold = PerHead(Float.infinity)
        let (nq, nk) = shape.blockCounts(blockQ: 64, blockK: 64)
        let full = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: nq, keyBlocks: nk)
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full, captureLSE: true)
        let acc = try Accuracy(out, reference: ref.output)
        #expect(acc.cosine >= 0.999 && acc.relativeL2 <= 0.05, "sparse \(what): \(acc.cosine) \(acc.relativeL2)")
        #expect(ExtendedReference.maxLSEError(try #require(result.lse), ref.lse) <= 0.15, "sparse lse \(what)")
    }

    /// A KV cache with sinks: the exact path to float64 precision, the sparse one (every block
    /// kept) to INT8's; a row whose keys are all masked outputs zeros with the sink as its lse.
    @Test func kvCacheAndEmptyRows() throws {
        var rng = TestRNG(seed: 1451)
        let heads = 4, kvHeads = 2, d = 24, n = 400
        var p = SpargeKVCache.defaultParameters
        p.sinkLogits = Self.sinks(heads: heads)
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        let k = rng.gaussians(kvHeads * n * d, scale: 1.5), v = rng.gaussians(kvHeads * n * d)
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: 2, parameters: p)
        try KVCacheTests.append(cache, k, v, tokens: n)
        let q = rng.gaussians(heads * 2 * d, scale: 1.5)
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: 2, keyLength: n, headDim: d)
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: n - 2, sinkLogits: p.sinkLogits)
        var exact = [Float](repeating: 0, count: q.count), exactLSE = [Float](repeating: 0, count: heads * 2)
        try cache.attendExact(q: q, output: &exact, queries: 2, lse: &exactLSE)
        #expect(try Accuracy(exact, reference: ref.output).relativeL2 <= 1e-5)
        #expect(ExtendedReference.maxLSEError(exactLSE, ref.lse) <= 1e-4)
        var sparse = [Float](repeating: 0, count: q.count), sparseLSE = exactLSE
        try cache.attend(q: q, output: &sparse, queries: 2, lse: &sparseLSE)
        #expect(try Accuracy(sparse, reference: ref.output).cosine >= 0.999)
        #expect(ExtendedReference.maxLSEError(sparseLSE, ref.lse) <= 0.15)

        // Bottom-right causal with Nq > Nk: the first Nq - Nk rows see no key: zeros, lse = the sink.
        let s2 = AttentionShape(heads: 1, queryLength: 6, keyLength: 3, headDim: 4)
        let x = rng.gaussians(s2.queryElements), y = rng.gaussians(s2.keyElements)
        var out = [Float](repeating: 1, count: s2.queryElements), lse = [Float](repeating: 0, count: 6)
        try SpargeAttention.dense(q: x, k: y, v: y, output: &out, shape: s2, causal: true, sinkLogits: 2.5, lse: &lse)
        #expect(out[0..<12].allSatisfy { $0 == 0 } && lse[0..<3].allSatisfy { $0 == 2.5 })
        var ps = SpargeParameters()
        ps.causal = true
        ps.sinkLogits = 2.5
        let (sparseOut, r) = try SpargeAttention.sparse(q: x, k: y, v: y, shape: s2, parameters: ps, captureLSE: true)
        #expect(sparseOut[0..<12].allSatisfy { $0 == 0 })
        // (K smoothing's correction adds q . mean back to the shifted sink: equal up to rounding.)
        #expect(try #require(r.lse)[0..<3].allSatisfy { abs($0 - 2.5) <= 1e-5 })
    }

    @Test func misuseThrows() throws {
        let shape = AttentionShape(heads: 2, queryLength: 10, headDim: 4)
        let x = [Float](repeating: 0.1, count: shape.queryElements)
        var p = SpargeParameters.recommended
        for bad: PerHead in [PerHead(.nan), PerHead(.infinity), [1, 2, 3]] {
            p.sinkLogits = bad
            #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, parameters: p) }
        }
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.dense(q: x, k: x, v: x, shape: shape, sinkLogits: [1, 2, 3]) }
    }

    /// The GPU emulations (fp16 and FP8 P.V, whose `P` and `l` carry 2^8.807) with sinks from
    /// far below to far above the scores, K smoothing on and off, causal with rows that see no
    /// key: output and log-sum-exp against float64 within those numerics' error.
    @Test(arguments: [PVNumerics.fp16, .fp8])
    func gpuNumericsFoldTheSink(numerics: PVNumerics) throws {
        var rng = TestRNG(seed: 1460)
        let shape = AttentionShape(batch: 1, heads: 4, kvHeads: 2, queryLength: 150, keyLength: 120, headDim: 64)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5).map { $0 + 0.7 }
        let v = rng.gaussians(shape.keyElements)
        let sinks = Self.sinks(heads: shape.heads)
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: -30, sinkLogits: sinks)
        for smooth in [true, false] {
            var p = SpargeParameters()
            p.causal = true
            p.sinkLogits = sinks
            p.smoothK = smooth
            p.pvThreshold = PerHead(Float.infinity)
            p.gpuReproduction.pvNumerics = numerics
            let (nq, nk) = shape.blockCounts(blockQ: p.blockQ, blockK: p.blockK)
            let full = try BlockMap.full(batch: 1, heads: shape.heads, queryBlocks: nq, keyBlocks: nk)
            let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full, captureLSE: true)
            let acc = try Accuracy(out, reference: ref.output)
            #expect(acc.cosine >= 0.995, "\(numerics) smooth \(smooth): cosine \(acc.cosine)")
            let lse = try #require(result.lse)
            #expect(ExtendedReference.maxLSEError(lse, ref.lse) <= 0.15, "\(numerics) smooth \(smooth) lse")
            // The first 30 rows see no key: zeros, and the sink as the log-sum-exp.
            for h in 0..<shape.heads {
                #expect(out[(h * shape.queryLength) * 64..<(h * shape.queryLength + 30) * 64].allSatisfy { $0 == 0 })
                #expect(lse[h * shape.queryLength..<h * shape.queryLength + 30].allSatisfy { abs($0 - sinks[h]) <= 1e-4 })
            }
        }
    }
}
