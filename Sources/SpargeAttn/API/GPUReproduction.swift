/// The numerics and quirks of the authors' GPU kernels that ``SpargeParameters`` can reproduce
/// to cross-check their outputs (<doc:CrossCheckingAGPUImplementation>), kept apart from the
/// algorithm's own hyper-parameters. The defaults compute exact fp32 arithmetic with the CUDA
/// path's quantization; ``SpargeParameters/preset(_:arch:)`` sets them for an entry point.
public struct GPUReproduction: Sendable, Hashable {
    /// Round to fp16 where the GPU code does (inputs, K mean, smoothed K, pooled means,
    /// normalised rows, scores, probabilities, cumulative sums): reproduces the GPU masks and
    /// INT8 tensors bit for bit up to ties.
    public var gpuRounding: Bool = false
    /// CUDA-path or Triton-path INT8 quantization of Q.
    public var quantization: QuantizationVariant = .cuda
    /// Partial-block rule of stage 1.
    public var partialBlocks: PartialBlockRule = .neverSelfSimilar
    /// The CUDA kernels always compute the last `stage2ExemptTailBlocks` selected key blocks of
    /// each query block whatever lambda says (their loop tail); 2 reproduces them.
    public var stage2ExemptTailBlocks: Int = 2
    /// Reproduce a quirk of the authors' Triton kernel: the zero padding rows of a partial last
    /// key block are not masked, so each scores exactly 0 and adds `2^(0 - m)` to the softmax
    /// denominator (with V = 0). Needed to match its outputs on ragged lengths; off by default
    /// because it biases the result (by about 1.5% on a 1000-token Gaussian input).
    public var tritonKeyPadding: Bool = false
    /// P.V numerics: fp32, or a GPU kernel's fp16 / fp8 emulation.
    public var pvNumerics: PVNumerics = .fp32
    /// With ``PVNumerics/fp8``: V is scaled per channel to `max|V| / fp8ValueRange` before the
    /// e4m3 rounding (2.25 in the `spas_sage2_*` entry points, 448 in `block_sparse_sage2_attn_cuda`);
    /// in [1, 448].
    public var fp8ValueRange: Float = 2.25
    /// Token-level (default) or the SageAttention2 entry points' block-only causal masking.
    public var causalMasking: CausalMasking = .token

    /// Exact fp32 arithmetic, CUDA-path quantization, the GPU code's partial-block rule.
    public init() {}
}
