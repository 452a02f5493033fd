// The one rendering of SpargeParameters: the settings under the names of the authors' Python
// API (`simthreshd1`, `cdfthreshd`, `pvthreshd`, ...; top-k is `top_k`, printed `top-k`), which
// tools print as text or JSON, so every report names and formats a setting the same way.

/// One setting of ``SpargeParameters`` under the name the authors' Python API (or, for this
/// library's own options, its snake-case field name) gives it.
public struct ParameterSetting: Sendable, Hashable, CustomStringConvertible {
    /// The value of a setting.
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        /// A count or a size, such as `bq`.
        case integer(Int)
        /// A real number, such as `fp8_value_range`.
        case number(Float)
        /// A value for all heads or one per head, such as `simthreshd1` (infinity: off).
        case perHead(PerHead)
        /// An option that is on or off, such as `causal`.
        case flag(Bool)
        /// One of a few named choices, such as `quant` (`cuda` or `triton`).
        case choice(String)

        /// The value as text: per-head lists joined by commas as on the command line, infinity as `inf`.
        public var description: String {
            switch self {
            case .integer(let n): return String(n)
            case .number(let x): return Self.text(x)
            case .perHead(let p): return p.values.map(Self.text).joined(separator: ",")
            case .flag(let on): return on ? "on" : "off"
            case .choice(let name): return name
            }
        }

        /// A Float's shortest text (`0.1`, not `0.10000000149011612`), `inf` for infinity.
        private static func text(_ x: Float) -> String {
            x == .infinity ? "inf" : x == -.infinity ? "-inf" : "\(x)"
        }
    }

    /// The name, such as `simthreshd1` (the JSON key).
    public let name: String
    /// The name in text reports: ``name``, except `top-k` for `top_k`.
    public var label: String { name == "top_k" ? "top-k" : name }
    /// The value.
    public let value: Value
    /// Whether the setting reproduces a GPU kernel's numerics or quirks rather than being one
    /// of the paper's knobs (`gpu_rounding`, `pv_numerics`, ...).
    public let reproducesGPU: Bool

    /// A setting from its name and value.
    public init(name: String, value: Value, reproducesGPU: Bool = false) {
        self.name = name
        self.value = value
        self.reproducesGPU = reproducesGPU
    }

    /// `name value`; a flag is its name when on and `name off` when off.
    public var description: String {
        if case .flag(let on) = value { return on ? label : "\(label) off" }
        return "\(label) \(value)"
    }
}

extension SpargeParameters: CustomStringConvertible {
    /// Every setting, the paper's knobs first (`bq`, `bk`, `selection`, `top_k` or `cdfthreshd`,
    /// `simthreshd1`, `pvthreshd`, `causal`, `attention_sink`, `smooth_k`, `smooth_q`), then the input
    /// policy and the GPU-reproduction options; `sliding_window`, `sink_logits` and `softmax_scale` only when set.
    public var settings: [ParameterSetting] {
        var s: [ParameterSetting] = [
            ParameterSetting(name: "bq", value: .integer(blockQ)),
            ParameterSetting(name: "bk", value: .integer(blockK)),
        ]
        switch selection {
        case .topK(let k):
            s += [ParameterSetting(name: "selection", value: .choice("top_k")), ParameterSetting(name: "top_k", value: .perHead(k))]
        case .cdf(let t):
            s += [ParameterSetting(name: "selection", value: .choice("cdf")), ParameterSetting(name: "cdfthreshd", value: .perHead(t))]
        }
        s += [
            ParameterSetting(name: "simthreshd1", value: .perHead(simThreshold)),
            ParameterSetting(name: "pvthreshd", value: .perHead(pvThreshold)),
            ParameterSetting(name: "causal", value: .flag(causal)),
            ParameterSetting(name: "causal_alignment", value: .choice(causalAlignment.rawValue)),
            ParameterSetting(name: "attention_sink", value: .flag(attentionSink)),
            ParameterSetting(name: "smooth_k", value: .flag(smoothK)),
            ParameterSetting(name: "smooth_q", value: .flag(smoothQ)),
            ParameterSetting(name: "fixed_point_pv", value: .flag(fixedPointPV)),
        ]
        if let window = slidingWindow { s.append(ParameterSetting(name: "sliding_window", value: .integer(window))) }
        if let sinks = sinkLogits { s.append(ParameterSetting(name: "sink_logits", value: .perHead(sinks))) }
        if let scale = softmaxScale { s.append(ParameterSetting(name: "softmax_scale", value: .number(scale))) }
        s.append(ParameterSetting(name: "non_finite_policy", value: .choice(nonFinitePolicy.rawValue)))
        s += [
            ParameterSetting(name: "gpu_rounding", value: .flag(gpuReproduction.gpuRounding), reproducesGPU: true),
            ParameterSetting(name: "quant", value: .choice(gpuReproduction.quantization.rawValue), reproducesGPU: true),
            ParameterSetting(name: "partial_blocks", value: .choice(gpuReproduction.partialBlocks.rawValue), reproducesGPU: true),
            ParameterSetting(name: "stage2_exempt_tail_blocks", value: .integer(gpuReproduction.stage2ExemptTailBlocks), reproducesGPU: true),
            ParameterSetting(name: "triton_key_padding", value: .flag(gpuReproduction.tritonKeyPadding), reproducesGPU: true),
            ParameterSetting(name: "pv_numerics", value: .choice(gpuReproduction.pvNumerics.rawValue), reproducesGPU: true),
            ParameterSetting(name: "fp8_value_range", value: .number(gpuReproduction.fp8ValueRange), reproducesGPU: true),
            ParameterSetting(name: "causal_masking", value: .choice(gpuReproduction.causalMasking.rawValue), reproducesGPU: true),
        ]
        return s
    }

    /// One line for reports: the block sizes, the selection rule, theta and lambda always, then
    /// every other setting that differs from ``init()``'s default, as
    /// `bq 128, bk 64, top-k 0.5, simthreshd1 -0.1, pvthreshd 50, causal, gpu_rounding, pv_numerics fp16`.
    public var description: String {
        let defaults = Dictionary(SpargeParameters().settings.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let always: Set<String> = ["bq", "bk", "top_k", "cdfthreshd", "simthreshd1", "pvthreshd"]
        return settings.filter { always.contains($0.name) || ($0.name != "selection" && defaults[$0.name] != $0.value) }
            .map(\.description).joined(separator: ", ")
    }
}
