import SpargeSIMD

// The input scan of the non-finite policy, row by row through the SIMD row kernel.

/// Scans a view for NaN or infinity (rows widened to fp32 into `temp`).
func firstNonFiniteElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                           temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    for b in 0..<batch {
        for h in 0..<heads {
            for n in 0..<tokens {
                let row = v.floats(b, h, n, count: d, temp: temp)
                if let c = firstNonFinite(row, count: d) {
                    return (((b * heads + h) * tokens + n) * d + c, row[c])
                }
            }
        }
    }
    return nil
}
