// Symmetric INT8 quantization with the GPU code's rounding.

/// Largest |x| over `count` floats (a vector at a time: the maximum is exact, so every set
/// gives the same value; NaN is ignored).
@inlinable @inline(__always)
public func absoluteMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
    absoluteMaxAndFiniteness(x, count: count).max
}

/// ``absoluteMax(_:count:)`` and whether all `count` floats are finite (`x * 0` is 0 for every
/// finite x and NaN otherwise: the check rides on the same pass).
@inlinable @inline(__always)
public func absoluteMaxAndFiniteness(_ x: UnsafePointer<Float>, count: Int) -> (max: Float, finite: Bool) {
    var m = FloatV(), poison = FloatV()
    var i = 0
    while i + FloatV.scalarCount <= count {
        let v: FloatV = load(x + i)
        m = maximum(m, v.replacing(with: -v, where: v .< 0))
        poison += v * 0
        i += FloatV.scalarCount
    }
    var r = horizontalMax(m), p = horizontalSum(poison)
    while i < count { r = Swift.max(r, Swift.abs(x[i])); p += x[i] * 0; i += 1 }
    return (r, !p.isNaN)
}

#if SPARGE_AVX512
/// `FloatV`'s lanes as int32 (the quantized values before narrowing).
public typealias QuantizedLanesV = SIMD16<Int32>
/// `FloatV`'s lanes as int8.
public typealias QuantizedBytesV = SIMD16<Int8>
#else
/// `FloatV`'s lanes as int32 (the quantized values before narrowing).
public typealias QuantizedLanesV = SIMD8<Int32>
/// `FloatV`'s lanes as int8.
public typealias QuantizedBytesV = SIMD8<Int8>
#endif

/// `out[i] = trunc(x[i] * premultiplier / scale + 0.5 * sign)`: round half away from zero of
/// `x / scale` computed with an fp32 division, exactly as the authors' Triton kernels do.
/// The premultiplier (1 for plain quantization) is applied in fp32 before the division.
///
/// The vector loop multiplies by `1 / scale` instead (a division costs several multiplies) and
/// divides only a vector with a lane near a rounding boundary: the product is within 3 fp32
/// rounding errors of the quotient (|y| < 127.5, so within 2.3e-5), and `|y| + 0.5` more than
/// 1.2e-4 from an integer rounds down to the same integer either way. Same bytes as dividing.
@inlinable @inline(__always)
public func quantizeRow(
    _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, scale: Float,
    into out: UnsafeMutablePointer<Int8>
) {
    typealias V = FloatV  // every lane on its own: the same bytes at any width
    let pm = V(repeating: premultiplier), sc = V(repeating: scale), reciprocal = V(repeating: 1 / scale)
    let half = V(repeating: 0.5), limit = V(repeating: 127.5)
    let near = V(repeating: 1.0 / 8192), farBelow = V(repeating: 1 - 1.0 / 8192)
    var i = 0
    while i + V.scalarCount <= count {
        let z = load(x + i, as: V.self) * pm
        var y = z * reciprocal
        var a = y.replacing(with: -y, where: y .< 0) + half     // |y| + 0.5, rounded as y +- 0.5
        if any(.!(a .< limit)) { break }                       // NaN, inf or out of range: scalar path
        var t = floorOfSmall(a)
        if any((a - t) .< near .| (a - t) .> farBelow) {
            y = z / sc
            a = y.replacing(with: -y, where: y .< 0) + half
            if any(.!(a .< limit)) { break }
            t = floorOfSmall(a)
        }
        var n = unsafeBitCast(t + V(repeating: 8388608.0), to: QuantizedLanesV.self) &- 0x4B00_0000  // t's integer bits
        n.replace(with: 0 &- n, where: y .< 0)
        var bytes = QuantizedBytesV()  // lane by lane: the generic conversion is a call in some builds
        for l in 0..<V.scalarCount { bytes[l] = Int8(truncatingIfNeeded: n[l]) }
        UnsafeMutableRawPointer(out + i).storeBytes(of: bytes, as: QuantizedBytesV.self)
        i += V.scalarCount
    }
    while i < count {
        let y = (x[i] * premultiplier) / scale
        let r = y >= 0 ? y + 0.5 : y - 0.5
        // |y| <= 127 for finite input; the guard keeps NaN / inf (allowed by the caller's
        // non-finite policy) from trapping in the conversion.
        out[i] = r > -128 && r < 128 ? Int8(truncatingIfNeeded: Int32(r)) : (r >= 128 ? 127 : (r <= -128 ? -127 : 0))
        i += 1
    }
}

/// floor(a) for 0 <= a < 2^23: round to nearest, then step down where that went up.
@inlinable @inline(__always)
func floorOfSmall(_ a: FloatV) -> FloatV {
    let magic = FloatV(repeating: 8388608.0)  // 2^23: adding it rounds to an integer
    let t = (a + magic) - magic
    return t.replacing(with: t - 1, where: t .> a)
}
