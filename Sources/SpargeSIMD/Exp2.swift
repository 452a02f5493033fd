// Vectorised 2^x for the online softmax.
//
// x = n + f with n = round(x), f in [-0.5, 0.5]; 2^f by a degree-6 polynomial (fitted on
// [-0.5, 0.5], relative error about 1e-7), 2^n built in the exponent bits. Rounding uses the
// 1.5 * 2^23 trick instead of `rounded()` (a libm call per lane in the portable build).
// Inputs below -126 (including -inf) give exactly 0, which the softmax relies on for masked
// scores; inputs above 127 saturate at 2^127 (softmax inputs are <= 0).

/// 2^x lane by lane, relative error about 2e-7 for x in [-126, 127]; exactly 0 for
/// x < `flushBelow` (default -126.5, the fp32 normal range; always for -inf); NaN lanes give an
/// unspecified finite value.
/// (Written on the concrete `FloatV`: see VectorMath.swift for why not generic.)
@_transparent
public func exp2(_ x: FloatV, flushBelow: Float = -126.5) -> FloatV {
    typealias V = FloatV
    let lo = V(repeating: -126.5)
    let hi = V(repeating: 127.0)
    let underflow = x .< V(repeating: flushBelow)
    let xc = minimum(maximum(x, lo), hi)
    let magic = V(repeating: 12582912.0)  // 1.5 * 2^23
    let shifted = xc + magic
    let n = shifted - magic
    let f = xc - n
    // Least-squares fit of 2^f on Chebyshev nodes of [-0.5, 0.5] (2e-9 in exact arithmetic;
    // fp32 evaluation brings it to about 1e-7).
    var p = V(repeating: 1.53375768e-4)
    p = multiplyAdd(p, f, V(repeating: 1.33998604e-3))
    p = multiplyAdd(p, f, V(repeating: 9.61851953e-3))
    p = multiplyAdd(p, f, V(repeating: 5.55032900e-2))
    p = multiplyAdd(p, f, V(repeating: 2.40226466e-1))
    p = multiplyAdd(p, f, V(repeating: 6.93147206e-1))
    p = multiplyAdd(p, f, V(repeating: 1.0))
    // The integer n sits in the low mantissa bits of `shifted`; move it into the exponent.
    let nBits = unsafeBitCast(shifted, to: V.MaskStorage.self) &- 0x4B40_0000
    let scaleBits = (nBits &+ 127) &<< 23
    let scale = unsafeBitCast(scaleBits, to: V.self)
    let r = p * scale
    return r.replacing(with: 0, where: underflow)
}

#if SPARGE_AVX512
/// 2^x on eight lanes (the 16-lane set's tails): the 16-lane form on a doubled vector.
@_transparent
public func exp2(_ x: Float8, flushBelow: Float = -126.5) -> Float8 {
    exp2(FloatV(lowHalf: x, highHalf: x), flushBelow: flushBelow).lowHalf
}
#endif

/// Scalar 2^x with the same polynomial (used for per-row rescale factors).
@inlinable @inline(__always)
public func exp2Scalar(_ x: Float) -> Float {
    exp2(Float8(repeating: x))[0]
}

/// Probabilities below 2^this (relative to their row's running maximum) are exactly 0 in the
/// online softmax. Such a term changes no fp32 output (a row's sum is at least 1), and
/// keeping them would put P.V products in the denormal range, where Intel cores take a
/// microcode assist of about a hundred cycles per instruction (measured: dense attention 5x
/// slower on a Xeon). GPU kernels flush denormals for the same reason.
public let probabilityFlushExponent: Float = -64
