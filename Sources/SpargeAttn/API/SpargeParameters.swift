/// How stage 1 chooses the key blocks of each query block (<doc:ExactSemantics> section 2, step 5).
public enum BlockSelection: Sendable, Hashable, CustomStringConvertible {
    /// CDF mode: keep the most probable blocks whose cumulative probability stays at or below
    /// `tau` (`cdfthreshd`), at least one.
    case cdf(PerHead)
    /// Top-k mode: keep `floor(fraction * keyBlocks)` blocks (at least one), the fraction in
    /// (0, 1]; spelled `--top-k` on the command line, `top-k 0.5` in text, `top_k` in JSON.
    case topK(PerHead)

    /// The authors' Python spelling (`topk`): the compiler offers the fix-it to ``topK(_:)``.
    @available(*, unavailable, renamed: "topK")
    public static func topk(_ fraction: PerHead) -> BlockSelection { .topK(fraction) }

    /// The rule and its value, as `cdf 0.9` or `top-k 0.5`.
    public var description: String {
        switch self {
        case .cdf(let t): return "cdf \(t)"
        case .topK(let k): return "top-k \(k)"
        }
    }
}

/// Which of the authors' two INT8 quantizations of Q to reproduce (<doc:ExactSemantics> section 3).
public enum QuantizationVariant: String, Sendable, Hashable, CaseIterable {
    /// CUDA entry points: raw Q is quantized; scores are scaled by `s * log2(e)` afterwards.
    case cuda
    /// Triton example (`per_block_int8`): Q is multiplied by `s * log2(e)` before quantizing.
    case triton
}

/// How the P.V product is computed (<doc:ExactSemantics> section 4a): exact fp32, or emulating a GPU
/// kernel's numerics to cross-check its outputs.
public enum PVNumerics: String, Sendable, Hashable, CaseIterable {
    /// P and V in fp32 (default).
    case fp32
    /// Ampere (`sm80`) kernels and the Triton example: P and V rounded to fp16, fp32 accumulation.
    case fp16
    /// Ada / Hopper (`sm89`, `sm90`) kernels: V in FP8 e4m3 per channel
    /// (`v_scale = max|V[:, c]| / 2.25`), `P = 2^(S - m + 8.807)` rounded to e4m3, `l` summed
    /// from the unrounded P, fp32 accumulation.
    case fp8
}

/// How causal attention is masked inside the blocks that stage 1 keeps.
public enum CausalMasking: String, Sendable, Hashable {
    /// Token by token (keys after the query get -inf): the Triton path and exact attention.
    case token
    /// Block only: the SageAttention2-based CUDA entry points pass `is_causal=False` to the
    /// kernel, so keys after the query inside a kept diagonal block are attended (a quirk
    /// reproduced for cross-checking).
    case blockOnly
}

/// Where the causal diagonal sits when the query and key lengths differ (`Nq != Nk`); with
/// equal lengths both choices are the same mask.
public enum CausalAlignment: String, Sendable, Hashable, CaseIterable {
    /// Query `t` sees keys `0...t + (Nk - Nq)`: the queries are the last `Nq` tokens of the
    /// sequence (FlashAttention 2.1+, KV-cache decoding). With `Nq > Nk` the first `Nq - Nk`
    /// queries see no key and output 0. Default.
    case bottomRight = "bottom-right"
    /// Query `t` sees keys `0...t`: PyTorch's `scaled_dot_product_attention(is_causal=True)`
    /// (`torch.ones(Nq, Nk).tril(0)`) and FlashAttention before 2.1. With `Nq <= Nk` every
    /// query sees at least key 0.
    case topLeft = "top-left"
}

/// What to do with NaN or infinite inputs.
public enum NonFinitePolicy: String, Sendable, Hashable {
    /// Throw ``SpargeError/nonFiniteInput(name:index:value:)`` at the first NaN or infinity (in
    /// flat order: Q, then K, then V) before anything is written (default). Sparse calls with
    /// fp32 P.V check on passes they make anyway (block means, V's overflow pass) and scan
    /// only when those find something; other calls scan the inputs first.
    case reject
    /// Skip the scan; NaN goes where exact attention puts it: every output row (and its
    /// log-sum-exp) whose attention reads a NaN or infinity (its query row, or the key or value
    /// row of a key it sees under the causal mask, the window, the key padding and an attention
    /// mask) is NaN. Smoothing spreads
    /// it through its mean: with ``SpargeParameters/smoothK`` on a sparse call a non-finite key
    /// row reaches every row of its kv head, with ``SpargeParameters/smoothQ`` a non-finite
    /// query row every row of its query block. A non-finite value can also reach the rows of a
    /// tile that the causal mask, padding or an attention mask hides it from (a zero weight times
    /// infinity is NaN).
    /// Other rows are computed as usual.
    case propagate
}

