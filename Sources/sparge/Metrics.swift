/// Accuracy of an output against a reference, as in the authors' `precision_metric`:
/// cosine similarity of the flattened tensors, relative L1 `sum|x - y| / sum|y|` and
/// `RMSE = sqrt(mean (x - y)^2)`. Accumulated in Double so long tensors lose nothing.
struct Accuracy {
    var cosine: Double
    var relativeL1: Double
    var rmse: Double

    init(_ x: [Float], reference y: [Float]) {
        precondition(x.count == y.count, "accuracy of tensors of different sizes")
        var dot = 0.0, xx = 0.0, yy = 0.0, l1 = 0.0, y1 = 0.0, sq = 0.0
        for i in 0..<x.count {
            let a = Double(x[i]), b = Double(y[i])
            dot += a * b; xx += a * a; yy += b * b
            l1 += abs(a - b); y1 += abs(b); sq += (a - b) * (a - b)
        }
        cosine = (xx == 0 && yy == 0) ? 1 : dot / ((xx * yy).squareRoot() + 1e-300)
        relativeL1 = y1 == 0 ? l1 : l1 / y1
        rmse = x.isEmpty ? 0 : (sq / Double(x.count)).squareRoot()
    }
}

/// Wall-clock timing of a closure.
enum Timing {
    /// Seconds of one call of `body`.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// The median of `samples` (the mean of the middle two for an even count).
    static func median(_ samples: [Double]) -> Double {
        let s = samples.sorted()
        if s.isEmpty { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Which build this is: the `Tuned` trait compiles the kernels for x86-64-v3.
enum BuildInfo {
    #if Tuned
    static let name = "tuned"
    static let detail = "tuned (--traits Tuned: x86-64-v3, AVX2 + FMA)"
    #else
    static let name = "portable"
    static let detail = "portable (baseline ISA; build with --traits Tuned for AVX2 + FMA)"
    #endif
    #if DEBUG
    static let configuration = "debug"
    #else
    static let configuration = "release"
    #endif
}
