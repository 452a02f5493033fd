import Foundation
@testable import SpargeAttn

/// Accuracy metrics against a float64 reference.
struct Accuracy {
    var cosine: Double
    var relativeL1: Double
    var relativeL2: Double
    var maxAbs: Double

    init(_ x: [Float], _ ref: [Double], rows: (Int) -> Bool = { _ in true }, d: Int = 1) {
        var dot = 0.0, xx = 0.0, rr = 0.0, l1 = 0.0, r1 = 0.0, l2 = 0.0, mx = 0.0
        for i in 0..<ref.count where rows(i / d) {
            let a = Double(x[i]), b = ref[i]
            dot += a * b; xx += a * a; rr += b * b
            l1 += abs(a - b); r1 += abs(b); l2 += (a - b) * (a - b); mx = max(mx, abs(a - b))
        }
        cosine = (xx == 0 && rr == 0) ? 1 : dot / (xx.squareRoot() * rr.squareRoot())
        relativeL1 = r1 == 0 ? l1 : l1 / r1
        relativeL2 = rr == 0 ? l2.squareRoot() : (l2 / rr).squareRoot()
        maxAbs = mx
    }
}
