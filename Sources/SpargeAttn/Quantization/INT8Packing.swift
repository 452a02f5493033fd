import SpargeSIMD

// The INT8 blocks in the layouts of the score micro-kernel (`int8ScoreTile`): a query block
// as rows of int16 channel pairs, a key block as column pairs.

/// Packs `rows` quantized key rows (`d` channels, row stride `d`) into column pairs, zero-filled
/// up to `columns` keys.
@inline(__always)
func packKeyBlock(_ q8: UnsafePointer<Int8>, rows: Int, d: Int, columns: Int, into packed: UnsafeMutablePointer<Int16>) {
    packColumnPairs(q8, rows: rows, d: d, stride: d, columns: columns, into: packed)
}

/// Packs `rows` quantized query rows into `pairs` channel pairs each; rows up to `rowsPad` are zero.
@inline(__always)
func packQueryBlock(_ q8: UnsafePointer<Int8>, rows: Int, d: Int, pairs: Int, rowsPad: Int, into packed: UnsafeMutablePointer<Int32>) {
    packed.update(repeating: 0, count: rowsPad * pairs)
    for r in 0..<rows { packRowPairs(q8 + r * d, d: d, into: packed + r * pairs) }
}
