import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Decoding through SpargeKVCache: incremental key-side state against recomputation.
struct KVCacheTests {
    static func attend(_ cache: SpargeKVCache, _ q: [Float], queries: Int) throws -> [Float] {
        try attendWithResult(cache, q, queries: queries).output
    }

    static func attendWithResult(_ cache: SpargeKVCache, _ q: [Float], queries: Int) throws -> (output: [Float], result: SparseAttentionResult) {
        var out = [Float](repeating: 0, count: cache.batch * cache.heads * queries * cache.headDim)
        let result = try q.withUnsafeBufferPointer { qp in
            try out.withUnsafeMutableBufferPointer { op in
                try cache.attend(q: AttentionInput(qp), output: AttentionOutput(op), queries: queries)
            }
        }
        return (out, result)
    }

    static func append(_ cache: SpargeKVCache, _ k: [Float], _ v: [Float], tokens: Int) throws {
        try k.withUnsafeBufferPointer { kp in
            try v.withUnsafeBufferPointer { vp in try cache.append(k: AttentionInput(kp), v: AttentionInput(vp), tokens: tokens) }
        }
    }

    /// Rows [from, to) of every (batch, kv head) of a `B*Hkv x N x D` array.
    static func rows(_ x: [Float], heads: Int, n: Int, d: Int, _ r: Range<Int>) -> [Float] {
        var out: [Float] = []
        for h in 0..<heads {
            let start: Int = (h * n + r.lowerBound) * d, end: Int = (h * n + r.upperBound) * d
            out += x[start..<end]
        }
        return out
    }

