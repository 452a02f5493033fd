import SpargeAttn

/// Deterministic pseudo-random activations in [-1, 1] (a stand-in for a model's).
struct Activations {
    private var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
    }
    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
    mutating func halves(_ count: Int) -> [Float16] { (0..<count).map { _ in Float16(next()) } }
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
