// The vector width of this kernel set.
//
// The sources of this folder are compiled three times (see Package.swift): as SpargeSIMD
// (portable: baseline x86-64 with SSE2, or arm64 with NEON), as SpargeSIMDAVX2 (x86-64-v3:
// AVX2 + FMA, condition SPARGE_AVX2) and as SpargeSIMDAVX512 (x86-64-v4 with VNNI, condition
// SPARGE_AVX512). The tile kernels are written once on `FloatV`; only the lane count and the
// fused multiply-add (SPARGE_FMA) change. SpargeAttn picks one set at run time.

#if SPARGE_AVX512
/// The fp32 vector of the tile kernels: 16 lanes, one zmm register.
public typealias FloatV = SIMD16<Float>
#else
/// The fp32 vector of the tile kernels: 8 lanes (one ymm register, or two xmm / NEON).
public typealias FloatV = SIMD8<Float>
#endif
#if SPARGE_VNNI512
/// int16 pairs that `multiplyAddPairs` reduces into one `Int32V`: one zmm register, reduced
/// by one 512-bit `vpdpwssd` (SpargeSIMDVNNI).
public typealias Int16V = SIMD32<Int16>
/// int32 accumulators of the INT8 kernel (16 lanes, one zmm register).
public typealias Int32V = SIMD16<Int32>
/// fp32 vector of the INT8 kernel's scaled output (as many lanes as `Int32V`).
public typealias ScoreFloatV = SIMD16<Float>
#else
/// int16 pairs that `multiplyAddPairs` reduces into one `Int32V`. LLVM recognizes `vpmaddwd`
/// (with VNNI `vpdpwssd`) in Swift SIMD code only up to 8 int32 lanes (a ymm register); the
/// AVX-512 set goes wider through SpargeSIMDVNNI.
public typealias Int16V = SIMD16<Int16>
/// int32 accumulators of the INT8 kernel (8 lanes).
public typealias Int32V = SIMD8<Int32>
/// fp32 vector of the INT8 kernel's scaled output (as many lanes as `Int32V`).
public typealias ScoreFloatV = SIMD8<Float>
#endif

#if SPARGE_AVX512
/// `FloatV`'s lane count of int16 (the fixed-point probability levels, narrowed from int32).
public typealias ProbabilityLevelsV = SIMD16<Int16>
#else
/// `FloatV`'s lane count of int16 (the fixed-point probability levels, narrowed from int32).
public typealias ProbabilityLevelsV = SIMD8<Int16>
#endif

/// Lanes of `FloatV`.
public let vectorLanes = FloatV.scalarCount

/// The name of this kernel set, as the run-time selection reports it.
public let kernelSetName: String = {
    #if SPARGE_AVX512
    return "avx512"
    #elseif SPARGE_AVX2
    return "avx2"
    #else
    return "baseline"
    #endif
}()

/// Whether this build of the kernel set was compiled for its instruction set (false when the
/// package was built without the `DispatchedKernels` trait: the AVX2 and AVX-512 sets are then
/// portable code under another name and must not be chosen).
public let kernelSetIsSpecialized: Bool = {
    #if SPARGE_FMA || !(SPARGE_AVX2 || SPARGE_AVX512)
    return true
    #else
    return false
    #endif
}()