    /// 1,000 single-token steps after a 200-token prefill: every step's output equals a
    /// from-scratch cache (same fixed K mean, all keys appended at once) to 1e-6 relative.
    @Test func incrementalDecodingMatchesRecomputation() throws {
        var rng = TestRNG(seed: 31)
        let heads = 4, kvHeads = 2, d = 32, prefill = 200, steps = 1000, total = prefill + steps
        var p = SpargeParameters.recommended
        p.causal = true
        p.pvThreshold = 6
        let k = rng.gaussians(kvHeads * total * d, scale: 1.5), v = rng.gaussians(kvHeads * total * d)
        let qs = rng.gaussians(steps * heads * d, scale: 1.5)
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: total, maxQueryLength: 4, parameters: p)
        try Self.append(cache, Self.rows(k, heads: kvHeads, n: total, d: d, 0..<prefill),
                        Self.rows(v, heads: kvHeads, n: total, d: d, 0..<prefill), tokens: prefill)
        var worst = 0.0
        for step in 0..<steps {
            let n = prefill + step
            try Self.append(cache, Self.rows(k, heads: kvHeads, n: total, d: d, n..<n + 1),
                            Self.rows(v, heads: kvHeads, n: total, d: d, n..<n + 1), tokens: 1)
            let q = Array(qs[step * heads * d..<(step + 1) * heads * d])
            let incremental = try Self.attend(cache, q, queries: 1)
            // Recompute every 37th step (and the last) from scratch: a new cache, one append.
            guard step % 37 == 0 || step == steps - 1 else { continue }
            let fresh = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: total, maxQueryLength: 4,
                                          parameters: p, keyMean: try cache.keyMean)
            try Self.append(fresh, Self.rows(k, heads: kvHeads, n: total, d: d, 0..<n + 1),
                            Self.rows(v, heads: kvHeads, n: total, d: d, 0..<n + 1), tokens: n + 1)
            let scratch = try Self.attend(fresh, q, queries: 1)
            let acc = try Accuracy(incremental, reference: scratch.map(Double.init))
            worst = max(worst, acc.relativeL2)
        }
        #expect(worst <= 1e-6, "worst relative L2 difference \(worst)")
    }

    /// Without K smoothing there is no mean to fix: the cache equals the one-shot API, bit for
    /// bit, for 1 and 3 queries, causal and not, with GQA.
    @Test func cacheEqualsOneShotWithoutSmoothing() throws {
        var rng = TestRNG(seed: 41)
        let heads = 4, kvHeads = 2, d = 40, n = 333
        for causal in [true, false] {
            for queries in [1, 3] {
                var p = SpargeParameters.recommended
                p.smoothK = false
                p.causal = causal
                p.selection = .topK(0.3)
                let k = rng.gaussians(kvHeads * n * d, scale: 1.5), v = rng.gaussians(kvHeads * n * d)
                let q = rng.gaussians(heads * queries * d, scale: 1.5)
                let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: 400, parameters: p)
                try Self.append(cache, Self.rows(k, heads: kvHeads, n: n, d: d, 0..<100), Self.rows(v, heads: kvHeads, n: n, d: d, 0..<100), tokens: 100)
                try Self.append(cache, Self.rows(k, heads: kvHeads, n: n, d: d, 100..<n), Self.rows(v, heads: kvHeads, n: n, d: d, 100..<n), tokens: n - 100)
                let (out, cached) = try Self.attendWithResult(cache, q, queries: queries)
                let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: n, headDim: d)
                let (expected, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "causal \(causal), \(queries) queries")
                // One result type: the cache's statistics, map and per-head densities are the one-shot call's.
                #expect(cached.statistics == r.statistics, "causal \(causal), \(queries) queries")
                #expect(cached.blockMap == r.blockMap && cached.blockMap != nil)
                #expect(cached.densityPerHead == r.densityPerHead)
                // The next call replaces the map the result read from.
                _ = try Self.attend(cache, q, queries: queries)
                #expect(cached.blockMap == nil)
                // And it is exact attention restricted to the predicted blocks, up to INT8 rounding.
                let masked = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: causal, blockMap: r.blockMap)
                #expect(try Accuracy(out, reference: masked).cosine > 0.999)
            }
        }
    }

    /// The exact decode path against float64, causal and not, with split key ranges.
    @Test func exactDecodeMatchesFloat64() throws {
        var rng = TestRNG(seed: 61)
        let heads = 4, kvHeads = 2, d = 20, n = 5000
        let k = rng.gaussians(kvHeads * n * d), v = rng.gaussians(kvHeads * n * d)
        for causal in [true, false] {
            var p = SpargeParameters.recommended
            p.causal = causal
            let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, parameters: p)
            try Self.append(cache, k, v, tokens: n)
            let q = rng.gaussians(heads * 3 * d)
            var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: heads * 3)
            try q.withUnsafeBufferPointer { qp in try out.withUnsafeMutableBufferPointer { op in try lse.withUnsafeMutableBufferPointer { l in
                try cache.attendExact(q: AttentionInput(qp), output: AttentionOutput(op), queries: 3, lse: l)
            } } }
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: 3, keyLength: n, headDim: d)
            let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: causal ? n - 3 : nil)
            #expect(try Accuracy(out, reference: ref.output).relativeL2 <= 1e-5, "causal \(causal)")
            let lseError = zip(lse, ref.lse).map { abs(Double($0) - $1) }.max()!
            #expect(lseError <= 1e-4, "causal \(causal): lse off by \(lseError)")
            var short = [Float](repeating: 0, count: heads * 3 - 1)
            #expect(throws: SpargeError.bufferTooSmall(name: "lse", expected: heads * 3, actual: heads * 3 - 1)) {
                try cache.attendExact(q: q, output: &out, queries: 3, lse: &short)
            }
        }
    }

    @Test func misuseThrows() throws {
        let cache = try SpargeKVCache(heads: 1, headDim: 8, capacity: 10)
        let x = [Float](repeating: 0.1, count: 88)
        #expect(throws: SpargeError.self) { _ = try Self.attend(cache, Array(x[0..<8]), queries: 1) }   // empty
        #expect(throws: SpargeError.self) { try Self.append(cache, x, x, tokens: 11) }                // over capacity
        try Self.append(cache, Array(x[0..<16]), Array(x[0..<16]), tokens: 2)
        #expect(throws: SpargeError.self) { _ = try Self.attend(cache, x, queries: 17) }              // too many queries
    }
}

