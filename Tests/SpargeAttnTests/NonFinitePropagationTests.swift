import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// `NonFinitePolicy.propagate`: NaN goes to every row whose exact attention reads a NaN or
/// infinity (the query row, or a key or value the row sees), on every path, and to no other
/// row but those a non-finite value reaches through a tile the causal mask cuts. Before, a NaN query gave a zero dense row and a NaN key a finite
/// sparse output.
struct NonFinitePropagationTests {
    static let shape = AttentionShape(heads: 2, kvHeads: 1, queryLength: 150, keyLength: 150, headDim: 16)

    /// Which rows (`B,H,Nq` order) are not finite.
    static func badRows(_ out: [Float], d: Int) -> [Bool] {
        stride(from: 0, to: out.count, by: d).map { r in out[r..<(r + d)].contains { !$0.isFinite } }
    }

    /// `got` has NaN in every row of `want`, and elsewhere only in rows of `tolerated`.
    static func matches(_ got: [Bool], _ want: [Bool], tolerated: [Bool]) -> Bool {
        got.indices.allSatisfy { want[$0] ? got[$0] : (!got[$0] || tolerated[$0]) }
    }

    /// The rows a non-finite value at key `key` may also reach under the causal mask: the tile
    /// products take a masked key's zero weight times its value (0 * inf is NaN) for every row
    /// of a query tile that sees some key of that 64-key tile.
    static func sameTile(key: Int?, causal: Bool) -> [Bool] {
        let s = shape
        return (0..<(s.heads * s.queryLength)).map { r in
            guard let key, causal else { return false }
            return r % s.queryLength >= key / 64 * 64
        }
    }

    /// Rows exact attention makes NaN: query `bq` (head `bh`, row `bt`) and every row that sees key `bk`.
    static func expected(causal: Bool, badQuery: (h: Int, t: Int)?, badKey: Int?) -> [Bool] {
        let s = shape
        var rows = [Bool]()
        for h in 0..<s.heads {
            for t in 0..<s.queryLength {
                let seen = causal ? t + 1 : s.keyLength
                rows.append((badQuery.map { $0.h == h && $0.t == t } ?? false) || (badKey.map { $0 < seen } ?? false))
            }
        }
        return rows
    }

    static func inputs(badQuery: (h: Int, t: Int)?, badKey: Int?, inValue: Bool, seed: UInt64) -> ([Float], [Float], [Float]) {
        var rng = TestRNG(seed: seed)
        let s = shape, d = s.headDim
        var q = rng.gaussians(s.queryElements), k = rng.gaussians(s.keyElements), v = rng.gaussians(s.keyElements)
        if let b = badQuery { q[(b.h * s.queryLength + b.t) * d + 3] = .nan }
        if let j = badKey { if inValue { v[j * d + 5] = .infinity } else { k[j * d + 5] = .nan } }
        return (q, k, v)
    }

