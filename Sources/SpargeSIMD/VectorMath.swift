// Element-wise helpers on SIMD8<Float> that lower to single instructions on both builds.
//
// Why not the standard library spellings: on baseline x86-64 (SSE2) `addingProduct`
// becomes one libm `fmaf` call per lane, and `pointwiseMax` / `.max()` / `.rounded()`
// compile to scalar NaN-aware code or libm calls. The forms below were checked in the
// disassembly of both the portable and the tuned (`-target-cpu haswell`) build.

/// Eight fp32 lanes: the vector width of AVX2, two SSE registers in the portable build.
public typealias Float8 = SIMD8<Float>

/// `a * b + c`: a fused multiply-add in the tuned build, a separate multiply and add in the
/// portable build (where a fused form would be a libm call per lane).
@inlinable @inline(__always)
public func multiplyAdd(_ a: Float8, _ b: Float8, _ c: Float8) -> Float8 {
    #if Tuned
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

/// Lane-wise maximum (`maxps`); if `b` is NaN the lane keeps `a`.
@inlinable @inline(__always)
public func maximum(_ a: Float8, _ b: Float8) -> Float8 {
    a.replacing(with: b, where: b .> a)
}

/// Lane-wise minimum (`minps`); if `b` is NaN the lane keeps `a`.
@inlinable @inline(__always)
public func minimum(_ a: Float8, _ b: Float8) -> Float8 {
    a.replacing(with: b, where: b .< a)
}

/// Largest lane, by a shuffle tree (3 steps, no branches).
@inlinable @inline(__always)
public func horizontalMax(_ v: Float8) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
    return b[1] > b[0] ? b[1] : b[0]
}

/// Sum of the lanes, by a shuffle tree (the order is fixed, so results are reproducible).
@inlinable @inline(__always)
public func horizontalSum(_ v: Float8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
}

/// Loads eight floats from any address.
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

/// Stores eight floats to any address.
@inlinable @inline(__always)
public func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}
