/// Accuracy of an output against a reference, as in the authors' `precision_metric`:
/// cosine similarity of the flattened tensors, relative L1 `sum|x - y| / sum|y|`,
/// relative L2 `sqrt(sum (x - y)^2 / sum y^2)`, `RMSE = sqrt(mean (x - y)^2)` and the largest
/// absolute difference. Accumulated in Double so long tensors lose nothing; a NaN or infinity
/// anywhere makes cosine NaN and the errors infinite (a non-finite output fails every bound,
/// never counts as zero error).
public struct Accuracy: Sendable, Hashable {
    /// Cosine similarity of the flattened tensors (1 when both are zero).
    public var cosine: Double
    /// `sum|x - y| / sum|y|` (the plain L1 error when the reference is zero).
    public var relativeL1: Double
    /// `sqrt(sum (x - y)^2 / sum y^2)` (the plain L2 error when the reference is zero).
    public var relativeL2: Double
    /// `sqrt(mean (x - y)^2)` over the compared values.
    public var rmse: Double
    /// The largest `|x - y|`.
    public var maxAbsoluteError: Double

    /// Compares `x` with `reference`; throws ``SpargeError/invalidShape(_:)`` when their sizes differ.
    public init(_ x: [Float], reference y: [Float]) throws {
        try self.init(x, count: y.count) { Double(y[$0]) }
    }

    /// Compares `x` with a float64 reference (such as ``Float64Reference``'s output), over the
    /// rows of `rowLength` values for which `includeRow(row)` holds (every row by default);
    /// throws ``SpargeError/invalidShape(_:)`` when the sizes differ.
    public init(_ x: [Float], reference y: [Double], rowLength: Int = 1, includeRow: (Int) -> Bool = { _ in true }) throws {
        try self.init(x, count: y.count, rowLength: rowLength, includeRow: includeRow) { y[$0] }
    }

    private init(_ x: [Float], count: Int, rowLength: Int = 1, includeRow: (Int) -> Bool = { _ in true },
                 reference y: (Int) -> Double) throws {
        guard x.count == count else {
            throw SpargeError.invalidShape("accuracy of \(x.count) values against a reference of \(count); compare tensors of one shape")
        }
        guard rowLength >= 1 else {
            throw SpargeError.invalidShape("rowLength is \(rowLength); it must be at least 1")
        }
        var dot = 0.0, xx = 0.0, yy = 0.0, l1 = 0.0, y1 = 0.0, sq = 0.0, maxAbs = 0.0, n = 0
        var finite = true
        for i in 0..<count where includeRow(i / rowLength) {
            let a = Double(x[i]), b = y(i)
            finite = finite && a.isFinite && b.isFinite
            dot += a * b; xx += a * a; yy += b * b
            l1 += abs(a - b); y1 += abs(b); sq += (a - b) * (a - b)
            if !(abs(a - b) <= maxAbs) { maxAbs = abs(a - b) }   // NaN sticks
            n += 1
        }
        cosine = (xx == 0 && yy == 0) ? 1 : dot / ((xx * yy).squareRoot() + 1e-300)
        relativeL1 = y1 == 0 ? l1 : l1 / y1
        relativeL2 = yy == 0 ? sq.squareRoot() : (sq / yy).squareRoot()
        rmse = n == 0 ? 0 : (sq / Double(n)).squareRoot()
        maxAbsoluteError = maxAbs
        if !finite {
            cosine = .nan; relativeL1 = .infinity; relativeL2 = .infinity; rmse = .infinity; maxAbsoluteError = .infinity
        }
    }
}
