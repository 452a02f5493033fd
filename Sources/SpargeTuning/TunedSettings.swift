import SpargeAttn
import SpargeFormats

/// The tuned values of one attention head.
public struct TunedHead: Sendable, Hashable {
    /// theta (`simthreshd1`).
    public var theta: Float
    /// tau (`cdfthreshd`) in CDF mode, else nil.
    public var tau: Float?
    /// The top-k fraction in top-k mode, else nil.
    public var topK: Float?
    /// lambda (`pvthreshd`); infinity (JSON `null`) turns stage 2 off for the head.
    public var lambda: Float
    /// Query block size the values were tuned with.
    public var blockQ: Int
    /// Key block size the values were tuned with.
    public var blockK: Int
    /// Worst error over the calibration samples at tuning time (the file's metric).
    public var error: Double
    /// Mean block density over the calibration samples at tuning time (selected over allowed
    /// blocks, as `SparseStatistics.density`).
    public var density: Double
    /// Mean sparsity, `1 - density` (files written before this definition may hold another).
    public var sparsity: Double
    /// The head could not be made sparse within the bound and runs dense (every block kept,
    /// stage 2 off).
    public var dense: Bool

    /// One head's settings; see the properties for each parameter.
    public init(theta: Float, tau: Float?, topK: Float?, lambda: Float, blockQ: Int, blockK: Int,
                error: Double, density: Double, sparsity: Double? = nil, dense: Bool = false) {
        self.theta = theta; self.tau = tau; self.topK = topK; self.lambda = lambda
        self.blockQ = blockQ; self.blockK = blockK; self.error = error; self.density = density
        self.sparsity = sparsity ?? 1 - density
        self.dense = dense
    }
}

extension TunedHead {
    /// The old spelling of ``topK``.
    @available(*, deprecated, renamed: "topK")
    public var topk: Float? { get { topK } set { topK = newValue } }

    /// The old spelling of ``init(theta:tau:topK:lambda:blockQ:blockK:error:density:sparsity:dense:)``.
    @available(*, deprecated, renamed: "init(theta:tau:topK:lambda:blockQ:blockK:error:density:sparsity:dense:)")
    public init(theta: Float, tau: Float?, topk: Float?, lambda: Float, blockQ: Int, blockK: Int,
                error: Double, density: Double, sparsity: Double? = nil, dense: Bool = false) {
        self.init(theta: theta, tau: tau, topK: topk, lambda: lambda, blockQ: blockQ, blockK: blockK,
                  error: error, density: density, sparsity: sparsity, dense: dense)
    }
}

/// The tuned heads of one attention layer, and the options they were tuned under.
public struct TunedLayer: Sendable, Hashable {
    /// The layer's name (`--layer`), e.g. `model.layers.15.self_attn`.
    public var name: String
    /// One entry per query head.
    public var heads: [TunedHead]
    /// Causal attention while tuning (informative: the values fit it).
    public var causal: Bool
    /// Attention sink while tuning (informative: the values fit it).
    public var attentionSink: Bool
    /// Q smoothing while tuning (``SpargeAttn/SpargeParameters/smoothQ``): unlike the two
    /// above it is applied, since it changes the error the values were chosen for.
    public var smoothQ: Bool
    /// Fixed-point P.V while tuning (``SpargeAttn/SpargeParameters/fixedPointPV``): applied,
    /// like Q smoothing.
    public var fixedPointPV: Bool

    /// One layer's settings; see the properties for each parameter.
    public init(name: String, heads: [TunedHead], causal: Bool = false, attentionSink: Bool = false, smoothQ: Bool = false,
                fixedPointPV: Bool = false) {
        self.name = name; self.heads = heads; self.causal = causal; self.attentionSink = attentionSink
        self.smoothQ = smoothQ; self.fixedPointPV = fixedPointPV
    }

