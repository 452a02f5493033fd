import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// `SpargeParameters.slidingWindow` (and the dense calls' `slidingWindow:`): each query sees
/// the last W keys up to its causal limit, on every CPU path, against float64.
struct SlidingWindowTests {
    /// (Nq, Nk, D, heads, kvHeads, window): N below a block, ragged, GQA, Nq != Nk both ways,
    /// D 1-256, windows of one key, inside a block, across blocks and wider than the sequence.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, w: Int)] = [
        (5, 9, 3, 2, 1, 1), (9, 5, 1, 1, 1, 3), (200, 77, 64, 2, 2, 40), (77, 300, 80, 4, 2, 100),
        (130, 257, 256, 2, 1, 65), (300, 300, 17, 3, 3, 129), (1, 70, 128, 4, 2, 16), (260, 260, 32, 2, 2, 1000),
    ]

    @Test(arguments: 0..<cases.count, CausalAlignment.allCases)
    func everyPathMatchesFloat64(index: Int, alignment: CausalAlignment) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(1300 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5)
        let v = rng.gaussians(shape.keyElements)
        let offset = alignment == .topLeft ? 0 : c.nk - c.nq
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: offset, slidingWindow: c.w)
        let what = "\(shape) \(alignment) window \(c.w)"

        // Dense: exact, with the log-sum-exps (-inf for rows that see no key).
        var dense = [Float](repeating: 0, count: shape.queryElements), denseLSE = [Float](repeating: 0, count: 2 * c.h * c.nq)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: shape, causal: true, causalAlignment: alignment,
                                  slidingWindow: c.w, lse: &denseLSE)
        #expect(try Accuracy(dense, reference: ref.output).relativeL2 <= 1e-5, "dense \(what)")
        #expect(ExtendedReference.maxLSEError(denseLSE, ref.lse) <= 1e-4, "dense lse \(what)")

        // Sparse, every block marked, stage 2 off: only INT8 separates it from exact.
        var p = SpargeParameters()
        p.blockQ = 64
        p.causal = true
        p.causalAlignment = alignment
        p.slidingWindow = c.w
        p.pvThreshold = PerHead(Float.infinity)
        let (nq, nk) = shape.blockCounts(blockQ: 64, blockK: 64)
        let full = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: nq, keyBlocks: nk)
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full, captureLSE: true)
        let acc = try Accuracy(out, reference: ref.output)
        #expect(acc.cosine >= 0.999 && acc.relativeL2 <= 0.05, "sparse \(what): \(acc.cosine) \(acc.relativeL2)")
        #expect(ExtendedReference.maxLSEError(try #require(result.lse), ref.lse) <= 0.15, "sparse lse \(what)")
        // The statistics count only blocks the window and the causal rule leave something in.
        var allowed = 0
        for i in 0..<nq { for j in 0..<nk where p.causallyAllows(queryBlock: i, keyBlock: j, shape: shape) { allowed += 1 } }
        #expect(result.statistics.allowedBlocks == allowed * 2 * c.h, "allowed blocks \(what)")

        // Stage 1 with the attention sink: no selected block lies outside every window of its
        // query block, and the kernel equals float64 restricted to the predicted map.
        p.selection = .topK(0.5)
        p.attentionSink = true
        p.pvThreshold = 50
        let (predictedOut, predicted) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        let map = try #require(predicted.blockMap)
        for b in 0..<2 { for h in 0..<c.h { for i in 0..<nq { for j in 0..<nk where map[b, h, i, j] {
            let lastKey = min((j + 1) * 64, c.nk) - 1
            #expect(lastKey > i * 64 + offset - c.w, "block (\(i), \(j)) is before every window, \(what)")
        } } } }
        let masked = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: offset, slidingWindow: c.w,
                                                           blockMap: map, blockQ: 64, blockK: 64)
        #expect(try Accuracy(predictedOut, reference: masked.output).cosine >= 0.999, "predicted \(what)")
    }

    /// A KV cache with a window: chunked prefill and single-token steps, sparse (every block
    /// kept, stage 2 off) and exact, against float64.
    @Test func kvCacheDecodesInsideTheWindow() throws {
        var rng = TestRNG(seed: 1351)
        let heads = 4, kvHeads = 2, d = 24, n = 700, window = 150
        var p = SpargeKVCache.defaultParameters
        p.slidingWindow = window
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        let k = rng.gaussians(kvHeads * n * d, scale: 1.5), v = rng.gaussians(kvHeads * n * d)
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: 3, parameters: p)
        var held = 0
        for chunk in [500, 3, 1, 1, 2] {
            try KVCacheTests.append(cache, KVCacheTests.rows(k, heads: kvHeads, n: n, d: d, held..<held + chunk),
                                    KVCacheTests.rows(v, heads: kvHeads, n: n, d: d, held..<held + chunk), tokens: chunk)
            held += chunk
            let queries = min(chunk, 3)
            let q = rng.gaussians(heads * queries * d, scale: 1.5)
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: held, headDim: d)
            let ref = try Float64Reference.attention(q: q, k: KVCacheTests.rows(k, heads: kvHeads, n: n, d: d, 0..<held),
                                                     v: KVCacheTests.rows(v, heads: kvHeads, n: n, d: d, 0..<held), shape: shape,
                                                     causal: true, slidingWindow: window)
            var sparse = [Float](repeating: 0, count: q.count), exact = sparse
            try cache.attend(q: q, output: &sparse, queries: queries)
            try cache.attendExact(q: q, output: &exact, queries: queries)
            #expect(try Accuracy(exact, reference: ref).relativeL2 <= 1e-5, "exact, \(held) keys")
            #expect(try Accuracy(sparse, reference: ref).cosine >= 0.999, "sparse, \(held) keys")
        }
    }

    /// Under `.propagate`, a NaN key outside a row's window leaves the row finite; inside it,
    /// the row is NaN (and so is its log-sum-exp). K smoothing off, so nothing spreads.
    @Test func nonFiniteKeysCountOnlyInsideTheWindow() throws {
        var rng = TestRNG(seed: 1352)
        let n = 200, d = 8, window = 50, bad = 20
        let shape = AttentionShape(heads: 1, queryLength: n, headDim: d)
        let q = rng.gaussians(n * d), v = rng.gaussians(n * d)
        var k = rng.gaussians(n * d)
        k[bad * d + 3] = .nan
        var p = SpargeParameters.recommended
        p.causal = true
        p.slidingWindow = window
        p.smoothK = false
        p.nonFinitePolicy = .propagate
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, captureLSE: true)
        let lse = try #require(result.lse)
        var dense = [Float](repeating: 0, count: n * d)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: shape, causal: true, slidingWindow: window,
                                  nonFinitePolicy: .propagate)
        for t in 0..<n {
            let sees = t >= bad && t < bad + window
            let row = Array(out[t * d..<(t + 1) * d]), denseRow = Array(dense[t * d..<(t + 1) * d])
            let allNaN = row.allSatisfy { $0.isNaN }, allFinite = row.allSatisfy { $0.isFinite }
            let denseNaN = denseRow.allSatisfy { $0.isNaN }
            #expect(allNaN == sees, "sparse row \(t)")
            #expect(lse[t].isNaN == sees, "lse row \(t)")
            #expect(denseNaN == sees, "dense row \(t)")
            #expect(sees || allFinite, "row \(t) finite")
        }
    }

    @Test func misuseThrows() throws {
        let shape = AttentionShape(heads: 1, queryLength: 10, headDim: 4)
        let x = [Float](repeating: 0.1, count: shape.queryElements)
        var p = SpargeParameters.recommended
        p.slidingWindow = 4
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, parameters: p) }  // not causal
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.dense(q: x, k: x, v: x, shape: shape, slidingWindow: 4) }
        p.causal = true
        p.slidingWindow = 0
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, parameters: p) }
        p.slidingWindow = 4
        p.gpuReproduction.causalMasking = .blockOnly
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, parameters: p) }
        #expect(throws: SpargeError.self) {
            _ = try Float64Reference.attention(q: x, k: x, v: x, shape: shape, slidingWindow: 4)   // not causal
        }
        var cacheParameters = SpargeKVCache.defaultParameters
        cacheParameters.slidingWindow = 8
        cacheParameters.nonFinitePolicy = .propagate
        #expect(throws: SpargeError.self) { _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: 10, parameters: cacheParameters) }
    }
}

