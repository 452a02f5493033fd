// The INT8 multiply-add pattern that LLVM lowers to `pmaddwd` (SSE2) / `vpmaddwd` (AVX2,
// AVX-512 BW), and with AVX-512 VNNI to one `vpdpwssd` (the multiply, the pair sum and the
// accumulation in one instruction).
//
// Operands are int8 values already widened to int16 and interleaved in pairs: lane 2i and
// 2i+1 of `a` and `b` hold two consecutive elements of the reduction dimension. The products
// of a pair are summed into one int32 lane. The widening is written lane by lane because the
// generic `SIMD16<Int32>(truncatingIfNeeded:)` is an out-of-line call in the standard library.

#if SPARGE_VNNI512
import SpargeSIMDVNNI
#endif

#if !SPARGE_VNNI512
@usableFromInline @inline(__always)
func widen(_ a: Int16V) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0..<16 { r[i] = Int32(truncatingIfNeeded: a[i]) }
    return r
}
#endif

/// `acc + (a[2i] * b[2i] + a[2i+1] * b[2i+1])` for every int32 lane i: one `vpmaddwd` and one
/// `vpaddd`, or one `vpdpwssd` with VNNI.
@inlinable @inline(__always)
public func multiplyAddPairs(_ a: Int16V, _ b: Int16V, _ acc: Int32V) -> Int32V {
    #if SPARGE_VNNI512
    return vnniMultiplyAddPairs(a, b, acc)
    #else
    let p = widen(a) &* widen(b)
    return acc &+ (p.evenHalf &+ p.oddHalf)
    #endif
}

/// The int32 lanes as fp32, lane by lane (exact below 2^24): the generic SIMD conversion is an
/// out-of-line call in the standard library for 16 lanes.
@inlinable @inline(__always)
public func convertToFloat(_ x: Int32V) -> ScoreFloatV {
    var r = ScoreFloatV()
    for i in 0..<Int32V.scalarCount { r[i] = Float(x[i]) }
    return r
}

/// Broadcasts one int16 pair (packed in an `Int32`, low half first) to all pair lanes.
@inlinable @inline(__always)
public func broadcastPair(_ pair: Int32) -> Int16V {
    unsafeBitCast(Int32V(repeating: pair), to: Int16V.self)
}

/// Loads one `Int16V` from any address.
@inlinable @inline(__always)
public func loadPairs(_ p: UnsafePointer<Int16>) -> Int16V {
    UnsafeRawPointer(p).loadUnaligned(as: Int16V.self)
}
