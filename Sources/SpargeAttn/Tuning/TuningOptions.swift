/// The error measure the tuner bounds, per head, against exact dense attention.
public enum TuningMetric: String, Sendable, Hashable, CaseIterable {
    /// Relative L1: `sum|o - o_ref| / sum|o_ref|` (the paper's measure).
    case l1
    /// `1 - cosine similarity` of the flattened head outputs.
    case cosine
    /// Relative RMSE: `sqrt(sum (o - o_ref)^2) / sqrt(sum o_ref^2)`.
    case rmse

    /// Default bounds `(stage 1, stage 1 + stage 2)` of the metric.
    public var defaultBounds: (Double, Double) {
        switch self {
        case .l1: return (0.07, 0.08)
        case .cosine: return (0.002, 0.003)
        case .rmse: return (0.07, 0.08)
        }
    }
}

/// Errors of the tuner and of tuned-settings files.
public enum TuningError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidOptions(String)
    case invalidSamples(String)
    case unreadable(path: String, reason: String)
    case wrongFormat(String)
    case unsupportedVersion(Int)
    case missingField(String)
    case headCountMismatch(layer: String, tuned: Int, heads: Int)
    case unknownLayer(String, available: [String])

    public var description: String {
        switch self {
        case .invalidOptions(let m): return "invalid tuning options: \(m)"
        case .invalidSamples(let m): return "invalid calibration samples: \(m)"
        case .unreadable(let p, let r): return "cannot read tuned settings '\(p)': \(r)"
        case .wrongFormat(let m): return "not a sparge-tuned file: \(m)"
        case .unsupportedVersion(let v): return "tuned settings version \(v) is not supported (this build reads version \(TunedSettings.currentVersion))"
        case .missingField(let f): return "tuned settings: missing or invalid field '\(f)'"
        case .headCountMismatch(let l, let t, let h): return "layer '\(l)' was tuned for \(t) heads but the input has \(h) heads"
        case .unknownLayer(let n, let a): return "no layer '\(n)' in the tuned settings (layers: \(a.joined(separator: ", ")))"
        }
    }
}

/// Options of ``SpargeTuner/tune(samples:shape:base:options:progress:)``.
public struct TuningOptions: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable { case cdf, topK }

    /// The error measure.
    public var metric: TuningMetric
    /// Bound on the error of stage 1 alone (tau / top-k search, stage 2 off).
    public var bound: Double
    /// Bound on the error with stage 2 (lambda search); must exceed ``bound``.
    public var pvBound: Double
    /// theta values tried (the paper's grid by default: -0.1, 0, 0.1, ..., 0.9).
    public var thetaGrid: [Float] = [-0.1, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    /// Bisection steps of tau (or top-k).
    public var selectionIterations: Int = 8
    /// Bisection steps of lambda (over [0, ``maxLambda``]); 0 leaves stage 2 off.
    public var lambdaIterations: Int = 6
    /// Upper end of the lambda search; a head that fails even there gets lambda = infinity.
    public var maxLambda: Float = 50
    /// CDF (tau) or top-k selection.
    public var mode: Mode = .cdf
    /// Worker threads of each attention call (`nil`: all CPUs).
    public var threads: Int? = nil

    public init(metric: TuningMetric = .l1, bound: Double? = nil, pvBound: Double? = nil, mode: Mode = .cdf) {
        self.metric = metric
        self.bound = bound ?? metric.defaultBounds.0
        self.pvBound = pvBound ?? metric.defaultBounds.1
        self.mode = mode
    }

    public func validate() throws {
        guard bound.isFinite, bound > 0 else { throw TuningError.invalidOptions("bound is \(bound); it must be positive") }
        guard pvBound.isFinite, pvBound > bound else {
            throw TuningError.invalidOptions("pv bound is \(pvBound); it must exceed the stage-1 bound \(bound)")
        }
        guard !thetaGrid.isEmpty, thetaGrid.allSatisfy({ $0.isFinite }) else { throw TuningError.invalidOptions("theta grid must be non-empty and finite") }
        guard (1...30).contains(selectionIterations) else { throw TuningError.invalidOptions("selection iterations must be in 1...30") }
        guard (0...30).contains(lambdaIterations) else { throw TuningError.invalidOptions("lambda iterations must be in 0...30") }
        guard maxLambda.isFinite, maxLambda > 0 else { throw TuningError.invalidOptions("maxLambda must be positive and finite") }
    }
}
