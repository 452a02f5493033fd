/// The authors' public GPU entry points (<doc:ExactSemantics> section 5), for reproducing their outputs.
public enum GPUPreset: String, Sendable, Hashable, CaseIterable {
    /// `spas_sage2_attn_meansim_topk_cuda` (recommended): top-k 0.5, theta -0.1, lambda 50.
    case sage2TopK = "sage2-topk"
    /// `spas_sage2_attn_meansim_cuda`: CDF 0.98, theta 0.6, lambda 50.
    case sage2CDF = "sage2-cdf"
    /// The Triton example `spas_sage_attn_meansim`: CDF 0.96, theta 0.3, stage 2 not applied.
    case triton
    /// `block_sparse_sage2_attn_cuda`: the caller gives the block map; lambda 50.
    case blockSparse = "block-sparse"
}

/// GPU generation: decides the block sizes and the P.V numerics of the CUDA entry points.
public enum GPUArch: String, Sendable, Hashable, CaseIterable {
    /// Ampere: blocks 128 x 64, P and V in fp16.
    case sm80
    /// Ada: blocks 128 x 64, V in FP8 e4m3.
    case sm89
    /// Hopper: blocks 64 x 128, V in FP8 e4m3.
    case sm90
}

extension SpargeParameters {
    /// The defaults, block sizes and numerics of a GPU entry point on a GPU generation,
    /// including its quirks: fp16 rounding in stage 1, block-only causal masking for the
    /// SageAttention2 entry points, the Triton kernel's unmasked key padding.
    /// `block_sparse_sage2_attn_cuda` scales V by `max|V| / 448`, the other CUDA entry points by
    /// `max|V| / 2.25` (``GPUReproduction/fp8ValueRange``).
    public static func preset(_ preset: GPUPreset, arch: GPUArch = .sm90) -> SpargeParameters {
        var p = SpargeParameters()
        p.gpuReproduction.gpuRounding = true
        switch preset {
        case .triton:
            p = .triton
            p.gpuReproduction.gpuRounding = true
            p.gpuReproduction.pvNumerics = .fp16
            p.gpuReproduction.tritonKeyPadding = true
            return p
        case .sage2TopK:
            p.selection = .topK(0.5)
            p.simThreshold = -0.1
        case .sage2CDF:
            p.selection = .cdf(0.98)
            p.simThreshold = 0.6
        case .blockSparse:
            p.gpuReproduction.fp8ValueRange = 448
        }
        p.pvThreshold = 50
        p.gpuReproduction.quantization = .cuda
        p.gpuReproduction.causalMasking = .blockOnly
        (p.blockQ, p.blockK) = arch == .sm90 ? (64, 128) : (128, 64)
        p.gpuReproduction.pvNumerics = arch == .sm80 ? .fp16 : .fp8
        return p
    }
}
