// Scans of a block-map row (one byte per key block, nonzero = marked) that place a split-K
// chunk's share of the marked blocks: a long cache split in many chunks would otherwise walk
// every key block in every chunk. Used by both stage-2 kernels.

/// How many of the blocks `range` of a block-map row are marked (nonzero bytes), eight at a time.
func markedBlocks(_ row: UnsafePointer<UInt8>, _ range: Range<Int>) -> Int {
    var j = range.lowerBound, n = 0
    while j + 8 <= range.upperBound { n += markedBytes(row, at: j); j += 8 }
    while j < range.upperBound { if row[j] != 0 { n += 1 }; j += 1 }
    return n
}

/// The position of the marked block with index `ordinal` (0-based, among the marked ones) in a
/// block-map row of `count` blocks; `count` when there are not that many.
func markedBlockPosition(_ row: UnsafePointer<UInt8>, count: Int, ordinal: Int) -> Int {
    var seen = 0, j = 0
    while j + 8 <= count {
        let marked = markedBytes(row, at: j)
        if seen + marked > ordinal { break }
        seen += marked
        j += 8
    }
    while j < count {
        if row[j] != 0 {
            if seen == ordinal { return j }
            seen += 1
        }
        j += 1
    }
    return count
}

/// The nonzero bytes among the eight at `row + j`: bit 7 of each byte of
/// `((x & 0x7F..) + 0x7F..) | x` is set exactly when the byte is nonzero (no carry crosses a byte).
@inline(__always)
private func markedBytes(_ row: UnsafePointer<UInt8>, at j: Int) -> Int {
    let x = UnsafeRawPointer(row + j).loadUnaligned(as: UInt64.self)
    let low: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
    return ((((x & low) &+ low) | x) & ~low).nonzeroBitCount
}
