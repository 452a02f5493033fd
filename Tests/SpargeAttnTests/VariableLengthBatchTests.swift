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

    @Test func badOffsetsAreRejected() {
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [1, 5]) }
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [0, 5, 5]) }
        #expect(throws: SpargeError.self) { try VariableLengthBatch(cumulativeQueryLengths: [0, 5], cumulativeKeyLengths: [0, 2, 4]) }
    }
}
