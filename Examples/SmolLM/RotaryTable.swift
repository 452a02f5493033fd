import Foundation

/// Rotary position embedding as llama.cpp applies it to GGUF Llama weights: adjacent pairs
/// `(x[2i], x[2i+1])` rotate by `position * base^(-2i / D)` (the converter permuted the Q and
/// K weights from Hugging Face's half-split layout to this one).
struct RotaryTable: Sendable {
    let start: Int
    let headDim: Int
    let cos: [Float]
    let sin: [Float]

    init(positions: Range<Int>, headDim: Int, base: Float) {
        start = positions.lowerBound
        self.headDim = headDim
        let half = headDim / 2
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * pow(Double(base), -2 * Double(i) / Double(headDim))
                c[r * half + i] = Float(Foundation.cos(angle))
                s[r * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }

    /// Rotates the first `heads` heads of each row (the query and key heads of a fused row).
    func apply(_ x: inout [Float], rows: Int, rowWidth: Int, heads: Int, threads: Int) {
        let half = headDim / 2, d = headDim
        cos.withUnsafeBufferPointer { cp in
            sin.withUnsafeBufferPointer { sp in
                x.withUnsafeMutableBufferPointer { xp in
                    let base = SharedPointer(xp.baseAddress!)
                    let chunk = 64
                    parallelFor(items: (rows + chunk - 1) / chunk, threads: threads) { item in
                        for r in (item * chunk)..<min(rows, (item + 1) * chunk) {
                            let cr = cp.baseAddress! + r * half, sr = sp.baseAddress! + r * half
                            for h in 0..<heads {
                                let v = base.base + r * rowWidth + h * d
                                for i in 0..<half {
                                    let a = v[2 * i], b = v[2 * i + 1]
                                    v[2 * i] = a * cr[i] - b * sr[i]
                                    v[2 * i + 1] = a * sr[i] + b * cr[i]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
