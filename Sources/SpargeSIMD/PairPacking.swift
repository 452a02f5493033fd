// Packed layouts for the INT8 score micro-kernel.
//
// A row operand (a query row) is stored as `pairs = ceil(D/2)` Int32 words, each holding two
// consecutive int8 values widened to int16 (low half = even element). A column operand
// (a block of keys) is stored "pair-major": for each pair p, for each column c, the two
// int16 values (k[c][2p], k[c][2p+1]). Eight consecutive columns of one pair are then one
// `Int16x16`, which multiplies against a broadcast query pair with one `pmaddwd`.
// Odd D is padded with a zero element; missing rows/columns are zero.

/// Number of int16 pairs needed for a reduction length `d`.
@inlinable @inline(__always)
public func pairCount(_ d: Int) -> Int { (d + 1) / 2 }

/// Widens `d` int8 values into `pairCount(d)` packed pairs (a query-side row).
@inlinable @inline(__always)
public func packRowPairs(_ src: UnsafePointer<Int8>, d: Int, into dst: UnsafeMutablePointer<Int32>) {
    let pairs = pairCount(d)
    for p in 0..<pairs {
        let lo = Int32(src[2 * p])
        let hi: Int32 = 2 * p + 1 < d ? Int32(src[2 * p + 1]) : 0
        dst[p] = (lo & 0xFFFF) | (hi &<< 16)
    }
}

/// Packs `rows` int8 rows of length `d` (row stride `stride`) into the pair-major column
/// layout with `columns` columns (`columns >= rows`; extra columns are zero).
/// `dst` must hold `pairCount(d) * columns * 2` Int16 values.
public func packColumnPairs(
    _ src: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int,
    columns: Int, into dst: UnsafeMutablePointer<Int16>
) {
    let pairs = pairCount(d)
    dst.update(repeating: 0, count: pairs * columns * 2)
    for c in 0..<rows {
        let row = src + c * stride
        for p in 0..<pairs {
            let base = (p * columns + c) * 2
            dst[base] = Int16(row[2 * p])
            if 2 * p + 1 < d { dst[base + 1] = Int16(row[2 * p + 1]) }
        }
    }
}
