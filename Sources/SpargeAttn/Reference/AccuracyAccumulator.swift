/// ``Accuracy`` built up one pair of values at a time, for comparisons that run over parts of
/// a tensor (per head, skipping rows) or merge partial results (all heads from per-head sums).
///
/// The sums are in Double; ``accuracy`` turns them into the metrics, so a whole-tensor
/// ``Accuracy`` and an accumulated one over the same values in the same order are identical.
public struct AccuracyAccumulator: Sendable, Hashable {
    @usableFromInline var dot = 0.0, xx = 0.0, yy = 0.0, l1 = 0.0, y1 = 0.0, sq = 0.0
    @usableFromInline var largest = 0.0
    @usableFromInline var pairs = 0, nonFinitePairs = 0

    /// The number of value pairs added.
    public var count: Int { pairs }
    /// The number of pairs in which either value is NaN or infinite: any makes the metrics fail.
    public var nonFiniteCount: Int { nonFinitePairs }

    /// An empty accumulator (``accuracy`` of nothing: cosine 1, every error 0).
    public init() {}

    /// Adds the pair of `x` (the output) and `y` (the reference).
    @inlinable
    public mutating func add(_ x: Float, _ y: Float) { add(Double(x), reference: Double(y)) }

    /// Adds the pair of `x` (the output) and a float64 reference `y`.
    @inlinable
    public mutating func add(_ x: Double, reference y: Double) {
        let e = x - y
        if !(x.isFinite && y.isFinite) { nonFinitePairs += 1 }
        dot += x * y; xx += x * x; yy += y * y
        l1 += abs(e); y1 += abs(y); sq += e * e
        if !(abs(e) <= largest) { largest = abs(e) }   // NaN sticks
        pairs += 1
    }

    /// Adds everything `other` has accumulated.
    public mutating func merge(_ other: AccuracyAccumulator) {
        dot += other.dot; xx += other.xx; yy += other.yy; l1 += other.l1; y1 += other.y1; sq += other.sq
        if !(other.largest <= largest) { largest = other.largest }
        pairs += other.pairs
        nonFinitePairs += other.nonFinitePairs
    }

    /// The metrics of the values added so far.
    public var accuracy: Accuracy {
        if nonFinitePairs > 0 {
            return Accuracy(cosine: .nan, relativeL1: .infinity, relativeL2: .infinity, rmse: .infinity, maxAbsoluteError: .infinity)
        }
        return Accuracy(cosine: (xx == 0 && yy == 0) ? 1 : dot / ((xx * yy).squareRoot() + 1e-300),
                        relativeL1: y1 == 0 ? l1 : l1 / y1,
                        relativeL2: yy == 0 ? sq.squareRoot() : (sq / yy).squareRoot(),
                        rmse: pairs == 0 ? 0 : (sq / Double(pairs)).squareRoot(),
                        maxAbsoluteError: largest)
    }
}
