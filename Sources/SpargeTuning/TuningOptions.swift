import SpargeAttn
import SpargeFormats

/// Options of ``SpargeTuner/tune(samples:base:options:layer:progress:)``.
public struct TuningOptions: Sendable, Hashable {
    /// What is tuned besides theta and lambda.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// CDF mode: tau (`cdfthreshd`), the paper's and the authors' tuner's choice.
        case cdf
        /// Top-k mode: the largest sparsity (smallest top-k fraction) within the bound.
        case topK = "top-k"
        /// The old spelling of ``topK``.
        @available(*, deprecated, renamed: "topK")
        public static var topk: Mode { .topK }
        /// The mode named `name` (`cdf`, `top-k`, `auto`; `topk` is accepted for `top-k`).
        public init?(name: String) {
            self.init(rawValue: name.lowercased() == "topk" ? "top-k" : name.lowercased())
        }
        /// Both (twice the time), keeping the mode whose heads are sparser on average; on causal
        /// attention top-k must be sparser by more than ``TuningOptions/autoTopKAdvantage``. Where stage 1's block
        /// probabilities are poor predictors (sharp positional locality inside blocks) a fixed
        /// share per row holds up better than a CDF threshold; but a top-k fraction counts
        /// key blocks, so it transfers poorly to other sequence lengths (tuned on a 2048-token
        /// passage, it lost the bound on that passage's first 1024 tokens where CDF kept it).
        case auto
    }

    /// The error measure.
    public var metric: TuningMetric
    /// In ``Mode/auto`` on causal attention: how much higher (absolute) top-k's mean sparsity
    /// must be for it to be kept instead of CDF, which adapts to the sequence length (causal
    /// models run prefixes of every length). On non-causal attention the sparser mode wins:
    /// on sharp video-like heads a CDF threshold tuned on some inputs was the one that
    /// generalised worse (worst held-out head L1 0.29, top-k's 0.06).
    public var autoTopKAdvantage: Double = 0.1
    /// Bound on the error of stage 1 alone (the tau / top-k search, stage 2 off): `l1`.
    public var bound: Double
    /// Bound on the error with stage 2 (the lambda search): `pv_l1`; must exceed ``bound``.
    public var pvBound: Double
    /// CDF (tau), top-k, or both (keeping the sparser).
    public var mode: Mode
    /// theta values tried, ascending. Default: 0, 1/16, ..., 15/16, the authors' grid (they
    /// also try negative values, but a block's self-similarity is never negative, so every
    /// theta below 0 acts as 0).
    public var thetaGrid: [Float] = (0..<16).map { Float($0) / 16 }
    /// Consecutive theta values whose results are pooled to choose a head's setting (the
    /// authors' smoothing pools pairs): the window must meet the bounds at every one of its
    /// thetas on every sample, and the head gets the most conservative values of the window.
    public var smoothingWidth: Int = 2
    /// Bisection steps of tau (or top-k) over [0, 1]: 8 resolve 1/256.
    public var selectionIterations: Int = 8
    /// Bisection steps of lambda over [0, ``maxLambda``]; 0 leaves stage 2 off.
    public var lambdaIterations: Int = 6
    /// Stage 2 may add at most this share of `pvBound - bound` to a head's stage-1 error on
    /// the calibration samples (and the total stays within `safetyMargin * pvBound`). Stage 2
    /// skips tiles only at small lambda, where its error grows several-fold on unseen inputs
    /// (4x from one half of a real LM passage to the other), so its budget is kept small; 1
    /// uses the whole gap, as the authors do.
    public var stage2Budget: Double = 0.25
    /// Upper end of the lambda search; a head whose stage 2 fails even near it gets lambda =
    /// infinity (stage 2 off).
    public var maxLambda: Float = 50
    /// The searches bound the error by `safetyMargin * bound` (and `* pvBound`), so that
    /// settings tuned on a few inputs keep the stated bound on others. 1 tunes to the bounds
    /// themselves.
    public var safetyMargin: Double = 0.6
    /// A head whose tuned sparsity (over the blocks a causal mask allows) is below this falls
    /// back to dense, as in the authors' tuner (0.1): sparse attention would not pay there.
    public var minimumSparsity: Double = 0.1
    /// Worker threads of each attention call (`nil`: all CPUs). Results do not depend on it.
    public var threads: Int? = nil

    /// Options with the metric's default bounds unless given.
    public init(metric: TuningMetric = .l1, bound: Double? = nil, pvBound: Double? = nil, mode: Mode = .auto) {
        self.metric = metric
        self.bound = bound ?? metric.defaultBounds.bound
        self.pvBound = pvBound ?? metric.defaultBounds.pvBound
        self.mode = mode
    }

    /// Throws ``TuningError/invalidOptions(_:)`` for out-of-range values.
    public func validate() throws {
        func fail(_ m: String) -> TuningError { .invalidOptions(m) }
        guard bound.isFinite, bound > 0 else { throw fail("the bound (l1) is \(bound); it must be a positive number") }
        guard pvBound.isFinite, pvBound > bound else {
            throw fail("the stage-2 bound (pv_l1) is \(pvBound); it must exceed the stage-1 bound \(bound)")
        }
        guard !thetaGrid.isEmpty, thetaGrid.allSatisfy({ $0.isFinite }) else {
            throw fail("the theta grid is \(thetaGrid); give at least one finite value")
        }
        guard zip(thetaGrid, thetaGrid.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw fail("the theta grid \(thetaGrid) must be strictly ascending")
        }
        guard smoothingWidth >= 1 else { throw fail("smoothingWidth is \(smoothingWidth); it must be at least 1") }
        guard (1...30).contains(selectionIterations) else { throw fail("selectionIterations is \(selectionIterations); use 1...30") }
        guard (0...30).contains(lambdaIterations) else { throw fail("lambdaIterations is \(lambdaIterations); use 0...30") }
        guard maxLambda.isFinite, maxLambda > 0 else { throw fail("maxLambda is \(maxLambda); it must be positive and finite") }
        guard autoTopKAdvantage.isFinite, autoTopKAdvantage >= 0 else {
            throw fail("autoTopKAdvantage is \(autoTopKAdvantage); it must be a finite number >= 0")
        }
        guard stage2Budget > 0, stage2Budget <= 1 else { throw fail("stage2Budget is \(stage2Budget); it must be in (0, 1]") }
        guard safetyMargin > 0, safetyMargin <= 1 else { throw fail("safetyMargin is \(safetyMargin); it must be in (0, 1]") }
        guard minimumSparsity >= 0, minimumSparsity < 1 else { throw fail("minimumSparsity is \(minimumSparsity); it must be in [0, 1)") }
        if let t = threads, t < 1 { throw fail("threads is \(t); it must be at least 1") }
    }
}
