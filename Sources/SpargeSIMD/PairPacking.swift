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
    var p = 0
    // Eight pairs at a time: 16 channels widened to int16 are, little-endian, 8 packed words.
    while 2 * p + 16 <= d {
        UnsafeMutableRawPointer(dst + p).storeBytes(of: widenedChannels(src + 2 * p), as: SIMD16<Int16>.self)
        p += 8
    }
    while p < pairs {
        dst[p] = packedPair(src, p, d: d)
        p += 1
    }
}

/// Channels 2p and 2p+1 of a row (the second 0 past `d`) as one packed word.
@inlinable @inline(__always)
func packedPair(_ src: UnsafePointer<Int8>, _ p: Int, d: Int) -> Int32 {
    let lo = Int32(src[2 * p])
    let hi: Int32 = 2 * p + 1 < d ? Int32(src[2 * p + 1]) : 0
    return (lo & 0xFFFF) | (hi &<< 16)
}

/// 16 int8 channels widened to int16 (written lane by lane: the generic conversion is a call).
@inlinable @inline(__always)
func widenedChannels(_ src: UnsafePointer<Int8>) -> SIMD16<Int16> {
    let bytes = UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Int8>.self)
    var wide = SIMD16<Int16>()
    for i in 0..<16 { wide[i] = Int16(bytes[i]) }
    return wide
}

/// Packs `rows` int8 rows of length `d` (row stride `stride`) into the pair-major column
/// layout with `columns` columns (`columns >= rows`; extra columns are zero).
/// `dst` must hold `pairCount(d) * columns * 2` Int16 values.
public func packColumnPairs(
    _ src: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int,
    columns: Int, into dst: UnsafeMutablePointer<Int16>
) {
    let pairs = pairCount(d)
    let words = UnsafeMutableRawPointer(dst)  // word (p, c) at byte 4 (p * columns + c)
    if rows < columns {
        for p in 0..<pairs { (dst + (p * columns + rows) * 2).update(repeating: 0, count: (columns - rows) * 2) }
    }
    for c in 0..<rows {
        let row = src + c * stride
        var p = 0
        while 2 * p + 16 <= d {
            let packed = unsafeBitCast(widenedChannels(row + 2 * p), to: SIMD8<Int32>.self)
            for i in 0..<8 { words.storeBytes(of: packed[i], toByteOffset: 4 * ((p + i) * columns + c), as: Int32.self) }
            p += 8
        }
        while p < pairs {
            words.storeBytes(of: packedPair(row, p, d: d), toByteOffset: 4 * (p * columns + c), as: Int32.self)
            p += 1
        }
    }
}
