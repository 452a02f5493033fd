// INT8 score tile: S[r][c] = scale * sum_d q[r][d] * k[c][d] (+ terms[c]), int32 accumulation.
//
// Register tile: 4 rows x 2 vectors of int32 accumulators (4 x 16 columns with 8 lanes, 4 x 32
// in the AVX-512 set, which also has a 4 x 4-vector tile) + the key vectors + 1 broadcast.
// The operands come in this set's score layout (ScoreOperandLayout.swift): int16 channel
// pairs (`vpmaddwd`, or `vpdpwssd` with VNNI) or, in the AVX-512 VNNI set, int8 channel quads
// (`vpdpbusd`: four multiply-adds per int32 lane, twice the pair rate). Integer sums are
// exact, so every kernel set gives the same int32 sums; only the final fp32 scaling (and the
// optional per-column term, added after it: a multiply then an add, never fused, so that
// every set rounds alike) is per lane and identical too.

#if SPARGE_VNNI512
import SpargeSIMDVNNI
#endif

extension KernelSet {
    /// Computes a score tile from packed INT8 operands.
    ///
    /// - Parameters:
    ///   - q: `rows` query rows packed by ``packScoreQueries(_:rows:d:rowStride:rowsPad:into:)``,
    ///     row stride `qStride` words. `rows` is a multiple of 4: the caller provides readable
    ///     padding rows.
    ///   - k: a key block packed by ``packScoreKeys(_:rows:d:stride:columns:into:)`` with
    ///     `columns` columns (a multiple of ``columnTile``).
    ///   - pairs: `pairCount(D)` (the channel count, in the unit of the pair layout).
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
        let s = ScoreFloatV(repeating: scale)
        let words = UnsafeRawPointer(k).assumingMemoryBound(to: Int32.self)
        #if SPARGE_VNNI512
        // Quads: the sums of the unsigned (q + 128) bytes carry 128 * sum(k[c]) per column,
        // stored after the quads and subtracted before scaling.
        let quads = (pairs + 1) / 2, corrections = words + quads * columns
        if let terms {
            packedProductTile(QuadProduct.self, a: q, aStride: qStride, rows: rows, b: words, columns: columns, depth: quads,
                              epilogue: Corrected(corrections: corrections, then: ScaledSumsPlusTerms(scale: s, terms: terms)),
                              out: out, outStride: outStride)
        } else {
            packedProductTile(QuadProduct.self, a: q, aStride: qStride, rows: rows, b: words, columns: columns, depth: quads,
                              epilogue: Corrected(corrections: corrections, then: ScaledSums(scale: s)), out: out, outStride: outStride)
        }
        #else
        // Two inlined copies of the tile loop, so that the usual call (no terms) carries no
        // branch per store.
        if let terms {
            packedProductTile(PairProduct.self, a: q, aStride: qStride, rows: rows, b: words, columns: columns, depth: pairs,
                              epilogue: ScaledSumsPlusTerms(scale: s, terms: terms), out: out, outStride: outStride)
        } else {
            packedProductTile(PairProduct.self, a: q, aStride: qStride, rows: rows, b: words, columns: columns, depth: pairs,
                              epilogue: ScaledSums(scale: s), out: out, outStride: outStride)
        }
        #endif
    }
}

/// What a packed-product tile does with each finished vector of int32 sums: `sums` are
/// columns `column..<column + n` of the tile; `out` points at that place of the output row.
protocol PairSumEpilogue {
    func finish(_ sums: Int32V, row: Int, column: Int, out: UnsafeMutablePointer<Float>)
}

/// Score tile: `out = sums * scale`.
struct ScaledSums: PairSumEpilogue {
    let scale: ScoreFloatV
    @inline(__always)
    func finish(_ sums: Int32V, row: Int, column: Int, out: UnsafeMutablePointer<Float>) {
        store(convertToFloat(sums) * scale, out)
    }
}

/// Score tile with Q smoothing's terms: `out = sums * scale + terms[column]` (multiply, then add).
struct ScaledSumsPlusTerms: PairSumEpilogue {
    let scale: ScoreFloatV
    let terms: UnsafePointer<Float>
    @inline(__always)
    func finish(_ sums: Int32V, row: Int, column: Int, out: UnsafeMutablePointer<Float>) {
        store(convertToFloat(sums) * scale + load(terms + column, as: ScoreFloatV.self), out)
    }
}

