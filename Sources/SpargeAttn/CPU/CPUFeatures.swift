import Foundation

// What the processor and the operating system support, read once per process from Swift:
// /proc/cpuinfo's flags on Linux (the kernel lists an AVX-512 feature only when it also saves
// the registers), sysctlbyname on macOS. Nothing here executes an instruction the CPU might
// lack, so detection itself can never fault.

/// The instruction-set features the kernel sets need.
struct CPUFeatures: Sendable, Equatable {
    /// x86-64-v3 as `-target-cpu haswell` uses it: AVX2, FMA, BMI1/2, F16C, MOVBE, LZCNT.
    var x86_64_v3 = false
    /// x86-64-v4 + VNNI as `-target-cpu cascadelake` uses it: v3 and AVX-512 F/CD/BW/DQ/VL/VNNI.
    var x86_64_v4VNNI = false
    /// A short description (the model name where known).
    var model = ""

    static let current: CPUFeatures = detect()

    /// Which levels hold for a set of Linux /proc/cpuinfo flag names.
    static func from(linuxFlags flags: Set<Substring>, model: String) -> CPUFeatures {
        let v3: [Substring] = ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm", "popcnt", "sse4_2", "xsave"]
        let v4: [Substring] = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"]
        var f = CPUFeatures(model: model)
        f.x86_64_v3 = v3.allSatisfy(flags.contains)
        f.x86_64_v4VNNI = f.x86_64_v3 && v4.allSatisfy(flags.contains)
        return f
    }

    private static func detect() -> CPUFeatures {
        #if os(Linux) && arch(x86_64)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return CPUFeatures() }
        var flags = Set<Substring>(), model = ""
        for line in text.split(separator: "\n") {
            if flags.isEmpty, line.hasPrefix("flags") {
                flags = Set(line.drop(while: { $0 != ":" }).dropFirst().split(separator: " "))
            } else if model.isEmpty, line.hasPrefix("model name") {
                model = line.drop(while: { $0 != ":" }).dropFirst().trimmingCharacters(in: .whitespaces)
            }
            if !flags.isEmpty && !model.isEmpty { break }
        }
        return from(linuxFlags: flags, model: model)
        #elseif os(macOS) && arch(x86_64)
        func has(_ name: String) -> Bool {
            var value: Int32 = 0
            var size = MemoryLayout<Int32>.size
            return sysctlbyname(name, &value, &size, nil, 0) == 0 && value != 0
        }
        var f = CPUFeatures()
        f.x86_64_v3 = ["hw.optional.avx2_0", "hw.optional.fma", "hw.optional.bmi1", "hw.optional.bmi2",
                       "hw.optional.f16c", "hw.optional.movbe", "hw.optional.lzcnt"].allSatisfy(has)
        f.x86_64_v4VNNI = f.x86_64_v3 && ["hw.optional.avx512f", "hw.optional.avx512cd", "hw.optional.avx512bw",
                                          "hw.optional.avx512dq", "hw.optional.avx512vl", "hw.optional.avx512vnni"].allSatisfy(has)
        return f
        #else
        return CPUFeatures()
        #endif
    }
}
