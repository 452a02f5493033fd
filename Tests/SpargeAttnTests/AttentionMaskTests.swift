import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// `AttentionMask` (the per-pair mask of the one-shot calls and plans): every CPU path against
/// float64, the blocks it forbids, and the rules it shares with causal, window and padding.
struct AttentionMaskTests {
    /// (Nq, Nk, D, heads, kvHeads): N below a block, ragged, GQA (decode kernel at Nq = 1),
    /// Nq != Nk both ways, D 1-256.
    static let shapes: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int)] = [
        (5, 9, 3, 2, 1), (9, 5, 1, 1, 1), (200, 77, 64, 2, 2), (77, 300, 80, 4, 2),
        (130, 257, 256, 2, 1), (300, 300, 17, 3, 3), (1, 70, 128, 4, 2),
    ]

    enum Pattern: CaseIterable {
        /// Each pair on a coin flip, some rows with no key at all.
        case random
        /// Prefix-LM: a prefix seen both ways, a causal suffix.
        case prefixLM
        /// Documents packed into one sequence (boundaries off the block grid), causal inside each.
        case documents
        /// One mask for the whole batch (batch 1), columns in stripes.
        case sharedStripes
    }

    static func mask(_ pattern: Pattern, batch: Int, nq: Int, nk: Int, rng: inout TestRNG) throws -> AttentionMask {
        let offset = nk - nq
        switch pattern {
        case .random:
            let allowed = (0..<(batch * nq * nk)).map { _ in rng.uniform() < 0.5 }
            var rows = allowed
            for b in 0..<batch { for i in stride(from: 3, to: nq, by: 7) { for j in 0..<nk { rows[(b * nq + i) * nk + j] = false } } }
            return try AttentionMask(batch: batch, queryLength: nq, keyLength: nk, allowed: rows)
        case .prefixLM:
            return try AttentionMask(batch: batch, queryLength: nq, keyLength: nk) { b, i, j in j <= i + offset || j < 40 + 13 * b }
        case .documents:
            return try AttentionMask(batch: batch, queryLength: nq, keyLength: nk) { b, i, j in
                j <= i + offset && (i + offset) / (70 + 9 * b) == j / (70 + 9 * b)
            }
        case .sharedStripes:
            return try AttentionMask(queryLength: nq, keyLength: nk) { _, i, j in (j / 3 + i) % 4 != 0 }
        }
    }

    @Test(arguments: 0..<shapes.count, Pattern.allCases)
    func everyPathMatchesFloat64(index: Int, pattern: Pattern) throws {
        let c = Self.shapes[index]
        var rng = TestRNG(seed: UInt64(1700 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5)
        let v = rng.gaussians(shape.keyElements)
        let mask = try Self.mask(pattern, batch: 2, nq: c.nq, nk: c.nk, rng: &rng)
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, attentionMask: mask)
        let what = "\(shape) \(pattern)"

        // Dense: exact, with the log-sum-exps (-inf and zeros for rows that see no key).
        var dense = [Float](repeating: 0, count: shape.queryElements), denseLSE = [Float](repeating: 0, count: 2 * c.h * c.nq)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: shape, lse: &denseLSE, attentionMask: mask)
        #expect(try Accuracy(dense, reference: ref.output).relativeL2 <= 1e-5, "dense \(what)")
        #expect(ExtendedReference.maxLSEError(denseLSE, ref.lse) <= 1e-4, "dense lse \(what)")

        // Sparse, every block marked, stage 2 off: only INT8 separates it from exact.
        var p = SpargeParameters()
        p.blockQ = 64
        p.pvThreshold = PerHead(Float.infinity)
        let (nq, nk) = shape.blockCounts(blockQ: 64, blockK: 64)
        let full = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: nq, keyBlocks: nk)
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full, captureLSE: true,
                                                       attentionMask: mask)
        let acc = try Accuracy(out, reference: ref.output)
        #expect(acc.cosine >= 0.999 && acc.relativeL2 <= 0.05, "sparse \(what): \(acc.cosine) \(acc.relativeL2)")
        #expect(ExtendedReference.maxLSEError(try #require(result.lse), ref.lse) <= 0.15, "sparse lse \(what)")
        for (n, lse) in ref.lse.enumerated() where lse == -.infinity {
            #expect(out[(n * c.d)..<((n + 1) * c.d)].allSatisfy { $0 == 0 }, "row \(n) sees no key: zeros, \(what)")
        }
        // The statistics leave out the blocks in which the mask forbids every pair.
        let forbidden = Self.forbiddenBlocks(mask, batch: 2, nq: nq, nk: nk, blockQ: 64, blockK: 64, shape: shape)
        #expect(result.statistics.allowedBlocks == forbidden.filter { !$0 }.count * c.h, "allowed blocks \(what)")

        // Stage 1: never a forbidden block; the kernel equals float64 restricted to the predicted map.
        p.selection = .topK(0.5)
        p.attentionSink = true
        p.pvThreshold = 50
        let (predictedOut, predicted) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, attentionMask: mask)
        let map = try #require(predicted.blockMap)
        for b in 0..<2 { for h in 0..<c.h { for i in 0..<nq { for j in 0..<nk where map[b, h, i, j] {
            #expect(!forbidden[(b * nq + i) * nk + j], "block (\(i), \(j)) of batch \(b) is forbidden, \(what)")
        } } } }
        let masked = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, attentionMask: mask,
                                                           blockMap: map, blockQ: 64, blockK: 64)
        #expect(try Accuracy(predictedOut, reference: masked.output).cosine >= 0.999, "predicted \(what)")

        // Stage 1 alone predicts the same map.
        let alone = try SpargeAttention.predictBlockMap(q: q, k: k, shape: shape, parameters: p, attentionMask: mask)
        #expect(alone.blockMap == predicted.blockMap, "stage 1 alone, \(what)")
        // The same call on one thread and through a plan: bit for bit.
        let one = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 1, attentionMask: mask)
        #expect(one.output.map(\.bitPattern) == predictedOut.map(\.bitPattern), "one thread, \(what)")
        let plan = try SpargePlan(shape: shape, parameters: p)
        var planned = [Float](repeating: 0, count: shape.queryElements)
        let planResult = try plan.run(q: q, k: k, v: v, output: &planned, workspace: plan.makeWorkspace(), attentionMask: mask)
        #expect(planned.map(\.bitPattern) == predictedOut.map(\.bitPattern), "plan, \(what)")
        #expect(planResult.statistics == predicted.statistics, "plan statistics, \(what)")
    }

    /// Which `blockQ x blockK` blocks of each batch entry the mask forbids entirely (`B,nq,nk`).
    static func forbiddenBlocks(_ mask: AttentionMask, batch: Int, nq: Int, nk: Int, blockQ: Int, blockK: Int,
                                shape s: AttentionShape) -> [Bool] {
        var out = [Bool]()
        for b in 0..<batch { for i in 0..<nq { for j in 0..<nk {
            var any = false
            for t in (i * blockQ)..<min(s.queryLength, (i + 1) * blockQ) {
                for u in (j * blockK)..<min(s.keyLength, (j + 1) * blockK) where mask[mask.batch == 1 ? 0 : b, t, u] { any = true }
            }
            out.append(!any)
        } } }
        return out
    }

    /// A mask that spells out the (bottom-right) causal rule, the sliding window or the key
    /// padding gives the very bits of the call with that rule: the same blocks masked, the same
    /// scores -inf. (Not top-left with Nk > Nq and a partial last query block, nor the sink's
    /// block when the rule clears it: see the embedding article.)
    @Test(arguments: [false, true])
    func maskOfABuiltInRuleIsBitIdentical(window: Bool) throws {
        var rng = TestRNG(seed: 1790)
        let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 333, keyLength: 400, headDim: 40)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        let offset = shape.keyLength - shape.queryLength, w = 150
        let causalMask = try AttentionMask(queryLength: shape.queryLength, keyLength: shape.keyLength) { _, i, j in
            j <= i + offset && (!window || j > i + offset - w)
        }
        var p = SpargeParameters.recommended
        p.selection = .topK(0.4)
        var causal = p
        causal.causal = true
        causal.slidingWindow = window ? w : nil
        let byRule = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: causal, captureLSE: true)
        let byMask = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, captureLSE: true, attentionMask: causalMask)
        #expect(byMask.output.map(\.bitPattern) == byRule.output.map(\.bitPattern))
        #expect(byMask.result.lse == byRule.result.lse)
        #expect(byMask.result.blockMap == byRule.result.blockMap && byMask.result.statistics == byRule.result.statistics)
        let denseRule = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: true, slidingWindow: window ? w : nil)
        let denseMask = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, attentionMask: causalMask)
        #expect(denseMask.map(\.bitPattern) == denseRule.map(\.bitPattern))

        // Key padding as a mask (batch entries of 250 and 400 real keys).
        let lengths = [250, 400]
        let padding = try KeyPaddingMask(validLengths: lengths, keyLength: shape.keyLength)
        let paddingMask = try AttentionMask(batch: 2, queryLength: shape.queryLength, keyLength: shape.keyLength) { b, _, j in j < lengths[b] }
        let padded = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, keyPadding: padding)
        let masked = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, attentionMask: paddingMask)
        #expect(masked.output.map(\.bitPattern) == padded.output.map(\.bitPattern))
        #expect(masked.result.statistics == padded.result.statistics)

        // A mask that allows every pair changes nothing.
        let open = try AttentionMask(queryLength: shape.queryLength, keyLength: shape.keyLength) { _, _, _ in true }
        let plain = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        let opened = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, attentionMask: open)
        #expect(opened.output.map(\.bitPattern) == plain.output.map(\.bitPattern))
    }

    /// Under `.propagate`, a NaN key makes NaN exactly the rows whose mask lets them see it.
    @Test func nonFiniteKeysCountOnlyWhereTheMaskAllows() throws {
        var rng = TestRNG(seed: 1791)
        let n = 200, d = 8, bad = 20
        let shape = AttentionShape(heads: 1, queryLength: n, headDim: d)
        let q = rng.gaussians(n * d), v = rng.gaussians(n * d)
        var k = rng.gaussians(n * d)
        k[bad * d + 3] = .nan
        // Rows see keys of their own parity, and row 7 sees nothing.
        let mask = try AttentionMask(queryLength: n, keyLength: n) { _, i, j in i != 7 && i % 2 == j % 2 }
        var p = SpargeParameters.recommended
        p.smoothK = false
        p.nonFinitePolicy = .propagate
        let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, captureLSE: true, attentionMask: mask)
        let lse = try #require(result.lse)
        var dense = [Float](repeating: 0, count: n * d)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: shape, nonFinitePolicy: .propagate, attentionMask: mask)
        for t in 0..<n {
            let sees = t % 2 == bad % 2 && t != 7
            let row = Array(out[t * d..<(t + 1) * d]), denseRow = Array(dense[t * d..<(t + 1) * d])
            #expect(row.allSatisfy { $0.isNaN } == sees && (sees || row.allSatisfy { $0.isFinite }), "sparse row \(t)")
            #expect(lse[t].isNaN == sees, "lse row \(t)")
            #expect(denseRow.allSatisfy { $0.isNaN } == sees, "dense row \(t)")
        }
        #expect(out[(7 * d)..<(8 * d)].allSatisfy { $0 == 0 } && lse[7] == -.infinity, "row 7 sees no key")
    }

    @Test func misuseThrows() throws {
        let shape = AttentionShape(batch: 2, heads: 1, queryLength: 10, headDim: 4)
        let x = [Float](repeating: 0.1, count: shape.queryElements)
        #expect(throws: SpargeError.self) { _ = try AttentionMask(queryLength: 10, keyLength: 10, allowed: [true]) }
        #expect(throws: SpargeError.self) { _ = try AttentionMask(queryLength: 0, keyLength: 10) { _, _, _ in true } }
        #expect(throws: SpargeError.self) { _ = try AttentionMask(batch: Int.max / 2, queryLength: 3, keyLength: 3) { _, _, _ in true } }
        let wrongKeys = try AttentionMask(queryLength: 10, keyLength: 9) { _, _, _ in true }
        let wrongBatch = try AttentionMask(batch: 3, queryLength: 10, keyLength: 10) { _, _, _ in true }
        for mask in [wrongKeys, wrongBatch] {
            #expect(throws: SpargeError.self) { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, attentionMask: mask) }
            #expect(throws: SpargeError.self) { _ = try SpargeAttention.dense(q: x, k: x, v: x, shape: shape, attentionMask: mask) }
            #expect(throws: SpargeError.self) { _ = try Float64Reference.attentionWithLSE(q: x, k: x, v: x, shape: shape, attentionMask: mask) }
        }
        // With a token order the mask's sizes are checked as without one (its pairs follow the
        // order: TokenOrderTests).
        let order = try TokenOrder(permutation: Array((0..<10).reversed()))
        #expect(throws: SpargeError.self) {
            _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, tokenOrder: order, attentionMask: wrongKeys)
        }
        #expect(throws: SpargeError.self) { _ = try SpargeAttention.dense(q: x, k: x, v: x, shape: shape, tokenOrder: order, attentionMask: wrongBatch) }
    }
}