/// The grouped decode kernel (GQA, one query block) against the per-head kernel: bit-identical.
struct GroupedDecodeTests {
    static func perHead(_ q: [Float], _ k: [Float], _ v: [Float], _ shape: AttentionShape, _ p: SpargeParameters) throws -> ([Float], SparseRunOutcome) {
        let storage = SparseStorage(shape: shape, parameters: p, threads: 2)
        var pipeline = SparsePipeline(shape: shape, parameters: p)
        pipeline.perHeadKernel = true
        var out = [Float](repeating: 0, count: shape.queryElements)
        let outcome = try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
            try out.withUnsafeMutableBufferPointer { op in
                let views = try CallValidation.views(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp),
                                                     output: AttentionOutput(op), shape: shape, policy: .reject)
                return pipeline.run(q: views.q, k: views.k, v: views.v, output: views.output, given: nil, storage: storage)
            } } } }
        return (out, outcome)
    }

    /// A cache sized for long chunked prefills (many query blocks, which never split) still
    /// holds the split states of a decoding step (one query, its keys split for the cores):
    /// the step gives finite output, and with every block kept it is near the exact step.
    @Test func decodeSplitsInACacheSizedForLongPrefills() throws {
        var rng = TestRNG(seed: 4912)
        // 32 heads x 16 query blocks: no call of two or more blocks splits, a decoding step does.
        let heads = 32, kvHeads = 8, d = 16, n = 4096
        let k = rng.gaussians(kvHeads * n * d), v = rng.gaussians(kvHeads * n * d)
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: n, headDim: d)
        #expect(sparseSplitFactor(shape: shape, geometry: SparseGeometry(shape: shape, blockQ: 128, blockK: 64), numerics: .fp32) > 1)
        var p = SpargeKVCache.defaultParameters
        p.selection = .topK(1)
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: 2048, parameters: p)
        try KVCacheTests.append(cache, k, v, tokens: n)
        let q = rng.gaussians(heads * d)
        let sparse = try KVCacheTests.attend(cache, q, queries: 1)
        var exact = [Float](repeating: 0, count: heads * d)
        try cache.attendExact(q: q, output: &exact, queries: 1)
        #expect(sparse.allSatisfy { $0.isFinite })
        #expect(try Accuracy(sparse, reference: exact.map(Double.init)).relativeL2 < 2e-2, "every block kept: near exact")
    }

    /// The block-map row scans that place a chunk's share: counts and positions as a plain loop gives them.
    @Test func markedBlockScansMatchAPlainLoop() {
        var rng = TestRNG(seed: 4911)
        for count in [0, 1, 15, 16, 17, 100, 2049] {
            for density in [0.0, 0.1, 0.5, 1.0] {
                let row = (0..<count).map { _ in UInt8(rng.uniform() < density ? 1 + rng.int(0...2) : 0) }
                let marked = row.indices.filter { row[$0] != 0 }
                row.withUnsafeBufferPointer { r in
                    let base = r.baseAddress ?? UnsafePointer(bitPattern: 1)!
                    for cut in Set([0, count / 3, count]) {
                        #expect(markedBlocks(base, 0..<cut) == marked.filter { $0 < cut }.count, "count \(count) cut \(cut)")
                    }
                    for k in 0..<(marked.count + 2) {
                        #expect(markedBlockPosition(base, count: count, ordinal: k) == (k < marked.count ? marked[k] : count))
                    }
                }
            }
        }
    }

    @Test func groupedDecodeEqualsPerHeadKernel() throws {
        var rng = TestRNG(seed: 71)
        for (heads, kvHeads, nq, nk, causal) in [(4, 2, 1, 700, true), (8, 2, 3, 1300, false), (6, 3, 2, 64, true), (32, 8, 1, 4100, true),
                                               (16, 4, 1, 20_000, false)] {
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: nq, keyLength: nk, headDim: 48)
            let g = SparseGeometry(shape: shape, blockQ: 128, blockK: 64)
            #expect(usesGroupedDecode(g))
            if nk == 20_000 { #expect(sparseSplitFactor(shape: shape, geometry: g, numerics: .fp32) == 16, "a decoding step split for the cores") }
            let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
            let v = rng.gaussians(shape.keyElements)
            var p = SpargeParameters.recommended
            p.causal = causal
            p.pvThreshold = 3
            p.selection = .topK(0.4)
            let (grouped, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            let (reference, outcome) = try Self.perHead(q, k, v, shape, p)
            let label = "H=\(heads) Hkv=\(kvHeads) Nq=\(nq) Nk=\(nk) causal=\(causal)"
            #expect(grouped.map(\.bitPattern) == reference.map(\.bitPattern), "\(label)")
            #expect(r.statistics.visitedTiles == outcome.visited && r.statistics.skippedTiles == outcome.skipped, "\(label)")
        }
    }
}
