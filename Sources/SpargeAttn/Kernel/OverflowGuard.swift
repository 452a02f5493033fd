import Foundation
import SpargeSIMD
import Synchronization

// Finite in, finite out (issue 15). Two fp32 overflows are avoided without per-element work
// in the hot loops, with powers of two (exact scalings):
// - scores: when |Q.K| * s * log2(e) could exceed 2^100 (q, k near 1e19), a query tile keeps
//   its scores divided by a power of two (``ScoreUnit``, which may pass fp32's range); the
//   softmax multiplies differences `S - m` (never S itself) back by it;
// - P.V: when |V| times the number of keys could exceed 2^125 (v near 1e38), V of that
//   (batch, kv head) is stored divided by a power of two `valueUnit`, and O / l is
//   multiplied back by it at the end. The FP8 emulation's P reaches 2^8.807 (SageAttention2's
//   offset), so there the bound counts |V| * keys * 2^9.
enum OverflowGuard {
    /// The largest score magnitude (base-2 units) kept unscaled.
    static let scoreLimit: Double = 0x1p100
    /// The largest `max|V| * keys` kept unscaled (the accumulator stays below 2^126).
    static let valueLimit: Double = 0x1p125

    /// The power of two of ``ScoreUnit/init(bound:limit:)`` as one fp32 value, capped at 2^127:
    /// the unit of V and of Q's premultiplier (score bounds, which pass fp32's range, keep a
    /// ``ScoreUnit``).
    static func unit(bound: Double, limit: Double) -> Float {
        Float(sign: .plus, exponent: Swift.min(127, ScoreUnit(bound: bound, limit: limit).exponent), significand: 1)
    }

    /// Per item a score unit (``ScoreUnit/stored``) and a value unit, both 1: the split-K
    /// state's units before a share writes them.
    static func identityUnits(items: Int) -> RawBuffer<Float> {
        let units = RawBuffer<Float>(count: items * 2, zero: 1)
        for i in 0..<items { units.pointer[2 * i] = ScoreUnit.one.stored }
        return units
    }

    /// A factor applied to values as large as `magnitude` before they are used (Q times the
    /// softmax scale): `factor` itself when `magnitude * factor` stays within `limit`, else
    /// `factor / u` with the power of two `u` that the results are multiplied back by (exact).
    static func split(factor: Float, magnitude: Float, limit: Double) -> (factor: Float, unit: Float) {
        let u = unit(bound: Double(magnitude) * Double(factor), limit: limit)
        return u == 1 ? (factor, 1) : (Float(Double(factor) / Double(u)), u)
    }

    /// A mean to subtract from values up to `largest` in magnitude (K and Q smoothing): itself,
    /// or 0 where `x - mean` could pass fp32's range (subtracting 0 is exact too; INT8 then
    /// keeps less of that channel's variation). NaN input gives 0 too.
    static func centringMean(_ mean: Float, largest: Float) -> Float {
        Double(largest) + Double(Swift.abs(mean)) <= Double(Float.greatestFiniteMagnitude) ? mean : 0
    }

    /// An output element after the multiplication by a value unit above 1: the exact result is
    /// a weighted mean of finite values, so an infinity can only be fp32 rounding past the
    /// largest float, and becomes that float (NaN stays NaN).
    @inline(__always)
    static func finiteRounding(_ x: Float) -> Float {
        x.isInfinite ? (x < 0 ? -.greatestFiniteMagnitude : .greatestFiniteMagnitude) : x
    }

    /// The largest |x| of `count` floats (NaN is ignored; it makes the output NaN anyway).
    static func maxMagnitude(_ x: UnsafePointer<Float>, count: Int) -> Float {
        absoluteMax(x, count: count)
    }

    /// What ``valueUnits(_:shape:into:largestP:threads:)`` found.
    struct ValueScan {
        /// Some unit differs from 1.
        var scaled: Bool
        /// Every element of V is finite (the same pass checks it, so that the sparse pipeline
        /// needs no separate non-finite scan of V).
        var finite: Bool
    }

