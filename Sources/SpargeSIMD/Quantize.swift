// Symmetric INT8 quantization with the GPU code's rounding.

/// Largest |x| over `count` floats.
@inlinable @inline(__always)
public func absoluteMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var m = Float8()
    var i = 0
    while i + 8 <= count {
        let v = load8(x + i)
        m = maximum(m, v.replacing(with: -v, where: v .< 0))
        i += 8
    }
    var r = horizontalMax(m)
    while i < count { r = Swift.max(r, Swift.abs(x[i])); i += 1 }
    return r
}

/// `out[i] = trunc(x[i] * premultiplier / scale + 0.5 * sign)`: round half away from zero of
/// `x / scale` computed with an fp32 division, exactly as the authors' Triton kernels do
/// (a multiplication by 1/scale would round differently on some elements).
/// The premultiplier (1 for plain quantization) is applied in fp32 before the division.
@inlinable @inline(__always)
public func quantizeRow(
    _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, scale: Float,
    into out: UnsafeMutablePointer<Int8>
) {
    for i in 0..<count {
        let y = (x[i] * premultiplier) / scale
        let r = y >= 0 ? y + 0.5 : y - 0.5
        // |y| <= 127 for finite input; the guard keeps NaN / inf (allowed by the caller's
        // non-finite policy) from trapping in the conversion.
        out[i] = r > -128 && r < 128 ? Int8(truncatingIfNeeded: Int32(r)) : (r >= 128 ? 127 : (r <= -128 ? -127 : 0))
    }
}
