// INT8 score tile: S[r][c] = scale * sum_d q[r][d] * k[c][d], int32 accumulation.
//
// Register tile: 4 rows x 2 vectors of int32 accumulators (4 x 16 columns with 8 lanes, 4 x 32
// in the AVX-512 set) + 2 key vectors + 1 broadcast: 11 registers. With AVX-512 VNNI each
// multiply-add is one 512-bit `vpdpwssd`. Rows come in the packed-pair row layout, columns in the pair-major
// layout (see PairPacking.swift). Integer sums are exact, so every kernel set gives the same
// int32 sums; only the final fp32 scaling is per lane and identical too.

extension KernelSet {
    /// Computes a score tile from packed INT8 operands.
    ///
    /// - Parameters:
    ///   - q: `rows` packed query rows, `pairs` Int32 words each, row stride `qStride` words.
    ///     `rows` is a multiple of 4: the caller provides readable zero rows.
    ///   - k: pair-major key block with `columns` columns (a multiple of 16).
    ///   - scale: factor applied to every int32 sum (query scale x key scale x softmax scale).
    ///   - out: `rows x columns` fp32 tile with row stride `outStride`.
    @inline(never)
    public static func int8ScoreTile(
        q: UnsafePointer<Int32>, qStride: Int, rows: Int,
        k: UnsafePointer<Int16>, columns: Int, pairs: Int,
        scale: Float,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        let n = Int32V.scalarCount
        let s = ScoreFloatV(repeating: scale)
        var r = 0
        while r < rows {
            let q0 = q + r * qStride, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride
            var c = 0
            #if SPARGE_VNNI512
            // 4 rows x 4 zmm accumulators (64 columns): each q pair broadcast once per 64 columns.
            while c + 4 * n <= columns {
                int8ScoreFourVectors(q: (q0, q1, q2, q3), k: k + 2 * c, columns: columns, pairs: pairs, scale: s,
                                     out: out + r * outStride + c, outStride: outStride)
                c += 4 * n
            }
            #endif
            while c < columns {
                var a00 = Int32V(), a01 = Int32V(), a10 = Int32V(), a11 = Int32V()
                var a20 = Int32V(), a21 = Int32V(), a30 = Int32V(), a31 = Int32V()
                var kp = k + 2 * c
                for p in 0..<pairs {
                    let k0 = loadPairs(kp), k1 = loadPairs(kp + 2 * n)
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
                store(convertToFloat(a00) * s, o); store(convertToFloat(a01) * s, o + n)
                store(convertToFloat(a10) * s, o + outStride); store(convertToFloat(a11) * s, o + outStride + n)
                store(convertToFloat(a20) * s, o + 2 * outStride); store(convertToFloat(a21) * s, o + 2 * outStride + n)
                store(convertToFloat(a30) * s, o + 3 * outStride); store(convertToFloat(a31) * s, o + 3 * outStride + n)
                c += 2 * n
            }
            r += 4
        }
    }
}

#if SPARGE_VNNI512
/// Four rows x four vectors of columns of the INT8 score tile.
@inline(__always)
func int8ScoreFourVectors(
    q: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>),
    k: UnsafePointer<Int16>, columns: Int, pairs: Int, scale s: ScoreFloatV,
    out: UnsafeMutablePointer<Float>, outStride: Int
) {
    let n = Int32V.scalarCount
    var a00 = Int32V(), a01 = Int32V(), a02 = Int32V(), a03 = Int32V()
    var a10 = Int32V(), a11 = Int32V(), a12 = Int32V(), a13 = Int32V()
    var a20 = Int32V(), a21 = Int32V(), a22 = Int32V(), a23 = Int32V()
    var a30 = Int32V(), a31 = Int32V(), a32 = Int32V(), a33 = Int32V()
    var kp = k
    for p in 0..<pairs {
        let k0 = loadPairs(kp), k1 = loadPairs(kp + 2 * n), k2 = loadPairs(kp + 4 * n), k3 = loadPairs(kp + 6 * n)
        let b0 = broadcastPair(q.0[p])
        a00 = multiplyAddPairs(b0, k0, a00); a01 = multiplyAddPairs(b0, k1, a01)
        a02 = multiplyAddPairs(b0, k2, a02); a03 = multiplyAddPairs(b0, k3, a03)
        let b1 = broadcastPair(q.1[p])
        a10 = multiplyAddPairs(b1, k0, a10); a11 = multiplyAddPairs(b1, k1, a11)
        a12 = multiplyAddPairs(b1, k2, a12); a13 = multiplyAddPairs(b1, k3, a13)
        let b2 = broadcastPair(q.2[p])
        a20 = multiplyAddPairs(b2, k0, a20); a21 = multiplyAddPairs(b2, k1, a21)
        a22 = multiplyAddPairs(b2, k2, a22); a23 = multiplyAddPairs(b2, k3, a23)
        let b3 = broadcastPair(q.3[p])
        a30 = multiplyAddPairs(b3, k0, a30); a31 = multiplyAddPairs(b3, k1, a31)
        a32 = multiplyAddPairs(b3, k2, a32); a33 = multiplyAddPairs(b3, k3, a33)
        kp += 2 * columns
    }
    let o1 = out + outStride, o2 = o1 + outStride, o3 = o2 + outStride
    store(convertToFloat(a00) * s, out); store(convertToFloat(a01) * s, out + n)
    store(convertToFloat(a02) * s, out + 2 * n); store(convertToFloat(a03) * s, out + 3 * n)
    store(convertToFloat(a10) * s, o1); store(convertToFloat(a11) * s, o1 + n)
    store(convertToFloat(a12) * s, o1 + 2 * n); store(convertToFloat(a13) * s, o1 + 3 * n)
    store(convertToFloat(a20) * s, o2); store(convertToFloat(a21) * s, o2 + n)
    store(convertToFloat(a22) * s, o2 + 2 * n); store(convertToFloat(a23) * s, o2 + 3 * n)
    store(convertToFloat(a30) * s, o3); store(convertToFloat(a31) * s, o3 + n)
    store(convertToFloat(a32) * s, o3 + 2 * n); store(convertToFloat(a33) * s, o3 + 3 * n)
}
#endif
