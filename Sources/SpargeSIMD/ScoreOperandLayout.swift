// How this kernel set packs the INT8 operands of its score tile: int16 channel pairs
// (PairPacking.swift) in every set but the AVX-512 VNNI one, which packs channel quads
// (QuadPacking.swift) for `vpdpbusd`. A key block packed by one set is read only by that set's
// `int8ScoreTile`: the storage of a call, a plan's workspace or a KV cache chooses its set once.

extension KernelSet {
    /// The word that fills padding query rows (a row of zeros in this set's layout).
    public static var scoreRowPadding: Int32 {
        #if SPARGE_VNNI512
        zeroQuadWord
        #else
        0
        #endif
    }

    /// Packs `rows` int8 query rows of `d` channels (row stride `d`) as the rows of
    /// ``int8ScoreTile(q:qStride:rows:k:columns:pairs:scale:terms:out:outStride:)``, `rowStride`
    /// words apart (at least `pairCount(d)`), and rows `rows..<rowsPad` as rows of zeros.
    ///
    /// A packed row is written only as far as the tile reads it: in the quad layout that is
    /// half of `pairCount(d)` words, and the rest of each row is left as it was (filling it
    /// doubled the bytes this pass writes).
    @inline(never)
    public static func packScoreQueries(_ q8: UnsafePointer<Int8>, rows: Int, d: Int, rowStride: Int, rowsPad: Int,
                                        into packed: UnsafeMutablePointer<Int32>) {
        for r in 0..<rows {
            #if SPARGE_VNNI512
            packRowQuads(q8 + r * d, d: d, into: packed + r * rowStride)
            #else
            packRowPairs(q8 + r * d, d: d, into: packed + r * rowStride)
            #endif
        }
        if rows < rowsPad { (packed + rows * rowStride).update(repeating: scoreRowPadding, count: (rowsPad - rows) * rowStride) }
    }

    /// Packs `rows` int8 key rows of `d` channels (row stride `stride`) as the column operand of
    /// ``int8ScoreTile(q:qStride:rows:k:columns:pairs:scale:terms:out:outStride:)``, zero up to
    /// `columns` keys; `packed` holds
    /// `(pairCount(d) + 1) * columns` Int32 words (either layout fits).
    @inline(never)
    public static func packScoreKeys(_ k8: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int, columns: Int,
                                     into packed: UnsafeMutablePointer<Int16>) {
        #if SPARGE_VNNI512
        packColumnQuads(k8, rows: rows, d: d, stride: stride, columns: columns, into: UnsafeMutableRawPointer(packed))
        #else
        packColumnPairs(k8, rows: rows, d: d, stride: stride, columns: columns, into: packed)
        #endif
    }
}