/// One step of the reduction dimension of a packed-product tile: a broadcast row word times a
/// vector of column words, accumulated into int32 lanes.
protocol PackedProduct {
    associatedtype Operand
    static func broadcast(_ word: Int32) -> Operand
    static func load(_ p: UnsafePointer<Int32>) -> Operand
    static func multiplyAdd(_ row: Operand, _ columns: Operand, _ acc: Int32V) -> Int32V
}

/// Words of two int16 channels (`multiplyAddPairs`).
enum PairProduct: PackedProduct {
    @inline(__always) static func broadcast(_ word: Int32) -> Int16V { broadcastPair(word) }
    @inline(__always) static func load(_ p: UnsafePointer<Int32>) -> Int16V { UnsafeRawPointer(p).loadUnaligned(as: Int16V.self) }
    @inline(__always) static func multiplyAdd(_ row: Int16V, _ columns: Int16V, _ acc: Int32V) -> Int32V {
        multiplyAddPairs(row, columns, acc)
    }
}

#if SPARGE_VNNI512
/// Words of four int8 channels, the row's unsigned and the columns' signed (`vpdpbusd`).
enum QuadProduct: PackedProduct {
    @inline(__always) static func broadcast(_ word: Int32) -> Int32V { Int32V(repeating: word) }
    @inline(__always) static func load(_ p: UnsafePointer<Int32>) -> Int32V { UnsafeRawPointer(p).loadUnaligned(as: Int32V.self) }
    @inline(__always) static func multiplyAdd(_ row: Int32V, _ columns: Int32V, _ acc: Int32V) -> Int32V {
        vnniMultiplyAddQuads(row, columns, acc)
    }
}

/// Subtracts a per-column int32 correction, then finishes with `then`.
struct Corrected<E: PairSumEpilogue>: PairSumEpilogue {
    let corrections: UnsafePointer<Int32>
    let then: E
    @inline(__always)
    func finish(_ sums: Int32V, row: Int, column: Int, out: UnsafeMutablePointer<Float>) {
        then.finish(sums &- UnsafeRawPointer(corrections + column).loadUnaligned(as: Int32V.self), row: row, column: column, out: out)
    }
}
#endif

/// The register-tiled packed-product loop shared by the INT8 score tile and the fixed-point
/// P.V tile: 4 rows at a time, `depth` words per row, the column operand depth-major
/// (word `(step, column)` at `b + step * columns + column`), `epilogue` called once per
/// finished vector of sums.
@inline(__always)
func packedProductTile<P: PackedProduct, E: PairSumEpilogue>(
    _: P.Type, a: UnsafePointer<Int32>, aStride: Int, rows: Int,
    b: UnsafePointer<Int32>, columns: Int, depth: Int,
    epilogue: E, out: UnsafeMutablePointer<Float>, outStride: Int
) {
    let n = Int32V.scalarCount
    var r = 0
    while r < rows {
        let q0 = a + r * aStride, q1 = q0 + aStride, q2 = q1 + aStride, q3 = q2 + aStride
        var c = 0
        #if SPARGE_VNNI512
        // 4 rows x 4 zmm accumulators (64 columns): each row word broadcast once per 64 columns.
        while c + 4 * n <= columns {
            packedProductFourVectors(P.self, a: (q0, q1, q2, q3), b: b + c, columns: columns, depth: depth,
                                     epilogue: epilogue, row: r, column: c, out: out + r * outStride + c, outStride: outStride)
            c += 4 * n
        }
        #endif
        while c < columns {
            var a00 = Int32V(), a01 = Int32V(), a10 = Int32V(), a11 = Int32V()
            var a20 = Int32V(), a21 = Int32V(), a30 = Int32V(), a31 = Int32V()
            var kp = b + c
            for p in 0..<depth {
                let k0 = P.load(kp), k1 = P.load(kp + n)
                let b0 = P.broadcast(q0[p])
                a00 = P.multiplyAdd(b0, k0, a00); a01 = P.multiplyAdd(b0, k1, a01)
                let b1 = P.broadcast(q1[p])
                a10 = P.multiplyAdd(b1, k0, a10); a11 = P.multiplyAdd(b1, k1, a11)
                let b2 = P.broadcast(q2[p])
                a20 = P.multiplyAdd(b2, k0, a20); a21 = P.multiplyAdd(b2, k1, a21)
                let b3 = P.broadcast(q3[p])
                a30 = P.multiplyAdd(b3, k0, a30); a31 = P.multiplyAdd(b3, k1, a31)
                kp += columns
            }
            let o = out + r * outStride + c
            epilogue.finish(a00, row: r, column: c, out: o); epilogue.finish(a01, row: r, column: c + n, out: o + n)
            epilogue.finish(a10, row: r + 1, column: c, out: o + outStride)
            epilogue.finish(a11, row: r + 1, column: c + n, out: o + outStride + n)
            epilogue.finish(a20, row: r + 2, column: c, out: o + 2 * outStride)
            epilogue.finish(a21, row: r + 2, column: c + n, out: o + 2 * outStride + n)
            epilogue.finish(a30, row: r + 3, column: c, out: o + 3 * outStride)
            epilogue.finish(a31, row: r + 3, column: c + n, out: o + 3 * outStride + n)
            c += 2 * n
        }
        r += 4
    }
}