    /// `base` with this layer's per-head theta, tau (or top-k) and lambda, and Q smoothing and
    /// fixed-point P.V turned on when the layer was tuned with them.
    ///
    /// Throws ``TuningError/headCountMismatch(layer:tuned:heads:)`` when `heads` differs from
    /// the tuned count, and ``TuningError/blockSizeMismatch(layer:tuned:given:)`` when `base`
    /// uses other block sizes than the tuned ones (see ``blockSizes``).
    public func parameters(base: SpargeParameters, heads count: Int? = nil) throws -> SpargeParameters {
        guard let first = heads.first else { throw TuningError.missingField("layer '\(name)'.heads") }
        if let count, count != heads.count { throw TuningError.headCountMismatch(layer: name, tuned: heads.count, heads: count) }
        if base.blockQ != first.blockQ || base.blockK != first.blockK {
            throw TuningError.blockSizeMismatch(layer: name, tuned: "\(first.blockQ)x\(first.blockK)", given: "\(base.blockQ)x\(base.blockK)")
        }
        var p = base
        if smoothQ { p.smoothQ = true }
        if fixedPointPV { p.fixedPointPV = true }
        p.simThreshold = PerHead(heads.map(\.theta))
        p.pvThreshold = PerHead(heads.map(\.lambda))
        let taus = heads.compactMap(\.tau), topks = heads.compactMap(\.topK)
        if taus.count == heads.count {
            p.selection = .cdf(PerHead(taus))
        } else if topks.count == heads.count {
            p.selection = .topK(PerHead(topks))
        } else {
            throw TuningError.missingField("layer '\(name)': every head needs 'tau' (CDF mode) or every head 'topk' (top-k mode)")
        }
        return p
    }

    /// The tuned block sizes `(blockQ, blockK)` (the same for every head).
    public var blockSizes: (blockQ: Int, blockK: Int)? { heads.first.map { ($0.blockQ, $0.blockK) } }
}

/// Tuned per-head settings of one or more layers: what ``SpargeTuner`` produces, saved as
/// versioned JSON (``jsonText``, ``read(path:)``) and applied with
/// ``parameters(layer:base:heads:)``.
///
/// ```swift
/// let settings = try TunedSettings.read(path: "tuned.json")
/// var base = SpargeParameters.recommended
/// base.causal = true
/// let p = try settings.parameters(layer: "layers.15", base: base, heads: 9)
/// ```
public struct TunedSettings: Sendable, Hashable {
    /// The `format` field of the file.
    public static let format = "sparge-tuned"
    /// The `version` this build writes and reads.
    public static let currentVersion = 1

    /// The tuned layers, names unique.
    public var layers: [TunedLayer]
    /// The metric the values were tuned for (informative, as the three below).
    public var metric: TuningMetric
    /// The stage-1 bound (`l1`).
    public var bound: Double
    /// The bound with stage 2 (`pv_l1`).
    public var pvBound: Double
    /// The fraction of the bounds the searches aimed at.
    public var safetyMargin: Double

    /// Settings of several layers and the bounds they were tuned under.
    public init(layers: [TunedLayer], metric: TuningMetric = .l1, bound: Double = 0.07, pvBound: Double = 0.08,
                safetyMargin: Double = 1) {
        self.layers = layers; self.metric = metric; self.bound = bound; self.pvBound = pvBound
        self.safetyMargin = safetyMargin
    }

    /// The layer named `name`; with `nil`, the only layer (an error when there are several).
    public func layer(_ name: String?) throws -> TunedLayer {
        if let name {
            guard let l = layers.first(where: { $0.name == name }) else {
                throw TuningError.unknownLayer(name, available: layers.map(\.name))
            }
            return l
        }
        guard layers.count == 1 else { throw TuningError.unknownLayer("(none given)", available: layers.map(\.name)) }
        return layers[0]
    }

    /// `base` with the tuned per-head values of layer `name` (nil: the only layer), checked
    /// against `heads` query heads and `base`'s block sizes.
    public func parameters(layer name: String? = nil, base: SpargeParameters, heads: Int? = nil) throws -> SpargeParameters {
        try layer(name).parameters(base: base, heads: heads)
    }

    /// These settings with `layer` added, replacing a layer of the same name.
    public func merging(_ layer: TunedLayer) -> TunedSettings {
        var s = self
        if let i = s.layers.firstIndex(where: { $0.name == layer.name }) { s.layers[i] = layer } else { s.layers.append(layer) }
        return s
    }
}
