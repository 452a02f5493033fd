// Stage 1, step 5: the blocks of one row sorted by probability (descending, ties: lower
// block index first), and how many of them to keep: the CDF rule or the top-k rule.

/// The top-k count: `floor(topk * nk)` as an fp32 product truncated (as torch), at least one.
@inline(__always)
func topKCount(fraction: Float, keyBlocks nk: Int) -> Int {
    Swift.max(1, Int(fraction * Float(nk)))
}

/// Sorts the block indices of `p` by descending probability into `keys` (low 32 bits: the
/// index). The key orders by `UInt32.max - bitPattern` (probabilities are >= 0, so the bit
/// pattern orders like the value), then by index.
@inline(__always)
func sortByProbability(_ p: UnsafePointer<Float>, count nk: Int, into keys: UnsafeMutablePointer<UInt64>) {
    for j in 0..<nk {
        keys[j] = (UInt64(UInt32.max - p[j].bitPattern) << 32) | UInt64(j)
    }
    heapSort(keys, count: nk)
}

/// The block index held by a sorted key.
@inline(__always)
func blockIndex(_ key: UInt64) -> Int { Int(key & 0xFFFF_FFFF) }

/// The CDF count: the longest prefix of the sorted blocks whose cumulative probability stays
/// at or below `tau` (the running sum rounded to fp16 with `gpuRounding`), at least one.
@inline(__always)
func cdfCount(_ p: UnsafePointer<Float>, sorted keys: UnsafePointer<UInt64>, count nk: Int, tau: Float,
              gpuRounding: Bool) -> Int {
    var count = 0
    var cumulative: Float = 0
    for t in 0..<nk {
        let x = p[blockIndex(keys[t])]
        cumulative = gpuRounding ? roundToHalf(cumulative + x) : cumulative + x
        if cumulative <= tau { count = t + 1 } else { break }
    }
    return Swift.max(count, 1)
}

/// Clears the row, then marks the first `count` sorted blocks.
@inline(__always)
func markSelected(_ row: UnsafeMutablePointer<UInt8>, sorted keys: UnsafePointer<UInt64>, count: Int, keyBlocks nk: Int) {
    for j in 0..<nk { row[j] = 0 }
    for t in 0..<Swift.min(count, nk) { row[blockIndex(keys[t])] = 1 }
}

/// In-place ascending heap sort (no allocation; the keys are distinct, so stability is moot).
func heapSort(_ a: UnsafeMutablePointer<UInt64>, count n: Int) {
    func siftDown(_ start: Int, _ end: Int) {
        var root = start
        while true {
            var child = 2 * root + 1
            if child >= end { return }
            if child + 1 < end && a[child] < a[child + 1] { child += 1 }
            if a[root] >= a[child] { return }
            a.swapAt(root, child)
            root = child
        }
    }
    if n < 2 { return }
    var start = n / 2 - 1
    while start >= 0 { siftDown(start, n); start -= 1 }
    var end = n - 1
    while end > 0 {
        a.swapAt(0, end)
        siftDown(0, end)
        end -= 1
    }
}

extension UnsafeMutablePointer where Pointee == UInt64 {
    @inline(__always)
    func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]; self[i] = self[j]; self[j] = t
    }
}
