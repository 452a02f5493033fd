import SpargeAttn
import SpargeFormats
import SpargeTuning

/// How the model's attention layers run.
enum AttentionMode: Sendable {
    /// Exact attention (`SpargeAttention.dense`, causal).
    case exact
    /// One parameter set for every layer (top-k 0.5 + sink, the Triton defaults, ...).
    case sparse(SpargeParameters, name: String)
    /// Per-layer settings from `sparge tune` (layers named ``layerName(_:)``).
    case tuned(TunedSettings, base: SpargeParameters)

    /// The name under which layer `l` is tuned and dumped.
    static func layerName(_ l: Int) -> String { "model.layers.\(l).self_attn" }

    var name: String {
        switch self {
        case .exact: return "exact"
        case .sparse(_, let name): return name
        case .tuned: return "tuned"
        }
    }

    /// The parameters of layer `l` (nil: exact attention).
    func parameters(layer l: Int, heads: Int) throws -> SpargeParameters? {
        switch self {
        case .exact: return nil
        case .sparse(let p, _): return p
        case .tuned(let settings, let base):
            return try settings.parameters(layer: Self.layerName(l), base: base, heads: heads)
        }
    }

    /// This mode with options turned on in every sparse layer: Q smoothing
    /// (``SpargeParameters/smoothQ``) and fixed-point P.V (``SpargeParameters/fixedPointPV``).
    func with(smoothQ: Bool, fixedPointPV: Bool) -> AttentionMode {
        func apply(_ p: inout SpargeParameters) {
            if smoothQ { p.smoothQ = true }
            if fixedPointPV { p.fixedPointPV = true }
        }
        switch self {
        case .exact: return self
        case .sparse(var p, let name):
            apply(&p)
            return .sparse(p, name: name + (smoothQ ? " + smooth-q" : "") + (fixedPointPV ? " + fixed-point-pv" : ""))
        case .tuned(let settings, var base):
            apply(&base)
            return .tuned(settings, base: base)
        }
    }

    /// Parses `exact`, `top-k[=X]` (with the attention sink; `topk` is the former spelling),
    /// `triton`, `tuned=FILE.json`.
    static func parse(_ s: String) throws -> AttentionMode {
        var causal = SpargeParameters.recommended
        causal.causal = true
        if s == "exact" || s == "dense" { return .exact }
        if s == "triton" {
            var p = SpargeParameters.triton
            p.causal = true
            return .sparse(p, name: "triton")
        }
        if s.hasPrefix("top-k") || s.hasPrefix("topk") {
            var k: Float = 0.5
            if let eq = s.firstIndex(of: "=") {
                guard let v = Float(s[s.index(after: eq)...]), v > 0, v <= 1 else {
                    throw ModelError.usage("--attention \(s): top-k must be in (0, 1], e.g. top-k=0.5")
                }
                k = v
            }
            var p = causal
            p.selection = .topK(PerHead(k))
            p.attentionSink = !s.hasSuffix("-nosink")
            return .sparse(p, name: "top-k \(k)\(p.attentionSink ? " + sink" : "")")
        }
        if s.hasPrefix("tuned=") {
            let path = String(s.dropFirst("tuned=".count))
            let settings = try TunedSettings.read(path: path)
            var base = causal
            base.attentionSink = settings.layers.first?.attentionSink ?? true
            if let sizes = settings.layers.first?.blockSizes { base.blockQ = sizes.blockQ; base.blockK = sizes.blockK }
            return .tuned(settings, base: base)
        }
        throw ModelError.usage("--attention '\(s)' is not exact, top-k[=X], triton or tuned=FILE.json")
    }
}
