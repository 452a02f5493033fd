// The 16-bit row conversions (HalfWidening.swift, HalfNarrowing.swift) as kernel-set entries:
// a KV cache's appends and its key blocks' preparation convert every 16-bit row once, and
// compiled for the CPU (F16C on the AVX2 and AVX-512 sets) that is several times the baseline
// loops' speed. Every level gives the same bits.

extension KernelSet {
    /// ``widenRow(_:count:bfloat16:into:)`` compiled for this set.
    @inline(never)
    public static func widenHalfRow(_ bits: UnsafePointer<UInt16>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<Float>) {
        widenRow(bits, count: count, bfloat16: bfloat16, into: out)
    }

    /// ``narrowRow(_:count:bfloat16:into:)`` compiled for this set.
    @inline(never)
    public static func narrowHalfRow(_ src: UnsafePointer<Float>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<UInt16>) {
        narrowRow(src, count: count, bfloat16: bfloat16, into: out)
    }
}
