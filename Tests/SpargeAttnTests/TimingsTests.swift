import Testing
import SpargeAttn
import SpargeTestSupport

/// ``SparseTimings``: the V pass is part of the preparation, and stage 1 and quantization
/// share the rest of it.
struct TimingsTests {
    @Test func valuePassIsPartOfThePreparation() throws {
        let shape = AttentionShape(heads: 2, queryLength: 300, headDim: 32)
        var rng = TestRNG(seed: 11)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        let plan = try SpargePlan(shape: shape, threads: 2)
        let workspace = plan.makeWorkspace()
        var out = [Float](repeating: 0, count: shape.queryElements)
        let t = try plan.run(q: q, k: k, v: v, output: &out, workspace: workspace).timings
        #expect(t.valuePassSeconds > 0)
        #expect(t.valuePassSeconds <= t.preparationSeconds)
        #expect(t.stage1Seconds >= 0 && t.quantizationSeconds >= 0)
        #expect(abs(t.stage1Seconds + t.quantizationSeconds + t.valuePassSeconds - t.preparationSeconds) <= 1e-9)
    }
}