/// What stage 1 does with a partial last block (fewer than `blockQ`/`blockK` rows).
public enum PartialBlockRule: String, Sendable, Hashable {
    /// As the GPU code: a partial block is never self-similar (its zero padding normalises to
    /// NaN and `NaN > theta` is false), so it is always computed. Default.
    case neverSelfSimilar
    /// Measure the partial block's self-similarity over its real rows.
    case measure
}

/// The hyper-parameters and options of sparse attention. Defaults are those of the authors'
/// recommended entry point `spas_sage2_attn_meansim_topk_cuda` (top-k 0.5, theta -0.1,
/// lambda 50, blocks 128 x 64), see ``recommended``.
public struct SpargeParameters: Sendable, Hashable {
    /// Query block size `bq` of the block map (and of Q's quantization blocks).
    public var blockQ: Int = 128
    /// Key block size `bk` of the block map (and of K's quantization blocks).
    public var blockK: Int = 64
    /// CDF or top-k selection.
    public var selection: BlockSelection = .topK(0.5)
    /// `theta` (`simthreshd1`): a block is self-similar when its mean cosine similarity exceeds it.
    public var simThreshold: PerHead = -0.1
    /// `lambda` (`pvthreshd`): stage 2 skips a tile whose probabilities are all below
    /// `2^-lambda` of the running row max. `.infinity` turns stage 2 off.
    public var pvThreshold: PerHead = 50
    /// Causal attention. With `queryLength != keyLength` and the default alignment, query `t`
    /// sees keys up to `t + (keyLength - queryLength)` (the FlashAttention / KV-cache
    /// convention: the queries are the last `queryLength` tokens of the sequence); a query that
    /// sees no key outputs 0. ``causalAlignment`` chooses top-left instead.
    public var causal: Bool = false
    /// Where the causal diagonal sits when `queryLength != keyLength` (see ``CausalAlignment``):
    /// bottom-right (the default, described above) or top-left (torch's `is_causal`).
    public var causalAlignment: CausalAlignment = .bottomRight
    /// A sliding window (local attention, as the sliding layers of Mistral, Gemma 2/3 or
    /// gpt-oss): with ``causal``, each query sees only the last `slidingWindow` keys up to its
    /// causal limit, itself included (query `t` sees keys `t + offset - slidingWindow + 1 ...
    /// t + offset`; Hugging Face's `sliding_window`, FlashAttention's `window_size = (W - 1, 0)`).
    /// Key blocks entirely outside every window of a query block are *masked* like the causal
    /// future: never selected, never computed, not counted in the density. `nil` (the default):
    /// no window. Needs ``causal`` and token-level causal masking. The GPU backend takes it too
    /// (its kernels skip and mask exactly these keys).
    /// Top-k counts its fraction over all key blocks, so with a window prefer CDF selection.
    public var slidingWindow: Int? = nil
    /// Learned sink logits (gpt-oss's attention sinks), one value for all heads or one per
    /// query head, in natural-log score units: each row's softmax denominator gets
    /// `exp(logit)` added, an entry with no value, so `O = sum_j e^(s_j) v_j / (sum_j e^(s_j) +
    /// e^logit)`; the log-sum-exp includes it, and a row that sees no key outputs zeros. Stage
    /// 1 and stage 2 are unchanged. `nil` (the default): none. Not to be confused with
    /// ``attentionSink``, which keeps key block 0. Every `pvNumerics` takes them (the FP16 and
    /// FP8 emulations add the sink to their fp32 `l`, as the GPU backend's kernels do).
    public var sinkLogits: PerHead? = nil
    /// Always keep key block 0 (the attention sink), unless a ``slidingWindow`` masks it.
    public var attentionSink: Bool = false
    /// Subtract the mean of K over tokens before prediction and quantization.
    public var smoothK: Bool = true
    /// Subtract each query block's mean before INT8 quantization and add its exact fp32
    /// product with the (smoothed) keys back to the scores: SageAttention2's Q smoothing. The
    /// authors' SpargeAttn entry points do not do it, so it is off by default (outputs then
    /// match theirs); on language-model queries, which share a large common component, it
    /// roughly halves the INT8 score error. Stage 1 is unchanged; the captured INT8 Q are the
    /// centred rows. CPU one-shot calls and plans only: ``SpargeKVCache`` and the GPU backend
    /// refuse it.
    public var smoothQ: Bool = false
    /// Computes P.V in fixed point: P as 13-bit integers per row of each tile (relative to the
    /// row's largest probability), V as 12-bit integers (and a sign) per key block and channel, exact int32
    /// sums (`vpmaddwd` with AVX2, `vpdpwssd` with AVX-512 VNNI), then fp32. About 1.35x the
    /// fp32 P.V rate with AVX2 and more with VNNI, at an error near bf16 P.V's (far below the
    /// INT8 score error). Off by default (fp32 P.V, as the authors' reference). CPU one-shot
    /// calls and plans only: ``SpargeKVCache`` and the GPU backend refuse it, and it does not
    /// combine with ``GPUReproduction/pvNumerics`` other than `.fp32`.
    public var fixedPointPV: Bool = false
    /// Softmax scale; `nil` means `1 / sqrt(headDim)`.
    public var softmaxScale: Float? = nil
    /// How closely to reproduce the authors' GPU kernels (their numerics and quirks), apart
    /// from the algorithm's own knobs above; the defaults are exact fp32 arithmetic.
    public var gpuReproduction = GPUReproduction()
    /// NaN / infinity handling of the inputs.
    public var nonFinitePolicy: NonFinitePolicy = .reject

