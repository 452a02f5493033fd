// One 512-bit VNNI instruction that Swift's SIMD types cannot reach.
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
