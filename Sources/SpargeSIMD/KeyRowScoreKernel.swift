// Scores of a few query rows against key rows read where they lie: S[r][j] = q_r . k_j.
//
// The exact decode path's Q K^T. A KV cache holds K token by token and a decode step reads
// each key once, so no transposed panel is built (FloatScoreKernel.swift's tiles take K^T).
// Register tile: 4 query rows x 2 keys, eight vector accumulators walking the channels
// together, each reduced by `horizontalSum` at the end. Every (row, key) sum takes the same
// steps whichever tile computes it (channel vectors in order, a zero-padded last vector, the
// same reduction), so a score does not depend on the row or key count, and 16-bit keys
// widened as they are loaded give, bit for bit, the fp32 kernel's scores over the widened keys.

extension KernelSet {
    /// `out[r][j] = sum_c q[r][c] * k[j][c]` for `rows` (a multiple of 4; the padded rows
    /// readable) x `count` keys over `depth` channels.
    ///
    /// - Parameters:
    ///   - q: query rows, row stride `qStride` (`depth` readable floats each).
    ///   - k: `count` key rows, row stride `kStride` (`depth` readable floats each).
    ///   - out: scores, row stride `outStride`.
    @inline(never)
    public static func keyRowScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        k: UnsafePointer<Float>, kStride: Int, count: Int, depth: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        queryRowsTimesKeyRows(Float32Rows.self, q: q, qStride: qStride, rows: rows, k: k, kStride: kStride, count: count,
                              depth: depth, out: out, outStride: outStride)
    }

    /// ``keyRowScoreTile(q:qStride:rows:k:kStride:count:depth:out:outStride:)`` over 16-bit
    /// keys (fp16, or bf16 with `bfloat16`; `kStride` in elements), widened as they are loaded.
    @inline(never)
    public static func halfKeyRowScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        k: UnsafePointer<UInt16>, kStride: Int, count: Int, depth: Int, bfloat16: Bool,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        if bfloat16 {
            queryRowsTimesKeyRows(BFloat16Rows.self, q: q, qStride: qStride, rows: rows, k: k, kStride: kStride, count: count,
                                  depth: depth, out: out, outStride: outStride)
        } else {
            queryRowsTimesKeyRows(Float16Rows.self, q: q, qStride: qStride, rows: rows, k: k, kStride: kStride, count: count,
                                  depth: depth, out: out, outStride: outStride)
        }
    }
}

/// The key-row score tile over keys of any stored element type (see the entry points).
@inline(__always)
func queryRowsTimesKeyRows<E: RowElements>(
    _ e: E.Type, q: UnsafePointer<Float>, qStride: Int, rows: Int,
    k: UnsafePointer<E.Stored>, kStride: Int, count: Int, depth: Int,
    out: UnsafeMutablePointer<Float>, outStride: Int
) {
    let n = FloatV.scalarCount
    let full = depth - depth % n, tail = depth - full
    var r = 0
    while r < rows {
        let q0 = q + r * qStride, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride
        let o0 = out + r * outStride, o1 = o0 + outStride, o2 = o1 + outStride, o3 = o2 + outStride
        // The rows' last, partial vectors, zero-padded once for every key.
        let t0: FloatV = Float32Rows.loadPartial(q0 + full, count: tail), t1: FloatV = Float32Rows.loadPartial(q1 + full, count: tail)
        let t2: FloatV = Float32Rows.loadPartial(q2 + full, count: tail), t3: FloatV = Float32Rows.loadPartial(q3 + full, count: tail)
        var j = 0
        while j + 2 <= count {
            let ka = k + j * kStride, kb = ka + kStride
            var a0 = FloatV(), a1 = FloatV(), a2 = FloatV(), a3 = FloatV()
            var b0 = FloatV(), b1 = FloatV(), b2 = FloatV(), b3 = FloatV()
            var c = 0
            while c < full {
                let x: FloatV = E.load(ka + c), y: FloatV = E.load(kb + c)
                let v0: FloatV = load(q0 + c), v1: FloatV = load(q1 + c), v2: FloatV = load(q2 + c), v3: FloatV = load(q3 + c)
                a0 = multiplyAdd(v0, x, a0); b0 = multiplyAdd(v0, y, b0)
                a1 = multiplyAdd(v1, x, a1); b1 = multiplyAdd(v1, y, b1)
                a2 = multiplyAdd(v2, x, a2); b2 = multiplyAdd(v2, y, b2)
                a3 = multiplyAdd(v3, x, a3); b3 = multiplyAdd(v3, y, b3)
                c += n
            }
            if tail > 0 {
                let x: FloatV = E.loadPartial(ka + full, count: tail), y: FloatV = E.loadPartial(kb + full, count: tail)
                a0 = multiplyAdd(t0, x, a0); b0 = multiplyAdd(t0, y, b0)
                a1 = multiplyAdd(t1, x, a1); b1 = multiplyAdd(t1, y, b1)
                a2 = multiplyAdd(t2, x, a2); b2 = multiplyAdd(t2, y, b2)
                a3 = multiplyAdd(t3, x, a3); b3 = multiplyAdd(t3, y, b3)
            }
            o0[j] = horizontalSum(a0); o0[j + 1] = horizontalSum(b0)
            o1[j] = horizontalSum(a1); o1[j + 1] = horizontalSum(b1)
            o2[j] = horizontalSum(a2); o2[j + 1] = horizontalSum(b2)
            o3[j] = horizontalSum(a3); o3[j + 1] = horizontalSum(b3)
            j += 2
        }
        if j < count {  // an odd last key: the same steps, one key
            let ka = k + j * kStride
            var a0 = FloatV(), a1 = FloatV(), a2 = FloatV(), a3 = FloatV()
            var c = 0
            while c < full {
                let x: FloatV = E.load(ka + c)
                a0 = multiplyAdd(load(q0 + c), x, a0)
                a1 = multiplyAdd(load(q1 + c), x, a1)
                a2 = multiplyAdd(load(q2 + c), x, a2)
                a3 = multiplyAdd(load(q3 + c), x, a3)
                c += n
            }
            if tail > 0 {
                let x: FloatV = E.loadPartial(ka + full, count: tail)
                a0 = multiplyAdd(t0, x, a0); a1 = multiplyAdd(t1, x, a1)
                a2 = multiplyAdd(t2, x, a2); a3 = multiplyAdd(t3, x, a3)
            }
            o0[j] = horizontalSum(a0); o1[j] = horizontalSum(a1); o2[j] = horizontalSum(a2); o3[j] = horizontalSum(a3)
        }
        r += 4
    }
}
