/// A kernel set of the CPU path: the same kernel sources compiled for one instruction-set level.
///
/// The default build carries every level its platform has and picks, once per process, the
/// best one the CPU supports; `SPARGE_ISA=baseline|avx2|avx512` in the environment or
/// ``SpargeCPU/withLevel(_:_:)`` choose a lower one (for tests and comparisons). Results differ
/// between levels only by fp32 rounding (vector width and fused multiply-add): block maps and
/// INT8 tensors are identical at every level, and within a level results are bitwise
/// independent of the thread count.
public enum CPUKernelLevel: String, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Portable code: baseline x86-64 (SSE2, no FMA) or arm64 (NEON). Runs on every CPU.
    case baseline
    /// x86-64-v3: AVX2 + FMA, 8 fp32 lanes (Intel Haswell, AMD Zen and later).
    case avx2
    /// x86-64-v4 with VNNI: AVX-512 F/CD/BW/DQ/VL + VNNI, 16 fp32 lanes and `vpdpbusd` for the
    /// INT8 scores (Intel Cascade Lake, Ice Lake, Sapphire Rapids; AMD Zen 4 and later).
    case avx512

    /// Orders the levels from the most portable to the widest (`baseline < avx2 < avx512`).
    public static func < (a: CPUKernelLevel, b: CPUKernelLevel) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The level and what it means, e.g. `avx2 (x86-64-v3: AVX2 + FMA, 8 lanes)`.
    public var description: String {
        switch self {
        case .baseline:
            #if arch(arm64)
            return "baseline (arm64 NEON, 4-lane vectors)"
            #else
            return "baseline (x86-64 SSE2, no FMA)"
            #endif
        case .avx2: return "avx2 (x86-64-v3: AVX2 + FMA, 8 lanes)"
        case .avx512: return "avx512 (x86-64-v4 + VNNI: AVX-512, 16 lanes)"
        }
    }
}
