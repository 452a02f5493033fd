// The fp32 register tiles of the attention tiles: four rows r, `out_r[0..<w] (+)= sum_i
// a_r[i] * B[i][0..<w]` over `count` steps, B's rows `bStride` floats apart. The score tile
// takes them with a = Q's rows and B = the transposed key block, the P.V tile with a = P's rows
// and B = V: one product, one register tile. Every accumulator is a named variable so that the
// tile stays in registers; each step is w / lanes vector loads of B, four broadcasts and
// 4 w / lanes multiply-adds, in the same order whatever the caller. B's rows are fp32, or
// 16-bit rows widened as they are loaded (`RowElements`).

/// Four row pointers (of `a`, or of the output).
typealias FourRows = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
typealias FourMutableRows = (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)

/// Four rows x two vectors: `out_r[0..<2n] (+)= sum_i a_r[i] * b[i][0..<2n]` (`+=` with `accumulate`).
@inline(__always)
func fourRowsTimesTwoVectors<E: RowElements>(_: E.Type, a: FourRows, count: Int, b: UnsafePointer<E.Stored>, bStride: Int,
    out o: FourMutableRows, accumulate: Bool) {
    let n = FloatV.scalarCount
    var a00 = FloatV(), a01 = FloatV(), a10 = FloatV(), a11 = FloatV()
    var a20 = FloatV(), a21 = FloatV(), a30 = FloatV(), a31 = FloatV()
    if accumulate {
        a00 = load(o.0); a01 = load(o.0 + n); a10 = load(o.1); a11 = load(o.1 + n)
        a20 = load(o.2); a21 = load(o.2 + n); a30 = load(o.3); a31 = load(o.3 + n)
    }
    var bp = b
    for i in 0..<count {
        let b0: FloatV = E.load(bp), b1: FloatV = E.load(bp + n)
        let x0 = FloatV(repeating: a.0[i])
        a00 = multiplyAdd(x0, b0, a00); a01 = multiplyAdd(x0, b1, a01)
        let x1 = FloatV(repeating: a.1[i])
        a10 = multiplyAdd(x1, b0, a10); a11 = multiplyAdd(x1, b1, a11)
        let x2 = FloatV(repeating: a.2[i])
        a20 = multiplyAdd(x2, b0, a20); a21 = multiplyAdd(x2, b1, a21)
        let x3 = FloatV(repeating: a.3[i])
        a30 = multiplyAdd(x3, b0, a30); a31 = multiplyAdd(x3, b1, a31)
        bp += bStride
    }
    store(a00, o.0); store(a01, o.0 + n)
    store(a10, o.1); store(a11, o.1 + n)
    store(a20, o.2); store(a21, o.2 + n)
    store(a30, o.3); store(a31, o.3 + n)
}

#if SPARGE_AVX512
/// Four rows x four vectors (16 accumulators of the 32 zmm registers): `out_r[0..<4n] (+)=
/// sum_i a_r[i] * b[i][0..<4n]`; each a element is read once per 64 columns.
@inline(__always)
func fourRowsTimesFourVectors<E: RowElements>(_: E.Type, a: FourRows, count: Int, b: UnsafePointer<E.Stored>, bStride: Int,
    out o: FourMutableRows, accumulate: Bool) {
    let n = FloatV.scalarCount
    var a00 = FloatV(), a01 = FloatV(), a02 = FloatV(), a03 = FloatV()
    var a10 = FloatV(), a11 = FloatV(), a12 = FloatV(), a13 = FloatV()
    var a20 = FloatV(), a21 = FloatV(), a22 = FloatV(), a23 = FloatV()
    var a30 = FloatV(), a31 = FloatV(), a32 = FloatV(), a33 = FloatV()
    if accumulate {
        a00 = load(o.0); a01 = load(o.0 + n); a02 = load(o.0 + 2 * n); a03 = load(o.0 + 3 * n)
        a10 = load(o.1); a11 = load(o.1 + n); a12 = load(o.1 + 2 * n); a13 = load(o.1 + 3 * n)
        a20 = load(o.2); a21 = load(o.2 + n); a22 = load(o.2 + 2 * n); a23 = load(o.2 + 3 * n)
        a30 = load(o.3); a31 = load(o.3 + n); a32 = load(o.3 + 2 * n); a33 = load(o.3 + 3 * n)
    }
    var bp = b
    for i in 0..<count {
        let b0: FloatV = E.load(bp), b1: FloatV = E.load(bp + n), b2: FloatV = E.load(bp + 2 * n), b3: FloatV = E.load(bp + 3 * n)
        let x0 = FloatV(repeating: a.0[i])
        a00 = multiplyAdd(x0, b0, a00); a01 = multiplyAdd(x0, b1, a01); a02 = multiplyAdd(x0, b2, a02); a03 = multiplyAdd(x0, b3, a03)
        let x1 = FloatV(repeating: a.1[i])
        a10 = multiplyAdd(x1, b0, a10); a11 = multiplyAdd(x1, b1, a11); a12 = multiplyAdd(x1, b2, a12); a13 = multiplyAdd(x1, b3, a13)
        let x2 = FloatV(repeating: a.2[i])
        a20 = multiplyAdd(x2, b0, a20); a21 = multiplyAdd(x2, b1, a21); a22 = multiplyAdd(x2, b2, a22); a23 = multiplyAdd(x2, b3, a23)
        let x3 = FloatV(repeating: a.3[i])
        a30 = multiplyAdd(x3, b0, a30); a31 = multiplyAdd(x3, b1, a31); a32 = multiplyAdd(x3, b2, a32); a33 = multiplyAdd(x3, b3, a33)
        bp += bStride
    }
    store(a00, o.0); store(a01, o.0 + n); store(a02, o.0 + 2 * n); store(a03, o.0 + 3 * n)
    store(a10, o.1); store(a11, o.1 + n); store(a12, o.1 + 2 * n); store(a13, o.1 + 3 * n)
    store(a20, o.2); store(a21, o.2 + n); store(a22, o.2 + 2 * n); store(a23, o.2 + 3 * n)
    store(a30, o.3); store(a31, o.3 + n); store(a32, o.3 + 2 * n); store(a33, o.3 + 3 * n)
}
#endif
