// The power of two a query tile's scores are stored divided by (``OverflowGuard``). It can pass
// fp32's range: q and k both near 3e38 give |q.k| near 2^262, so the unit is kept as its
// exponent and applied in steps that are each a normal fp32 or Double power of two.

/// `2^exponent`, `exponent >= 0`: scores are stored divided by it, and the softmax multiplies
/// score differences (never scores) back by it.
struct ScoreUnit: Equatable {
    let exponent: Int

    static let one = ScoreUnit(exponent: 0)

    /// The smallest unit with `bound / unit <= limit` (``one`` when `bound <= limit` or
    /// `bound` is not finite: non-finite inputs stay as they are).
    init(bound: Double, limit: Double) {
        guard bound.isFinite, bound > limit else { self.exponent = 0; return }
        self.exponent = Int((bound / limit).exponent) + 1
    }

    init(exponent: Int) { self.exponent = exponent }

    var isOne: Bool { exponent == 0 }

    /// `x * 2^exponent` in fp32: exact, or ±infinity where the product passes fp32's range
    /// (a score difference that large makes its probability 0); 0 stays 0, so no NaN.
    @inline(__always)
    func scale(_ x: Float) -> Float {
        var y = x, e = exponent
        while e > 0 {
            let step = Swift.min(e, 127)
            y *= Float(sign: .plus, exponent: step, significand: 1)
            e -= step
        }
        return y
    }

    /// `x * 2^exponent` in Double (exact for every unit this package forms).
    @inline(__always)
    func scale(_ x: Double) -> Double { x * Double(sign: .plus, exponent: exponent, significand: 1) }

    /// `x / 2^exponent` in Double (exact unless the result is below Double's normal range).
    @inline(__always)
    func divide(_ x: Double) -> Double { x * Double(sign: .plus, exponent: -exponent, significand: 1) }

    /// The unit as one fp32 value in the split-K state buffers (the exponent, exact in fp32).
    var stored: Float { Float(exponent) }

    /// The unit of a value written by ``stored``.
    init(stored: Float) { self.exponent = Int(stored) }
}
