import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// A sliding-window KV cache in a fixed capacity: it discards the key blocks no later call can
/// see, and answers as a cache that kept every key.
struct KVCacheWindowDiscardTests {
    typealias Cache = KVCacheTests

    static func parameters(window: Int, topK: Bool) -> SpargeParameters {
        var p = SpargeKVCache.defaultParameters
        p.slidingWindow = window
        p.attentionSink = true
        p.selection = topK ? .topK(0.15) : .cdf(0.8)
        return p
    }

    /// The columns of `small`'s map are `big`'s from key block `shift` on; `big`'s earlier
    /// columns are empty.
    static func expectShiftedMaps(_ small: BlockMap?, _ big: BlockMap?, shift: Int, _ what: String) {
        guard let small, let big else { Issue.record("no block map, \(what)"); return }
        #expect(small.keyBlocks + shift == big.keyBlocks && small.queryBlocks == big.queryBlocks, "\(what)")
        guard small.keyBlocks + shift == big.keyBlocks else { return }
        for row in 0..<(big.batch * big.heads * big.queryBlocks) {
            for j in 0..<shift { #expect(big.bits[row * big.keyBlocks + j] == 0, "discarded block \(j) selected, \(what)") }
            let a = Array(small.bits[(row * small.keyBlocks)..<((row + 1) * small.keyBlocks)])
            let b = Array(big.bits[(row * big.keyBlocks + shift)..<((row + 1) * big.keyBlocks)])
            #expect(a == b, "row \(row), \(what)")
        }
    }

    /// Chunked prefill and steps of 1-3 tokens, batch 2, GQA, top-k (its count includes the
    /// discarded blocks) and CDF, the attention sink on: each call of a cache of near the least
    /// capacity (which discards many times) against one that holds every key, maps and outputs,
    /// sparse and exact; and against float64.
    @Test(arguments: [true, false])
    func discardingCacheAnswersAsOneThatKeepsEveryKey(topK: Bool) throws {
        var rng = TestRNG(seed: topK ? 1401 : 1402)
        let batch = 2, heads = 4, kvHeads = 2, d = 24, window = 150, maxQ = 3, n = 1100
        let p = Self.parameters(window: window, topK: topK)
        let least = window + maxQ + p.blockK - 2 + maxQ
        let small = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: least, maxQueryLength: maxQ, parameters: p)
        let big = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: maxQ, parameters: p)
        let rows = batch * kvHeads
        let k = rng.gaussians(rows * n * d, scale: 1.5), v = rng.gaussians(rows * n * d)
        var length = 0, discards = 0, chunks = [200]
        while chunks.reduce(0, +) < n - 3 { chunks.append(1 + chunks.count % 3) }
        for chunk in chunks {
            let kc = Cache.rows(k, heads: rows, n: n, d: d, length..<length + chunk)
            let vc = Cache.rows(v, heads: rows, n: n, d: d, length..<length + chunk)
            let before = small.firstHeldKey
            try Cache.append(small, kc, vc, tokens: chunk)
            try Cache.append(big, kc, vc, tokens: chunk)
            length += chunk
            if small.firstHeldKey != before { discards += 1 }
            #expect(small.length == length && small.heldKeys <= least && small.firstHeldKey % p.blockK == 0)
            let queries = min(chunk, maxQ)
            let q = rng.gaussians(batch * heads * queries * d, scale: 1.5)
            let what = "\(length) keys, first held \(small.firstHeldKey)"
            let (a, ra) = try Cache.attendWithResult(small, q, queries: queries)
            let (b, rb) = try Cache.attendWithResult(big, q, queries: queries)
            Self.expectShiftedMaps(ra.blockMap, rb.blockMap, shift: small.firstHeldKey / p.blockK, what)
            #expect(ra.statistics.density == rb.statistics.density, "\(what)")
            #expect(try Accuracy(a, reference: b).relativeL2 <= 1e-6, "sparse, \(what)")
            var ea = [Float](repeating: 0, count: q.count), eb = ea
            try small.attendExact(q: q, output: &ea, queries: queries)
            try big.attendExact(q: q, output: &eb, queries: queries)
            #expect(try Accuracy(ea, reference: eb).relativeL2 <= 1e-6, "exact, \(what)")
            if chunk == 3 && length > 900 {
                let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: length, headDim: d)
                let ref = try Float64Reference.attention(q: q, k: Cache.rows(k, heads: rows, n: n, d: d, 0..<length),
                                                         v: Cache.rows(v, heads: rows, n: n, d: d, 0..<length), shape: shape,
                                                         causal: true, slidingWindow: window)
                #expect(try Accuracy(ea, reference: ref).relativeL2 <= 1e-5, "exact against float64, \(what)")
            }
        }
        #expect(discards >= 5, "the small cache discarded \(discards) times")
    }

    /// Top-k ties among blocks of probability 0 go to the lower index, so in a cache that kept
    /// every key the discarded blocks (outside every window, probability 0) take the first of
    /// those places: the discarding cache must leave them empty, not give them to held blocks
    /// of probability 0 (fp16 rounding of the block softmax makes those with block-constant
    /// keys far apart). Found by review; maps and outputs against the full cache.
    @Test func zeroProbabilityTiesMatchTheFullCache() throws {
        var rng = TestRNG(seed: 1405)
        let d = 16, window = 256, n = 1500, blockK = 64
        var p = SpargeKVCache.defaultParameters
        p.slidingWindow = window
        p.selection = .topK(0.5)
        p.gpuReproduction.gpuRounding = true
        let small = try SpargeKVCache(heads: 1, headDim: d, capacity: window + blockK + 64, maxQueryLength: 1, parameters: p, threads: 1)
        let big = try SpargeKVCache(heads: 1, headDim: d, capacity: n, maxQueryLength: 1, parameters: p, threads: 1)
        // Keys constant within a block, each channel +-2.5: block scores far apart.
        var k: [Float] = []
        for _ in 0..<((n + blockK - 1) / blockK) {
            let row = (0..<d).map { _ in rng.uniform() < 0.5 ? Float(-2.5) : 2.5 }
            for _ in 0..<blockK { k += row }
        }
        let v = rng.gaussians(k.count)
        var differing = 0
        for t in 0..<n {
            let kt = Array(k[(t * d)..<((t + 1) * d)]), vt = Array(v[(t * d)..<((t + 1) * d)])
            try Cache.append(small, kt, vt, tokens: 1)
            try Cache.append(big, kt, vt, tokens: 1)
            let q = (0..<d).map { _ in rng.uniform() < 0.5 ? Float(-2.5) : 2.5 }
            let (a, ra) = try Cache.attendWithResult(small, q, queries: 1)
            let (b, rb) = try Cache.attendWithResult(big, q, queries: 1)
            let shift = small.firstHeldKey / blockK
            guard let ma = ra.blockMap, let mb = rb.blockMap else { Issue.record("no map"); return }
            if ma.bits != Array(mb.bits[shift...]) || a != b { differing += 1 }
        }
        #expect(small.firstHeldKey > 0)
        #expect(differing == 0, "\(differing) of \(n) steps differ from the full cache")
    }

    /// Truncation after a discard: a cut that keeps what later calls see works and answers
    /// as the full cache cut alike; a deeper cut, or one into the append that set the K mean,
    /// throws and changes nothing; `truncate(to: 0)` starts again. A copy starts at the same
    /// first key and goes on as the original.
    @Test func truncateAndCopyAfterDiscarding() throws {
        var rng = TestRNG(seed: 1403)
        let heads = 2, d = 16, window = 100, maxQ = 2, n = 700
        let p = Self.parameters(window: window, topK: true)
        let capacity = window + maxQ + p.blockK + 40
        let small = try SpargeKVCache(heads: heads, headDim: d, capacity: capacity, maxQueryLength: maxQ, parameters: p)
        let big = try SpargeKVCache(heads: heads, headDim: d, capacity: n, maxQueryLength: maxQ, parameters: p)
        let k = rng.gaussians(heads * n * d), v = rng.gaussians(heads * n * d)
        func append(_ r: Range<Int>, to caches: [SpargeKVCache]) throws {
            for c in caches {
                try Cache.append(c, Cache.rows(k, heads: heads, n: n, d: d, r), Cache.rows(v, heads: heads, n: n, d: d, r), tokens: r.count)
            }
        }
        try append(0..<100, to: [small, big])            // the mean comes from these 100 keys
        for t in 100..<500 { try append(t..<t + 1, to: [small, big]) }
        let first = small.firstHeldKey
        #expect(first > 0 && first % p.blockK == 0)
        let least = first + window + maxQ - 1
        #expect(throws: SpargeError.self) { try small.truncate(to: least - 1) }
        #expect(small.length == 500 && small.firstHeldKey == first)
        try small.truncate(to: least)
        try big.truncate(to: least)
        let copy = try small.copy(capacity: capacity + 10)
        #expect(copy.firstHeldKey == first && copy.length == least)
        #expect(throws: SpargeError.self) { _ = try small.copy(maxQueryLength: maxQ + 1) }
        for t in least..<(least + 150) {
            try append(t..<t + 1, to: [small, big, copy])
            let q = rng.gaussians(heads * d)
            let b = try Cache.attend(big, q, queries: 1)
            #expect(try Accuracy(Cache.attend(small, q, queries: 1), reference: b).relativeL2 <= 1e-6, "\(t + 1) keys")
            #expect(try Accuracy(Cache.attend(copy, q, queries: 1), reference: b).relativeL2 <= 1e-6, "copy, \(t + 1) keys")
        }
        // The prefill set the mean: a cut into it would take the mean from discarded keys.
        let early = try SpargeKVCache(heads: heads, headDim: d, capacity: window + maxQ + p.blockK, maxQueryLength: maxQ, parameters: p)
        try append(0..<(window + maxQ + p.blockK), to: [early])
        try append(0..<1, to: [early])
        #expect(early.firstHeldKey == p.blockK)
        #expect(throws: SpargeError.self) { try early.truncate(to: window + maxQ + p.blockK - 1) }
        try early.truncate(to: 0)
        #expect(early.firstHeldKey == 0 && early.length == 0)
        try append(0..<10, to: [early])
        #expect(early.heldKeys == 10)
    }

    /// What cannot be served throws before touching the cache: an append that discarding
    /// cannot make room for, or one whose input is bad (the cache keeps its keys), an exact call whose earliest query
    /// would see discarded keys, a mask over every key instead of the held ones.
    @Test func whatCannotBeServedThrows() throws {
        var rng = TestRNG(seed: 1404)
        let d = 8, window = 64, maxQ = 4
        let p = Self.parameters(window: window, topK: true)
        let cache = try SpargeKVCache(heads: 1, headDim: d, capacity: 200, maxQueryLength: maxQ, parameters: p)
        let x = rng.gaussians(400 * d)
        for t in 0..<300 { try Cache.append(cache, Array(x[(t * d)..<((t + 1) * d)]), Array(x[(t * d)..<((t + 1) * d)]), tokens: 1) }
        let first = cache.firstHeldKey, held = cache.heldKeys
        #expect(first > 0)
        #expect(throws: SpargeError.self) { try Cache.append(cache, Array(x[0..<(150 * d)]), Array(x[0..<(150 * d)]), tokens: 150) }
        #expect(cache.firstHeldKey == first && cache.heldKeys == held)
        // An append that needs a discard and fits after it, but holds a NaN: nothing discarded.
        let fitsAfterDiscard = cache.capacity - (cache.length - cache.discardPoint)
        #expect(fitsAfterDiscard > cache.capacity - held)
        var bad = Array(x[0..<(fitsAfterDiscard * d)])
        bad[3] = .nan
        #expect(throws: SpargeError.self) { try Cache.append(cache, bad, bad, tokens: fitsAfterDiscard) }
        #expect(cache.firstHeldKey == first && cache.heldKeys == held)
        let many = cache.length - first - window + 2
        var out = [Float](repeating: 0, count: many * d)
        #expect(throws: SpargeError.self) { try cache.attendExact(q: rng.gaussians(many * d), output: &out, queries: many) }
        var one = [Float](repeating: 0, count: d)
        let everyKey = try AttentionMask(queryLength: 1, keyLength: cache.length) { _, _, _ in true }
        #expect(throws: SpargeError.self) { try cache.attend(q: rng.gaussians(d), output: &one, queries: 1, attentionMask: everyKey) }
        let heldMask = try AttentionMask(queryLength: 1, keyLength: cache.heldKeys) { _, _, _ in true }
        try cache.attend(q: rng.gaussians(d), output: &one, queries: 1, attentionMask: heldMask)
        #expect(one.allSatisfy { $0.isFinite })
    }
}
