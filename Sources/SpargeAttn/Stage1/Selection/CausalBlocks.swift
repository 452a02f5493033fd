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

/// Marks the first key block (the attention sink), whatever the rules above decided.
@inline(__always)
func markAttentionSink(_ row: UnsafeMutablePointer<UInt8>) { row[0] = 1 }
