// INT8 score tile: S[r][c] = scale * sum_d q[r][d] * k[c][d], int32 accumulation.
//
// Register tile: 4 rows x 16 columns = 8 int32x8 accumulators (+ 2 key vectors + 1 broadcast),
// which fits the 16 AVX2 registers. Rows come in the packed-pair row layout, columns in the
// pair-major layout (see PairPacking.swift).

/// Computes a score tile from packed INT8 operands.
///
/// - Parameters:
///   - q: `rows` packed query rows, `pairs` Int32 words each, row stride `qStride` words.
///     `rows` is rounded up to a multiple of 4: the caller provides readable zero rows.
///   - k: pair-major key block with `columns` columns (a multiple of 16).
///   - scale: factor applied to every int32 sum (query scale x key scale x softmax scale).
///   - out: `rows x columns` fp32 tile with row stride `outStride`.
public func int8ScoreTile(
    q: UnsafePointer<Int32>, qStride: Int, rows: Int,
    k: UnsafePointer<Int16>, columns: Int, pairs: Int,
    scale: Float,
    out: UnsafeMutablePointer<Float>, outStride: Int
) {
    let s = Float8(repeating: scale)
    var r = 0
    while r < rows {
        let q0 = q + r * qStride, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride
        var c = 0
        while c < columns {
            var a00 = Int32x8(), a01 = Int32x8(), a10 = Int32x8(), a11 = Int32x8()
            var a20 = Int32x8(), a21 = Int32x8(), a30 = Int32x8(), a31 = Int32x8()
            var kp = k + 2 * c
            for p in 0..<pairs {
                let k0 = load16(kp), k1 = load16(kp + 16)
                let b0 = broadcastPair(q0[p])
                a00 = multiplyAddPairs(b0, k0, a00); a01 = multiplyAddPairs(b0, k1, a01)
                let b1 = broadcastPair(q1[p])
                a10 = multiplyAddPairs(b1, k0, a10); a11 = multiplyAddPairs(b1, k1, a11)
                let b2 = broadcastPair(q2[p])
                a20 = multiplyAddPairs(b2, k0, a20); a21 = multiplyAddPairs(b2, k1, a21)
                let b3 = broadcastPair(q3[p])
                a30 = multiplyAddPairs(b3, k0, a30); a31 = multiplyAddPairs(b3, k1, a31)
                kp += 2 * columns
            }
            let o = out + r * outStride + c
            store8(Float8(a00) * s, o); store8(Float8(a01) * s, o + 8)
            store8(Float8(a10) * s, o + outStride); store8(Float8(a11) * s, o + outStride + 8)
            store8(Float8(a20) * s, o + 2 * outStride); store8(Float8(a21) * s, o + 2 * outStride + 8)
            store8(Float8(a30) * s, o + 3 * outStride); store8(Float8(a31) * s, o + 3 * outStride + 8)
            c += 16
        }
        r += 4
    }
}
