// Stage 1, steps 3-7 (ExactSemantics.md section 2), one named function per step, composed here:
// compressed scores, softmax over blocks, probability order + CDF / top-k count, forced blocks, causal
// clearing, the attention sink, the sliding window and the masks. One query block row of the block map at a time; no
// allocation (the caller passes the scratch buffers). `Stage1Reference.selectBlocks` is the
// plain-Swift twin the tests compare this with.

/// Inputs of the selection for one head.
struct SelectionInputs {
    var pooledQ: UnsafePointer<Float>   // nq x d
    var simQ: UnsafePointer<Float>      // nq (NaN: not self-similar)
    var pooledK: UnsafePointer<Float>   // nk x d
    var simK: UnsafePointer<Float>      // nk
    var queryBlocks: Int
    var keyBlocks: Int
    var d: Int
    var blockQ: Int
    var blockK: Int
    var scale: Float
    var theta: Float
    var selection: Float                // tau or topk
    var isTopK: Bool
    var causal: Bool
    /// Nk - Nq (see ``blockCausallyAllowed(i:j:blockQ:blockK:offset:)``).
    var causalOffset: Int = 0
    /// The sliding window in keys (0: none; see ``blockInsideWindow(i:j:blockQ:blockK:offset:window:keyLength:)``).
    var window: Int = 0
    /// Key blocks before key block 0 that are no longer held (a KV cache that discarded keys
    /// outside every window): the top-k count is a fraction of them too, as of a cache that kept them.
    var discardedKeyBlocks: Int = 0
    var attentionSink: Bool
    var gpuRounding: Bool
    /// The key padding mask of this head's batch entry (`keyLength` bytes, 1 = real key):
    /// key blocks whose keys are all padding score -inf and are never selected.
    var keyValid: UnsafePointer<UInt8>? = nil
    var keyLength: Int = 0
    /// The attention mask's block states of this head's batch entry (`queryBlocks x keyBlocks`,
    /// ``PairBlockState`` raw values): a block whose pairs it all forbids scores -inf and is never selected.
    var pairBlocks: UnsafePointer<UInt8>? = nil
    /// When set, receives `P_hat` (nq x nk) for inspection.
    var probabilitiesOut: UnsafeMutablePointer<Float>? = nil
}

/// Writes the block-map rows of one head into `map` (`nq * nk` bytes).
/// `probabilities` holds `nk` floats (``compressedScoreRows`` x `nk` with `channelMajor`) and
/// `keys` ``selectionKeyScratch(keyBlocks:)`` UInt64 of scratch; with `channelMajor` (the pooled keys channel by channel) the
/// compressed scores of up to ``compressedScoreRows`` query blocks come from one kernel call,
/// each score with the scalar loop's bits.
func selectBlocks(
    _ s: SelectionInputs, map: UnsafeMutablePointer<UInt8>,
    probabilities: UnsafeMutablePointer<Float>, keys: UnsafeMutablePointer<UInt64>,
    channelMajor: ChannelMajorKeys? = nil
) {
    let nk = s.keyBlocks
    guard let channelMajor else {
        for i in 0..<s.queryBlocks {
            let windowStart = s.firstKeyBlockInsideWindow(queryBlock: i)
            let rowMax = compressedScores(s, queryBlock: i, windowStart: windowStart, into: probabilities)   // step 3
            selectRow(s, queryBlock: i, scores: probabilities, rowMax: rowMax, windowStart: windowStart, map: map + i * nk, keys: keys)
        }
        return
    }
    var first = 0
    while first < s.queryBlocks {
        let rows = Swift.min(compressedScoreRows, s.queryBlocks - first)
        compressedDots(s, q: s.pooledQ + first * s.d, qStride: s.d, rows: rows, earliest: first, channelMajor: channelMajor,
                       into: probabilities)
        for i in first..<(first + rows) {
            selectRow(s, queryBlock: i, dots: probabilities + (i - first) * nk, map: map + i * nk, keys: keys)
        }
        first += rows
    }
}

/// Steps 3 (the scale and the masks) to 7 for query block `i`, whose dot products with every
/// key block are in `dots` (`nk` floats, overwritten), into its map row `row`.
@inline(__always)
func selectRow(_ s: SelectionInputs, queryBlock i: Int, dots: UnsafeMutablePointer<Float>, map row: UnsafeMutablePointer<UInt8>,
               keys: UnsafeMutablePointer<UInt64>) {
    let windowStart = s.firstKeyBlockInsideWindow(queryBlock: i)
    let rowMax = scaleAndMaskScores(s, queryBlock: i, windowStart: windowStart, dots: dots)  // step 3
    selectRow(s, queryBlock: i, scores: dots, rowMax: rowMax, windowStart: windowStart, map: row, keys: keys)
}

/// Steps 4-7 for query block `i` from its compressed scores (`scores`, `nk` floats, which
/// become the probabilities), their maximum, and the first block inside its window.
@inline(__always)
func selectRow(_ s: SelectionInputs, queryBlock i: Int, scores p: UnsafeMutablePointer<Float>, rowMax: Float, windowStart: Int,
               map row: UnsafeMutablePointer<UInt8>, keys: UnsafeMutablePointer<UInt64>) {
    let nk = s.keyBlocks
    blockSoftmax(p, count: nk, rowMax: rowMax, gpuRounding: s.gpuRounding, first: windowStart)   // step 4
    if let out = s.probabilitiesOut { (out + i * nk).update(from: p, count: nk) }
    markMostProbable(p, count: nk,                                                           // step 5
                     rule: s.isTopK ? .topK(count: topKCount(fraction: s.selection, keyBlocks: nk + s.discardedKeyBlocks),
                                            zerosBefore: s.discardedKeyBlocks)
                                    : .cdf(tau: s.selection, gpuRounding: s.gpuRounding),
                     keys: keys, row: row)
    forceDissimilarBlocks(row, simQ: s.simQ[i], simK: s.simK, keyBlocks: nk, theta: s.theta)  // step 6
    if s.causal {                                                                            // step 7
        clearCausalFuture(row, queryBlock: i, keyBlocks: nk, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset)
    }
    if s.attentionSink { markAttentionSink(row) }
    clearOutsideWindow(row, queryBlock: i, keyBlocks: nk, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset,
                       window: s.window, keyLength: s.keyLength)
    if s.keyValid != nil {                                                                   // key padding
        for j in 0..<nk where row[j] != 0 && s.keyBlockFullyPadded(j) { row[j] = 0 }
    }
    if let pairBlocks = s.pairBlocks {                                                       // attention mask
        for j in 0..<nk where row[j] != 0 && pairBlocks[i * nk + j] == PairBlockState.forbidden.rawValue { row[j] = 0 }
    }
}

extension SelectionInputs {
    /// Whether every key of key block `j` is padding (false without a padding mask).
    @inline(__always)
    func keyBlockFullyPadded(_ j: Int) -> Bool {
        guard let keyValid else { return false }
        for t in (j * blockK)..<Swift.min(keyLength, (j + 1) * blockK) where keyValid[t] != 0 { return false }
        return true
    }
}
