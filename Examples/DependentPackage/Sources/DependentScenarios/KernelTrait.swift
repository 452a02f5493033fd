import Foundation
import SpargeAttn

/// The default trait `DispatchedKernels` reaches a package that depends on SpargeAttn by
/// version: on an x86-64 Linux processor with AVX2 and FMA, the AVX2 kernel set (compiled for
/// x86-64-v3 only under that trait) is among the supported levels.
func dispatchedKernels() throws -> String {
    let levels = SpargeCPU.supportedLevels.map(\.rawValue).joined(separator: ", ")
    #if arch(x86_64) && os(Linux)
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let flags = Set(info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
    if flags.contains("avx2") && flags.contains("fma") && !SpargeCPU.supportedLevels.contains(.avx2) {
        throw Check(description: "the processor has AVX2 and FMA but the supported kernel levels are only \(levels): the default trait DispatchedKernels did not reach this dependent")
    }
    #endif
    return "supported kernel levels \(levels), running \(try SpargeCPU.currentLevel().rawValue)"
}
