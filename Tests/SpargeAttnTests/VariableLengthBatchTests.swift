import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// A variable-length batch packed along N (FlashAttention's varlen layout) equals running the
/// sequences one by one, bit for bit, outputs and log-sum-exps.
struct VariableLengthBatchTests {
    /// Token-major `total x heads x d` from per-sequence `heads x n x d` (HND) arrays.
    static func hnd(_ packed: [Float], first: Int, count n: Int, heads: Int, d: Int) -> [Float] {
        var out = [Float](repeating: 0, count: heads * n * d)
        for h in 0..<heads { for t in 0..<n { for c in 0..<d {
            out[(h * n + t) * d + c] = packed[((first + t) * heads + h) * d + c]
        } } }
        return out
    }

    @Test(arguments: [false, true])
    func packedBatchEqualsSequencesOneByOne(causal: Bool) throws {
        let heads = 4, kvHeads = 2, d = 40
        let qLengths = [70, 1, 200], kLengths = causal ? [90, 37, 200] : [70, 300, 5]
        let cuQ = [0] + qLengths.indices.map { qLengths[...$0].reduce(0, +) }
        let cuK = [0] + kLengths.indices.map { kLengths[...$0].reduce(0, +) }
        let batch = try VariableLengthBatch(cumulativeQueryLengths: cuQ, cumulativeKeyLengths: cuK)
        var rng = TestRNG(seed: causal ? 31 : 32)
        let q = rng.gaussians(batch.totalQueries * heads * d), k = rng.gaussians(batch.totalKeys * kvHeads * d)
        let v = rng.gaussians(batch.totalKeys * kvHeads * d)
        var p = SpargeParameters.recommended
        p.blockQ = 64
        p.causal = causal
        var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: heads * batch.totalQueries)
        let results = try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
            try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(o),
                                           batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, parameters: p, lse: l)
            } } } } }
        #expect(results.count == 3)
        // The array form's LSE is the pointer form's.
        var arrayOut = [Float](repeating: 0, count: q.count), arrayLSE = [Float](repeating: 0, count: lse.count)
        try SpargeAttention.sparse(q: q, k: k, v: v, output: &arrayOut, batch: batch, heads: heads, kvHeads: kvHeads, headDim: d,
                                   parameters: p, lse: &arrayLSE)
        #expect(arrayOut.map(\.bitPattern) == out.map(\.bitPattern) && arrayLSE.map(\.bitPattern) == lse.map(\.bitPattern))
        for i in 0..<3 {
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: qLengths[i], keyLength: kLengths[i], headDim: d)
            let (alone, r) = try SpargeAttention.sparse(
                q: Self.hnd(q, first: cuQ[i], count: qLengths[i], heads: heads, d: d),
                k: Self.hnd(k, first: cuK[i], count: kLengths[i], heads: kvHeads, d: d),
                v: Self.hnd(v, first: cuK[i], count: kLengths[i], heads: kvHeads, d: d),
                shape: shape, parameters: p, captureLSE: true)
            let packed = Self.hnd(out, first: cuQ[i], count: qLengths[i], heads: heads, d: d)
            #expect(packed.map(\.bitPattern) == alone.map(\.bitPattern), "sequence \(i) output")
            let aloneLSE = try #require(r.lse)
            for h in 0..<heads {
                let row = lse[(h * batch.totalQueries + cuQ[i])..<(h * batch.totalQueries + cuQ[i] + qLengths[i])]
                #expect(row.map(\.bitPattern) == aloneLSE[(h * qLengths[i])..<((h + 1) * qLengths[i])].map(\.bitPattern), "sequence \(i) lse")
            }
            #expect(results[i].blockMap == r.blockMap)
        }
    }

    /// One attention mask per sequence (one sequence without), with a token order on another:
    /// each sequence as its own masked call, bit for bit; masks of the wrong count or size are
    /// refused before anything is written.
    @Test func masksPerSequence() throws {
        let heads = 2, d = 16
        let order = try TokenOrder.hilbert(height: 6, width: 8, prefix: 2)   // 50 tokens
        let lengths = [50, 80, 33]
        let cu = [0] + lengths.indices.map { lengths[...$0].reduce(0, +) }
        let batch = try VariableLengthBatch(cumulativeQueryLengths: cu)
        var rng = TestRNG(seed: 4910)
        let q = rng.gaussians(batch.totalQueries * heads * d), k = rng.gaussians(batch.totalKeys * heads * d)
        let v = rng.gaussians(batch.totalKeys * heads * d)
        var p = SpargeParameters.recommended
        p.blockQ = 16
        p.blockK = 16
        let masks: [AttentionMask?] = [
            try AttentionMask(queryLength: 50, keyLength: 50) { _, i, j in (i < 20) == (j < 20) },
            nil,
            try AttentionMask(queryLength: 33, keyLength: 33) { _, i, j in j <= i || j > 30 },
        ]
        let orders: [TokenOrder?] = [order, nil, nil]
        var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: heads * batch.totalQueries)
        let results = try SpargeAttention.sparse(q: q, k: k, v: v, output: &out, batch: batch, heads: heads, headDim: d, parameters: p,
                                                 tokenOrders: orders, lse: &lse, attentionMasks: masks)
        for i in 0..<3 {
            let shape = AttentionShape(heads: heads, queryLength: lengths[i], headDim: d)
            let (alone, r) = try SpargeAttention.sparse(
                q: Self.hnd(q, first: cu[i], count: lengths[i], heads: heads, d: d),
                k: Self.hnd(k, first: cu[i], count: lengths[i], heads: heads, d: d),
                v: Self.hnd(v, first: cu[i], count: lengths[i], heads: heads, d: d),
                shape: shape, parameters: p, tokenOrder: orders[i], captureLSE: true, attentionMask: masks[i])
            #expect(Self.hnd(out, first: cu[i], count: lengths[i], heads: heads, d: d).map(\.bitPattern) == alone.map(\.bitPattern),
                    "sequence \(i)")
            let aloneLSE = try #require(r.lse)
            for h in 0..<heads {
                let row = lse[(h * batch.totalQueries + cu[i])..<(h * batch.totalQueries + cu[i] + lengths[i])]
                #expect(row.map(\.bitPattern) == aloneLSE[(h * lengths[i])..<((h + 1) * lengths[i])].map(\.bitPattern), "sequence \(i) lse")
            }
            #expect(results[i].blockMap == r.blockMap)
        }
        let (unmasked, _) = try SpargeAttention.sparse(
            q: Self.hnd(q, first: cu[2], count: 33, heads: heads, d: d), k: Self.hnd(k, first: cu[2], count: 33, heads: heads, d: d),
            v: Self.hnd(v, first: cu[2], count: 33, heads: heads, d: d), shape: AttentionShape(heads: heads, queryLength: 33, headDim: d),
            parameters: p)
        #expect(Self.hnd(out, first: cu[2], count: 33, heads: heads, d: d) != unmasked, "the mask changes the output")
        // Refusals, with the output untouched.
        let wrongSize = try AttentionMask(queryLength: 80, keyLength: 79) { _, _, _ in true }
        let twoEntries = try AttentionMask(batch: 2, queryLength: 33, keyLength: 33) { _, _, _ in true }
        for bad in [[masks[0], masks[1]], [masks[0], wrongSize, nil], [nil, nil, twoEntries]] {
            var untouched = [Float](repeating: 7, count: q.count)
            #expect(throws: SpargeError.self) {
                try SpargeAttention.sparse(q: q, k: k, v: v, output: &untouched, batch: batch, heads: heads, headDim: d, parameters: p,
                                           attentionMasks: bad)
            }
            #expect(untouched.allSatisfy { $0 == 7 })
        }
    }

    @Test func badOffsetsAreRejected() {
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [1, 5]) }
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [0, 5, 5]) }
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [0, 5], cumulativeKeyLengths: [0, 2, 4]) }
    }
}
