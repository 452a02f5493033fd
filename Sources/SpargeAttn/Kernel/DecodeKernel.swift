import SpargeSIMD

// Exact fp32 attention of a few query rows against a long key range, read row by row (no
// transposed copy of K): the dense decode path of SpargeKVCache. Key ranges are split across
// work items and merged like split-K, so one query row still uses every core.

/// Keys per decode work item (a chunk is one split-K share).
let decodeChunkKeys = 2048

/// Computes the unnormalised state of query row `n` of (b, h) over keys `keys` into `part`
/// (`m`, `l`, then `width` accumulators); `scores` holds 64 floats.
func decodeChunk(
    q: UnsafePointer<Float>, d: Int, width: Int, keys: Range<Int>, visibleUpTo: Int,
    k: TensorView, v: TensorView, b: Int, kvh: Int, factor: Float,
    scores: UnsafeMutablePointer<Float>, part: UnsafeMutablePointer<Float>
) {
    var m = -Float.infinity, l: Float = 0
    let acc = part + 2
    acc.update(repeating: 0, count: width)
    var start = keys.lowerBound
    let end = Swift.min(keys.upperBound, visibleUpTo + 1)
    while start < end {
        let count = Swift.min(64, end - start)
        for j in 0..<count {
            let row = k.row(b, kvh, start + j)
            var s = Float8()
            var c = 0
            while c + 8 <= d { s = multiplyAdd(load8(q + c), load8(row + c), s); c += 8 }
            var dot = horizontalSum(s)
            while c < d { dot += q[c] * row[c]; c += 1 }
            scores[j] = dot * factor
        }
        let padded = roundUp(count, 8)
        for j in count..<padded { scores[j] = -.infinity }
        let tileMax = rowMax(scores, count: count)
        let updated = Swift.max(m, tileMax)
        if m != -.infinity && updated > m {
            let alpha = exp2Scalar(m - updated)
            l *= alpha
            scaleInPlace(acc, count: width, by: alpha)
        }
        m = updated
        l += exp2InPlace(scores, count: padded, shift: updated)
        for j in 0..<count {
            let p = Float8(repeating: scores[j])
            let row = v.row(b, kvh, start + j)
            var c = 0
            while c < width { store8(multiplyAdd(p, load8(row + c), load8(acc + c)), acc + c); c += 8 }
        }
        start += count
    }
    part[0] = m
    part[1] = l
}