    @Test(arguments: [false, true])
    func nanReachesExactlyTheRowsThatReadIt(causal: Bool) throws {
        let d = Self.shape.headDim
        let cases: [((h: Int, t: Int)?, Int?, Bool)] = [((1, 40), nil, false), (nil, 90, false), (nil, 90, true), ((0, 3), 130, false)]
        for (i, (badQuery, badKey, inValue)) in cases.enumerated() {
            let (q, k, v) = Self.inputs(badQuery: badQuery, badKey: badKey, inValue: inValue, seed: UInt64(40 + i))
            let want = Self.expected(causal: causal, badQuery: badQuery, badKey: badKey)
            let tolerated = Self.sameTile(key: inValue ? badKey : nil, causal: causal)
            let label = "case \(i) causal \(causal)"
            var dense = [Float](repeating: 0, count: Self.shape.queryElements)
            var lse = [Float](repeating: 0, count: Self.shape.heads * Self.shape.queryLength)
            try SpargeAttention.dense(q: q, k: k, v: v, output: &dense, shape: Self.shape, causal: causal,
                                      nonFinitePolicy: .propagate, lse: &lse)
            #expect(Self.matches(Self.badRows(dense, d: d), want, tolerated: tolerated), "dense \(label)")
            #expect(lse.map { $0.isNaN } == want, "dense lse \(label)")
            for (preset, smoothK) in [(SpargeParameters.recommended, true), (.triton, true), (.recommended, false)] {
                var p = preset
                p.causal = causal
                p.smoothK = smoothK
                p.nonFinitePolicy = .propagate
                // K smoothing: a NaN key row makes the K mean NaN, which every row reads.
                let wantSparse = smoothK && badKey != nil && !inValue ? want.map { _ in true } : want
                let (sparse, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p)
                #expect(Self.matches(Self.badRows(sparse, d: d), wantSparse, tolerated: tolerated), "sparse \(p.gpuReproduction.quantization) smoothK \(smoothK) \(label)")
                let plan = try SpargePlan(shape: Self.shape, parameters: p)
                var planned = [Float](repeating: 0, count: Self.shape.queryElements)
                try plan.run(q: q, k: k, v: v, output: &planned, workspace: plan.makeWorkspace())
                #expect(Self.matches(Self.badRows(planned, d: d), wantSparse, tolerated: tolerated), "plan smoothK \(smoothK) \(label)")
            }
        }
    }

    /// Q smoothing: a NaN query row makes its block's mean NaN, which every row of the block reads.
    @Test func querySmoothingSpreadsOverTheBlock() throws {
        let s = Self.shape, d = s.headDim
        let (q, k, v) = Self.inputs(badQuery: (1, 40), badKey: nil, inValue: false, seed: 9)
        var p = SpargeParameters.recommended
        p.smoothQ = true
        p.nonFinitePolicy = .propagate
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p)
        let want = (0..<(s.heads * s.queryLength)).map { $0 / s.queryLength == 1 && $0 % s.queryLength < p.blockQ }
        #expect(Self.badRows(out, d: d) == want)
    }

    /// A NaN in a padded key is never seen; a NaN key in a KV cache reaches the decoding rows
    /// that see it, sparse and exact.
    @Test func paddingAndTheCache() throws {
        let s = Self.shape, d = s.headDim
        let (q, k, v) = Self.inputs(badQuery: nil, badKey: 140, inValue: false, seed: 7)
        let padding = try KeyPaddingMask(validLengths: [130], keyLength: s.keyLength)
        var out = [Float](repeating: 0, count: s.queryElements)
        try SpargeAttention.dense(q: q, k: k, v: v, output: &out, shape: s, nonFinitePolicy: .propagate, keyPadding: padding)
        #expect(out.allSatisfy { $0.isFinite })

        var p = SpargeKVCache.defaultParameters
        p.nonFinitePolicy = .propagate
        let cache = try SpargeKVCache(heads: s.heads, kvHeads: s.kvHeads, headDim: d, capacity: s.keyLength, maxQueryLength: 4, parameters: p)
        try cache.append(k: Array(k[0..<(120 * d)]), v: Array(v[0..<(120 * d)]), tokens: 120)
        var step = [Float](repeating: 0, count: s.heads * d)
        try cache.attend(q: Array(q[0..<(s.heads * d)]), output: &step, queries: 1)
        #expect(step.allSatisfy { $0.isFinite }, "before the bad key")
        try cache.append(k: Array(k[(120 * d)...]), v: Array(v[(120 * d)...]), tokens: 30)   // key 140 is NaN
        // Four queries: the last four tokens 146...149, all after key 140.
        var four = [Float](repeating: 0, count: s.heads * 4 * d)
        try cache.attend(q: Array(q[0..<(s.heads * 4 * d)]), output: &four, queries: 4)
        #expect(four.allSatisfy { $0.isNaN }, "sparse decode")
        try cache.attendExact(q: Array(q[0..<(s.heads * 4 * d)]), output: &four, queries: 4)
        #expect(four.allSatisfy { $0.isNaN }, "exact decode")
    }
}
