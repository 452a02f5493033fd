import SpargeSIMD

// Stage 1, steps 1-2 (ALGORITHM.md section 2): the pooled mean and the self-similarity of
// one block of rows. The fast form uses sum_{a,b} cos(x_a, x_b) = |sum_a x_a/|x_a||^2, which
// is O(n*D) instead of the Gram matrix's O(n^2*D); `Stage1Reference.selfSimilarity`
// computes the Gram matrix literally and the tests compare the two.

/// Pooled mean and self-similarity of `rows` rows of length `d` (row stride `d`).
///
/// - Parameters:
///   - blockSize: the nominal block size; a block with `rows < blockSize` is partial.
///   - pooled: receives the mean row (`d` floats), fp16-rounded with `gpuRounding`.
///   - scratch: `d` floats of workspace.
/// - Returns: the mean pairwise cosine similarity, or NaN when the block cannot be
///   self-similar (a partial block under ``PartialBlockRule/neverSelfSimilar``, or a zero row).
func summarizeBlock(
    _ x: UnsafePointer<Float>, rows: Int, blockSize: Int, d: Int,
    gpuRounding: Bool, partialBlocks: PartialBlockRule,
    pooled: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
) -> Float {
    pooled.update(repeating: 0, count: d)
    scratch.update(repeating: 0, count: d)
    for r in 0..<rows {
        let row = x + r * d
        var norm2: Float = 0
        for c in 0..<d {
            pooled[c] += row[c]
            norm2 += row[c] * row[c]
        }
        let norm = norm2.squareRoot()
        for c in 0..<d {
            let unit = row[c] / norm
            scratch[c] += gpuRounding ? roundToHalf(unit) : unit
        }
    }
    let n = Float(rows)
    for c in 0..<d {
        let mean = pooled[c] / n
        pooled[c] = gpuRounding ? roundToHalf(mean) : mean
    }
    if rows < blockSize && partialBlocks == .neverSelfSimilar { return .nan }
    var total: Float = 0
    for c in 0..<d { total += scratch[c] * scratch[c] }
    return total / (n * n)
}
