/// A 16-bit brain floating-point value (1 sign, 8 exponent, 7 mantissa bits).
///
/// Storage only: arithmetic is done in `Float`. BF16 keeps the full `Float`
/// exponent range, so converting never overflows except by rounding up past
/// `Float`'s largest finite value.
///
/// Equality and hashing compare bit patterns, so `+0` and `-0` differ and a NaN
/// equals itself; this is what a storage type needs for exact round trips.
public struct BFloat16: Sendable, Hashable {
    /// The raw IEEE-style bits: the upper half of the equivalent `Float`.
    public var bitPattern: UInt16

    /// Wraps raw bits without conversion (for example, bytes read from a file).
    @inlinable
    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    /// Rounds a `Float` to the nearest BF16, ties to even (as PyTorch does).
    ///
    /// NaN stays NaN: its sign and top payload bits are kept and the quiet bit is
    /// set, because plain truncation could turn a NaN with a low payload into infinity.
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            // Adding 0x7FFF plus the kept LSB rounds half-way cases to even;
            // a carry into the exponent correctly rounds up to the next binade or infinity.
            let lsb = (bits >> 16) & 1
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ lsb) >> 16)
        }
    }

    /// The exact `Float` value (widening BF16 to `Float` is lossless).
    @inlinable
    public var float: Float {
        Float(bitPattern: UInt32(bitPattern) << 16)
    }
}

extension BFloat16: CustomStringConvertible {
    /// The value as printed by `Float`, so logs show numbers rather than bits.
    public var description: String { float.description }
}
