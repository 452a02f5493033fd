import SpargeAttn

/// Deterministic pseudo-random numbers in [-1, 1].
struct Noise {
    private var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
    }
    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

/// Stand-ins for a layer's q, k and v (`[N, H, D]` each, fp32) with the structure of a trained
/// model's: q and k share a smooth function of each token's position (1-D for text, 2-D for
/// image patches), so a query attends mostly to nearby tokens; v is noise. (Uniformly random
/// q and k give nearly uniform attention, which no sparse method approximates.)
struct Activations {
    var q: [Float], k: [Float], v: [Float]

    /// `positions[t]` is token `t`'s place (`(t, 0)` for text, `(x, y)` for a patch, nil for a
    /// token without one, such as CLS).
    init(positions: [(Float, Float)?], heads: Int, headDim: Int, seed: UInt64, strength: Float = 1.5) {
        var noise = Noise(seed: seed)
        // One frequency, direction and phase per channel, shared by q and k.
        let waves = (0..<headDim).map { c -> (Float, Float, Float) in
            let angle = Float(c) * 2.399963   // golden angle: directions spread evenly
            let frequency = 0.03 + 0.4 * Float(c % 16) / 16
            return (frequency * cosApprox(angle), frequency * cosApprox(angle - 1.5707964), Float(c) * 0.7)
        }
        q = []; k = []; v = []
        for position in positions {
            for _ in 0..<heads {
                for (fx, fy, phase) in waves {
                    let shared = position.map { strength * cosApprox(fx * $0.0 + fy * $0.1 + phase) } ?? 0
                    q.append(shared + 0.5 * noise.next())
                    k.append(shared + 0.5 * noise.next())
                    v.append(noise.next())
                }
            }
        }
    }
}

/// cos(x) by range reduction and a Taylor series (Foundation-free and deterministic).
func cosApprox(_ x: Float) -> Float {
    let twoPi: Float = 6.2831855
    var r = x - twoPi * (x / twoPi).rounded()
    var sign: Float = 1
    if r > 1.5707964 { r -= 3.1415927; sign = -1 } else if r < -1.5707964 { r += 3.1415927; sign = -1 }
    let r2 = r * r
    return sign * (1 - r2 / 2 * (1 - r2 / 12 * (1 - r2 / 30 * (1 - r2 / 56))))
}

/// `[N, H, D]` tensors interleaved into one fused `[N, 3, H, D]` row per token (the output of
/// a fused QKV projection), rounded to fp16.
func fuse(_ parts: [Float]..., rowWidth: Int) -> [Float16] {
    let tokens = parts[0].count / rowWidth
    var fused = [Float16]()
    fused.reserveCapacity(tokens * rowWidth * parts.count)
    for t in 0..<tokens {
        for part in parts { fused += part[t * rowWidth..<(t + 1) * rowWidth].map { Float16($0) } }
    }
    return fused
}

/// Cosine similarity of two equally long vectors, in Double.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for (x, y) in zip(a, b) {
        ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y)
    }
    return aa == 0 || bb == 0 ? (aa == bb ? 1 : 0) : ab / (aa * bb).squareRoot()
}

/// A scenario's verdict: finite and close enough to exact attention.
struct Check: Error, CustomStringConvertible {
    let description: String
}

/// Throws unless `output` is finite and its cosine with `exact` is at least `minimum`.
func requireClose(_ name: String, _ output: [Float], _ exact: [Float], minimum: Double = 0.99) throws -> Double {
    guard output.count == exact.count else { throw Check(description: "\(name): \(output.count) outputs for \(exact.count) exact values") }
    if let bad = output.firstIndex(where: { !$0.isFinite }) {
        throw Check(description: "\(name): output[\(bad)] = \(output[bad]) is not finite")
    }
    let c = cosine(output, exact)
    guard c >= minimum else { throw Check(description: "\(name): cosine with exact attention \(c) < \(minimum)") }
    return c
}
