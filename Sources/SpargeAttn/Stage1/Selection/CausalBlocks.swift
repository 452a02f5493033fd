// Stage 1, step 7: causal clearing, then the attention sink.

/// Key block `j` is allowed for query block `i` under the block-causal rule of the GPU code
/// (`j < (i + 1) * bq / bk`, evaluated exactly), generalised to `Nq != Nk` with the
/// FlashAttention / KV-cache convention that query `t` sees keys up to `t + offset`,
/// `offset = Nk - Nq`: the block's last query sees keys below `(i + 1) * bq + offset`.
@inline(__always)
func blockCausallyAllowed(i: Int, j: Int, blockQ: Int, blockK: Int, offset: Int = 0) -> Bool {
    j * blockK < (i + 1) * blockQ + offset
}

/// Unmarks the key blocks of query block `i`'s row that lie entirely in its causal future.
@inline(__always)
func clearCausalFuture(_ row: UnsafeMutablePointer<UInt8>, queryBlock i: Int, keyBlocks nk: Int,
                       blockQ: Int, blockK: Int, offset: Int) {
    for j in 0..<nk where !blockCausallyAllowed(i: i, j: j, blockQ: blockQ, blockK: blockK, offset: offset) { row[j] = 0 }
}

/// Whether some query of block `i` sees some key of block `j` through a sliding window of
/// `window` keys ending at each query's causal limit (`window` 0: no window, always true). The
/// block's first query has the earliest window; the block's last key is clipped to `keyLength`.
@inline(__always)
func blockInsideWindow(i: Int, j: Int, blockQ: Int, blockK: Int, offset: Int, window: Int, keyLength: Int) -> Bool {
    window == 0 || Swift.min((j + 1) * blockK, keyLength) - 1 > i * blockQ + offset - window
}

/// The first key block that some query of block `i` sees through the sliding window (0 without
/// one; `nk` when none does). ``blockInsideWindow(i:j:blockQ:blockK:offset:window:keyLength:)``
/// only grows with `j` and shrinks with `i`, so the blocks before this one are outside the
/// windows of block `i` and of every later query block: stage 1 need not score them (a cache
/// that holds a long sequence for a short window would otherwise score every block it holds).
@inline(__always)
func firstKeyBlockInsideWindow(i: Int, keyBlocks nk: Int, blockQ: Int, blockK: Int, offset: Int, window: Int,
                               keyLength: Int) -> Int {
    guard window > 0 else { return 0 }
    var low = 0, high = nk
    while low < high {
        let middle = (low + high) / 2
        if blockInsideWindow(i: i, j: middle, blockQ: blockQ, blockK: blockK, offset: offset, window: window, keyLength: keyLength) {
            high = middle
        } else {
            low = middle + 1
        }
    }
    return low
}

/// Unmarks the key blocks of query block `i`'s row that lie entirely before every window of
/// its queries (after the attention sink: the window masks the sink too).
@inline(__always)
func clearOutsideWindow(_ row: UnsafeMutablePointer<UInt8>, queryBlock i: Int, keyBlocks nk: Int,
                        blockQ: Int, blockK: Int, offset: Int, window: Int, keyLength: Int) {
    guard window > 0 else { return }
    for j in 0..<nk where !blockInsideWindow(i: i, j: j, blockQ: blockQ, blockK: blockK, offset: offset, window: window,
                                             keyLength: keyLength) { row[j] = 0 }
}

/// Marks the first key block (the attention sink), whatever the rules above decided.
@inline(__always)
func markAttentionSink(_ row: UnsafeMutablePointer<UInt8>) { row[0] = 1 }
