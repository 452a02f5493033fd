// Lane-width conversions of 16-bit rows (a KV cache's fp16 and bf16 values). Swift's
// `SIMD8<UInt32>(truncatingIfNeeded:)` and `SIMD8<Float>(_: SIMD8<Float16>)` are generic
// initializers that the kernel sets' inliner sometimes leaves as calls (read in the
// disassembly: a call per vector inside the P.V tile); LLVM's `zext`, `trunc` and `fpext` are
// one instruction each (`vpmovzxwd`, `vcvtph2ps` with F16C).

#if DispatchedKernels && arch(x86_64)
import Swift

/// Each 16-bit lane zero-extended to 32 bits.
@_transparent
public func zeroExtend(_ h: SIMD8<UInt16>) -> SIMD8<Int32> {
    var r = SIMD8<Int32>()
    r._storage._value = Builtin.zext_Vec8xInt16_Vec8xInt32(h._storage._value)
    return r
}

/// Each 16-bit lane zero-extended to 32 bits.
@_transparent
public func zeroExtend(_ h: SIMD16<UInt16>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    r._storage._value = Builtin.zext_Vec16xInt16_Vec16xInt32(h._storage._value)
    return r
}

/// The low 16 bits of each lane.
@_transparent
public func truncateToLow16(_ x: SIMD8<Int32>) -> SIMD8<UInt16> {
    var r = SIMD8<UInt16>()
    r._storage._value = Builtin.trunc_Vec8xInt32_Vec8xInt16(x._storage._value)
    return r
}

/// fp16 bits widened to fp32: for the F16C sets only (without F16C LLVM calls a routine per lane).
@_transparent
public func widenHalfBits(_ h: SIMD8<UInt16>) -> SIMD8<Float> {
    var r = SIMD8<Float>()
    r._storage._value = Builtin.fpext_Vec8xFPIEEE16_Vec8xFPIEEE32(unsafeBitCast(h, to: SIMD8<Float16>.self)._storage._value)
    return r
}

/// fp32 rounded to fp16 bits (to nearest even; a NaN keeps its sign and quiets, its payload
/// cut): for the F16C sets only (without F16C LLVM calls a routine per lane).
@_transparent
public func narrowHalfBits(_ x: SIMD8<Float>) -> SIMD8<UInt16> {
    var r = SIMD8<Float16>()
    r._storage._value = Builtin.fptrunc_Vec8xFPIEEE32_Vec8xFPIEEE16(x._storage._value)
    return unsafeBitCast(r, to: SIMD8<UInt16>.self)
}

/// fp16 bits widened to fp32 (16 lanes): for the F16C sets only.
@_transparent
public func widenHalfBits(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    r._storage._value = Builtin.fpext_Vec16xFPIEEE16_Vec16xFPIEEE32(unsafeBitCast(h, to: SIMD16<Float16>.self)._storage._value)
    return r
}
#endif