/// Regressions of the review of the window.
struct SlidingWindowEdgeTests {
    /// Top-left alignment with Nq far above Nk and a window of one key: the query tiles whose
    /// windows start after the last key see nothing (zeros, lse -inf), no trap.
    @Test func windowsPastTheLastKey() throws {
        let shape = AttentionShape(heads: 1, queryLength: 200, keyLength: 64, headDim: 8)
        var rng = TestRNG(seed: 1361)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        for window in [1, 3, 70] {
            var out = [Float](repeating: 1, count: shape.queryElements), lse = [Float](repeating: 0, count: 200)
            try SpargeAttention.dense(q: q, k: k, v: v, output: &out, shape: shape, causal: true, causalAlignment: .topLeft,
                                      slidingWindow: window, lse: &lse)
            let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: 0, slidingWindow: window)
            #expect(try Accuracy(out, reference: ref.output).relativeL2 <= 1e-5, "window \(window)")
            #expect(ExtendedReference.maxLSEError(lse, ref.lse) <= 1e-4, "window \(window) lse")
            var p = SpargeParameters()
            p.causal = true
            p.causalAlignment = .topLeft
            p.slidingWindow = window
            p.blockQ = 64
            let (sparse, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            #expect(sparse[(64 + window) * 8..<200 * 8].allSatisfy { $0 == 0 }, "window \(window): rows past every key")
        }
        #expect(throws: SpargeError.self) {
            _ = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: true, slidingWindow: Int.max)
        }
    }
}
