import Foundation
import SpargeSIMD

// Finite in, finite out (issue 15). Two fp32 overflows are avoided without per-element work
// in the hot loops, with powers of two (exact scalings):
// - scores: when |Q.K| * s * log2(e) could exceed 2^100 (q, k near 1e19), a query tile keeps
//   its scores divided by a power of two `scoreUnit`; the softmax multiplies differences
//   `S - m` (never S itself) back by it;
// - P.V: when |V| times the number of keys could exceed 2^125 (v near 1e38), V of that
//   (batch, kv head) is stored divided by a power of two `valueUnit`, and O / l is
//   multiplied back by it at the end.
enum OverflowGuard {
    /// The largest score magnitude (base-2 units) kept unscaled.
    static let scoreLimit: Double = 0x1p100
    /// The largest `max|V| * keys` kept unscaled (the accumulator stays below 2^126).
    static let valueLimit: Double = 0x1p125

    /// 1 when `bound <= limit` (or not finite: non-finite inputs stay as they are), else the
    /// smallest power of two `u` with `bound / u <= limit`.
    static func unit(bound: Double, limit: Double) -> Float {
        guard bound.isFinite, bound > limit else { return 1 }
        let e = Swift.min(127, Int((bound / limit).exponent) + 1)
        return Float(sign: .plus, exponent: e, significand: 1)
    }

    /// The largest |x| of `count` floats (NaN is ignored; it makes the output NaN anyway).
    static func maxMagnitude(_ x: UnsafePointer<Float>, count: Int) -> Float {
        absoluteMax(x, count: count)
    }

    /// What ``valueUnits(_:shape:into:threads:)`` found.
    struct ValueScan {
        /// Some unit differs from 1.
        var scaled: Bool
        /// Every element of V is finite (the same pass checks it, so that the sparse pipeline
        /// needs no separate non-finite scan of V).
        var finite: Bool
    }

    /// Writes the `valueUnit` of every (batch, kv head) of V (`B,H kv,Nk,D`) to `units`
    /// (all 1 in the common case) and returns whether any differs from 1 and whether V is
    /// finite. One (batch, kv head) per work item on `threads` workers when V is large;
    /// contiguous fp32 rows are one run. No heap allocation for D up to 256 (plans call it on
    /// every run).
    static func valueUnits(_ v: TensorView, shape s: AttentionShape, into units: UnsafeMutablePointer<Float>,
                           threads: Int = 1) -> ValueScan {
        let heads = s.batch * s.kvHeads, d = s.headDim
        let workers = scanWorkers(elements: heads * s.keyLength * d, threads: threads)
        let shared = UnsafeSendable(units)
        parallelFor(items: heads, threads: workers) { _, item in
            let b = item / s.kvHeads, h = item % s.kvHeads
            var m: Float = 0, allFinite = true
            if v.isFloat32 && v.rowStride == d {
                (m, allFinite) = absoluteMaxAndFiniteness(v.row(b, h, 0), count: s.keyLength * d)
            } else {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: Swift.max(1, d)) { t in
                    for n in 0..<s.keyLength {
                        let row = absoluteMaxAndFiniteness(v.floats(b, h, n, count: d, temp: t.baseAddress!), count: d)
                        m = Swift.max(m, row.max)
                        allFinite = allFinite && row.finite
                    }
                }
            }
            // The unit of the largest |v| (an infinity gives 1), negated here to mark a head with a
            // NaN or infinity (no allocation for the flags).
            let u = unit(bound: Double(m) * Double(s.keyLength), limit: valueLimit)
            shared.value[item] = allFinite ? u : -u
        }
        var scan = ValueScan(scaled: false, finite: true)
        for i in 0..<heads {
            if units[i] < 0 { units[i] = -units[i]; scan.finite = false }
            if units[i] != 1 { scan.scaled = true }
        }
        return scan
    }
}
