// fp32 score tile for the dense path: S[r][c] = sum_d q[r][d] * kT[d][c].
//
// Same 4 x 2-vector register tile as the INT8 kernel (4 x 4 first in the AVX-512 set); the
// key block is stored transposed (`kT[d][c]`, row stride `columns`) so that each step is two
// vector loads, four broadcasts and eight multiply-adds. The depth goes in slices of 64, each
// taken by every row before the next: a slice of kT (16 KB for 64 keys) stays in L1.

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
                    let q0 = q + r * qStride + d0
                    floatScoreFourVectors(q: (q0, q0 + qStride, q0 + 2 * qStride, q0 + 3 * qStride),
                                          kT: kT + d0 * columns + firstColumn, columns: columns, depth: slice,
                                          out: out + r * outStride + firstColumn, outStride: outStride, accumulate: d0 > 0)
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
                    floatScoreTwoVectors(q: (q0, q0 + qStride, q0 + 2 * qStride, q0 + 3 * qStride),
                                         kT: kT + d0 * columns + c, columns: columns, depth: slice,
                                         out: out + r * outStride + c, outStride: outStride, accumulate: d0 > 0)
                    c += 2 * n
                }
                r += 4
            }
            d0 += slice
        }
    }
}

/// Four rows x two vectors of columns of the fp32 score tile over `depth` channels, added to
/// `out`'s sums with `accumulate`.
@inline(__always)
func floatScoreTwoVectors(
    q: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
    kT: UnsafePointer<Float>, columns: Int, depth: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
    accumulate: Bool
) {
    let n = FloatV.scalarCount
    let o1 = out + outStride, o2 = o1 + outStride, o3 = o2 + outStride
    var a00 = FloatV(), a01 = FloatV(), a10 = FloatV(), a11 = FloatV()
    var a20 = FloatV(), a21 = FloatV(), a30 = FloatV(), a31 = FloatV()
    if accumulate {
        a00 = load(out); a01 = load(out + n); a10 = load(o1); a11 = load(o1 + n)
        a20 = load(o2); a21 = load(o2 + n); a30 = load(o3); a31 = load(o3 + n)
    }
    var kp = kT
    for d in 0..<depth {
        let k0: FloatV = load(kp), k1: FloatV = load(kp + n)
        let b0 = FloatV(repeating: q.0[d])
        a00 = multiplyAdd(b0, k0, a00); a01 = multiplyAdd(b0, k1, a01)
        let b1 = FloatV(repeating: q.1[d])
        a10 = multiplyAdd(b1, k0, a10); a11 = multiplyAdd(b1, k1, a11)
        let b2 = FloatV(repeating: q.2[d])
        a20 = multiplyAdd(b2, k0, a20); a21 = multiplyAdd(b2, k1, a21)
        let b3 = FloatV(repeating: q.3[d])
        a30 = multiplyAdd(b3, k0, a30); a31 = multiplyAdd(b3, k1, a31)
        kp += columns
    }
    store(a00, out); store(a01, out + n)
    store(a10, o1); store(a11, o1 + n)
    store(a20, o2); store(a21, o2 + n)
    store(a30, o3); store(a31, o3 + n)
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

#if SPARGE_AVX512
/// Four rows x four vectors of columns of the fp32 score tile.
@inline(__always)
func floatScoreFourVectors(
    q: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
    kT: UnsafePointer<Float>, columns: Int, depth: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
    accumulate: Bool
) {
    let n = FloatV.scalarCount
    let o1 = out + outStride, o2 = o1 + outStride, o3 = o2 + outStride
    var a00 = FloatV(), a01 = FloatV(), a02 = FloatV(), a03 = FloatV()
    var a10 = FloatV(), a11 = FloatV(), a12 = FloatV(), a13 = FloatV()
    var a20 = FloatV(), a21 = FloatV(), a22 = FloatV(), a23 = FloatV()
    var a30 = FloatV(), a31 = FloatV(), a32 = FloatV(), a33 = FloatV()
    if accumulate {
        a00 = load(out); a01 = load(out + n); a02 = load(out + 2 * n); a03 = load(out + 3 * n)
        a10 = load(o1); a11 = load(o1 + n); a12 = load(o1 + 2 * n); a13 = load(o1 + 3 * n)
        a20 = load(o2); a21 = load(o2 + n); a22 = load(o2 + 2 * n); a23 = load(o2 + 3 * n)
        a30 = load(o3); a31 = load(o3 + n); a32 = load(o3 + 2 * n); a33 = load(o3 + 3 * n)
    }
    var kp = kT
    for d in 0..<depth {
        let k0: FloatV = load(kp), k1: FloatV = load(kp + n), k2: FloatV = load(kp + 2 * n), k3: FloatV = load(kp + 3 * n)
        let b0 = FloatV(repeating: q.0[d])
        a00 = multiplyAdd(b0, k0, a00); a01 = multiplyAdd(b0, k1, a01); a02 = multiplyAdd(b0, k2, a02); a03 = multiplyAdd(b0, k3, a03)
        let b1 = FloatV(repeating: q.1[d])
        a10 = multiplyAdd(b1, k0, a10); a11 = multiplyAdd(b1, k1, a11); a12 = multiplyAdd(b1, k2, a12); a13 = multiplyAdd(b1, k3, a13)
        let b2 = FloatV(repeating: q.2[d])
        a20 = multiplyAdd(b2, k0, a20); a21 = multiplyAdd(b2, k1, a21); a22 = multiplyAdd(b2, k2, a22); a23 = multiplyAdd(b2, k3, a23)
        let b3 = FloatV(repeating: q.3[d])
        a30 = multiplyAdd(b3, k0, a30); a31 = multiplyAdd(b3, k1, a31); a32 = multiplyAdd(b3, k2, a32); a33 = multiplyAdd(b3, k3, a33)
        kp += columns
    }
    store(a00, out); store(a01, out + n); store(a02, out + 2 * n); store(a03, out + 3 * n)
    store(a10, o1); store(a11, o1 + n); store(a12, o1 + 2 * n); store(a13, o1 + 3 * n)
    store(a20, o2); store(a21, o2 + n); store(a22, o2 + 2 * n); store(a23, o2 + 3 * n)
    store(a30, o3); store(a31, o3 + n); store(a32, o3 + 2 * n); store(a33, o3 + 3 * n)
}
#endif

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
