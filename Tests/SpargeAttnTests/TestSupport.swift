import Foundation
@testable import SpargeAttn

/// Deterministic generator for test data (SplitMix64 + Box-Muller).
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func gaussian() -> Float {
        let u = max(uniform(), 1e-300), v = uniform()
        return Float((-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v))
    }
    mutating func gaussians(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in gaussian() * scale } }
}
