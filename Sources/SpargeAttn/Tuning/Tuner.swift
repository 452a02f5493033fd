import Foundation

/// Per-head hyper-parameter tuning of SpargeAttn, following the paper: for each theta of a
/// grid, bisect tau (or top-k) to the sparsest value whose error against exact attention stays
/// within a bound, then bisect lambda to the most skipping within a second, looser bound; keep
/// per head the theta with the lowest density, preferring thetas whose grid neighbours also
/// meet the bound. All heads are tuned together: each step is one library call per
/// calibration sample with one value per head. Deterministic.
public enum SpargeTuner {
    /// theta above any cosine similarity: no block is self-similar, every block is computed.
    public static let denseTheta: Float = 2

    struct Evaluation {
        var error: [Double]     // per head, worst over samples
        var density: [Double]   // per head, mean over samples
    }

    /// Tunes the heads of one layer on calibration samples (`B,H,N,D` fp32 each, of `shape`).
    public static func tune(
        samples: [(q: [Float], k: [Float], v: [Float])], shape: AttentionShape,
        base: SpargeParameters = .recommended, options: TuningOptions = TuningOptions(),
        layer: String = "layer", progress: ((String) -> Void)? = nil
    ) throws -> TunedSettings {
        try options.validate()
        try shape.validate()
        guard !samples.isEmpty else { throw TuningError.invalidSamples("no calibration sample") }
        for (i, s) in samples.enumerated() where s.q.count != shape.queryElements || s.k.count != shape.keyElements || s.v.count != shape.keyElements {
            throw TuningError.invalidSamples("sample \(i) has \(s.q.count)/\(s.k.count)/\(s.v.count) q/k/v elements; the shape needs \(shape.queryElements)/\(shape.keyElements)/\(shape.keyElements)")
        }
        try base.validate(for: shape)
        let H = shape.heads
        let start = Date()
        let references = try samples.map {
            try SpargeAttention.dense(q: $0.q, k: $0.k, v: $0.v, shape: shape, causal: base.causal,
                                      softmaxScale: base.softmaxScale,
                                      threads: options.threads)
        }

        func evaluate(theta: [Float], selection: [Float], lambda: [Float]) throws -> Evaluation {
            var p = base
            p.simThreshold = PerHead(theta)
            p.selection = options.mode == .cdf ? .cdf(PerHead(selection)) : .topK(PerHead(selection))
            p.pvThreshold = PerHead(lambda)
            var e = Evaluation(error: [Double](repeating: 0, count: H), density: [Double](repeating: 0, count: H))
            for (s, ref) in zip(samples, references) {
                let (out, result) = try SpargeAttention.sparse(q: s.q, k: s.k, v: s.v, shape: shape, parameters: p,
                                                               threads: options.threads)
                let err = headErrors(out, ref, shape: shape, metric: options.metric)
                for h in 0..<H {
                    e.error[h] = max(e.error[h], err[h])
                    e.density[h] += result.statistics.densityPerHead[h] / Double(samples.count)
                }
            }
            return e
        }

        struct Candidate { var theta: Float; var selection: Float; var lambda: Float; var error: Double; var density: Double; var valid: Bool }
        var table: [[Candidate]] = []  // [theta][head]
        let grid = options.thetaGrid
        for (ti, theta) in grid.enumerated() {
            let thetas = [Float](repeating: theta, count: H)
            // Stage 1: bisect tau / top-k with stage 2 off. lo fails (or is untested), hi is kept.
            var lo = [Float](repeating: 0, count: H), hi = [Float](repeating: 1, count: H)
            let off = [Float](repeating: .infinity, count: H)
            for _ in 0..<options.selectionIterations {
                let mid = (0..<H).map { (lo[$0] + hi[$0]) / 2 }
                let e = try evaluate(theta: thetas, selection: mid, lambda: off)
                for h in 0..<H { if e.error[h] <= options.bound { hi[h] = mid[h] } else { lo[h] = mid[h] } }
            }
            let atHi = try evaluate(theta: thetas, selection: hi, lambda: off)
            let meets = (0..<H).map { atHi.error[$0] <= options.bound }
            // Stage 2: bisect lambda (smaller skips more) within the looser bound.
            var lamLo = [Float](repeating: 0, count: H), lamHi = [Float](repeating: options.maxLambda, count: H)
            for _ in 0..<options.lambdaIterations {
                let mid = (0..<H).map { (lamLo[$0] + lamHi[$0]) / 2 }
                let e = try evaluate(theta: thetas, selection: hi, lambda: mid)
                for h in 0..<H { if e.error[h] <= options.pvBound { lamHi[h] = mid[h] } else { lamLo[h] = mid[h] } }
            }
            var lambda = options.lambdaIterations == 0 ? off : lamHi
            var final = try evaluate(theta: thetas, selection: hi, lambda: lambda)
            let failing = (0..<H).filter { final.error[$0] > options.pvBound }
            if !failing.isEmpty {
                for h in failing { lambda[h] = .infinity }
                final = try evaluate(theta: thetas, selection: hi, lambda: lambda)
            }
            table.append((0..<H).map { h in
                Candidate(theta: theta, selection: hi[h], lambda: lambda[h], error: final.error[h],
                          density: final.density[h], valid: meets[h] && final.error[h] <= options.pvBound)
            })
            if let progress {
                let elapsed = Date().timeIntervalSince(start)
                let eta = elapsed / Double(ti + 1) * Double(grid.count - ti - 1)
                progress(String(format: "theta %d/%d (%@) done for all %d heads, elapsed %.1fs, ETA %.1fs",
                                ti + 1, grid.count, "\(theta)", H, elapsed, eta))
            }
        }

        // Choose per head: valid thetas whose grid neighbours are valid too when there are any.
        var heads: [TunedHead] = []
        var fallbacks: [Int] = []
        for h in 0..<H {
            let valid = table.indices.filter { table[$0][h].valid }
            let robust = valid.filter { i in (i == 0 || table[i - 1][h].valid) && (i == table.count - 1 || table[i + 1][h].valid) }
            let pool = robust.isEmpty ? valid : robust
            if let best = pool.min(by: { a, b in
                let x = table[a][h], y = table[b][h]
                return x.density != y.density ? x.density < y.density : (x.error != y.error ? x.error < y.error : a < b)
            }) {
                let c = table[best][h]
                heads.append(TunedHead(theta: c.theta, tau: options.mode == .cdf ? c.selection : nil,
                                       topk: options.mode == .topK ? c.selection : nil, lambda: c.lambda,
                                       blockQ: base.blockQ, blockK: base.blockK, error: c.error, density: c.density))
            } else {
                fallbacks.append(h)
                heads.append(TunedHead(theta: denseTheta, tau: options.mode == .cdf ? 1 : nil,
                                       topk: options.mode == .topK ? 1 : nil, lambda: .infinity,
                                       blockQ: base.blockQ, blockK: base.blockK, error: 0, density: 1))
            }
        }
        if !fallbacks.isEmpty {
            // Measure the dense fallback's real error and density.
            let e = try evaluate(theta: heads.map(\.theta), selection: heads.map { $0.tau ?? $0.topk ?? 1 }, lambda: heads.map(\.lambda))
            for h in fallbacks { heads[h].error = e.error[h]; heads[h].density = e.density[h] }
        }
        progress?(String(format: "tuned %d heads in %.1fs (%d fell back to dense)", H, Date().timeIntervalSince(start), fallbacks.count))
        return TunedSettings(layers: [TunedLayer(name: layer, heads: heads)], metric: options.metric.rawValue,
                             bound: options.bound, pvBound: options.pvBound)
    }

    /// Per-head error of `out` against `ref` (both `B,H,N,D`).
    public static func headErrors(_ out: [Float], _ ref: [Float], shape: AttentionShape, metric: TuningMetric) -> [Double] {
        let H = shape.heads, row = shape.queryLength * shape.headDim
        return (0..<H).map { h in
            var a = 0.0, b = 0.0, c = 0.0
            for bi in 0..<shape.batch {
                let base = (bi * H + h) * row
                for i in base..<(base + row) {
                    let o = Double(out[i]), r = Double(ref[i])
                    switch metric {
                    case .l1: a += abs(o - r); b += abs(r)
                    case .rmse: a += (o - r) * (o - r); b += r * r
                    case .cosine: a += o * r; b += o * o; c += r * r
                    }
                }
            }
            switch metric {
            case .l1: return b > 0 ? a / b : (a > 0 ? .infinity : 0)
            case .rmse: return b > 0 ? (a / b).squareRoot() : (a > 0 ? .infinity : 0)
            case .cosine:
                let d = (b * c).squareRoot()
                return d > 0 ? max(0, 1 - a / d) : (b == c ? 0 : 1)
            }
        }
    }
}
