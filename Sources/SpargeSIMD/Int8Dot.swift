// The INT8 multiply-add pattern that LLVM lowers to `pmaddwd` (SSE2) / `vpmaddwd` (AVX2).
//
// Operands are int8 values already widened to int16 and interleaved in pairs: lane 2i and
// 2i+1 of `a` and `b` hold two consecutive elements of the reduction dimension. The products
// of a pair are summed into one int32 lane. The widening is written lane by lane because the
// generic `SIMD16<Int32>(truncatingIfNeeded:)` is an out-of-line call in the standard library.

/// Sixteen int16 lanes: eight pairs of int8 values (widened), the `pmaddwd` operand.
public typealias Int16x16 = SIMD16<Int16>
/// Eight int32 accumulators.
public typealias Int32x8 = SIMD8<Int32>

@usableFromInline @inline(__always)
func widen(_ a: Int16x16) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0..<16 { r[i] = Int32(truncatingIfNeeded: a[i]) }
    return r
}

/// `acc + (a[2i] * b[2i] + a[2i+1] * b[2i+1])` for i in 0..<8: one `vpmaddwd` and one `vpaddd`.
@inlinable @inline(__always)
public func multiplyAddPairs(_ a: Int16x16, _ b: Int16x16, _ acc: Int32x8) -> Int32x8 {
    let p = widen(a) &* widen(b)
    return acc &+ p.evenHalf &+ p.oddHalf
}

/// Broadcasts one int16 pair (packed in an `Int32`, low half first) to all eight pair lanes.
@inlinable @inline(__always)
public func broadcastPair(_ pair: Int32) -> Int16x16 {
    unsafeBitCast(Int32x8(repeating: pair), to: Int16x16.self)
}

/// Loads sixteen int16 values from any address.
@inlinable @inline(__always)
public func load16(_ p: UnsafePointer<Int16>) -> Int16x16 {
    UnsafeRawPointer(p).loadUnaligned(as: Int16x16.self)
}
