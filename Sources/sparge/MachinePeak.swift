import Foundation
import SpargeAttn

/// The fp32 multiply-add throughput of this machine with the running kernel set's vectors
/// (``SpargeCPU/multiplyAddPeak(level:threads:steps:)``). The benchmark's "share of peak"
/// divides by this.
enum MachinePeak {
    /// GFLOP/s (2 flops per multiply-add lane) on `threads` threads.
    static func measure(threads: Int, steps: Int = 20_000_000) -> Double {
        let level = (try? SpargeCPU.currentLevel()) ?? .baseline
        return (try? SpargeCPU.multiplyAddPeak(level: level, threads: threads, steps: steps)) ?? 0
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