#if SPARGE_VNNI512
/// Four rows x four vectors of columns of a packed-product tile.
@inline(__always)
func packedProductFourVectors<P: PackedProduct, E: PairSumEpilogue>(
    _: P.Type, a q: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>),
    b k: UnsafePointer<Int32>, columns: Int, depth: Int, epilogue e: E, row r: Int, column c: Int,
    out: UnsafeMutablePointer<Float>, outStride: Int
) {
    let n = Int32V.scalarCount
    let zero = (Int32V(), Int32V(), Int32V(), Int32V())
    var a0 = zero, a1 = zero, a2 = zero, a3 = zero  // one row of four accumulators each
    var kp = k
    for p in 0..<depth {
        let kv = (P.load(kp), P.load(kp + n), P.load(kp + 2 * n), P.load(kp + 3 * n))
        multiplyAddRow(P.self, P.broadcast(q.0[p]), kv, &a0)
        multiplyAddRow(P.self, P.broadcast(q.1[p]), kv, &a1)
        multiplyAddRow(P.self, P.broadcast(q.2[p]), kv, &a2)
        multiplyAddRow(P.self, P.broadcast(q.3[p]), kv, &a3)
        kp += columns
    }
    finishRow(e, a0, row: r, column: c, out: out)
    finishRow(e, a1, row: r + 1, column: c, out: out + outStride)
    finishRow(e, a2, row: r + 2, column: c, out: out + 2 * outStride)
    finishRow(e, a3, row: r + 3, column: c, out: out + 3 * outStride)
}

/// `acc.i += row * columns.i` for the four column vectors.
@inline(__always)
func multiplyAddRow<P: PackedProduct>(
    _: P.Type, _ row: P.Operand, _ columns: (P.Operand, P.Operand, P.Operand, P.Operand),
    _ acc: inout (Int32V, Int32V, Int32V, Int32V)
) {
    acc.0 = P.multiplyAdd(row, columns.0, acc.0); acc.1 = P.multiplyAdd(row, columns.1, acc.1)
    acc.2 = P.multiplyAdd(row, columns.2, acc.2); acc.3 = P.multiplyAdd(row, columns.3, acc.3)
}

/// The epilogue of one row's four vectors of sums (columns `c..<c + 4n`).
@inline(__always)
func finishRow<E: PairSumEpilogue>(_ e: E, _ sums: (Int32V, Int32V, Int32V, Int32V), row: Int, column c: Int,
                                   out: UnsafeMutablePointer<Float>) {
    let n = Int32V.scalarCount
    e.finish(sums.0, row: row, column: c, out: out); e.finish(sums.1, row: row, column: c + n, out: out + n)
    e.finish(sums.2, row: row, column: c + 2 * n, out: out + 2 * n); e.finish(sums.3, row: row, column: c + 3 * n, out: out + 3 * n)
}
#endif
