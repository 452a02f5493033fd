// Stage 1, step 6: blocks that are not self-similar cannot be represented by their mean, so
// they are always computed. `sim > theta` is false for NaN (a partial or zero block).

/// Marks every key block of the row when the query block is not self-similar, else every key
/// block that is not.
@inline(__always)
func forceDissimilarBlocks(_ row: UnsafeMutablePointer<UInt8>, simQ: Float, simK: UnsafePointer<Float>,
                           keyBlocks nk: Int, theta: Float) {
    let selfSimilarQ = simQ > theta
    for j in 0..<nk where !selfSimilarQ || !(simK[j] > theta) { row[j] = 1 }
}
