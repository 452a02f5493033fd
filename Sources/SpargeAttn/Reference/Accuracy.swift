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

    /// The metrics from their values (see ``AccuracyAccumulator`` to compute them).
    public init(cosine: Double, relativeL1: Double, relativeL2: Double, rmse: Double, maxAbsoluteError: Double) {
        self.cosine = cosine
        self.relativeL1 = relativeL1
        self.relativeL2 = relativeL2
        self.rmse = rmse
        self.maxAbsoluteError = maxAbsoluteError
    }

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
        var sums = AccuracyAccumulator()
        for i in 0..<count where includeRow(i / rowLength) { sums.add(Double(x[i]), reference: y(i)) }
        self = sums.accuracy
    }
}
