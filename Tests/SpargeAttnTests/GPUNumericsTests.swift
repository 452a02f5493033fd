import Foundation
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
        let blockOnly = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: false, blockMap: r.blockMap)
        #expect(try Accuracy(out, reference: blockOnly).cosine >= 0.999)
        let tokenMasked = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: true, blockMap: r.blockMap)
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

/// The fp16 and FP8 P.V emulations depend on the values, not on the element type that carried
/// them: fp16-representable inputs give the same output as fp32 or fp16 arrays.
struct NumericsInputTypeTests {
    @Test(arguments: [PVNumerics.fp16, .fp8])
    func emulationIgnoresTheInputElementType(_ numerics: PVNumerics) throws {
        var rng = TestRNG(seed: 412)
        let shape = AttentionShape(heads: 3, kvHeads: 1, queryLength: 439, keyLength: 413, headDim: 64)
        func halfValues(_ n: Int, shift: Float) -> [Float] {
            (0..<n).map { i -> Float in
                let wave = Float(Foundation.sin(Double(i / 64 / 16 + i % 64)))
                return Float(Float16(rng.gaussian() * 0.5 + shift * wave))
            }
        }
        let q = halfValues(shape.queryElements, shift: 1), k = halfValues(shape.keyElements, shift: 1.5)
        let v = halfValues(shape.keyElements, shift: 0)
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = numerics
        var out32 = [Float](repeating: 0, count: shape.queryElements), out16 = out32
        try SpargeAttention.sparse(q: q, k: k, v: v, output: &out32, shape: shape, parameters: p)
        try SpargeAttention.sparse(q: q.map { Float16($0) }, k: k.map { Float16($0) }, v: v.map { Float16($0) },
                                   output: &out16, shape: shape, parameters: p)
        let acc = try Accuracy(out32, reference: out16.map(Double.init))
        #expect(acc.cosine >= 0.99999, "\(numerics): fp32 vs fp16 arrays of the same values, cosine \(acc.cosine), rel L1 \(acc.relativeL1)")
    }
}

/// The fp16 and FP8 emulations round P at the running max of one pass over a row's blocks, as
/// the GPU kernels do: a call with few query blocks (which split-K would cut into ranges) gives
/// the bits of the same head inside a call with many.
struct EmulationSplitTests {
    @Test(arguments: [PVNumerics.fp16, .fp8])
    func fewQueryBlocksAreNotSplit(_ numerics: PVNumerics) throws {
        var rng = TestRNG(seed: 913)
        let one = AttentionShape(heads: 1, queryLength: 200, keyLength: 1000, headDim: 64)
        let many = AttentionShape(heads: 16, queryLength: 200, keyLength: 1000, headDim: 64)
        let q = rng.gaussians(many.queryElements), k = rng.gaussians(many.keyElements), v = rng.gaussians(many.keyElements)
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = numerics
        p.selection = .topK(0.6)
        #expect(splitFactor(items: 2, keyBlocks: 16) > 1, "the single-head call is one that fp32 numerics would split")
        let (alone, _) = try SpargeAttention.sparse(q: Array(q[0..<one.queryElements]), k: Array(k[0..<one.keyElements]),
                                                    v: Array(v[0..<one.keyElements]), shape: one, parameters: p)
        let (all, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: many, parameters: p)
        #expect(alone == Array(all[0..<one.queryElements]), "\(numerics): head 0 alone must equal head 0 of 16")
    }
}

/// FP8's V scale is `max|V| / fp8ValueRange`: below a range of 1 a large finite V overflows the
/// scale to infinity and the output to NaN, so such ranges are refused before any work.
struct FP8ValueRangeTests {
    @Test func rangesBelowOneThrow() throws {
        var rng = TestRNG(seed: 95)
        let shape = AttentionShape(heads: 1, queryLength: 200, headDim: 64)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements)
        var v = rng.gaussians(shape.keyElements)
        v[7] = 3e38
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp8
        for range: Float in [1e-38, 0.5, 0.999] {
            p.gpuReproduction.fp8ValueRange = range
            #expect {
                _ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            } throws: { error in
                guard case SpargeError.invalidParameter(let message) = error else { return false }
                return message.contains("fp8ValueRange") && message.contains("[1, 448]")
            }
        }
        for range: Float in [1, 2.25, 448] {
            p.gpuReproduction.fp8ValueRange = range
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            #expect(out.allSatisfy { $0.isFinite }, "range \(range)")
        }
    }
}
