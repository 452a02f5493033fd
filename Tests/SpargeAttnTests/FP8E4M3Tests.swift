import Foundation
import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// FP8 e4m3fn (`__nv_fp8_e4m3`): decoding of all 256 codes against a table built here from
/// the bit layout with `pow`, round trips, round-to-nearest-even at every midpoint,
/// saturation at 448, subnormals, NaN and signed zero; `roundToE4M3` agrees with the type.
struct FP8E4M3Tests {
    /// The value of each code from the definition: (-1)^S * 2^(E-7) * (1 + M/8), or
    /// (-1)^S * 2^-6 * (M/8) when E == 0; NaN for S.1111.111. Computed in Double with `pow`,
    /// independently of the bit tricks in the library.
    static let table: [Double] = (0..<256).map { code in
        let s = code >> 7, e = (code >> 3) & 0xF, m = code & 0x7
        if e == 15 && m == 7 { return .nan }
        let sign: Double = s == 1 ? -1 : 1
        if e == 0 { return sign * Foundation.pow(2.0, -6) * (Double(m) / 8) }
        return sign * Foundation.pow(2.0, Double(e - 7)) * (1 + Double(m) / 8)
    }

    /// The non-negative finite values in increasing order, with their codes (0x00...0x7E).
    static let positives: [(code: UInt8, value: Double)] = (0..<0x7F).map { (UInt8($0), table[$0]) }

    @Test func everyCodeDecodes() {
        for code in 0..<256 {
            let x = FP8E4M3(bitPattern: UInt8(code))
            let expected = Self.table[code]
            if expected.isNaN {
                #expect(x.float.isNaN && x.isNaN, "code \(code)")
            } else {
                #expect(!x.isNaN, "code \(code)")
                #expect(Double(x.float) == expected, "code \(String(code, radix: 16)): \(x.float) vs \(expected)")
                // The sign bit is kept, zero included.
                #expect((x.float.sign == .minus) == (code >= 0x80), "code \(code)")
            }
        }
        #expect(Self.table[0x7E] == 448 && Self.table[0x01] == Foundation.pow(2.0, -9) && Self.table[0x08] == Foundation.pow(2.0, -6))
        #expect(FP8E4M3.greatestFiniteMagnitude.float == 448)
        #expect(FP8E4M3.leastNonzeroMagnitude.float == 0x1p-9)
        #expect(FP8E4M3.leastNormalMagnitude.float == 0x1p-6)
        #expect(FP8E4M3.nan.isNaN)
        // The table is strictly increasing over the positive codes: no duplicates, no gaps in order.
        for i in 1..<Self.positives.count { #expect(Self.positives[i].value > Self.positives[i - 1].value) }
    }

    @Test func everyCodeRoundTrips() {
        for code in 0..<256 {
            let x = FP8E4M3(bitPattern: UInt8(code))
            if x.isNaN {
                #expect(FP8E4M3(x.float).isNaN)
                #expect(FP8E4M3(x.float).bitPattern == 0x7F, "NaN is canonicalised to 0x7F")
                #expect(roundToE4M3(x.float).isNaN)
            } else {
                #expect(FP8E4M3(x.float).bitPattern == UInt8(code), "code \(code)")
                #expect(roundToE4M3(x.float).bitPattern == x.float.bitPattern, "code \(code)")
            }
        }
    }

    @Test func midpointsRoundToEven() {
        for sign: Float in [1, -1] {
            for i in 1..<Self.positives.count {
                let (loCode, lo) = Self.positives[i - 1], (hiCode, hi) = Self.positives[i]
                let mid = Float((lo + hi) / 2)   // exact: at most 5 significant bits
                #expect(Double(mid) == (lo + hi) / 2)
                let evenCode = loCode & 1 == 0 ? loCode : hiCode
                #expect(evenCode & 1 == 0)
                let signBit: UInt8 = sign < 0 ? 0x80 : 0
                let x = sign * mid
                #expect(FP8E4M3(x).bitPattern == evenCode | signBit, "midpoint \(x) of \(lo) and \(hi)")
                #expect(Double(roundToE4M3(x)) == Double(sign) * (evenCode == loCode ? lo : hi), "midpoint \(x)")
                // Just off the midpoint, the nearer value wins whatever its parity.
                let above = sign * mid.nextUp, below = sign * mid.nextDown
                #expect(FP8E4M3(above).bitPattern == hiCode | signBit, "just above \(x)")
                #expect(FP8E4M3(below).bitPattern == loCode | signBit, "just below \(x)")
                #expect(Double(roundToE4M3(above)) == Double(sign) * hi)
                #expect(Double(roundToE4M3(below)) == Double(sign) * lo)
            }
        }
    }

    @Test func saturatesAt448() {
        let cases: [(Float, Float)] = [
            (448, 448), (449, 448), (463.99, 448), (464, 448), (465, 448), (479, 448), (480, 448), (500, 448),
            (1e9, 448), (.greatestFiniteMagnitude, 448), (.infinity, 448),
            (-448, -448), (-464, -448), (-500, -448), (-1e30, -448), (-.infinity, -448),
            (432, 448), (415.99, 416), (416, 416),   // 416 is 0x7D; (416 + 448) / 2 = 432 ties to 448 (0x7E, even)
        ]
        for (x, expected) in cases {
            #expect(FP8E4M3(x).float == expected, "\(x)")
            #expect(roundToE4M3(x) == expected, "\(x)")
        }
        #expect(FP8E4M3(464).bitPattern == 0x7E)
        #expect(FP8E4M3(-500).bitPattern == 0xFE)
        #expect(FP8E4M3(1e9).bitPattern == 0x7E)
    }

    @Test func subnormalsZeroAndNaN() {
        #expect(FP8E4M3(0x1p-9).bitPattern == 0x01)
        #expect(FP8E4M3(3 * 0x1p-9).bitPattern == 0x03)
        #expect(FP8E4M3(7 * 0x1p-9).bitPattern == 0x07)
        #expect(FP8E4M3(0x1p-6).bitPattern == 0x08)
        #expect(FP8E4M3(-0x1p-9).bitPattern == 0x81)
        // Half the smallest subnormal ties to even: zero. Anything above it rounds up.
        #expect(FP8E4M3(0x1p-10).bitPattern == 0x00)
        #expect(FP8E4M3(Float(0x1p-10).nextUp).bitPattern == 0x01)
        #expect(FP8E4M3(1.5 * 0x1p-9).bitPattern == 0x02)   // tie between 1 and 2 steps: 2 is even
        #expect(FP8E4M3(2.5 * 0x1p-9).bitPattern == 0x02)
        #expect(FP8E4M3(.leastNonzeroMagnitude).bitPattern == 0x00)
        #expect(FP8E4M3(-.leastNonzeroMagnitude).bitPattern == 0x80, "tiny negatives keep their sign")
        #expect(roundToE4M3(-.leastNonzeroMagnitude).sign == .minus)
        // Signed zero.
        #expect(FP8E4M3(0).bitPattern == 0x00)
        #expect(FP8E4M3(-0.0).bitPattern == 0x80)
        #expect(FP8E4M3(bitPattern: 0x80).float.sign == .minus && FP8E4M3(bitPattern: 0x80).float == 0)
        #expect(roundToE4M3(-0.0).bitPattern == (-0.0 as Float).bitPattern)
        // NaN of either sign and any payload.
        for nan in [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_1234), Float.signalingNaN] {
            #expect(FP8E4M3(nan).bitPattern == 0x7F)
            #expect(FP8E4M3(nan).isNaN)
            #expect(roundToE4M3(nan).isNaN)
        }
        #expect(FP8E4M3(bitPattern: 0xFF).isNaN && FP8E4M3(bitPattern: 0xFF).float.isNaN)
        #expect(!FP8E4M3(bitPattern: 0x7E).isNaN && !FP8E4M3(bitPattern: 0x78).isNaN)
    }

