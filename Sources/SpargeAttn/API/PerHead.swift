/// A hyper-parameter given once for all heads or once per head.
///
/// Literals give one value for all heads (`simThreshold: 0.6`); an array gives one value per
/// query head (`simThreshold: [0.6, 0.3, 0.5, 0.6]`).
public struct PerHead: Sendable, Hashable, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, CustomStringConvertible
{
    /// One value (all heads) or one per head.
    public var values: [Float]

    /// One value for every head.
    public init(_ value: Float) { values = [value] }
    /// One value per query head (validated against the call's head count).
    public init(_ values: [Float]) { self.values = values }
    /// One value for every head, from a literal such as `0.5`.
    public init(floatLiteral value: Double) { values = [Float(value)] }
    /// One value for every head, from a literal such as `6`.
    public init(integerLiteral value: Int) { values = [Float(value)] }
    /// One value per query head, from a literal such as `[0.3, 0.5]`.
    public init(arrayLiteral elements: Float...) { values = elements }

    /// The value for query head `h`.
    @inline(__always)
    public subscript(h: Int) -> Float { values.count == 1 ? values[0] : values[h] }

    /// The single value, or the per-head list.
    public var description: String {
        values.count == 1 ? "\(values[0])" : "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
    }

    func validate(name: String, heads: Int, _ isValid: (Float) -> Bool, range: String) throws {
        if values.isEmpty { throw SpargeError.invalidParameter("\(name) has no value; give one value or one per head") }
        if values.count != 1 && values.count != heads {
            throw SpargeError.invalidParameter("\(name) has \(values.count) values but there are \(heads) heads; give one value or exactly one per head")
        }
        for (i, v) in values.enumerated() where !isValid(v) {
            throw SpargeError.invalidParameter("\(name)\(values.count > 1 ? "[\(i)]" : "") is \(v); it must be \(range)")
        }
    }
}
