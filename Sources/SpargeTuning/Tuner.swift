import Foundation
import SpargeAttn
import SpargeFormats

/// Per-head calibration of theta, tau (or top-k) and lambda under an error bound, following
/// the paper (section 4.5) and the authors' tuner (`spas_sage_attn/autotune.py`):
///
/// 1. For each theta of ``TuningOptions/thetaGrid``: bisect tau (or top-k) over [0, 1] with
///    stage 2 off to the sparsest value whose error against exact attention stays within
///    `safetyMargin * bound` on *every* calibration sample (the worst sample, not the mean).
///    A head whose sparsity falls below ``TuningOptions/minimumSparsity`` stops there: higher
///    theta only computes more blocks.
/// 2. Smoothing: a head's candidates are windows of ``TuningOptions/smoothingWidth``
///    neighbouring thetas that all met the bound on all samples; the window with the lowest
///    mean density wins and the head gets the window's most conservative values (largest
///    theta and tau: each computes more), checked once more. The authors pool fixed pairs of
///    thetas the same way; a setting that only passes at an isolated theta is fragile, so it
///    is used only when no window passes. A head whose sparsity is below
///    ``TuningOptions/minimumSparsity``, or that met the bound at no theta, runs dense.
/// 3. At each head's final values, bisect lambda over [0, ``TuningOptions/maxLambda``] to the
///    smallest value (the most skipping) whose error stays within `safetyMargin * pvBound`
///    and within ``TuningOptions/stage2Budget`` of the gap above the head's stage-1 error.
///    The authors search lambda at every theta; lambda does not change the block map, so it
///    cannot change the choice, and searching it once saves almost half the time.
///
/// All heads are tuned together: each step is one multi-threaded library call per sample with
/// one value per head (heads are independent, so each head's error depends only on its own
/// values); heads already done get the cheapest values. The exact outputs are computed once
/// per sample. Deterministic: the same samples and options give the same settings, whatever
/// the thread count.
public enum SpargeTuner {
    /// theta above any self-similarity (which lies in [0, 1]): every block is computed.
    public static let denseTheta: Float = 2

    /// Tunes the heads of one layer on calibration samples (all with the same number of query
    /// heads). `base` fixes the problem being tuned: causal, attention sink, block sizes, K
    /// smoothing, quantization; its theta, selection and lambda are replaced.
    ///
    /// - Returns: settings holding one layer named `layer`.
    public static func tune(
        samples: [CalibrationSample], base: SpargeParameters = .recommended,
        options: TuningOptions = TuningOptions(), layer: String = "layer",
        progress: ((TuningProgress) -> Void)? = nil
    ) throws -> TunedSettings {
        try options.validate()
        try validate(samples, base)
        // The exact outputs, once for every pass.
        let references = try CalibrationEvaluator.references(samples: samples, base: base, threads: options.threads)
        guard options.mode == .auto else {
            return try tune(samples, references, base, options, layer, pass: (1, 1), progress)
        }
        // Both modes; on causal attention top-k only when clearly sparser (CDF adapts to the
        // sequence length).
        var o = options
        o.mode = .cdf
        let cdf = try tune(samples, references, base, o, layer, pass: (1, 2), progress)
        o.mode = .topK
        let topk = try tune(samples, references, base, o, layer, pass: (2, 2), progress)
        func sparsity(_ s: TunedSettings) -> Double {
            s.layers[0].heads.reduce(0) { $0 + $1.sparsity } / Double(s.layers[0].heads.count)
        }
        return sparsity(topk) > sparsity(cdf) + (base.causal ? options.autoTopKAdvantage : 0) ? topk : cdf
    }

    /// One mode's tuning; `pass` (index, count) scales the progress estimate.
    /// The samples are non-empty, valid, of one head count, and fit `base`.
    private static func validate(_ samples: [CalibrationSample], _ base: SpargeParameters) throws {
        guard let first = samples.first else { throw TuningError.invalidSamples("no calibration sample; give at least one") }
        for (i, s) in samples.enumerated() {
            try s.validate(index: i)
            if s.shape.heads != first.shape.heads {
                throw TuningError.invalidSamples("sample \(i) has \(s.shape.heads) heads but sample 0 has \(first.shape.heads); tune each layer on samples of that layer")
            }
            try base.validate(for: s.shape)
        }
    }

