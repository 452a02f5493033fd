// Stage 1, step 3: the compressed attention scores `S_hat = s * pooledQ . pooledK^T` of one
// query block against every key block, -inf where a key block is not self-similar or lies
// in the causal future.

/// Writes the scores of query block `i` into `scores` (`nk` floats) and returns their maximum.
@inline(__always)
func compressedScores(_ s: SelectionInputs, queryBlock i: Int, into scores: UnsafeMutablePointer<Float>) -> Float {
    let d = s.d
    let pq = s.pooledQ + i * d
    var rowMax = -Float.infinity
    for j in 0..<s.keyBlocks {
        var score: Float
        let selfSimilarK = s.simK[j] > s.theta
        if !selfSimilarK || (s.causal && !blockCausallyAllowed(i: i, j: j, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset))
            || s.keyBlockFullyPadded(j) {
            score = -.infinity
        } else {
            let pk = s.pooledK + j * d
            var dot: Float = 0
            for c in 0..<d { dot += pq[c] * pk[c] }
            score = s.gpuRounding ? roundToHalf(roundToHalf(dot) * s.scale) : dot * s.scale
        }
        scores[j] = score
        rowMax = Swift.max(rowMax, score)
    }
    return rowMax
}
