// The machine's fp32 multiply-add throughput with this kernel set's vectors: twelve
// independent accumulators (enough to hide the FMA latency on current cores). Benchmarks
// divide by it to say what share of the peak a kernel reaches.

extension KernelSet {
    /// Runs `steps` x 12 vector multiply-adds (`steps * 12 * lanes * 2` flops) and returns a
    /// value that depends on all of them.
    @inline(never)
    public static func multiplyAddLoop(steps: Int, seed: Float) -> Float {
        let m = FloatV(repeating: 0.999_999), a = FloatV(repeating: 1e-7)
        var x0 = FloatV(repeating: seed), x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5
        var x6 = x0 + 6, x7 = x0 + 7, x8 = x0 + 8, x9 = x0 + 9, x10 = x0 + 10, x11 = x0 + 11
        for _ in 0..<steps {
            x0 = multiplyAdd(x0, m, a); x1 = multiplyAdd(x1, m, a); x2 = multiplyAdd(x2, m, a)
            x3 = multiplyAdd(x3, m, a); x4 = multiplyAdd(x4, m, a); x5 = multiplyAdd(x5, m, a)
            x6 = multiplyAdd(x6, m, a); x7 = multiplyAdd(x7, m, a); x8 = multiplyAdd(x8, m, a)
            x9 = multiplyAdd(x9, m, a); x10 = multiplyAdd(x10, m, a); x11 = multiplyAdd(x11, m, a)
        }
        let s = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11
        return s.sum()
    }
}
