// INT8 score tile: S[r][c] = scale * sum_d q[r][d] * k[c][d] (+ terms[c]), int32 accumulation.
//
// Register tile: 4 rows x 2 vectors of int32 accumulators (4 x 16 columns with 8 lanes, 4 x 32
// in the AVX-512 set) + 2 key vectors + 1 broadcast: 11 registers. With AVX-512 VNNI each
// multiply-add is one 512-bit `vpdpwssd`. Rows come in the packed-pair row layout, columns in the pair-major
// layout (see PairPacking.swift). Integer sums are exact, so every kernel set gives the same
// int32 sums; only the final fp32 scaling (and the optional per-column term, added after it:
// a multiply then an add, never fused, so that every set rounds alike) is per lane and
// identical too.

extension KernelSet {
    /// Computes a score tile from packed INT8 operands.
    ///
    /// - Parameters:
    ///   - q: `rows` packed query rows, `pairs` Int32 words each, row stride `qStride` words.
    ///     `rows` is a multiple of 4: the caller provides readable zero rows.
    ///   - k: pair-major key block with `columns` columns (a multiple of 16).
    ///   - scale: factor applied to every int32 sum (query scale x key scale x softmax scale).
    ///   - terms: `columns` values added to every row after scaling (Q smoothing's
    ///     mean-times-key scores), or nil.
    ///   - out: `rows x columns` fp32 tile with row stride `outStride`.
    @inline(never)
    public static func int8ScoreTile(
        q: UnsafePointer<Int32>, qStride: Int, rows: Int,
        k: UnsafePointer<Int16>, columns: Int, pairs: Int,
        scale: Float, terms: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        // Two inlined copies of the tile loop, so that the usual call (no terms) carries no
        // branch per store.
        if let terms {
            int8ScoreTileLoop(q: q, qStride: qStride, rows: rows, k: k, columns: columns, pairs: pairs,
                              scale: scale, terms: terms, out: out, outStride: outStride)
        } else {
            int8ScoreTileLoop(q: q, qStride: qStride, rows: rows, k: k, columns: columns, pairs: pairs,
                              scale: scale, terms: nil, out: out, outStride: outStride)
        }
    }
}

/// The body of ``KernelSet/int8ScoreTile(q:qStride:rows:k:columns:pairs:scale:terms:out:outStride:)``.
@inline(__always)
func int8ScoreTileLoop(
    q: UnsafePointer<Int32>, qStride: Int, rows: Int,
    k: UnsafePointer<Int16>, columns: Int, pairs: Int,
    scale: Float, terms: UnsafePointer<Float>?,
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
                                 terms: terms.map { $0 + c }, out: out + r * outStride + c, outStride: outStride)
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
            let t0 = terms.map { $0 + c }, t1 = terms.map { $0 + c + n }
            storeScores(a00, s, t0, o); storeScores(a01, s, t1, o + n)
            storeScores(a10, s, t0, o + outStride); storeScores(a11, s, t1, o + outStride + n)
            storeScores(a20, s, t0, o + 2 * outStride); storeScores(a21, s, t1, o + 2 * outStride + n)
            storeScores(a30, s, t0, o + 3 * outStride); storeScores(a31, s, t1, o + 3 * outStride + n)
            c += 2 * n
        }
        r += 4
    }
}

#if SPARGE_VNNI512
/// Four rows x four vectors of columns of the INT8 score tile.
@inline(__always)
func int8ScoreFourVectors(
    q: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>),
    k: UnsafePointer<Int16>, columns: Int, pairs: Int, scale s: ScoreFloatV, terms: UnsafePointer<Float>?,
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
    let t0 = terms, t1 = terms.map { $0 + n }, t2 = terms.map { $0 + 2 * n }, t3 = terms.map { $0 + 3 * n }
    storeScores(a00, s, t0, out); storeScores(a01, s, t1, out + n)
    storeScores(a02, s, t2, out + 2 * n); storeScores(a03, s, t3, out + 3 * n)
    storeScores(a10, s, t0, o1); storeScores(a11, s, t1, o1 + n)
    storeScores(a12, s, t2, o1 + 2 * n); storeScores(a13, s, t3, o1 + 3 * n)
    storeScores(a20, s, t0, o2); storeScores(a21, s, t1, o2 + n)
    storeScores(a22, s, t2, o2 + 2 * n); storeScores(a23, s, t3, o2 + 3 * n)
    storeScores(a30, s, t0, o3); storeScores(a31, s, t1, o3 + n)
    storeScores(a32, s, t2, o3 + 2 * n); storeScores(a33, s, t3, o3 + 3 * n)
}
#endif

/// Stores `sums * scale`, plus the per-column terms when there are some.
@inline(__always)
func storeScores(_ sums: Int32V, _ scale: ScoreFloatV, _ terms: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>) {
    var x = convertToFloat(sums) * scale
    if let terms { x += load(terms, as: ScoreFloatV.self) }
    store(x, out)
}
