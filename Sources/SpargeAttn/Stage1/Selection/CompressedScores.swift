// Stage 1, step 3: the compressed attention scores `S_hat = s * pooledQ . pooledK^T` of one
// query block against every key block, -inf where a key block is not self-similar or lies
// in the causal future.

/// Writes the scores of query block `i` into `scores` (`nk` floats) and returns their maximum:
/// the plain form, one dot product at a time (the tests' twin of the channel-major form below).
/// `windowStart`: ``SelectionInputs/firstKeyBlockInsideWindow(queryBlock:)`` of block `i`.
@inline(__always)
func compressedScores(_ s: SelectionInputs, queryBlock i: Int, windowStart: Int, into scores: UnsafeMutablePointer<Float>) -> Float {
    let d = s.d
    let pq = s.pooledQ + i * d
    for j in 0..<s.keyBlocks {
        let pk = s.pooledK + j * d
        var dot: Float = 0
        for c in 0..<d { dot += pq[c] * pk[c] }
        scores[j] = dot
    }
    return scaleAndMaskScores(s, queryBlock: i, windowStart: windowStart, dots: scores)
}

/// The pooled keys of one head channel by channel: channel `c` of key block `j` at
/// `base[c * stride + j]`, `stride` at least `nk` (nothing past a row's `nk` blocks is read).
/// The pipeline writes them with each key block (`SparseOperands.kPooledByChannel`).
struct ChannelMajorKeys {
    var base: UnsafePointer<Float>
    var stride: Int
    /// The kernel set whose `channelMajorScores` computes the dot products (every set gives the same bits).
    var kernels: any TileKernels.Type = SpargeCPU.activeKernels
}

/// Query blocks whose compressed scores one `channelMajorScores` call computes together (the
/// table is read once for them): `selectBlocks` needs this many rows of `nk` floats of scratch.
let compressedScoreRows = 4

/// The dot products of `rows` (at most ``compressedScoreRows``) pooled query rows `q` (row
/// stride `qStride`: a head's consecutive query blocks, or one query block of a kv group's
/// heads) against every key block of `s`, from the channel-major pooled keys, into `dots`
/// (`rows` rows of `nk`): the kernel set's `channelMajorScores` reads the table front to back
/// once for all the rows, and gives every dot product the scalar loop's bits. Key blocks before
/// the sliding window of `earliest` (the rows' earliest query block; later ones see no earlier
/// block) are left unwritten: ``scaleAndMaskScores(_:queryBlock:windowStart:dots:)`` never reads them.
@inline(__always)
func compressedDots(_ s: SelectionInputs, q: UnsafePointer<Float>, qStride: Int, rows: Int, earliest: Int,
                    channelMajor byChannel: ChannelMajorKeys, into dots: UnsafeMutablePointer<Float>) {
    let skipped = s.firstKeyBlockInsideWindow(queryBlock: earliest)
    byChannel.kernels.channelMajorScores(q: q, qStride: qStride, rows: rows, table: byChannel.base + skipped,
                                         tableStride: byChannel.stride, channels: s.d, columns: s.keyBlocks - skipped,
                                         out: dots + skipped, outStride: s.keyBlocks)
}

extension SelectionInputs {
    /// ``firstKeyBlockInsideWindow(i:keyBlocks:blockQ:blockK:offset:window:keyLength:)`` for query block `i`.
    @inline(__always)
    func firstKeyBlockInsideWindow(queryBlock i: Int) -> Int {
        SpargeAttn.firstKeyBlockInsideWindow(i: i, keyBlocks: keyBlocks, blockQ: blockQ, blockK: blockK, offset: causalOffset,
                                             window: window, keyLength: keyLength)
    }
}

/// Turns the dot products of query block `i` (in `dots`, `nk` floats) into its scores in place:
/// times the softmax scale (both roundings of the GPU code with `gpuRounding`), -inf for key
/// blocks that are not self-similar, in the causal future, outside the sliding window, all padding or all forbidden by the attention mask. Returns the maximum.
/// The blocks before `windowStart` (``SelectionInputs/firstKeyBlockInsideWindow(queryBlock:)``
/// of block `i`) are outside the window and were not scored: they become -inf unread.
@inline(__always)
func scaleAndMaskScores(_ s: SelectionInputs, queryBlock i: Int, windowStart: Int, dots: UnsafeMutablePointer<Float>) -> Float {
    var rowMax = -Float.infinity
    for j in 0..<windowStart { dots[j] = -.infinity }
    for j in windowStart..<s.keyBlocks {
        let selfSimilarK = s.simK[j] > s.theta
        let score: Float
        if !selfSimilarK || (s.causal && !blockCausallyAllowed(i: i, j: j, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset))
            || !blockInsideWindow(i: i, j: j, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset, window: s.window,
                                  keyLength: s.keyLength)
            || s.keyBlockFullyPadded(j) || s.pairBlocks.map({ $0[i * s.keyBlocks + j] == PairBlockState.forbidden.rawValue }) == true {
            score = -.infinity
        } else {
            let dot = dots[j]
            score = s.gpuRounding ? roundToHalf(roundToHalf(dot) * s.scale) : dot * s.scale
        }
        dots[j] = score
        rowMax = Swift.max(rowMax, score)
    }
    return rowMax
}
