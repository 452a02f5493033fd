import Dispatch
import Foundation
import SpargeSIMD

/// Measures the fp32 multiply-add throughput of this machine with the kernels' own vector
/// type: 12 independent accumulators per thread (enough to hide the FMA latency), run on every
/// worker for a fixed number of steps. The benchmark's "share of peak" divides by this.
enum MachinePeak {
    /// GFLOP/s (2 flops per multiply-add lane) on `threads` threads.
    static func measure(threads: Int, steps: Int = 20_000_000) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let sink = spin(steps: steps, seed: Float(t + 1))
            if sink == 42 { print("") }  // keeps the loop alive
        }
        let e = clock.now - start
        let seconds = Double(e.components.seconds) + Double(e.components.attoseconds) * 1e-18
        return Double(threads) * Double(steps) * 12 * 8 * 2 / seconds / 1e9
    }

    /// The build's multiply-add, spelled here so the loop is compiled in this module.
    @inline(__always)
    static func fma(_ a: Float8, _ b: Float8, _ c: Float8) -> Float8 {
        #if Tuned
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    @inline(never)
    static func spin(steps: Int, seed: Float) -> Float {
        let m = Float8(repeating: 0.999_999), a = Float8(repeating: 1e-7)
        var x0 = Float8(repeating: seed), x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5
        var x6 = x0 + 6, x7 = x0 + 7, x8 = x0 + 8, x9 = x0 + 9, x10 = x0 + 10, x11 = x0 + 11
        for _ in 0..<steps {
            x0 = fma(x0, m, a); x1 = fma(x1, m, a); x2 = fma(x2, m, a)
            x3 = fma(x3, m, a); x4 = fma(x4, m, a); x5 = fma(x5, m, a)
            x6 = fma(x6, m, a); x7 = fma(x7, m, a); x8 = fma(x8, m, a)
            x9 = fma(x9, m, a); x10 = fma(x10, m, a); x11 = fma(x11, m, a)
        }
        let s = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11
        return horizontalSum(s)
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes; nil elsewhere.
enum ResidentMemory {
    static func peakBytes() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// The CPU model from /proc/cpuinfo, for the benchmark header.
    static func cpuModel() -> String {
        guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in s.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown CPU"
    }
}
