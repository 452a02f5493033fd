// Stage 2, step 3 (ALGORITHM.md section 4): the softmax-aware filter. A measured tile is
// skipped when no row's tile maximum rises more than `-lambda` above its running maximum:
// its probabilities would all be below `2^lambda` of the row's current scale. The first
// visit of a row always passes (m = -inf gives +inf), and the last `exemptTailBlocks`
// marked blocks of a row are never skipped.

/// Whether the measured tile of `softmax`'s first `rows` rows is skipped. `exempt` tiles and
/// a non-finite `lambda` (the filter off) always pass.
@inline(__always)
func stage2SkipsTile(_ softmax: OnlineSoftmax, rows: Int, lambda: Float, exempt: Bool) -> Bool {
    !exempt && lambda.isFinite && softmax.largestIncrease(rows: rows) + lambda <= 0
}
