// SiLU-gated product: out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x).
//
// Not an attention step: the MLP of a Llama-style model (the SmolLM example's SwiGLU) between
// its projections, on the run-time-chosen instruction set like the projections. The sigmoid is
// formed from t = e^-|x| (the softmax's vector 2^x at -|x| log2(e), relative error about
// 2e-7, 0 below 2^-126.5), which cannot overflow: 1 / (1 + t) for x >= 0, t / (1 + t) below,
// so large positive x gives exactly x * up and large negative x gives 0 (exactly 0 where
// e^x < 2^-126.5: results below about 1e-36 |up|).

extension KernelSet {
    /// `out[i] = gate[i] * sigmoid(gate[i]) * up[i]` (SiLU of the gate times up) for `count` elements.
    @inline(never)
    public static func siluGate(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, count: Int,
                                into out: UnsafeMutablePointer<Float>) {
        let n = FloatV.scalarCount
        let minusLog2e = FloatV(repeating: -1.442695040888963)
        let one = FloatV(repeating: 1), zero = FloatV()
        var i = 0
        while i + n <= count {
            let g: FloatV = load(gate + i)
            let negative = g .< zero
            let t = exp2(g.replacing(with: -g, where: negative) * minusLog2e)
            let sigmoid = one.replacing(with: t, where: negative) / (one + t)
            store(g * sigmoid * load(up + i, as: FloatV.self), out + i)
            i += n
        }
        while i < count {
            out[i] = gate[i] * siluSigmoid(gate[i]) * up[i]
            i += 1
        }
    }
}

/// The sigmoid of the SiLU gate for one element, formed as the vector form does.
@inlinable @inline(__always)
public func siluSigmoid(_ x: Float) -> Float {
    let t = exp2Scalar(Swift.abs(x) * -1.442695040888963)
    return (x < 0 ? t : 1) / (1 + t)
}
