// fp32 score tile for the dense path: S[r][c] = sum_d q[r][d] * kT[d][c].
//
// Same 4 x 2-vector register tile as the INT8 kernel; the key block is stored transposed
// (`kT[d][c]`, row stride `columns`) so that each step is two vector loads, four broadcasts
// and eight multiply-adds.

extension KernelSet {
    /// Computes `out[r][c] = sum_d q[r][d] * kT[d][c]` for `rows` (multiple of 4, padded rows
    /// readable) x `columns` (multiple of ``columnTile``).
    @inline(never)
    public static func floatScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        kT: UnsafePointer<Float>, columns: Int, depth: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        let n = FloatV.scalarCount
        var r = 0
        while r < rows {
            let q0 = q + r * qStride, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride
            var c = 0
            while c < columns {
                var a00 = FloatV(), a01 = FloatV(), a10 = FloatV(), a11 = FloatV()
                var a20 = FloatV(), a21 = FloatV(), a30 = FloatV(), a31 = FloatV()
                var kp = kT + c
                for d in 0..<depth {
                    let k0: FloatV = load(kp), k1: FloatV = load(kp + n)
                    let b0 = FloatV(repeating: q0[d])
                    a00 = multiplyAdd(b0, k0, a00); a01 = multiplyAdd(b0, k1, a01)
                    let b1 = FloatV(repeating: q1[d])
                    a10 = multiplyAdd(b1, k0, a10); a11 = multiplyAdd(b1, k1, a11)
                    let b2 = FloatV(repeating: q2[d])
                    a20 = multiplyAdd(b2, k0, a20); a21 = multiplyAdd(b2, k1, a21)
                    let b3 = FloatV(repeating: q3[d])
                    a30 = multiplyAdd(b3, k0, a30); a31 = multiplyAdd(b3, k1, a31)
                    kp += columns
                }
                let o = out + r * outStride + c
                store(a00, o); store(a01, o + n)
                store(a10, o + outStride); store(a11, o + outStride + n)
                store(a20, o + 2 * outStride); store(a21, o + 2 * outStride + n)
                store(a30, o + 3 * outStride); store(a31, o + 3 * outStride + n)
                c += 2 * n
            }
            r += 4
        }
    }
}

/// Transposes `rows` rows of length `depth` (row stride `stride`) into `kT[d][c]` with
/// `columns` columns (`columns >= rows`, extra columns zero).
public func transposeBlock(
    _ src: UnsafePointer<Float>, rows: Int, depth: Int, stride: Int,
    columns: Int, into kT: UnsafeMutablePointer<Float>
) {
    kT.update(repeating: 0, count: depth * columns)
    for c in 0..<rows {
        let row = src + c * stride
        for d in 0..<depth { kT[d * columns + c] = row[d] }
    }
}
