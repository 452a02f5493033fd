import SpargeSIMD
import SpargeTestSupport
import Testing
@testable import SpargeAttn

/// The vector conversions between fp32 and 16-bit rows (SpargeSIMD's `widenRow` and
/// `narrowRow`) against Swift's `Float16` and ``BFloat16``: every fp16 and bf16 value, every
/// tie between neighbours and its neighbours, and random fp32 bits.
struct HalfConversionTests {
    static func sameValue(_ a: Float, _ b: Float) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

    @Test func widenRowIsExact() {
        let all = (0..<65_536).map { UInt16($0) }
        for bfloat16 in [false, true] {
            for count in [65_536, 13] {   // 13: a tail
                var out = [Float](repeating: 0, count: count)
                widenRow(all, count: count, bfloat16: bfloat16, into: &out)
                for i in 0..<count {
                    let want = bfloat16 ? BFloat16(bitPattern: all[i]).float : Float(Float16(bitPattern: all[i]))
                    #expect(Self.sameValue(out[i], want), "bits \(all[i]), bf16 \(bfloat16)")
                }
            }
        }
    }

    /// What the narrowing tests round: specials (zeros, fp16's largest and overflow, infinities,
    /// NaN with payloads, subnormal boundaries), each fp16 value with the tie to the next and the
    /// floats on either side of it, the same for bf16 over a spread of exponents, and random bits.
    static let narrowingCases: [Float] = {
        var values: [Float] = [0, -0, 65504, 65519.996, 65520, -65520, 1e10, .infinity, -.infinity, .nan, -.nan,
                               Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_1234), Float(bitPattern: 0x7FBF_FFFF),
                               .leastNonzeroMagnitude, 1e-45, 3e-8, -2.98e-8, 5.96e-8, 2.98e-8, 6.1e-5, -6.1035156e-5,
                               Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude, 3.3961776e38, 3.3961775e38]
        for h in 0..<0x7C00 {
            let x = Float(Float16(bitPattern: UInt16(h))), next = Float(Float16(bitPattern: UInt16(h + 1)))
            let mid = (x + next) / 2
            values += [x, -x, mid, -mid, mid.nextUp, mid.nextDown, -mid.nextUp]
        }
        for h in stride(from: 0, to: 0x7F80, by: 7) {
            let x = Float(bitPattern: UInt32(h) << 16), next = Float(bitPattern: UInt32(h + 1) << 16)
            let mid = Float(bitPattern: (x.bitPattern + next.bitPattern) / 2)
            values += [x, mid, mid.nextUp, mid.nextDown, -mid]
        }
        var rng = TestRNG(seed: 4805)
        for _ in 0..<100_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        return values
    }()

    @Test func narrowRowRoundsToNearestEven() {
        let values = Self.narrowingCases
        for bfloat16 in [false, true] {
            var out = [UInt16](repeating: 0, count: values.count)
            narrowRow(values, count: values.count, bfloat16: bfloat16, into: &out)
            for (i, x) in values.enumerated() {
                let got = bfloat16 ? BFloat16(bitPattern: out[i]).float : Float(Float16(bitPattern: out[i]))
                let want = bfloat16 ? BFloat16(x).float : Float(Float16(x))
                #expect(Self.sameValue(got, want), "\(x) (bits \(x.bitPattern)): \(got), want \(want), bf16 \(bfloat16)")
                if bfloat16 && !x.isNaN { #expect(out[i] == BFloat16(x).bitPattern) }
                if !bfloat16 && !x.isNaN { #expect(out[i] == Float16(x).bitPattern) }
            }
        }
    }

    /// The kernel sets' entries (`widenHalfRow`, `narrowHalfRow`; F16C on the AVX2 and AVX-512
    /// sets) give the baseline loops' bits at every level, NaN included (a narrowed NaN is the
    /// quiet NaN of its sign), and so does the scalar twin; rows of every length up to 40 (tails).
    @Test(arguments: SpargeCPU.supportedLevels)
    func kernelSetConversionsHaveTheBaselineBits(level: CPUKernelLevel) throws {
        let k = try #require(SpargeCPU.kernels(for: level)), scalar = SpargeSIMD.ScalarKernels.self
        let values = Self.narrowingCases
        for bfloat16 in [false, true] {
            var want = [UInt16](repeating: 0, count: values.count), got = want, twin = want
            narrowRow(values, count: values.count, bfloat16: bfloat16, into: &want)
            k.narrowHalfRow(values, count: values.count, bfloat16: bfloat16, into: &got)
            scalar.narrowHalfRow(values, count: values.count, bfloat16: bfloat16, into: &twin)
            let differ = values.indices.filter { got[$0] != want[$0] }
            #expect(differ.isEmpty, "\(level) bf16 \(bfloat16): \(differ.count) differ, first \(differ.first.map { values[$0].bitPattern } ?? 0)")
            #expect(twin == want, "scalar twin, bf16 \(bfloat16)")
            for count in 1...40 {   // tails
                var a = [UInt16](repeating: 7, count: count + 1), b = a
                narrowRow(values, count: count, bfloat16: bfloat16, into: &a)
                k.narrowHalfRow(values, count: count, bfloat16: bfloat16, into: &b)
                #expect(a == b, "\(level) count \(count)")
            }
            let all = (0..<65_536).map { UInt16($0) }
            var wide = [Float](repeating: 0, count: all.count), base = wide, plain = wide
            k.widenHalfRow(all, count: all.count, bfloat16: bfloat16, into: &wide)
            widenRow(all, count: all.count, bfloat16: bfloat16, into: &base)
            scalar.widenHalfRow(all, count: all.count, bfloat16: bfloat16, into: &plain)
            #expect(all.indices.allSatisfy { Self.sameValue(wide[$0], base[$0]) && Self.sameValue(plain[$0], base[$0]) },
                    "\(level) widen, bf16 \(bfloat16)")
        }
    }

    /// The overflow guard's scan of 16-bit rows as bits: the widened row's largest magnitude
    /// (NaN ignored), for fp16 and bf16 rows with NaN, infinities, -0 and subnormals, of
    /// lengths with and without a vector tail.
    @Test func largestMagnitudeBitsIsTheWidenedMaximum() {
        var rng = TestRNG(seed: 1661)
        let specials: [UInt16] = [0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x8000, 0x0001, 0x83FF, 0x7F80, 0xFF80, 0x7FC1, 0x7BFF]
        for trial in 0..<400 {
            let bfloat16 = trial % 2 == 1, count = rng.int(1...70)
            let bits: [UInt16] = (0..<count).map { _ in
                rng.uniform() < 0.1 ? specials[rng.int(0...(specials.count - 1))] : UInt16(truncatingIfNeeded: rng.int(0...65535))
            }
            var wide = [Float](repeating: 0, count: count)
            widenRow(bits, count: count, bfloat16: bfloat16, into: &wide)
            let m = largestMagnitudeBits(bits, count: count, exponentMask: bfloat16 ? 0x7F80 : 0x7C00)
            let value = bfloat16 ? BFloat16(bitPattern: m).float : Float(Float16(bitPattern: m))
            #expect(value == absoluteMax(wide, count: count), "trial \(trial): bf16 \(bfloat16) count \(count)")
        }
    }
}
