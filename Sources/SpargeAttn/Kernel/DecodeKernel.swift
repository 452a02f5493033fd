import SpargeSIMD

// Exact fp32 attention of a few query rows against a long key range, read row by row (no
// transposed copy of K): the exact decode path of SpargeKVCache. Decoding is memory-bound,
// so every query row of a kv head's group (its query heads x query tokens) is processed
// against each key row while that row is in cache: K and V are read once per group, not once
// per query head. Key ranges are split across work items and merged by log-sum-exp.

/// Keys per decode work item (a chunk is one split-K share).
let decodeChunkKeys = 2048

/// Keys per inner tile of the decode kernel.
let decodeTileKeys = 64

/// The query rows of one kv group for `decodeChunk`: row r's fp32 query, which keys it sees
/// (`firstVisible[r]..<visible[r]`; from key 0 when `firstVisible` is nil), and where its state goes.
struct DecodeRows {
    var queries: UnsafePointer<Float>      // rows x d, contiguous
    var visible: UnsafePointer<Int>        // rows
    var rows: Int
    /// Per row, the first key of its sliding window (nil: no window).
    var firstVisible: UnsafePointer<Int>? = nil
    /// The attention mask of the group's batch entry (`queryCount x keyLength` bytes, 1 =
    /// attend); row r is query `r % queryCount` (rows run over the group's heads, then queries).
    var allowed: UnsafePointer<UInt8>? = nil
    var queryCount = 1
    var keyLength = 0
}

/// Computes the unnormalised online-softmax states of `group` rows over keys `keys`: per row
/// an exported state of one row (`m`, `l`, then `width` accumulators; see
/// ``OnlineSoftmax/merge``), rows consecutive in `parts` with stride `2 + width`.
/// `scores` holds `rows * decodeTileKeys` floats. With `scoreUnit` other than 1 the queries
/// were divided by it (``OverflowGuard``) and the softmax takes differences in that unit.
/// 16-bit `k` and `v` (a KV cache's) are widened a row at a time into `rowTemp` (`d + width`
/// floats) by `kernels`.
func decodeChunk(
    _ group: DecodeRows, d: Int, width: Int, keys: Range<Int>, k: TensorView, v: TensorView,
    b: Int, kvh: Int, factor: Float, scoreUnit: ScoreUnit = .one, scores: UnsafeMutablePointer<Float>, parts: UnsafeMutablePointer<Float>,
    rowTemp: UnsafeMutablePointer<Float>? = nil, kernels: any TileKernels.Type = SpargeSIMD.KernelSet.self
) {
    /// Row `t` of a 16-bit view widened into `temp`.
    func widened(_ view: TensorView, _ t: Int, count: Int, temp: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        kernels.widenHalfRow(view.bits(b, kvh, t), count: count, bfloat16: view.type == .bfloat16, into: temp)
        return UnsafePointer(temp)
    }
    let stride = 2 + width
    for r in 0..<group.rows {
        parts[r * stride] = -.infinity
        parts[r * stride + 1] = 0
        (parts + r * stride + 2).update(repeating: 0, count: width)
    }
    var start = keys.lowerBound
    while start < keys.upperBound {
        let count = Swift.min(decodeTileKeys, keys.upperBound - start)
        // Scores of every row against this tile's keys (each key row loaded once).
        for j in 0..<count {
            let row = rowTemp.map { widened(k, start + j, count: d, temp: $0) } ?? k.row(b, kvh, start + j)
            for r in 0..<group.rows {
                let q = group.queries + r * d
                var s = Float8()
                var c = 0
                while c + 8 <= d { s = multiplyAdd(load8(q + c), load8(row + c), s); c += 8 }
                var dot = horizontalSum(s)
                while c < d { dot += q[c] * row[c]; c += 1 }
                let seen = start + j < group.visible[r] && start + j >= (group.firstVisible?[r] ?? 0)
                    && group.allowed.map { $0[(r % group.queryCount) * group.keyLength + start + j] != 0 } ?? true
                scores[r * decodeTileKeys + j] = seen ? dot * factor : -.infinity
            }
        }
        // Online-softmax update per row.
        for r in 0..<group.rows {
            let sr = scores + r * decodeTileKeys
            for j in count..<decodeTileKeys { sr[j] = -.infinity }
            let part = parts + r * stride
            let tileMax = rowMax(sr, count: count)
            if tileMax == -.infinity {
                sr.update(repeating: 0, count: decodeTileKeys)
                continue
            }
            let updated = OnlineSoftmax.raiseMax(part, sum: part + 1, acc: part + 2, width: width, tileMax: tileMax,
                                                 unit: scoreUnit)
            if scoreUnit.isOne {
                part[1] += exp2InPlace(sr, count: decodeTileKeys, shift: updated)
            } else {
                // Rare (|q.k| near the fp32 limit): one element at a time.
                var sum: Float = 0
                for j in 0..<decodeTileKeys {
                    let e = scoreUnit.scale(sr[j] - updated)
                    sr[j] = e < probabilityFlushExponent ? 0 : exp2Scalar(e)
                    sum += sr[j]
                }
                part[1] += sum
            }
        }
        // P.V with each value row loaded once for all rows.
        for j in 0..<count {
            let vRow = rowTemp.map { widened(v, start + j, count: width, temp: $0 + d) } ?? v.row(b, kvh, start + j)
            for r in 0..<group.rows {
                let p = Float8(repeating: scores[r * decodeTileKeys + j])
                let acc = parts + r * stride + 2
                var c = 0
                while c < width { store8(multiplyAdd(p, load8(vRow + c), load8(acc + c)), acc + c); c += 8 }
            }
        }
        start += count
    }
}