/// A KV cache's calls with an attention mask: tree attention over drafted tokens.
struct KVCacheAttentionMaskTests {
    /// A prefix of 300 cached tokens, then 5 drafted tokens forming a tree (0 the root, 1 and 2
    /// its children, 3 a child of 1, 4 a child of 2): each sees the prefix and its ancestors.
    /// Sparse (every block, stage 2 off) and exact, GQA, against float64.
    @Test(arguments: [1, 2])
    func treeAttentionOverDraftedTokens(batch: Int) throws {
        var rng = TestRNG(seed: 1795)
        let heads = 4, kvHeads = 2, d = 40, prefix = 300, drafted = 5
        let parent = [-1, 0, 0, 1, 2]
        func sees(_ t: Int, _ u: Int) -> Bool {   // drafted token t sees drafted token u
            var a = t
            while a >= 0 { if a == u { return true }; a = parent[a] }
            return false
        }
        var p = SpargeKVCache.defaultParameters
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        let n = prefix + drafted
        let k = rng.gaussians(batch * kvHeads * n * d, scale: 1.5), v = rng.gaussians(batch * kvHeads * n * d)
        let cache = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: drafted,
                                      parameters: p)
        func rows(_ x: [Float], _ range: Range<Int>) -> [Float] { KVCacheTests.rows(x, heads: batch * kvHeads, n: n, d: d, range) }
        try cache.append(k: rows(k, 0..<prefix), v: rows(v, 0..<prefix), tokens: prefix)
        try cache.append(k: rows(k, prefix..<n), v: rows(v, prefix..<n), tokens: drafted)
        // Batch entry 1 (when there is one) also hides the prefix's first 50 keys.
        let mask = try AttentionMask(batch: batch, queryLength: drafted, keyLength: n) { b, t, j in
            j < prefix ? (b == 0 || j >= 50) : sees(t, j - prefix)
        }
        let q = rng.gaussians(batch * heads * drafted * d, scale: 1.5)
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: drafted, keyLength: n, headDim: d)
        let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: n - drafted, attentionMask: mask)
        var sparse = [Float](repeating: 0, count: q.count), exact = sparse
        var sparseLSE = [Float](repeating: 0, count: batch * heads * drafted), exactLSE = sparseLSE
        try cache.attend(q: q, output: &sparse, queries: drafted, lse: &sparseLSE, attentionMask: mask)
        try cache.attendExact(q: q, output: &exact, queries: drafted, lse: &exactLSE, attentionMask: mask)
        #expect(try Accuracy(exact, reference: ref.output).relativeL2 <= 1e-5, "exact")
        #expect(ExtendedReference.maxLSEError(exactLSE, ref.lse) <= 1e-4, "exact lse")
        #expect(try Accuracy(sparse, reference: ref.output).cosine >= 0.999, "sparse")
        #expect(ExtendedReference.maxLSEError(sparseLSE, ref.lse) <= 0.15, "sparse lse")
        // Without the mask the drafted tokens would see each other causally: a different result.
        var plain = sparse
        try cache.attend(q: q, output: &plain, queries: drafted)
        #expect(plain != sparse)

        // Misuse: a mask of the wrong length.
        let short = try AttentionMask(queryLength: drafted, keyLength: n - 1) { _, _, _ in true }
        #expect(throws: SpargeError.self) { try cache.attend(q: q, output: &sparse, queries: drafted, attentionMask: short) }
        #expect(throws: SpargeError.self) { try cache.attendExact(q: q, output: &exact, queries: drafted, attentionMask: short) }
    }

    /// A KV cache under `.propagate` with an attention mask: a NaN key makes NaN exactly the rows
    /// that the mask and the causal rule let see it, as exact attention would (sparse and exact
    /// paths). A NaN key in the append that set the K mean reaches every row of its kv head
    /// through the mean on the sparse path (not on the exact one); a later NaN key only the rows
    /// that see it.
    @Test(arguments: [false, true])
    func kvCacheUnderPropagateMarksTheRowsTheMaskLetsSee(badKeyInMeanAppend: Bool) throws {
        var rng = TestRNG(seed: badKeyInMeanAppend ? 77 : 78)
        let heads = 4, kvHeads = 2, d = 8, prefix = 150, drafted = 6, n = prefix + drafted
        let badKey = badKeyInMeanAppend ? 40 : prefix + 2, badHead = 1   // kv head 1: query heads 2 and 3
        let (cache, k, v) = try Self.propagatingCache(heads: heads, kvHeads: kvHeads, d: d, n: n, maxQueryLength: drafted,
                                                      nanKey: (badHead, badKey), rng: &rng)
        func rows(_ x: [Float], _ range: Range<Int>) -> [Float] { KVCacheTests.rows(x, heads: kvHeads, n: n, d: d, range) }
        try cache.append(k: rows(k, 0..<prefix), v: rows(v, 0..<prefix), tokens: prefix)
        try cache.append(k: rows(k, prefix..<n), v: rows(v, prefix..<n), tokens: drafted)
        // Even rows see the even keys; row 5 only keys 40 and 152; the other odd rows nothing.
        let mask = try AttentionMask(queryLength: drafted, keyLength: n) { _, t, j in
            t != 3 && (j % 2 == 0 && t % 2 == 0 || (t == 5 && (j == 40 || j == prefix + 2)))
        }
        let q = rng.gaussians(heads * drafted * d, scale: 1.5)
        var sparse = [Float](repeating: 0, count: q.count), exact = sparse
        try cache.attend(q: q, output: &sparse, queries: drafted, attentionMask: mask)
        try cache.attendExact(q: q, output: &exact, queries: drafted, attentionMask: mask)
        // Causal, bottom-right: row t sees keys up to prefix + t.
        func seesBad(_ h: Int, _ t: Int) -> Bool {
            h / 2 == badHead && badKey <= prefix + t && t != 3 && (badKey % 2 == 0 && t % 2 == 0 || t == 5)
        }
        let seesAny = { (t: Int) in t % 2 == 0 || t == 5 }   // odd rows but 5 see no key
        Self.expectNaNRows(sparse, heads: heads, queries: drafted, d: d, "sparse") {
            seesBad($0, $1) || (badKeyInMeanAppend && $0 / 2 == badHead && seesAny($1))
        }
        Self.expectNaNRows(exact, heads: heads, queries: drafted, d: d, "exact", seesBad)
    }

    /// An empty cache of capacity `n` under `.propagate`, and `n` keys and values for it
    /// (`Hkv,n,D`) with a NaN in the key row `nanKey` (kv head, key).
    static func propagatingCache(heads: Int, kvHeads: Int, d: Int, n: Int, maxQueryLength: Int, nanKey: (head: Int, key: Int),
                                 rng: inout TestRNG) throws -> (SpargeKVCache, [Float], [Float]) {
        var k = rng.gaussians(kvHeads * n * d, scale: 1.5)
        let v = rng.gaussians(kvHeads * n * d)
        k[(nanKey.head * n + nanKey.key) * d + 5] = .nan
        var p = SpargeKVCache.defaultParameters
        p.nonFinitePolicy = .propagate
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: maxQueryLength, parameters: p)
        return (cache, k, v)
    }

    /// Rows (h, t) of a `1,H,queries,D` output where `nan` holds are all NaN, the others finite.
    static func expectNaNRows(_ out: [Float], heads: Int, queries: Int, d: Int, _ label: String, _ nan: (Int, Int) -> Bool) {
        for h in 0..<heads {
            for t in 0..<queries {
                let row = out[((h * queries) + t) * d..<((h * queries) + t + 1) * d], want = nan(h, t)
                #expect(row.allSatisfy(\.isNaN) == want && (want || row.allSatisfy(\.isFinite)), "\(label) head \(h) row \(t)")
            }
        }
    }

    /// Without a mask: a NaN key row in the append that set the K mean reaches every row of its
    /// kv head on the sparse path (through the mean), but on the exact path only the rows that see
    /// it. Here it is among the last keys, so the first query rows, whose causal range ends
    /// before it, stay finite on the exact path.
    @Test(arguments: [1, 4])
    func kvCacheExactPathIgnoresThePoisonedMean(badOffset: Int) throws {
        var rng = TestRNG(seed: UInt64(79 + badOffset))
        let heads = 4, kvHeads = 2, d = 8, n = 200, queries = 6, badKey = n - queries + badOffset, badHead = 1
        let (cache, k, v) = try Self.propagatingCache(heads: heads, kvHeads: kvHeads, d: d, n: n, maxQueryLength: queries,
                                                      nanKey: (badHead, badKey), rng: &rng)
        try cache.append(k: k, v: v, tokens: n)   // this append sets the K mean
        let q = rng.gaussians(heads * queries * d, scale: 1.5)
        var sparse = [Float](repeating: 0, count: q.count), exact = sparse
        try cache.attend(q: q, output: &sparse, queries: queries)
        try cache.attendExact(q: q, output: &exact, queries: queries)
        Self.expectNaNRows(sparse, heads: heads, queries: queries, d: d, "sparse") { h, _ in h / 2 == badHead }
        // Causal, bottom-right: row t sees keys up to n - queries + t.
        Self.expectNaNRows(exact, heads: heads, queries: queries, d: d, "exact") { h, t in h / 2 == badHead && badKey <= n - queries + t }
    }
}
