import Testing
@testable import SpargeAttn
@testable import SpargeWorkloads
import SpargeTestSupport

/// GPU-faithful options: fp16 / fp8 P.V numerics, block-only causal masking, presets.
struct GPUNumericsTests {
    @Test func fp16AndFp8NumericsStayCloseToFp32() throws {
        var w = VideoLikeWorkload.medium
        w.tokens = 1024
        w.heads = 2
        let t = try w.generate()
        var p = SpargeParameters.recommended
        let (reference, r) = try SpargeAttention.sparse(q: t.q, k: t.k, v: t.v, shape: t.shape, parameters: p)
        for numerics in [PVNumerics.fp16, .fp8] {
            p.gpuReproduction.pvNumerics = numerics
            let (out, r2) = try SpargeAttention.sparse(q: t.q, k: t.k, v: t.v, shape: t.shape, parameters: p)
            #expect(r2.blockMap == r.blockMap)
            let acc = try Accuracy(out, reference: reference.map(Double.init))
            #expect(acc.cosine >= (numerics == .fp16 ? 0.99999 : 0.995), "\(numerics): cosine \(acc.cosine)")
            #expect(out != reference, "\(numerics) must change the numerics")
        }
    }

    /// Block-only causal masking is attention restricted to the block map with no token mask.
    @Test func blockOnlyCausalMasksBlocksNotTokens() throws {
        var rng = TestRNG(seed: 81)
        let shape = AttentionShape(heads: 2, queryLength: 300, headDim: 32)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters.recommended
        p.causal = true
        p.gpuReproduction.causalMasking = .blockOnly
        p.pvThreshold = PerHead(Float.infinity)
        let (out, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        let blockOnly = Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: false, blockMap: r.blockMap)
        #expect(try Accuracy(out, reference: blockOnly).cosine >= 0.999)
        let tokenMasked = Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: true, blockMap: r.blockMap)
        #expect(try Accuracy(out, reference: tokenMasked).cosine < 0.99, "the diagonal blocks must see their future tokens")
    }

    @Test func presetsFollowTheEntryPoints() {
        let hopper = SpargeParameters.preset(.sage2TopK, arch: .sm90)
        #expect(hopper.blockQ == 64 && hopper.blockK == 128 && hopper.gpuReproduction.pvNumerics == .fp8 && hopper.gpuReproduction.causalMasking == .blockOnly)
        let ampere = SpargeParameters.preset(.sage2CDF, arch: .sm80)
        #expect(ampere.blockQ == 128 && ampere.blockK == 64 && ampere.gpuReproduction.pvNumerics == .fp16 && ampere.selection == .cdf(0.98))
        #expect(SpargeParameters.preset(.blockSparse, arch: .sm89).gpuReproduction.fp8ValueRange == 448)
        #expect(SpargeParameters.preset(.sage2TopK, arch: .sm89).gpuReproduction.fp8ValueRange == 2.25)
        let triton = SpargeParameters.preset(.triton)
        #expect(triton.gpuReproduction.quantization == .triton && triton.gpuReproduction.tritonKeyPadding && triton.gpuReproduction.causalMasking == .token && !triton.pvThreshold[0].isFinite)
    }
}