    /// The defaults of each field (see ``recommended`` for the tuned starting point).
    public init() {}

    /// `spas_sage2_attn_meansim_topk_cuda`: top-k 0.5, theta -0.1, lambda 50.
    public static var recommended: SpargeParameters { SpargeParameters() }

    /// `spas_sage2_attn_meansim_cuda`: CDF 0.98, theta 0.6, lambda 50.
    public static var sage2CDF: SpargeParameters {
        var p = SpargeParameters()
        p.selection = .cdf(0.98)
        p.simThreshold = 0.6
        return p
    }

    /// The Triton example `spas_sage_attn_meansim`: CDF 0.96, theta 0.3, Triton quantization,
    /// stage 2 not applied.
    public static var triton: SpargeParameters {
        var p = SpargeParameters()
        p.selection = .cdf(0.96)
        p.simThreshold = 0.3
        p.pvThreshold = PerHead(Float.infinity)
        p.gpuReproduction.quantization = .triton
        return p
    }

    /// The causal offset of `shape`: query `t` sees keys up to `t + offset` (`Nk - Nq`
    /// bottom-right, 0 top-left).
    public func causalOffset(for shape: AttentionShape) -> Int {
        causalAlignment == .topLeft ? 0 : shape.keyLength - shape.queryLength
    }

    /// Whether the causal rule (and the ``slidingWindow``) leaves query block `queryBlock` of `shape` anything to attend in
    /// key block `keyBlock` (always true when not ``causal``): a block it does not allow is
    /// *masked* (see ``SparseStatistics``), never computed, and drawn apart by `sparge mask`.
    public func causallyAllows(queryBlock: Int, keyBlock: Int, shape: AttentionShape) -> Bool {
        !causal || (blockCausallyAllowed(i: queryBlock, j: keyBlock, blockQ: blockQ, blockK: blockK, offset: causalOffset(for: shape))
                    && blockInsideWindow(i: queryBlock, j: keyBlock, blockQ: blockQ, blockK: blockK, offset: causalOffset(for: shape),
                                         window: windowKeys, keyLength: shape.keyLength))
    }

    /// ``slidingWindow`` as the kernels take it (the CPU's and, through the package, the GPU
    /// backend's): 0 for no window.
    package var windowKeys: Int { causal ? (slidingWindow ?? 0) : 0 }

    /// The softmax scale for a head dimension.
    public func scale(headDim: Int) -> Float { softmaxScale ?? 1 / Float(headDim).squareRoot() }

    /// Throws ``SpargeError/invalidParameter(_:)`` unless a given scale is positive and finite
    /// (every call that takes a softmax scale checks it so).
    static func validate(softmaxScale: Float?) throws {
        if let s = softmaxScale, !(s.isFinite && s > 0) {
            throw SpargeError.invalidParameter("softmaxScale is \(s); it must be a positive finite number")
        }
    }

