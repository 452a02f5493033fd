import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The per-key padding mask: padded keys get no weight (dense and sparse, against float64),
/// a row with every key padded outputs zeros with log-sum-exp -inf, and stage 1 never
/// selects a key block that is all padding.
struct KeyPaddingTests {
    /// (Nq, Nk, D, heads, kvHeads, causal): ragged, N below a block, D 1-256, GQA, Nq != Nk.
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool)] = [
        (5, 9, 3, 2, 1, false), (200, 200, 64, 2, 2, true), (130, 300, 80, 4, 2, false),
        (70, 257, 256, 2, 1, true), (1, 500, 17, 4, 1, true), (300, 129, 1, 3, 3, false),
    ]

    /// Batch 0: right padding plus scattered holes; batch 1: only the first few keys real
    /// (whole key blocks of padding); batch 2: every key padded.
    static func mask(nk: Int, rng: inout TestRNG) throws -> KeyPaddingMask {
        var valid = [Bool]()
        let keep0 = Swift.max(1, nk - nk / 3)
        valid += (0..<nk).map { $0 < keep0 && rng.uniform() > 0.2 }
        valid += (0..<nk).map { $0 < Swift.min(nk, 3) }
        valid += [Bool](repeating: false, count: nk)
        return try KeyPaddingMask(batch: 3, keyLength: nk, valid: valid)
    }

    @Test(arguments: 0..<cases.count)
    func paddedKeysGetNoWeight(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(1300 + index))
        let shape = AttentionShape(batch: 3, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 1.5), k = rng.gaussians(shape.keyElements, scale: 1.5)
        let v = rng.gaussians(shape.keyElements)
        let mask = try Self.mask(nk: c.nk, rng: &rng)
        let validFlags = (0..<(3 * c.nk)).map { mask[$0 / c.nk, $0 % c.nk] }
        let offset: Int? = c.causal ? c.nk - c.nq : nil
        let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: offset, keyMask: validFlags)
        let rows = shape.batch * shape.heads * c.nq
        let lastBatch = (2 * shape.heads * c.nq * c.d)..<shape.queryElements

        // Dense: exact.
        var dense = [Float](repeating: 1, count: shape.queryElements), denseLSE = [Float](repeating: 0, count: rows)
        try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try dense.withUnsafeMutableBufferPointer { o in try denseLSE.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: shape, causal: c.causal, lse: l, keyPadding: mask)
            } } } } }
        #expect(try Accuracy(dense, reference: ref.output).relativeL2 <= 1e-5, "dense \(shape)")
        #expect(ExtendedReference.maxLSEError(denseLSE, ref.lse) <= 1e-4)
        #expect(dense[lastBatch].allSatisfy { $0 == 0 }, "all keys padded: zeros")
        #expect(denseLSE[(2 * shape.heads * c.nq)...].allSatisfy { $0 == -.infinity }, "all keys padded: lse -inf")

        // Sparse, every block given, stage 2 off: only INT8 separates it from exact.
        var p = SpargeParameters()
        p.blockQ = 64
        p.blockK = 64
        p.causal = c.causal
        p.pvThreshold = PerHead(Float.infinity)
        let (nqb, nkb) = shape.blockCounts(blockQ: 64, blockK: 64)
        let full = try BlockMap.full(batch: 3, heads: c.h, queryBlocks: nqb, keyBlocks: nkb)
        let (out, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: full,
                                                  captureLSE: true, keyPadding: mask)
        let acc = try Accuracy(out, reference: ref.output)
        #expect(acc.cosine >= 0.999 && acc.relativeL2 <= 0.05, "sparse \(shape): \(acc.cosine) \(acc.relativeL2)")
        #expect(out[lastBatch].allSatisfy { $0 == 0 })
        #expect(try #require(r.lse)[(2 * shape.heads * c.nq)...].allSatisfy { $0 == -.infinity })

        // Stage 1: predicted map; no all-padding block selected; equal to float64 on that map.
        p.selection = .topK(0.5)
        let (predictedOut, predicted) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, keyPadding: mask)
        let map = try #require(predicted.blockMap)
        for b in 0..<3 {
            for j in 0..<nkb where !(j * 64..<Swift.min(c.nk, (j + 1) * 64)).contains(where: { mask[b, $0] }) {
                for h in 0..<c.h { for i in 0..<nqb { #expect(!map[b, h, i, j], "all-padding block \(j) of batch \(b) selected") } }
            }
        }
        let masked = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: offset, keyMask: validFlags,
                                                 blockMap: map, blockQ: 64, blockK: 64)
        #expect(try Accuracy(predictedOut, reference: masked.output).cosine >= 0.999, "predicted \(shape)")

        // The plan gives the one-shot call's bits.
        let plan = try SpargePlan(shape: shape, parameters: p)
        var planOut = [Float](repeating: 0, count: shape.queryElements)
        _ = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try planOut.withUnsafeMutableBufferPointer { o in
                try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o),
                             workspace: plan.makeWorkspace(), keyPadding: mask)
            } } } }
        #expect(planOut.map(\.bitPattern) == predictedOut.map(\.bitPattern))
    }

    @Test func wrongMaskShapeIsRejected() throws {
        let shape = AttentionShape(batch: 2, heads: 1, queryLength: 8, keyLength: 10, headDim: 4)
        let x = [Float](repeating: 0.5, count: shape.keyElements)
        let mask = try KeyPaddingMask(validLengths: [10], keyLength: 10)
        #expect(throws: SpargeError.self) {
            try SpargeAttention.sparse(q: Array(x[0..<shape.queryElements]), k: x, v: x, shape: shape, keyPadding: mask)
        }
        #expect(throws: SpargeError.self) { try KeyPaddingMask(validLengths: [11], keyLength: 10) }
    }
}
