// Stage 1, step 3: the compressed attention scores `S_hat = s * pooledQ . pooledK^T` of one
// query block against every key block, -inf where a key block is not self-similar or lies
// in the causal future.

import SpargeSIMD

/// Writes the scores of query block `i` into `scores` (`nk` floats) and returns their maximum:
/// the plain form, one dot product at a time (the tests' twin of the channel-major form below).
@inline(__always)
func compressedScores(_ s: SelectionInputs, queryBlock i: Int, into scores: UnsafeMutablePointer<Float>) -> Float {
    let d = s.d
    let pq = s.pooledQ + i * d
    for j in 0..<s.keyBlocks {
        let pk = s.pooledK + j * d
        var dot: Float = 0
        for c in 0..<d { dot += pq[c] * pk[c] }
        scores[j] = dot
    }
    return scaleAndMaskScores(s, queryBlock: i, dots: scores)
}

/// The pooled keys of one head channel by channel: channel `c` of key block `j` at
/// `base[c * stride + j]`, `stride` at least `nk` (nothing past a row's `nk` blocks is read).
/// The pipeline writes them with each key block (`SparseOperands.kPooledByChannel`).
struct ChannelMajorKeys {
    var base: UnsafePointer<Float>
    var stride: Int
}

/// ``compressedScores(_:queryBlock:into:)`` from the channel-major pooled keys: the scores
/// accumulate channel by channel, eight key blocks a vector, so the table is read row after
/// row, front to back (at 128k cached keys it is 1 MB per kv head: read down its columns, a
/// decoding step spent a fifth of its time here). Each lane adds the products in channel
/// order, never fused, so every score has the scalar loop's bits.
@inline(__always)
func compressedScores(_ s: SelectionInputs, queryBlock i: Int, channelMajor byChannel: ChannelMajorKeys,
                      into scores: UnsafeMutablePointer<Float>) -> Float {
    let d = s.d, nk = s.keyBlocks, stride = byChannel.stride, keys = byChannel.base
    let pq = s.pooledQ + i * d
    let full = nk - nk % 8
    scores.update(repeating: 0, count: nk)
    for c in 0..<d {
        let q = pq[c], row = keys + c * stride
        let q8 = Float8(repeating: q)
        var j = 0
        while j < full { store8(multiplyThenAdd(q8, load8(row + j), load8(scores + j)), scores + j); j += 8 }
        while j < nk { scores[j] = q * row[j] + scores[j]; j += 1 }
    }
    return scaleAndMaskScores(s, queryBlock: i, dots: scores)
}

/// Turns the dot products of query block `i` (in `dots`, `nk` floats) into its scores in place:
/// times the softmax scale (both roundings of the GPU code with `gpuRounding`), -inf for key
/// blocks that are not self-similar, in the causal future, outside the sliding window, all padding or all forbidden by the attention mask. Returns the maximum.
@inline(__always)
func scaleAndMaskScores(_ s: SelectionInputs, queryBlock i: Int, dots: UnsafeMutablePointer<Float>) -> Float {
    var rowMax = -Float.infinity
    for j in 0..<s.keyBlocks {
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