    /// Throws ``SpargeError/invalidParameter(_:)`` for out-of-range values.
    public func validate(for shape: AttentionShape) throws {
        if blockQ < 1 || blockQ > 1024 { throw SpargeError.invalidParameter("blockQ is \(blockQ); use 1...1024 (the GPU code uses 128 or 64)") }
        if blockK < 1 || blockK > 1024 { throw SpargeError.invalidParameter("blockK is \(blockK); use 1...1024 (the GPU code uses 64 or 128)") }
        try simThreshold.validate(name: "simThreshold (theta)", heads: shape.heads, { !$0.isNaN }, range: "a number (cosine similarities lie in [-1, 1])")
        try pvThreshold.validate(name: "pvThreshold (lambda)", heads: shape.heads, { !$0.isNaN && $0 >= 0 }, range: "at least 0, or infinity to turn stage 2 off")
        switch selection {
        case .cdf(let t):
            try t.validate(name: "cdf threshold (tau)", heads: shape.heads, { $0 >= 0 && $0 <= 1 }, range: "in [0, 1]")
        case .topK(let k):
            try k.validate(name: "top-k", heads: shape.heads, { $0 > 0 && $0 <= 1 }, range: "in (0, 1]")
        }
        try Self.validate(softmaxScale: softmaxScale)
        if !(gpuReproduction.fp8ValueRange >= 1 && gpuReproduction.fp8ValueRange <= 448) {
            throw SpargeError.invalidParameter("fp8ValueRange is \(gpuReproduction.fp8ValueRange); it must be in [1, 448] (e4m3's largest value is 448; below 1 the scale max|V| / range of a large finite V overflows)")
        }
        if fixedPointPV && gpuReproduction.pvNumerics != .fp32 {
            throw SpargeError.invalidParameter("fixedPointPV computes P.V in fixed point, pvNumerics .\(gpuReproduction.pvNumerics) emulates the GPU's rounding of it: choose one (set fixedPointPV to false, or pvNumerics to .fp32)")
        }
        if let w = slidingWindow {
            if w < 1 || w > Int(Int32.max) {
                throw SpargeError.invalidParameter("slidingWindow is \(w); give the keys each query sees, 1...\(Int32.max), or nil for no window")
            }
            if !causal {
                throw SpargeError.invalidParameter("slidingWindow \(w) needs causal attention (a window ends at each query's causal limit); set causal to true")
            }
            if gpuReproduction.causalMasking != .token {
                throw SpargeError.invalidParameter("slidingWindow masks single keys, causalMasking .\(gpuReproduction.causalMasking) only whole blocks; set causalMasking to .token")
            }
        }
        if let sinks = sinkLogits {
            try sinks.validate(name: "sinkLogits", heads: shape.heads, { $0.isFinite }, range: "a finite logit")
        }
        if gpuReproduction.stage2ExemptTailBlocks < 0 { throw SpargeError.invalidParameter("stage2ExemptTailBlocks is \(gpuReproduction.stage2ExemptTailBlocks); it must be at least 0") }
    }
}

extension SpargeParameters {
    // Shorthands for the fields of ``gpuReproduction`` (the names of the first edition).
    /// Shorthand for ``GPUReproduction/gpuRounding`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.gpuRounding")
    public var gpuRounding: Bool {
        get { gpuReproduction.gpuRounding }
        set { gpuReproduction.gpuRounding = newValue }
    }
    /// Shorthand for ``GPUReproduction/quantization`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.quantization")
    public var quantization: QuantizationVariant {
        get { gpuReproduction.quantization }
        set { gpuReproduction.quantization = newValue }
    }
    /// Shorthand for ``GPUReproduction/partialBlocks`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.partialBlocks")
    public var partialBlocks: PartialBlockRule {
        get { gpuReproduction.partialBlocks }
        set { gpuReproduction.partialBlocks = newValue }
    }
    /// Shorthand for ``GPUReproduction/stage2ExemptTailBlocks`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.stage2ExemptTailBlocks")
    public var stage2ExemptTailBlocks: Int {
        get { gpuReproduction.stage2ExemptTailBlocks }
        set { gpuReproduction.stage2ExemptTailBlocks = newValue }
    }
    /// Shorthand for ``GPUReproduction/tritonKeyPadding`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.tritonKeyPadding")
    public var tritonKeyPadding: Bool {
        get { gpuReproduction.tritonKeyPadding }
        set { gpuReproduction.tritonKeyPadding = newValue }
    }
    /// Shorthand for ``GPUReproduction/pvNumerics`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.pvNumerics")
    public var pvNumerics: PVNumerics {
        get { gpuReproduction.pvNumerics }
        set { gpuReproduction.pvNumerics = newValue }
    }
    /// Shorthand for ``GPUReproduction/fp8ValueRange`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.fp8ValueRange")
    public var fp8ValueRange: Float {
        get { gpuReproduction.fp8ValueRange }
        set { gpuReproduction.fp8ValueRange = newValue }
    }
    /// Shorthand for ``GPUReproduction/causalMasking`` of ``gpuReproduction``.
    @available(*, deprecated, renamed: "gpuReproduction.causalMasking")
    public var causalMasking: CausalMasking {
        get { gpuReproduction.causalMasking }
        set { gpuReproduction.causalMasking = newValue }
    }
}
