// Lane operations that Swift's SIMD types do not reach as single instructions.
//
// `SIMD32.evenHalf` and its kin are generic loops in the standard library; in the kernel sets
// they stay calls, one per vector (read in the disassembly). LLVM's `shufflevector`, named
// through the `Builtin` module (this target is compiled with `-parse-stdlib`, only with the
// `DispatchedKernels` trait), gives one or two permutes. A maximum written as a compare and
// select of shuffled lanes is split by LLVM into 4-lane pieces with mask conversions; its
// `maxnum` intrinsic stays one `maxps` (and a NaN fix-up). Swift source, no C or assembly;
// inlined into each kernel set, so each set's compiler flags pick the instructions.

#if DispatchedKernels && arch(x86_64)
import Swift

/// The even lanes of `a` then of `b`, and the odd lanes of `a` then of `b` (16 lanes each).
@_transparent
public func deinterleave(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> (even: SIMD16<Float>, odd: SIMD16<Float>) {
    var even = SIMD16<Float>(), odd = SIMD16<Float>()
    even._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec16xInt32(
        a._storage._value, b._storage._value,
        SIMD16<Int32>(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)._storage._value)
    odd._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec16xInt32(
        a._storage._value, b._storage._value,
        SIMD16<Int32>(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)._storage._value)
    return (even, odd)
}

/// The even lanes of `a` then of `b`, and the odd lanes of `a` then of `b` (8 lanes each).
@_transparent
public func deinterleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (even: SIMD8<Float>, odd: SIMD8<Float>) {
    var even = SIMD8<Float>(), odd = SIMD8<Float>()
    even._storage._value = Builtin.shufflevector_Vec8xFPIEEE32_Vec8xInt32(
        a._storage._value, b._storage._value, SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)._storage._value)
    odd._storage._value = Builtin.shufflevector_Vec8xFPIEEE32_Vec8xInt32(
        a._storage._value, b._storage._value, SIMD8<Int32>(1, 3, 5, 7, 9, 11, 13, 15)._storage._value)
    return (even, odd)
}

/// Lane-wise maximum ignoring NaN (IEEE maxNum: a NaN lane takes the other operand).
@_transparent
public func maximumNumber(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    r._storage._value = Builtin.int_maxnum_Vec16xFPIEEE32(a._storage._value, b._storage._value)
    return r
}

/// Lane-wise maximum ignoring NaN (IEEE maxNum: a NaN lane takes the other operand).
@_transparent
public func maximumNumber(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    var r = SIMD8<Float>()
    r._storage._value = Builtin.int_maxnum_Vec8xFPIEEE32(a._storage._value, b._storage._value)
    return r
}

// One step of a 16 x 16 transpose of 32-bit words: rows `a` (bit k of the row index clear) and
// `b` (bit k set) swap bit k of the row index with bit k of the lane index (s = 2^k): lane l of
// the new `a` is a[l] where bit k of l is clear, else b[l - s]; of the new `b`, a[l + s] where
// it is clear, else b[l]. The four steps, in any order, transpose.

/// The transpose step for bit 0 (see above).
@_transparent
public func swapLaneBit0(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> (SIMD16<Int32>, SIMD16<Int32>) {
    var x = SIMD16<Int32>(), y = SIMD16<Int32>()
    x._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30)._storage._value)
    y._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31)._storage._value)
    return (x, y)
}

/// The transpose step for bit 1 (see above).
@_transparent
public func swapLaneBit1(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> (SIMD16<Int32>, SIMD16<Int32>) {
    var x = SIMD16<Int32>(), y = SIMD16<Int32>()
    x._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)._storage._value)
    y._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)._storage._value)
    return (x, y)
}

/// The transpose step for bit 2 (see above).
@_transparent
public func swapLaneBit2(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> (SIMD16<Int32>, SIMD16<Int32>) {
    var x = SIMD16<Int32>(), y = SIMD16<Int32>()
    x._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27)._storage._value)
    y._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31)._storage._value)
    return (x, y)
}

/// The transpose step for bit 3 (see above).
@_transparent
public func swapLaneBit3(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> (SIMD16<Int32>, SIMD16<Int32>) {
    var x = SIMD16<Int32>(), y = SIMD16<Int32>()
    x._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)._storage._value)
    y._storage._value = Builtin.shufflevector_Vec16xInt32_Vec16xInt32(
        a._storage._value, b._storage._value, SIMD16<Int32>(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)._storage._value)
    return (x, y)
}
#endif
