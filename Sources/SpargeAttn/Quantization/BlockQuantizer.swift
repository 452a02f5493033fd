import SpargeSIMD

// Per-block INT8 quantization (ExactSemantics.md section 3): one scale per block,
// `scale = max|x| / 127 + 1e-7`, `q = trunc(x / scale + 0.5 * sign)`.

/// `log2(e)` as the GPU code writes it.
let log2e: Float = 1.44269504

/// Quantizes `rows x d` values (row stride `d`) with one scale; `premultiplier` is applied
/// first (the Triton path's `s * log2(e)` for Q, 1 otherwise). Returns the scale.
@discardableResult
func quantizeBlock(
    _ x: UnsafePointer<Float>, rows: Int, d: Int, premultiplier: Float,
    into out: UnsafeMutablePointer<Int8>
) -> Float {
    // max|x * c| == max|x| * c in fp32 for c > 0 (rounding is monotone), so the scale matches
    // a kernel that multiplies first.
    let amax = absoluteMax(x, count: rows * d) * premultiplier
    let scale = amax / 127 + 1e-7
    quantizeRow(x, count: rows * d, premultiplier: premultiplier, scale: scale, into: out)
    return scale
}
