import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// `SpargeKVCache.truncate(to:)`: after dropping tokens the cache answers bit for bit as one that
/// received the same appends up to the new length (speculative decoding's rollback).
struct KVCacheTruncateTests {
    typealias Cache = KVCacheTests

    /// Draft tokens appended, attended, then rolled back at every kind of boundary (inside a
    /// block, on a block edge, into the prefill's blocks): the next steps equal a cache that
    /// never saw the drafts, bit for bit, sparse and exact, with GQA and LSE.
    @Test(arguments: [false, true])
    func rollbackEqualsNeverAppending(smoothK: Bool) throws {
        var rng = TestRNG(seed: smoothK ? 71 : 72)
        let heads = 4, kvHeads = 2, d = 24, total = 400
        var p = SpargeKVCache.defaultParameters
        p.smoothK = smoothK
        p.selection = .topK(0.5)
        let k = rng.gaussians(kvHeads * total * d, scale: 1.5), v = rng.gaussians(kvHeads * total * d)
        let drafts = rng.gaussians(kvHeads * 7 * d, scale: 1.5)
        func rows(_ x: [Float], _ r: Range<Int>) -> [Float] { Cache.rows(x, heads: kvHeads, n: total, d: d, r) }
        // Each case: prefill length, tokens kept after the drafts' rollback (<= prefill).
        for (prefill, kept) in [(150, 150), (150, 128), (150, 100), (128, 128), (200, 1)] {
            let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: total, maxQueryLength: 4, parameters: p)
            try Cache.append(cache, rows(k, 0..<prefill), rows(v, 0..<prefill), tokens: prefill)
            try Cache.append(cache, drafts, drafts, tokens: 7)
            _ = try Cache.attend(cache, rng.gaussians(heads * 2 * d), queries: 2)
            try cache.truncate(to: kept)
            #expect(cache.length == kept)
            let reference = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: total, maxQueryLength: 4,
                                              parameters: p, keyMean: try cache.keyMean)
            try Cache.append(reference, rows(k, 0..<kept), rows(v, 0..<kept), tokens: kept)
            // Then both go on decoding the true continuation.
            for step in kept..<(kept + 3) {
                for c in [cache, reference] { try Cache.append(c, rows(k, step..<step + 1), rows(v, step..<step + 1), tokens: 1) }
                let q = rng.gaussians(heads * 3 * d, scale: 1.5)
                var lse = [[Float]](), outs = [[Float]](), exact = [[Float]](), exactLSE = [[Float]]()
                for c in [cache, reference] {
                    var out = [Float](repeating: 0, count: q.count), l = [Float](repeating: 0, count: heads * 3)
                    let r = try c.attend(q: q, output: &out, queries: 3, lse: &l)
                    #expect(r.blockMap != nil)
                    outs.append(out); lse.append(l)
                    var e = [Float](repeating: 0, count: q.count), el = [Float](repeating: 0, count: heads * 3)
                    try c.attendExact(q: q, output: &e, queries: 3, lse: &el)
                    exact.append(e); exactLSE.append(el)
                }
                let what = "prefill \(prefill) kept \(kept) step \(step)"
                #expect(outs[0].map(\.bitPattern) == outs[1].map(\.bitPattern), "sparse \(what)")
                #expect(lse[0].map(\.bitPattern) == lse[1].map(\.bitPattern), "lse \(what)")
                #expect(exact[0].map(\.bitPattern) == exact[1].map(\.bitPattern), "exact \(what)")
                #expect(exactLSE[0].map(\.bitPattern) == exactLSE[1].map(\.bitPattern), "exact lse \(what)")
            }
        }
    }

    /// A cut inside the append that set the K mean (prompt and draft appended together) takes
    /// the mean again from the keys kept: the cache then equals one whose first append held
    /// only those, bit for bit; under `.propagate` a NaN in a dropped key leaves no trace.
    @Test(arguments: [NonFinitePolicy.reject, .propagate])
    func cutInsideTheMeanSettingAppend(policy: NonFinitePolicy) throws {
        var rng = TestRNG(seed: 75)
        let heads = 4, kvHeads = 2, d = 16, prompt = 150, draft = 7
        var p = SpargeKVCache.defaultParameters
        p.nonFinitePolicy = policy
        var k = rng.gaussians(kvHeads * (prompt + draft) * d, scale: 1.5)
        let v = rng.gaussians(kvHeads * (prompt + draft) * d)
        if policy == .propagate { k[(prompt + 2) * d + 1] = .nan }   // a draft key of kv head 0
        func rows(_ x: [Float], _ r: Range<Int>) -> [Float] { Cache.rows(x, heads: kvHeads, n: prompt + draft, d: d, r) }
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: 200, maxQueryLength: 2, parameters: p)
        try Cache.append(cache, rows(k, 0..<prompt + draft), rows(v, 0..<prompt + draft), tokens: prompt + draft)
        for kept in [prompt, 100, 64] {
            try cache.truncate(to: kept)
            let fresh = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: 200, maxQueryLength: 2, parameters: p)
            try Cache.append(fresh, rows(k, 0..<kept), rows(v, 0..<kept), tokens: kept)
            #expect(try cache.keyMean == fresh.keyMean, "kept \(kept)")
            let q = rng.gaussians(heads * 2 * d)
            var a = [Float](repeating: 0, count: q.count), b = a
            try cache.attend(q: q, output: &a, queries: 2)
            try fresh.attend(q: q, output: &b, queries: 2)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "kept \(kept)")
            #expect(a.allSatisfy { $0.isFinite }, "kept \(kept)")
        }
    }

    /// `truncate(to: 0)` empties the cache: the next append sets the K mean again, and the cache
    /// equals a new one; a mean given at creation survives it.
    @Test func truncatingToZeroMakesTheCacheNew() throws {
        var rng = TestRNG(seed: 73)
        let heads = 2, d = 16, n = 90
        let first = rng.gaussians(heads * n * d, scale: 3), second = rng.gaussians(heads * n * d), v = rng.gaussians(heads * n * d)
        let cache = try SpargeKVCache(heads: heads, headDim: d, capacity: 100)
        try Cache.append(cache, first, v, tokens: n)
        try cache.truncate(to: 0)
        #expect(cache.length == 0)
        #expect(throws: SpargeError.self) { _ = try Cache.attend(cache, rng.gaussians(heads * d), queries: 1) }
        try Cache.append(cache, second, v, tokens: n)
        let fresh = try SpargeKVCache(heads: heads, headDim: d, capacity: 100)
        try Cache.append(fresh, second, v, tokens: n)
        #expect(try cache.keyMean == fresh.keyMean)
        let q = rng.gaussians(heads * d)
        #expect(try Cache.attend(cache, q, queries: 1).map(\.bitPattern) == Cache.attend(fresh, q, queries: 1).map(\.bitPattern))

        let given = [Float](repeating: 0.25, count: heads * d)
        let fixed = try SpargeKVCache(heads: heads, headDim: d, capacity: 100, keyMean: given)
        try Cache.append(fixed, first, v, tokens: n)
        try fixed.truncate(to: 0)
        try Cache.append(fixed, second, v, tokens: n)
        #expect(try fixed.keyMean == given)
    }

    /// Out of range throws and changes nothing; truncating to the current length is a no-op;
    /// an earlier result's block map is no longer read from the cache.
    @Test func badLengthsThrowAndOldMapsLapse() throws {
        var rng = TestRNG(seed: 74)
        let cache = try SpargeKVCache(heads: 1, headDim: 8, capacity: 50)
        let x = rng.gaussians(40 * 8)
        try Cache.append(cache, x, x, tokens: 40)
        let (_, result) = try Cache.attendWithResult(cache, rng.gaussians(8), queries: 1)
        #expect(throws: SpargeError.self) { try cache.truncate(to: 41) }
        #expect(throws: SpargeError.self) { try cache.truncate(to: -1) }
        #expect(cache.length == 40)
        #expect(result.blockMap != nil)
        try cache.truncate(to: 40)
        #expect(cache.length == 40)
        #expect(result.blockMap == nil)
    }
}
