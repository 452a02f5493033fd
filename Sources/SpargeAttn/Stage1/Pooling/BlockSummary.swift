import SpargeSIMD

// Stage 1, steps 1-2 (ExactSemantics.md section 2): the pooled mean and the self-similarity of
// one block of rows. The fast form uses sum_{a,b} cos(x_a, x_b) = |sum_a x_a/|x_a||^2, which
// is O(n*D) instead of the Gram matrix's O(n^2*D); `Stage1Reference.selfSimilarity`
// computes the Gram matrix literally and the tests compare the two.

/// A block's self-similarity, and its largest |x| (NaN ignored) when the pass that summed it
/// found it (not with `gpuRounding`), for the INT8 scale of the same rows.
typealias BlockSummary = (similarity: Float, largest: Float?)

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
    pooled: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    kernels: any TileKernels.Type = SpargeCPU.activeKernels
) -> Float {
    summarizeBlockAndLargest(x, rows: rows, blockSize: blockSize, d: d, gpuRounding: gpuRounding, partialBlocks: partialBlocks,
                             pooled: pooled, scratch: scratch, kernels: kernels).similarity
}

/// ``summarizeBlock(_:rows:blockSize:d:gpuRounding:partialBlocks:pooled:scratch:kernels:)``
/// with the block's largest |x| (see ``BlockSummary``).
func summarizeBlockAndLargest(
    _ x: UnsafePointer<Float>, rows: Int, blockSize: Int, d: Int,
    gpuRounding: Bool, partialBlocks: PartialBlockRule,
    pooled: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    kernels: any TileKernels.Type = SpargeCPU.activeKernels
) -> BlockSummary {
    var largest: Float? = nil
    pooled.update(repeating: 0, count: d)
    scratch.update(repeating: 0, count: d)
    if gpuRounding {
        for r in 0..<rows {
            let row = x + r * d
            let norm = addRowReturningSquaredNorm(row, d: d, into: pooled).squareRoot()
            // Sum of the unit rows, each rounded to fp16 as the GPU code stores them.
            for c in 0..<d { scratch[c] += roundToHalf(row[c] / norm) }
        }
    } else {
        // Column sums and sums of the unit rows (divided, not multiplied by 1/norm, as the
        // GPU code does), by the chosen kernel set: bitwise the same on every set.
        largest = kernels.blockRowSums(x, rows: rows, d: d, sums: pooled, unitSums: scratch)
    }
    return (finishBlockSummary(rows: rows, blockSize: blockSize, d: d, gpuRounding: gpuRounding, partialBlocks: partialBlocks,
                               pooled: pooled, unitSums: scratch), largest)
}

/// ``summarizeBlockAndLargest(_:rows:blockSize:d:gpuRounding:partialBlocks:pooled:scratch:kernels:)``
/// of the rows `x[r] - mean` (row stride `stride`, fp32, no `gpuRounding`), which the same pass
/// writes to `centered` (row stride `d`): K's smoothing and the key block's summary in one read.
func summarizeCenteredBlockAndLargest(
    _ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
    into centered: UnsafeMutablePointer<Float>, blockSize: Int, partialBlocks: PartialBlockRule,
    pooled: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, kernels: any TileKernels.Type
) -> BlockSummary {
    pooled.update(repeating: 0, count: d)
    scratch.update(repeating: 0, count: d)
    let largest = kernels.centeredBlockRowSums(x, rows: rows, stride: stride, d: d, mean: mean, into: centered,
                                               sums: pooled, unitSums: scratch)
    return (finishBlockSummary(rows: rows, blockSize: blockSize, d: d, gpuRounding: false, partialBlocks: partialBlocks,
                               pooled: pooled, unitSums: scratch), largest)
}

/// The end of ``summarizeBlockAndLargest(_:rows:blockSize:d:gpuRounding:partialBlocks:pooled:scratch:kernels:)``
/// once `pooled` holds the block's column sums and `unitSums` the sums of its unit rows (as a
/// kernel set's `blockRowSums` or `centeredBlockRowSums` leaves them): `pooled` becomes the
/// mean row; returns the self-similarity.
private func finishBlockSummary(rows: Int, blockSize: Int, d: Int, gpuRounding: Bool, partialBlocks: PartialBlockRule,
                                pooled: UnsafeMutablePointer<Float>, unitSums scratch: UnsafePointer<Float>) -> Float {
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
