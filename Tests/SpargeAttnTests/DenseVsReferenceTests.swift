import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The dense fp32 path against the float64 reference on randomized shapes.
struct DenseVsReferenceTests {
    static let cases: [(nq: Int, nk: Int, d: Int, causal: Bool)] = [
        (1, 1, 1, false), (7, 7, 3, true), (5, 33, 1, false), (64, 64, 64, true), (65, 129, 80, false),
        (100, 100, 128, true), (130, 70, 256, false), (257, 257, 64, true), (31, 300, 3, false),
    ]

    @Test(arguments: 0..<cases.count)
    func denseMatchesFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(index + 1))
        let shape = AttentionShape(batch: 2, heads: 2, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        let out = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: c.causal)
        let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.causal)
        let acc = try Accuracy(out, reference: ref)
        #expect(acc.relativeL2 <= 1e-5, "relative L2 \(acc.relativeL2) for \(shape) causal \(c.causal)")
    }
}