    /// Writes the `valueUnit` of every (batch, kv head) of V (`B,H kv,Nk,D`) to `units`
    /// (all 1 in the common case) and returns whether any differs from 1 and whether V is
    /// finite. One (batch, kv head) per work item on `threads` workers when V is large, cut
    /// into row ranges when there are few heads; contiguous fp32 rows are one run. No heap
    /// allocation for D up to 256 (plans call it on every run). `largestP` bounds the P that
    /// multiplies V (1 for a softmax's P; 2^9 for the FP8 emulation's offset P).
    static func valueUnits(_ v: TensorView, shape s: AttentionShape, into units: UnsafeMutablePointer<Float>,
                           largestP: Double = 1, threads: Int = 1) -> ValueScan {
        let heads = s.batch * s.kvHeads
        let workers = scanWorkers(elements: heads * s.keyLength * s.headDim, threads: threads)
        let parts = rowRanges(items: heads, rows: s.keyLength, workers: workers)
        // Until the end, `units` holds per head the bits of its largest |v| (non-negative floats
        // order as their bits), raised atomically by its row ranges, or 0x7FFF_FFFF (above every
        // finite magnitude) for a head with a NaN or infinity: no allocation for the flags, and
        // every value below 2^31, where signed and unsigned maxima agree (`Atomic<UInt32>.max`
        // compared as signed in this package's tests: a flag in the top bit was lost).
        let raw = UnsafeMutableRawPointer(units)
        for i in 0..<heads { raw.storeBytes(of: UInt32(0), toByteOffset: 4 * i, as: UInt32.self) }
        let shared = UnsafeSendable(raw)
        parallelFor(items: heads * parts, threads: workers) { _, item in
            let head = item / parts
            let (m, finite) = magnitude(v, head / s.kvHeads, head % s.kvHeads, rows: rowRange(item % parts, of: parts, rows: s.keyLength),
                                        d: s.headDim)
            let found: UInt32 = finite ? m.bitPattern & 0x7FFF_FFFF : 0x7FFF_FFFF
            _ = (shared.value + 4 * head).assumingMemoryBound(to: Atomic<UInt32>.self).pointee.max(found, ordering: .relaxed)
        }
        var scan = ValueScan(scaled: false, finite: true)
        for i in 0..<heads {
            let found = raw.load(fromByteOffset: 4 * i, as: UInt32.self)
            var m = Float(bitPattern: found)
            if found == 0x7FFF_FFFF {
                scan.finite = false
                // The largest |v| of a head with a NaN or infinity: the whole head again (rare).
                m = magnitude(v, i / s.kvHeads, i % s.kvHeads, rows: 0..<s.keyLength, d: s.headDim).max
            }
            // The unit of the largest |v| (an infinity gives 1).
            units[i] = unit(bound: Double(m) * Double(s.keyLength) * largestP, limit: valueLimit)
            if units[i] != 1 { scan.scaled = true }
        }
        return scan
    }

    /// The largest |v| of `rows` of head (b, h) (NaN ignored) and whether they are all finite.
    private static func magnitude(_ v: TensorView, _ b: Int, _ h: Int, rows: Range<Int>, d: Int) -> (max: Float, finite: Bool) {
        guard !rows.isEmpty else { return (0, true) }
        if v.isFloat32 && v.rowStride == d {
            return absoluteMaxAndFiniteness(v.row(b, h, rows.lowerBound), count: rows.count * d)
        }
        var m: Float = 0, allFinite = true
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Swift.max(1, d)) { t in
            for n in rows {
                let row = absoluteMaxAndFiniteness(v.floats(b, h, n, count: d, temp: t.baseAddress!), count: d)
                m = Swift.max(m, row.max)
                allFinite = allFinite && row.finite
            }
        }
        return (m, allFinite)
    }
}
