/// An 8-bit floating-point value in the e4m3fn format: CUDA's `__nv_fp8_e4m3`, PyTorch's
/// `torch.float8_e4m3fn`.
///
/// Layout `S EEEE MMM`: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits. There are
/// no infinities; `S 1111 111` is NaN, so the largest finite magnitude is `1.75 * 2^8 = 448`
/// (`0x7E`). Exponent 0 holds subnormals `M * 2^-9`; the smallest positive value is `2^-9`.
///
/// The Hopper and Ada SpargeAttn kernels round P and V to this format before the P·V product
/// (<doc:ExactSemantics> section 4a); this type lets the CPU code reproduce that rounding.
///
/// Equality and hashing compare bit patterns, so `+0` and `-0` differ and NaN equals itself.
public struct FP8E4M3: Sendable, Hashable {
    /// The raw bits, `S EEEE MMM`.
    public var bitPattern: UInt8

    /// Wraps raw bits without conversion.
    @inlinable
    public init(bitPattern: UInt8) {
        self.bitPattern = bitPattern
    }

    /// Rounds a `Float` to the nearest e4m3 value, ties to even, saturating: finite values
    /// and infinities beyond ±448 become ±448, as CUDA's
    /// `__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)` does. NaN becomes the canonical
    /// NaN `0x7F`.
    ///
    /// (A plain `x.to(torch.float8_e4m3fn)` does not saturate: it gives NaN from 480 up.)
    @inlinable
    public init(_ x: Float) {
        if x.isNaN {
            bitPattern = 0x7F
            return
        }
        let rounded = roundToE4M3(x)
        let sign: UInt8 = rounded.sign == .minus ? 0x80 : 0
        let a = abs(rounded)
        if a < 0x1p-6 {
            // Subnormal (or zero): the code is the count of 2^-9 steps; 8 steps (2^-6) would
            // be the smallest normal, whose code 0x08 this formula also gives.
            bitPattern = sign | UInt8(a * 0x1p9)
        } else {
            let bits = a.bitPattern
            let exponent = Int(bits >> 23) - 127 + 7        // 1...15 after rounding and saturation
            let mantissa = UInt8(truncatingIfNeeded: bits >> 20) & 0x7
            bitPattern = sign | UInt8(exponent << 3) | mantissa
        }
    }

    /// The exact value as a `Float` (every e4m3 value is a `Float`).
    @inlinable
    public var float: Float {
        let magnitude = bitPattern & 0x7F
        let value: Float
        if magnitude == 0x7F {
            value = .nan
        } else if magnitude < 0x08 {
            value = Float(magnitude) * 0x1p-9
        } else {
            let exponent = UInt32(magnitude >> 3) + (127 - 7)
            value = Float(bitPattern: exponent << 23 | UInt32(magnitude & 0x7) << 20)
        }
        return bitPattern & 0x80 != 0 ? -value : value
    }

    /// Whether this is the NaN encoding (`S 1111 111`).
    @inlinable
    public var isNaN: Bool { bitPattern & 0x7F == 0x7F }

    /// The largest finite value, 448 (`0x7E`).
    public static let greatestFiniteMagnitude = FP8E4M3(bitPattern: 0x7E)
    /// The smallest positive value, 2^-9 (`0x01`, a subnormal).
    public static let leastNonzeroMagnitude = FP8E4M3(bitPattern: 0x01)
    /// The smallest positive normal value, 2^-6 (`0x08`).
    public static let leastNormalMagnitude = FP8E4M3(bitPattern: 0x08)
    /// The canonical NaN, `0x7F`.
    public static let nan = FP8E4M3(bitPattern: 0x7F)
}

extension FP8E4M3: CustomStringConvertible {
    /// The value as printed by `Float`.
    public var description: String { float.description }
}

/// `x` rounded to the nearest e4m3 value (ties to even) and returned as a `Float`: the same
/// value as `FP8E4M3(x).float`, without the encoding, for hot loops.
///
/// Saturating like ``FP8E4M3/init(_:)``: beyond ±448 (infinities included) gives ±448; NaN
/// stays NaN; the sign of zero is kept. Branch-free, so loops over it vectorize.
@inlinable
public func roundToE4M3(_ x: Float) -> Float {
    // Clamp first: rounding a clamped value equals saturating a rounded one, since 448 is
    // representable. `min` keeps a NaN (its comparison is false).
    let a = Swift.min(abs(x), 448)
    // Adding C = 2^(e+20), e the exponent of a, leaves e4m3's 3 mantissa bits in the sum's
    // 23-bit mantissa, so the FPU's own round-to-nearest-even does the rounding; subtracting
    // C is then exact. Below 2^-6 e4m3 is subnormal with a fixed step 2^-9: C = 2^14.
    let c = Swift.max(Float(bitPattern: (a.bitPattern & 0x7F80_0000) &+ (20 << 23)), 0x1p14)
    let r = (a + c) - c
    return Float(bitPattern: r.bitPattern | (x.bitPattern & 0x8000_0000))
}
