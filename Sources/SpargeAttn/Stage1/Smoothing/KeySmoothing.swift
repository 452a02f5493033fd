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
        var t = 0
        while t < n {
            let end = Swift.min(n, t + 64)
            partial.update(repeating: 0, count: d)
            if k.isFloat32 {
                // fp32 rows are read in place, all 64 by the kernel set (the same per-column order).
                kernels.addRows(k.row(b, h, t), rows: end - t, stride: k.rowStride, d: d, into: partial)
            } else {
                for u in t..<end { addRow(k.floats(b, h, u, count: d, temp: row), into: partial, count: d) }
            }
            for c in 0..<d { sums[c] += Double(partial[c]) }
            t = end
        }
    }
    for c in 0..<d {
        let m = Float(sums[c] / Double(n))
        mean[c] = gpuRounding ? roundToHalf(m) : m
    }
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
