import SpargeSIMD

// The input scans of the validation (the non-finite policy, the fp16 range of the GPU
// emulations), row by row.

/// The first element of a view that `find` flags in its row (rows widened to fp32 into `temp`):
/// its flat `B,H,N,D` index and value.
@inline(__always)
func firstFlaggedElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int, temp: UnsafeMutablePointer<Float>,
                         find: (UnsafePointer<Float>, Int) -> Int?) -> (index: Int, value: Float)? {
    for b in 0..<batch {
        for h in 0..<heads {
            for n in 0..<tokens {
                let row = v.floats(b, h, n, count: d, temp: temp)
                if let c = find(row, d) {
                    return (((b * heads + h) * tokens + n) * d + c, row[c])
                }
            }
        }
    }
    return nil
}

/// Scans a view for NaN or infinity (the SIMD row kernel).
func firstNonFiniteElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                           temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    firstFlaggedElement(v, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { firstNonFinite($0, count: $1) }
}
