/// Accuracy of an output against a reference, as in the authors' `precision_metric`:
/// cosine similarity of the flattened tensors, relative L1 `sum|x - y| / sum|y|`,
/// `RMSE = sqrt(mean (x - y)^2)` and the largest absolute difference. Accumulated in Double
/// so long tensors lose nothing; a NaN or infinity anywhere makes cosine NaN and the errors
/// infinite (a non-finite output fails every bound, never counts as zero error).
public struct Accuracy: Sendable, Hashable {
    public var cosine: Double
    public var relativeL1: Double
    public var rmse: Double
    public var maxAbsoluteError: Double

    /// Compares `x` with `reference`; throws ``SpargeError/invalidShape(_:)`` when their sizes differ.
    public init(_ x: [Float], reference y: [Float]) throws {
        guard x.count == y.count else {
            throw SpargeError.invalidShape("accuracy of \(x.count) values against a reference of \(y.count); compare tensors of one shape")
        }
        var dot = 0.0, xx = 0.0, yy = 0.0, l1 = 0.0, y1 = 0.0, sq = 0.0, maxAbs = 0.0
        var finite = true
        for i in 0..<x.count {
            let a = Double(x[i]), b = Double(y[i])
            finite = finite && a.isFinite && b.isFinite
            dot += a * b; xx += a * a; yy += b * b
            l1 += abs(a - b); y1 += abs(b); sq += (a - b) * (a - b)
            if !(abs(a - b) <= maxAbs) { maxAbs = abs(a - b) }   // NaN sticks
        }
        cosine = (xx == 0 && yy == 0) ? 1 : dot / ((xx * yy).squareRoot() + 1e-300)
        relativeL1 = y1 == 0 ? l1 : l1 / y1
        rmse = x.isEmpty ? 0 : (sq / Double(x.count)).squareRoot()
        maxAbsoluteError = maxAbs
        if !finite {
            cosine = .nan; relativeL1 = .infinity; rmse = .infinity; maxAbsoluteError = .infinity
        }
    }
}
