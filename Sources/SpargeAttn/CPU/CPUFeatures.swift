import Foundation

// What the processor and the operating system support, read once per process from Swift,
// without executing any instruction the CPU might lack:
// - Linux x86-64: the flags of /proc/cpuinfo (the kernel lists an AVX-512 feature only when it
//   also saves the registers), AND the CPUID results that libgcc's constructor stores in
//   `__cpu_model` (what GCC's `__builtin_cpu_supports` reads; it checks XGETBV too). Both are
//   needed: under user-mode emulation (`qemu-x86_64 -cpu Nehalem`) /proc/cpuinfo describes the
//   host, not the emulated CPU, and `__cpu_model` has no VNNI bit. A level is used only when
//   both sources grant it (where libgcc is absent, /proc/cpuinfo alone decides).
// - macOS x86-64: sysctlbyname.

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
        var f = from(linuxFlags: flags, model: model)
        if let cpuid = LibgccCPUModel.read() {
            f.x86_64_v3 = f.x86_64_v3 && cpuid.x86_64_v3
            f.x86_64_v4VNNI = f.x86_64_v4VNNI && cpuid.x86_64_v4
        }
        return f
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

#if os(Linux) && arch(x86_64)
/// The CPUID feature word that libgcc (GCC 4.8 and later) fills in at load time:
/// `struct { unsigned vendor, type, subtype; unsigned features[1]; } __cpu_model`, bit numbers
/// from GCC's `enum processor_features` (stable: new features are only appended).
enum LibgccCPUModel {
    struct Levels { var x86_64_v3: Bool; var x86_64_v4: Bool }

    static func read() -> Levels? {
        // `__cpu_model` is exported only under the symbol version GCC_4.8.0, which plain
        // dlsym does not find; dlvsym is a GNU extension the Glibc module does not import.
        typealias VersionedSymbol = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>, UnsafePointer<CChar>) -> UnsafeMutableRawPointer?
        guard let library = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD) ?? dlopen("libgcc_s.so.1", RTLD_NOW),
              let lookup = dlsym(dlopen(nil, RTLD_NOW), "dlvsym"),
              let model = unsafeBitCast(lookup, to: VersionedSymbol.self)(library, "__cpu_model", "GCC_4.8.0")
        else { return nil }
        let features = model.load(fromByteOffset: 12, as: UInt32.self)
        func has(_ bits: [UInt32]) -> Bool { bits.allSatisfy { features & (1 << $0) != 0 } }
        // popcnt 2, sse4_2 8, avx 9, avx2 10, fma 14, bmi 16, bmi2 17;
        // avx512f 15, avx512vl 20, avx512bw 21, avx512dq 22, avx512cd 23.
        let v3 = has([2, 8, 9, 10, 14, 16, 17])
        return Levels(x86_64_v3: v3, x86_64_v4: v3 && has([15, 20, 21, 22, 23]))
    }
}
#endif
