import SpargeSIMD

// Stage 1, section 1: K smoothing. Every key row has the mean of its head's keys subtracted
// (`K' = K - mean(K)`); softmax is invariant to it, and the INT8 blocks and the pooled key
// means are then centred.

/// The mean over the first `tokens` keys of (b, kv head h) of `k` into `mean` (`d` floats).
/// Accumulated in double (the GPU rounds the fp32 mean of fp16 values to fp16, so
/// accumulation order then does not matter); `sums` (`d` doubles), `partial` and `row`
/// (`d` floats each) are scratch.
func keySmoothingMean(
    _ k: TensorView, b: Int, h: Int, tokens n: Int, d: Int, gpuRounding: Bool, into mean: UnsafeMutablePointer<Float>,
    sums: UnsafeMutablePointer<Double>, partial: UnsafeMutablePointer<Float>, row: UnsafeMutablePointer<Float>,
    kernels: any TileKernels.Type = SpargeCPU.activeKernels
) {
    sums.update(repeating: 0, count: d)
    if gpuRounding {
        for t in 0..<n {
            let x = k.floats(b, h, t, count: d, temp: row)
            for c in 0..<d { sums[c] += Double(roundToHalf(x[c])) }
        }
    } else {
        // fp32 partial sums of 64 rows (vectorised), flushed into the double sums.
        for chunk in 0..<keyMeanChunks(n) {
            keyChunkSum(k, b: b, h: h, chunk: chunk, tokens: n, d: d, into: partial, row: row, kernels: kernels)
            for c in 0..<d { sums[c] += Double(partial[c]) }
        }
    }
    for c in 0..<d {
        let m = Float(sums[c] / Double(n))
        mean[c] = gpuRounding ? roundToHalf(m) : m
    }
    if !gpuRounding { repairKeyMean(mean, k: k, b: b, h: h, tokens: n, d: d, row: row) }
}

/// Keys near the fp32 limit: a channel whose fp32 sums overflowed gets its mean from a Double
/// pass over its keys, and a mean that `k - mean` could overflow with (|mean| + max|k| beyond
/// fp32's largest value) becomes 0 (any per-channel constant leaves the softmax unchanged: it
/// shifts each query's scores by q . mean). Means that are finite and at most 2^100 cost one
/// test per channel; nothing changes for them, so neither do the usual bits.
func repairKeyMean(_ mean: UnsafeMutablePointer<Float>, k: TensorView, b: Int, h: Int, tokens n: Int, d: Int,
                   row: UnsafeMutablePointer<Float>) {
    guard (0..<d).contains(where: { !(Swift.abs(mean[$0]) <= 0x1p100) }) else { return }
    var sums = [Double](repeating: 0, count: d), largest = [Float](repeating: 0, count: d)
    for t in 0..<n {
        let x = k.floats(b, h, t, count: d, temp: row)
        for c in 0..<d {
            sums[c] += Double(x[c])
            largest[c] = Swift.max(largest[c], Swift.abs(x[c]))
        }
    }
    for c in 0..<d where !(Swift.abs(mean[c]) <= 0x1p100) {
        if !mean[c].isFinite { mean[c] = Float(sums[c] / Double(n)) }
        mean[c] = OverflowGuard.centringMean(mean[c], largest: largest[c])
    }
}

/// The number of 64-row chunks whose fp32 sums make up the K mean of `n` keys.
func keyMeanChunks(_ n: Int) -> Int { (n + 63) / 64 }

/// The fp32 sum of rows `64 * chunk ..< min(n, 64 * chunk + 64)` of (b, h) of `k` into
/// `partial` (`d` floats): the K mean's partial sums, the same bits whichever worker runs it.
func keyChunkSum(_ k: TensorView, b: Int, h: Int, chunk: Int, tokens n: Int, d: Int, into partial: UnsafeMutablePointer<Float>,
                 row: UnsafeMutablePointer<Float>, kernels: any TileKernels.Type) {
    let t = chunk * 64, end = Swift.min(n, t + 64)
    partial.update(repeating: 0, count: d)
    if k.isFloat32 {
        // fp32 rows are read in place, all 64 by the kernel set (the same per-column order).
        kernels.addRows(k.row(b, h, t), rows: end - t, stride: k.rowStride, d: d, into: partial)
    } else {
        for u in t..<end { addRow(k.floats(b, h, u, count: d, temp: row), into: partial, count: d) }
    }
}

/// The K mean of `n` keys from their chunks' fp32 sums (``keyChunkSum``), `chunks` rows of `d`
/// floats, added in double in chunk order: the bits of ``keySmoothingMean`` without fp16 rounding.
func keyMean(chunkSums: UnsafePointer<Float>, tokens n: Int, d: Int, sums: UnsafeMutablePointer<Double>,
             into mean: UnsafeMutablePointer<Float>) {
    sums.update(repeating: 0, count: d)
    for chunk in 0..<keyMeanChunks(n) {
        let partial = chunkSums + chunk * d
        for c in 0..<d { sums[c] += Double(partial[c]) }
    }
    for c in 0..<d { mean[c] = Float(sums[c] / Double(n)) }
}

/// One smoothed key row: `dst = src - mean` (fp16 rounding of the input and of the
/// difference with `gpuRounding`).
@inline(__always)
func smoothKeyRow(_ src: UnsafePointer<Float>, mean: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                  d: Int, gpuRounding: Bool) {
    if gpuRounding {
        for c in 0..<d { dst[c] = roundToHalf(roundToHalf(src[c]) - mean[c]) }
    } else {
        subtractRow(src, mean, into: dst, count: d)
    }
}
