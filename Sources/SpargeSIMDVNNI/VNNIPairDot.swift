// The 512-bit VNNI instructions that Swift's SIMD types cannot reach.
//
// LLVM turns the int16 pair multiply-add of SpargeSIMD's INT8 kernel into `vpmaddwd` /
// `vpdpwssd` only when the result is at most 8 int32 lanes wide (a ymm register), so the
// AVX-512 kernel set would run its INT8 score tile at half the width of its fp32 one. This
// target, compiled with `-parse-stdlib` and only inside the AVX-512 kernel set's trait,
// names LLVM's `vpdpwssd` intrinsic on zmm registers through the `Builtin` module: Swift
// source, no C or assembly. Without the `DispatchedKernels` trait it is empty.

#if DispatchedKernels && arch(x86_64)
import Swift

/// `acc[i] + a[2i] * b[2i] + a[2i+1] * b[2i+1]` for the 16 int32 lanes (one `vpdpwssd` on zmm
/// registers; the products and sums are exact in int32 for int8 operands widened to int16).
///
/// Only for code compiled for AVX-512 VNNI (the SpargeSIMDAVX512 kernel set), and only run
/// on processors that have it (the run-time choice checks).
@inlinable @inline(__always)
public func vnniMultiplyAddPairs(_ a: SIMD32<Int16>, _ b: SIMD32<Int16>, _ acc: SIMD16<Int32>) -> SIMD16<Int32> {
    let av = unsafeBitCast(a, to: SIMD16<Int32>.self), bv = unsafeBitCast(b, to: SIMD16<Int32>.self)
    var out = SIMD16<Int32>()
    out._storage._value = Builtin.int_x86_avx512_vpdpwssd_512(acc._storage._value, av._storage._value, bv._storage._value)
    return out
}
#endif

#if DispatchedKernels && arch(x86_64)
/// `acc[i] + sum_j a.bytes[4i+j] * b.bytes[4i+j]` for the 16 int32 lanes, `a`'s bytes unsigned
/// and `b`'s signed (one `vpdpbusd` on zmm registers: four products per lane, twice the
/// `vpdpwssd` rate; each product fits in int16 and the sums are exact in int32).
///
/// Same restrictions as ``vnniMultiplyAddPairs(_:_:_:)``.
@inlinable @inline(__always)
public func vnniMultiplyAddQuads(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>, _ acc: SIMD16<Int32>) -> SIMD16<Int32> {
    var out = SIMD16<Int32>()
    out._storage._value = Builtin.int_x86_avx512_vpdpbusd_512(acc._storage._value, a._storage._value, b._storage._value)
    return out
}
#endif