    private static func tune(
        _ samples: [CalibrationSample], _ references: [[Float]], _ base: SpargeParameters, _ options: TuningOptions,
        _ layer: String, pass: (Int, Int), _ progress: ((TuningProgress) -> Void)?
    ) throws -> TunedSettings {
        let start = Date()
        let heads = samples[0].shape.heads, grid = options.thetaGrid
        let evaluator = CalibrationEvaluator(samples: samples, references: references, base: base, options: options)
        let bound = options.bound * options.safetyMargin, pvBound = options.pvBound * options.safetyMargin
        let stage2Allowance = options.stage2Budget * (options.pvBound - options.bound) * options.safetyMargin
        // Done heads get values that compute almost nothing (one block per row).
        let cheapTheta: Float = -1, cheapSelection: Float = options.mode == .cdf ? 0 : 1e-6

        var table = [[TuningCandidate?]](repeating: [TuningCandidate?](repeating: nil, count: heads), count: grid.count)
        var active = [Bool](repeating: true, count: heads)
        for (ti, theta) in grid.enumerated() where active.contains(true) {
            // Stage 1: bisect tau / top-k with stage 2 off; `high` is the sparsest passing value.
            var low = [Float](repeating: 0, count: heads), high = [Float](repeating: 1, count: heads)
            var passed = [Measurement?](repeating: nil, count: heads)
            for _ in 0..<options.selectionIterations {
                let mid = (0..<heads).map { (low[$0] + high[$0]) / 2 }
                let m = try evaluator.evaluate(theta: (0..<heads).map { active[$0] ? theta : cheapTheta },
                                               selection: (0..<heads).map { active[$0] ? mid[$0] : cheapSelection },
                                               lambda: [Float](repeating: .infinity, count: heads))
                for h in 0..<heads where active[h] {
                    if m.error[h] <= bound { high[h] = mid[h]; passed[h] = m.head(h) } else { low[h] = mid[h] }
                }
            }
            for h in 0..<heads where active[h] {
                guard let m = passed[h] else { continue }
                table[ti][h] = TuningCandidate(theta: theta, selection: high[h], measured: m)
                if 1 - m.allowedDensity < options.minimumSparsity { active[h] = false }
            }
            if let progress {
                let elapsed = Date().timeIntervalSince(start)
                let left = active.contains(true) ? elapsed / Double(ti + 1) * Double(grid.count - ti - 1) : 0
                // A later pass (auto mode) is assumed to take as long as this one.
                let later = Double(pass.1 - pass.0) * (elapsed + left)
                progress(TuningProgress(thetasDone: ti + 1, thetaCount: grid.count, theta: theta, mode: options.mode,
                                        pass: pass.0, passes: pass.1,
                                        headsDone: active.filter { !$0 }.count, heads: heads, elapsedSeconds: elapsed,
                                        etaSeconds: left + later))
            }
        }

        // Smoothing, then a check of the pooled values with stage 2 off.
        var choice = (0..<heads).map { h in choose(column: table.map { $0[h] }, width: options.smoothingWidth) }
        let off = [Float](repeating: .infinity, count: heads)
        var stage1 = try evaluator.evaluate(choice, lambda: off)
        var changed = false
        for h in 0..<heads {
            guard case .window(_, let members) = choice[h], stage1.error[h] > bound else { continue }
            // The pooled values failed (rare: they compute more than each passing member).
            let best = members.min { $0.measured.density < $1.measured.density }!
            choice[h] = .single(best)
            stage1.set(h, best.measured)
        }
        for h in 0..<heads where choice[h] != .dense && 1 - stage1.allowedDensity[h] < options.minimumSparsity {
            choice[h] = .dense
            changed = true
        }
        if changed { stage1 = try evaluator.evaluate(choice, lambda: off) }

        // Stage 2: bisect lambda at each head's final values (smaller lambda skips more). Done
        // once, after the choice: lambda does not change the block map, so it cannot change
        // which theta wins, and tuning it at the final values is exact rather than pooled.
        var lambda = off, final = stage1
        let tunable = choice.map { $0 != .dense }
        if tunable.contains(true) {
            let values = choice.map { $0.values }
            var low = [Float](repeating: 0, count: heads), high = [Float](repeating: options.maxLambda, count: heads)
            for _ in 0..<options.lambdaIterations {
                let mid = (0..<heads).map { tunable[$0] ? (low[$0] + high[$0]) / 2 : Float.infinity }
                let m = try evaluator.evaluate(theta: values.map(\.theta), selection: values.map(\.selection), lambda: mid)
                for h in 0..<heads where tunable[h] {
                    if m.error[h] <= Swift.min(pvBound, stage1.error[h] + stage2Allowance) {
                        high[h] = mid[h]; lambda[h] = mid[h]; final.set(h, m.head(h))
                    } else {
                        low[h] = mid[h]
                    }
                }
            }
        }

        let tunedHeads = (0..<heads).map { h -> TunedHead in
            let v = choice[h].values
            return TunedHead(theta: v.theta, tau: options.mode == .cdf ? v.selection : nil,
                             topK: options.mode == .cdf ? nil : v.selection, lambda: lambda[h],
                             blockQ: base.blockQ, blockK: base.blockK, error: final.error[h],
                             density: final.density[h], sparsity: 1 - final.allowedDensity[h],
                             dense: choice[h] == .dense)
        }
        let tuned = TunedLayer(name: layer, heads: tunedHeads, causal: base.causal, attentionSink: base.attentionSink, smoothQ: base.smoothQ,
                               fixedPointPV: base.fixedPointPV)
        return TunedSettings(layers: [tuned], metric: options.metric, bound: options.bound, pvBound: options.pvBound,
                             safetyMargin: options.safetyMargin)
    }

    /// The smoothed choice of one head from its candidates per theta (nil: failed there).
    static func choose(column: [TuningCandidate?], width: Int) -> TuningChoice {
        let w = Swift.min(width, column.count)
        var best: (score: Double, start: Int)? = nil
        for s in 0...(column.count - w) {
            let members = column[s..<(s + w)]
            guard members.allSatisfy({ $0 != nil }) else { continue }
            let score = members.reduce(0) { $0 + $1!.measured.density } / Double(w)
            if best == nil || score < best!.score { best = (score, s) }
        }
        if let best {
            let members = column[best.start..<(best.start + w)].map { $0! }
            let combined = TuningCandidate(theta: members.map(\.theta).max()!, selection: members.map(\.selection).max()!,
                                           measured: members[0].measured)
            return .window(combined, members: members)
        }
        // No window passes everywhere: the best isolated theta, else dense.
        if let single = column.compactMap({ $0 }).min(by: { $0.measured.density < $1.measured.density }) {
            return .single(single)
        }
        return .dense
    }
}
