import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// `SpargeKVCache.copy(capacity:maxQueryLength:threads:)`: the copy answers every later call
/// bit for bit as the original would, and the two then evolve apart.
struct KVCacheCopyTests {
    typealias Cache = KVCacheTests

    @Test(arguments: [false, true])
    func copyContinuesAsTheOriginal(smoothK: Bool) throws {
        var rng = TestRNG(seed: smoothK ? 91 : 92)
        let batch = 2, heads = 6, kvHeads = 2, d = 20, total = 300
        var p = SpargeKVCache.defaultParameters
        p.smoothK = smoothK
        p.selection = .topK(0.4)
        func rows(_ x: [Float], _ r: Range<Int>) -> [Float] { Cache.rows(x, heads: batch * kvHeads, n: total, d: d, r) }
        let k = rng.gaussians(batch * kvHeads * total * d, scale: 1.5), v = rng.gaussians(batch * kvHeads * total * d)
        let original = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: 260,
                                         maxQueryLength: 2, parameters: p)
        try Cache.append(original, rows(k, 0..<150), rows(v, 0..<150), tokens: 150)
        try Cache.append(original, rows(k, 150..<157), rows(v, 150..<157), tokens: 7)
        try original.truncate(to: 153)   // a rollback before the copy, too
        let copy = try original.copy(capacity: total, maxQueryLength: 3)
        #expect(copy.length == 153 && copy.capacity == total && copy.maxQueryLength == 3)
        #expect(try copy.keyMean == original.keyMean)
        for step in 153..<160 {
            for c in [original, copy] { try Cache.append(c, rows(k, step..<step + 1), rows(v, step..<step + 1), tokens: 1) }
            let q = rng.gaussians(batch * heads * 2 * d, scale: 1.5)
            var outs = [[Float]](), lses = [[Float]](), exacts = [[Float]](), maps = [BlockMap?]()
            for c in [original, copy] {
                var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: batch * heads * 2)
                let r = try c.attend(q: q, output: &out, queries: 2, lse: &lse)
                var exact = [Float](repeating: 0, count: q.count)
                try c.attendExact(q: q, output: &exact, queries: 2)
                outs.append(out); lses.append(lse); exacts.append(exact); maps.append(r.blockMap)
            }
            #expect(outs[0].map(\.bitPattern) == outs[1].map(\.bitPattern), "sparse, step \(step)")
            #expect(lses[0].map(\.bitPattern) == lses[1].map(\.bitPattern), "lse, step \(step)")
            #expect(exacts[0].map(\.bitPattern) == exacts[1].map(\.bitPattern), "exact, step \(step)")
            #expect(maps[0] == maps[1], "map, step \(step)")
        }
        // A cut inside the prefill (the append that set the mean) moves both means alike.
        let twin = try original.copy()
        try original.truncate(to: 120)
        try twin.truncate(to: 120)
        #expect(try twin.keyMean == original.keyMean)
        for c in [original, twin] { try Cache.append(c, rows(k, 120..<160), rows(v, 120..<160), tokens: 40) }
        // Apart: keys appended to the copy do not reach the original.
        try Cache.append(copy, rows(k, 200..<240), rows(v, 200..<240), tokens: 40)
        #expect(copy.length == 200 && original.length == 160)
        let reference = try original.copy()
        let q = rng.gaussians(batch * heads * d)
        #expect(try Cache.attend(original, q, queries: 1).map(\.bitPattern) == Cache.attend(reference, q, queries: 1).map(\.bitPattern))
    }

    @Test func emptyAndTooSmallCopies() throws {
        let cache = try SpargeKVCache(heads: 2, headDim: 8, capacity: 40)
        let empty = try cache.copy()
        #expect(empty.length == 0)
        var rng = TestRNG(seed: 93)
        let x = rng.gaussians(2 * 30 * 8)
        try Cache.append(cache, x, x, tokens: 30)
        // The empty copy still takes its mean from its own first append.
        try Cache.append(empty, x, x, tokens: 30)
        #expect(try empty.keyMean == cache.keyMean)
        #expect(throws: SpargeError.self) { _ = try cache.copy(capacity: 29) }
        #expect(try cache.copy(capacity: 30).length == 30)
    }
}
