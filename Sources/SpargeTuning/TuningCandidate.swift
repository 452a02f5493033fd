import SpargeAttn
import SpargeFormats

/// Error and density of one head's values, measured on the calibration samples.
struct Measurement: Sendable, Hashable {
    /// Worst error over the samples.
    var error: Double
    /// Mean block density over the samples (all blocks of the map).
    var density: Double
    /// Mean density over the blocks a causal mask allows (equals `density` when not causal).
    var allowedDensity: Double
}

/// One head's search result at one theta.
struct TuningCandidate: Sendable, Hashable {
    var theta: Float
    /// tau or top-k.
    var selection: Float
    /// Measured with stage 2 off.
    var measured: Measurement
}

/// What a head gets: a smoothed window's conservative values, one theta's values, or dense.
enum TuningChoice: Sendable, Hashable {
    case window(TuningCandidate, members: [TuningCandidate])
    case single(TuningCandidate)
    case dense

    /// theta and tau / top-k (dense: no block self-similar, every block kept).
    var values: (theta: Float, selection: Float) {
        switch self {
        case .window(let c, _), .single(let c): return (c.theta, c.selection)
        case .dense: return (SpargeTuner.denseTheta, 1)
        }
    }
}

/// Per-head measurements of one evaluation.
struct HeadMeasurements: Sendable {
    var error: [Double]
    var density: [Double]
    var allowedDensity: [Double]

    func head(_ h: Int) -> Measurement { Measurement(error: error[h], density: density[h], allowedDensity: allowedDensity[h]) }

    mutating func set(_ h: Int, _ m: Measurement) {
        error[h] = m.error; density[h] = m.density; allowedDensity[h] = m.allowedDensity
    }
}

/// Runs sparse attention with per-head values on every calibration sample and measures each
/// head against the exact outputs, computed once.
struct CalibrationEvaluator {
    let samples: [CalibrationSample]
    let references: [[Float]]
    let base: SpargeParameters
    let options: TuningOptions

    init(samples: [CalibrationSample], references: [[Float]], base: SpargeParameters, options: TuningOptions) {
        self.samples = samples
        self.references = references
        self.base = base
        self.options = options
    }

    /// Exact attention of every sample (the problem `base` fixes: causal and its alignment, the
    /// sliding window, the sink logits, the softmax scale).
    static func references(samples: [CalibrationSample], base: SpargeParameters, threads: Int?) throws -> [[Float]] {
        try samples.map {
            try SpargeAttention.dense(q: $0.q, k: $0.k, v: $0.v, shape: $0.shape, causal: base.causal,
                                      causalAlignment: base.causalAlignment, slidingWindow: base.slidingWindow,
                                      sinkLogits: base.sinkLogits, softmaxScale: base.softmaxScale, threads: threads)
        }
    }

    /// Worst error and mean densities per head with these per-head values.
    func evaluate(theta: [Float], selection: [Float], lambda: [Float]) throws -> HeadMeasurements {
        var p = base
        p.simThreshold = PerHead(theta)
        p.selection = options.mode == .cdf ? .cdf(PerHead(selection)) : .topK(PerHead(selection))
        p.pvThreshold = PerHead(lambda)
        let heads = theta.count, n = Double(samples.count)
        var m = HeadMeasurements(error: [Double](repeating: 0, count: heads), density: [Double](repeating: 0, count: heads),
                                 allowedDensity: [Double](repeating: 0, count: heads))
        for (s, reference) in zip(samples, references) {
            let (out, result) = try SpargeAttention.sparse(q: s.q, k: s.k, v: s.v, shape: s.shape, parameters: p,
                                                           threads: options.threads)
            let errors = options.metric.headErrors(out, reference: reference, shape: s.shape)
            // A one-shot result owns its map, so the per-head densities (over allowed blocks) are there.
            let perHead = result.densityPerHead ?? []
            for h in 0..<heads {
                m.error[h] = Swift.max(m.error[h], errors[h])
                m.density[h] += perHead[h] / n
                m.allowedDensity[h] += perHead[h] / n
            }
        }
        return m
    }

    /// Measures the chosen values of every head with these lambdas.
    func evaluate(_ choice: [TuningChoice], lambda: [Float]) throws -> HeadMeasurements {
        let v = choice.map(\.values)
        return try evaluate(theta: v.map(\.theta), selection: v.map(\.selection), lambda: lambda)
    }
}
