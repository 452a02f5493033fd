// P.V accumulation: O[r][0..<width] += sum_c P[r][c] * V[c][0..<width], fp32.
//
// Register tile: 4 rows x 16 output channels (8 accumulators); each key step is two vector
// loads of V, four broadcasts of P and eight multiply-adds. The accumulator tile O lives in
// the caller's workspace and is loaded/stored once per call.

/// Accumulates `O += P * V` for `rows` (multiple of 4; padded rows readable and writable)
/// x `width` (multiple of 8) outputs over `count` keys.
///
/// - Parameters:
///   - p: probabilities, row stride `pStride`.
///   - v: values, `count` rows with row stride `vStride` (at least `width` readable floats each).
///   - o: accumulators, row stride `oStride`.
public func accumulateProbabilityValue(
    p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
    v: UnsafePointer<Float>, vStride: Int, width: Int,
    o: UnsafeMutablePointer<Float>, oStride: Int
) {
    var r = 0
    while r < rows {
        let p0 = p + r * pStride, p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride
        let o0 = o + r * oStride, o1 = o0 + oStride, o2 = o1 + oStride, o3 = o2 + oStride
        var x = 0
        while x + 16 <= width {
            var a00 = load8(o0 + x), a01 = load8(o0 + x + 8)
            var a10 = load8(o1 + x), a11 = load8(o1 + x + 8)
            var a20 = load8(o2 + x), a21 = load8(o2 + x + 8)
            var a30 = load8(o3 + x), a31 = load8(o3 + x + 8)
            var vp = v + x
            for c in 0..<count {
                let v0 = load8(vp), v1 = load8(vp + 8)
                let b0 = Float8(repeating: p0[c])
                a00 = multiplyAdd(b0, v0, a00); a01 = multiplyAdd(b0, v1, a01)
                let b1 = Float8(repeating: p1[c])
                a10 = multiplyAdd(b1, v0, a10); a11 = multiplyAdd(b1, v1, a11)
                let b2 = Float8(repeating: p2[c])
                a20 = multiplyAdd(b2, v0, a20); a21 = multiplyAdd(b2, v1, a21)
                let b3 = Float8(repeating: p3[c])
                a30 = multiplyAdd(b3, v0, a30); a31 = multiplyAdd(b3, v1, a31)
                vp += vStride
            }
            store8(a00, o0 + x); store8(a01, o0 + x + 8)
            store8(a10, o1 + x); store8(a11, o1 + x + 8)
            store8(a20, o2 + x); store8(a21, o2 + x + 8)
            store8(a30, o3 + x); store8(a31, o3 + x + 8)
            x += 16
        }
        if x < width {  // one remaining group of 8 channels
            var a0 = load8(o0 + x), a1 = load8(o1 + x), a2 = load8(o2 + x), a3 = load8(o3 + x)
            var vp = v + x
            for c in 0..<count {
                let v0 = load8(vp)
                a0 = multiplyAdd(Float8(repeating: p0[c]), v0, a0)
                a1 = multiplyAdd(Float8(repeating: p1[c]), v0, a1)
                a2 = multiplyAdd(Float8(repeating: p2[c]), v0, a2)
                a3 = multiplyAdd(Float8(repeating: p3[c]), v0, a3)
                vp += vStride
            }
            store8(a0, o0 + x); store8(a1, o1 + x); store8(a2, o2 + x); store8(a3, o3 + x)
        }
        r += 4
    }
}
