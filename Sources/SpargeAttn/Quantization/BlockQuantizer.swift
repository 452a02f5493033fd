import SpargeSIMD

// Per-block INT8 quantization (ExactSemantics.md section 3): one scale per block,
// `scale = max|x| / 127 + 1e-7`, `q = trunc(x / scale + 0.5 * sign)`.

/// `log2(e)` as the GPU code writes it.
let log2e: Float = 1.44269504

/// Quantizes `rows x d` values (row stride `d`) with one scale; `premultiplier` is applied
/// first (the Triton path's `s * log2(e)` for Q, 1 otherwise). Returns the scale. Every kernel
/// set runs the same operations (SpargeSIMD's `quantizeSymmetric`): bitwise the same INT8.
@discardableResult
func quantizeBlock(
    _ x: UnsafePointer<Float>, rows: Int, d: Int, premultiplier: Float,
    into out: UnsafeMutablePointer<Int8>, kernels: any TileKernels.Type = SpargeCPU.activeKernels
) -> Float {
    kernels.quantizeBlock(x, count: rows * d, premultiplier: premultiplier, into: out)
}