    /// Nearest value by brute force over the table, ties to the even code; saturating.
    static func reference(_ x: Float) -> Double {
        if x.isNaN { return .nan }
        let a = min(Double(abs(x)), 448)
        var best = positives[0]
        for p in positives {
            let d = abs(p.value - a), db = abs(best.value - a)
            if d < db || (d == db && p.code & 1 == 0) { best = p }
        }
        return x.sign == .minus ? -best.value : best.value
    }

    @Test func randomValuesMatchBruteForce() {
        var rng = TestRNG(seed: 84)
        var inputs: [Float] = []
        for _ in 0..<20_000 {
            // Log-uniform magnitudes over the whole range and beyond, both signs.
            let e = Float(rng.uniform() * 30 - 14)
            let x = Foundation.powf(2, e) * (rng.uniform() < 0.5 ? -1 : 1)
            inputs.append(x)
        }
        for _ in 0..<5_000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for x in inputs {
            let r = Self.reference(x)
            let viaType = FP8E4M3(x).float, fast = roundToE4M3(x)
            if r.isNaN {
                #expect(viaType.isNaN && fast.isNaN)
            } else {
                #expect(Double(viaType) == r, "\(x) (bits \(String(x.bitPattern, radix: 16)))")
                #expect(fast.bitPattern == viaType.bitPattern, "\(x)")
            }
        }
    }

    @Test func descriptionAndHashing() {
        #expect(FP8E4M3(1.0).description == "1.0")
        #expect(FP8E4M3(0) != FP8E4M3(-0.0), "bit-pattern equality: +0 and -0 differ")
        let all: [FP8E4M3] = (0...UInt8.max).map { FP8E4M3(bitPattern: $0) }
        #expect(Set(all).count == 256)
    }
}
