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
/// The kernel set's tiles take the rows four at a time, so `group.queries` has
/// `roundUp(group.rows, 4)` readable rows and `parts` room for as many states; the padded
/// rows' states are scratch. `scores` holds `roundUp(group.rows, 4) * decodeTileKeys` floats.
/// With `scoreUnit` other than 1 the queries were divided by it (``OverflowGuard``) and the
/// softmax takes differences in that unit. 16-bit `k` and `v` (a KV cache's) are widened as
/// the tiles load them, which gives the bits of an fp32 cache holding the widened values.
func decodeChunk(
    _ group: DecodeRows, d: Int, width: Int, keys: Range<Int>, k: TensorView, v: TensorView,
    b: Int, kvh: Int, factor: Float, scoreUnit: ScoreUnit = .one, scores: UnsafeMutablePointer<Float>, parts: UnsafeMutablePointer<Float>,
    kernels: any TileKernels.Type = SpargeSIMD.KernelSet.self
) {
    let stride = 2 + width
    let rowsPad = roundUp(group.rows, 4)
    for r in 0..<rowsPad {
        parts[r * stride] = -.infinity
        parts[r * stride + 1] = 0
        (parts + r * stride + 2).update(repeating: 0, count: width)
    }
    var start = keys.lowerBound
    while start < keys.upperBound {
        let count = Swift.min(decodeTileKeys, keys.upperBound - start)
        // Q K^T of every row against this tile's keys, each key row read once for all rows.
        if k.isFloat32 {
            kernels.keyRowScoreTile(q: group.queries, qStride: d, rows: rowsPad, k: k.row(b, kvh, start), kStride: k.rowStride,
                                    count: count, depth: d, out: scores, outStride: decodeTileKeys)
        } else {
            kernels.halfKeyRowScoreTile(q: group.queries, qStride: d, rows: rowsPad, k: k.bits(b, kvh, start), kStride: k.rowStride,
                                        count: count, depth: d, bfloat16: k.type == .bfloat16, out: scores, outStride: decodeTileKeys)
        }
        // Scaled, and -inf where the row does not see the key (causal, window, mask).
        for r in 0..<group.rows {
            let sr = scores + r * decodeTileKeys
            let mask = group.allowed.map { $0 + (r % group.queryCount) * group.keyLength + start }
            let first = group.firstVisible?[r] ?? 0, visible = group.visible[r]
            for j in 0..<count {
                let seen = start + j < visible && start + j >= first && (mask.map { $0[j] != 0 } ?? true)
                sr[j] = seen ? sr[j] * factor : -.infinity
            }
        }
        // Online-softmax update per row; the padded rows weigh nothing.
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
        (scores + group.rows * decodeTileKeys).update(repeating: 0, count: (rowsPad - group.rows) * decodeTileKeys)
        // P.V, each value row read once for all rows.
        if v.isFloat32 {
            kernels.accumulateProbabilityValue(p: scores, pStride: decodeTileKeys, rows: rowsPad, count: count,
                                               v: v.row(b, kvh, start), vStride: v.rowStride, width: width,
                                               o: parts + 2, oStride: stride)
        } else {
            kernels.accumulateProbabilityHalfValue(p: scores, pStride: decodeTileKeys, rows: rowsPad, count: count,
                                                   v: v.bits(b, kvh, start), vStride: v.rowStride, width: width,
                                                   bfloat16: v.type == .bfloat16, o: parts + 2, oStride: stride)
        }
        start += count
    }
}
