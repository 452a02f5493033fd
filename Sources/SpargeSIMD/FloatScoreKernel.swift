// fp32 score tile for the dense path: S[r][c] = sum_d q[r][d] * kT[d][c].
//
// The register tiles of RowTimesPanelTiles.swift, 4 x 2 vectors (4 x 4 first in the AVX-512
// set), with a = Q's rows and B = the key block stored transposed (`kT[d][c]`, row stride
// `columns`). The depth goes in slices of 64, each taken by every row before the next: a slice
// of kT (16 KB for 64 keys) stays in L1.

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
        var firstColumn = 0  // the first column the row-by-row loop below takes
        #if SPARGE_AVX512
        // 32 zmm registers: 4 rows x 4 vectors (64 columns) read each q element once per
        // 64 columns; the same sums in the same order as the 4 x 2 tile. Rows inside, and the
        // depth in slices of 64 outside: one slice of kT (64 x 64, 16 KB) stays in L1 while
        // every row takes it, the running sums wait in `out` (exact: the same order of additions).
        // With D = 128 the whole kT is 32 KB, all of Zen 4's L1.
        while firstColumn + 4 * n <= columns {
            var d0 = 0
            while d0 < depth {
                let slice = Swift.min(64, depth - d0)
                var r = 0
                while r < rows {
                    let q0 = q + r * qStride + d0, o0 = out + r * outStride + firstColumn
                    fourRowsTimesFourVectors(Float32Rows.self, a: (q0, q0 + qStride, q0 + 2 * qStride, q0 + 3 * qStride), count: slice,
                                             b: kT + d0 * columns + firstColumn, bStride: columns,
                                             out: (o0, o0 + outStride, o0 + 2 * outStride, o0 + 3 * outStride), accumulate: d0 > 0)
                    r += 4
                }
                d0 += slice
            }
            firstColumn += 4 * n
        }
        #endif
        // Every set: 4 rows x 2 vectors, the depth in slices of 64 outside as above.
        var d0 = 0
        while d0 < depth && firstColumn < columns {
            let slice = Swift.min(64, depth - d0)
            var r = 0
            while r < rows {
                let q0 = q + r * qStride + d0
                var c = firstColumn
                while c < columns {
                    let o0 = out + r * outStride + c
                    fourRowsTimesTwoVectors(Float32Rows.self, a: (q0, q0 + qStride, q0 + 2 * qStride, q0 + 3 * qStride), count: slice,
                                            b: kT + d0 * columns + c, bStride: columns,
                                            out: (o0, o0 + outStride, o0 + 2 * outStride, o0 + 3 * outStride), accumulate: d0 > 0)
                    c += 2 * n
                }
                r += 4
            }
            d0 += slice
        }
    }
}

extension KernelSet {
    /// Computes `out[c] = sum_d x[d] * kT[d][c]` for one row `x` of `depth` values and
    /// `columns` columns (a multiple of 8): Q smoothing's mean-times-key scores of a tile.
    /// Four vector accumulators in flight (four independent multiply-add chains), then one.
    @inline(never)
    public static func rowTimesColumns(
        _ x: UnsafePointer<Float>, kT: UnsafePointer<Float>, columns: Int, depth: Int, out: UnsafeMutablePointer<Float>
    ) {
        let n = FloatV.scalarCount
        var c = 0
        while c + 4 * n <= columns {
            var a0 = FloatV(), a1 = FloatV(), a2 = FloatV(), a3 = FloatV()
            var kp = kT + c
            for d in 0..<depth {
                let b = FloatV(repeating: x[d])
                a0 = multiplyAdd(b, load(kp), a0); a1 = multiplyAdd(b, load(kp + n), a1)
                a2 = multiplyAdd(b, load(kp + 2 * n), a2); a3 = multiplyAdd(b, load(kp + 3 * n), a3)
                kp += columns
            }
            store(a0, out + c); store(a1, out + c + n); store(a2, out + c + 2 * n); store(a3, out + c + 3 * n)
            c += 4 * n
        }
        while c < columns {
            var a = Float8()
            var kp = kT + c
            for d in 0..<depth {
                a = multiplyAdd(Float8(repeating: x[d]), load8(kp), a)
                kp += columns
            }
            store(a, out + c)
            c += 8
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
