// Element-wise helpers on Swift SIMD vectors of fp32 that lower to single instructions in
// every kernel set (see KernelVector.swift).
//
// Why not the standard library spellings: on baseline x86-64 (SSE2) `addingProduct`
// becomes one libm `fmaf` call per lane, and `pointwiseMax` / `.max()` / `.rounded()`
// compile to scalar NaN-aware code or libm calls. The forms below were checked in the
// disassembly of the portable, AVX2 and AVX-512 builds. They are generic so that one source
// serves the 8-lane and the 16-lane kernels; `@inline(__always)` specializes every use.

/// Eight fp32 lanes: the fixed width of the code whose results must not depend on the kernel
/// set (stage 1, quantization), and AVX2's register width.
public typealias Float8 = SIMD8<Float>

/// `a * b + c`: fused where the kernel set has a fused multiply-add instruction (x86-64-v3,
/// x86-64-v4, arm64), a separate multiply and add in the baseline x86-64 build (where a fused
/// form would be a libm call per lane).
@inlinable @inline(__always)
public func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar == Float {
    #if SPARGE_FMA || arch(arm64)
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

/// `a * b + c` with a separate rounding of the product in every kernel set: for code whose
/// results must be bitwise the same whatever kernel set runs (stage 1).
@inlinable @inline(__always)
public func multiplyThenAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar == Float {
    a * b + c
}

// Comparisons and `replacing(with:where:)` have single-instruction forms only on the concrete
// vector types: in a generic function they resolve to the protocol's lane-by-lane loops
// (measured: the online softmax 16x slower). Hence concrete overloads, on `FloatV` and, in
// the 16-lane set, on `Float8` too.

/// Lane-wise maximum (`maxps`); if `b` is NaN the lane keeps `a`.
@inlinable @inline(__always)
public func maximum(_ a: FloatV, _ b: FloatV) -> FloatV { a.replacing(with: b, where: b .> a) }

/// Lane-wise minimum (`minps`); if `b` is NaN the lane keeps `a`.
@inlinable @inline(__always)
public func minimum(_ a: FloatV, _ b: FloatV) -> FloatV { a.replacing(with: b, where: b .< a) }

#if SPARGE_AVX512
/// Lane-wise maximum of eight lanes (the 16-lane set's tails).
@inlinable @inline(__always)
public func maximum(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: b .> a) }

/// Lane-wise minimum of eight lanes (the 16-lane set's tails).
@inlinable @inline(__always)
public func minimum(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: b .< a) }
#endif

/// Largest lane of eight, by a shuffle tree (3 steps, no branches).
@inlinable @inline(__always)
public func horizontalMax(_ v: Float8) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
    return b[1] > b[0] ? b[1] : b[0]
}

/// Sum of eight lanes, by a shuffle tree (the order is fixed, so results are reproducible).
@inlinable @inline(__always)
public func horizontalSum(_ v: Float8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
}

/// Largest lane of sixteen (the two halves first, then the 8-lane tree).
@inlinable @inline(__always)
public func horizontalMax(_ v: SIMD16<Float>) -> Float {
    horizontalMax(maximum(v.lowHalf, v.highHalf))
}

/// Sum of sixteen lanes (the two halves first, then the 8-lane tree).
@inlinable @inline(__always)
public func horizontalSum(_ v: SIMD16<Float>) -> Float {
    horizontalSum(v.lowHalf + v.highHalf)
}

/// Loads a vector of floats from any address.
@inlinable @inline(__always)
public func load<V: SIMD>(_ p: UnsafePointer<Float>, as: V.Type = V.self) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

/// Stores a vector of floats to any address.
@inlinable @inline(__always)
public func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Loads eight floats from any address.
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> Float8 { load(p) }

/// Stores eight floats to any address.
@inlinable @inline(__always)
public func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) { store(v, p) }

#if DispatchedKernels && arch(x86_64)
import SpargeSIMDShuffles
#else
/// The even lanes of `a` then of `b`, and the odd lanes of `a` then of `b` (the portable
/// form; with the `DispatchedKernels` trait on x86-64, SpargeSIMDShuffles' permutes).
@inlinable @inline(__always)
public func deinterleave(_ a: FloatV, _ b: FloatV) -> (even: FloatV, odd: FloatV) {
    var even = FloatV(), odd = FloatV()
    let half = FloatV.scalarCount / 2
    for i in 0..<half {
        even[i] = a[2 * i]; even[half + i] = b[2 * i]
        odd[i] = a[2 * i + 1]; odd[half + i] = b[2 * i + 1]
    }
    return (even, odd)
}

/// Lane-wise maximum ignoring NaN (the portable form of SpargeSIMDShuffles' `maxnum`).
@inlinable @inline(__always)
public func maximumNumber(_ a: FloatV, _ b: FloatV) -> FloatV {
    a.replacing(with: b, where: b .> a .| (a .!= a))
}
#endif

/// An 8-lane vector as a `FloatV`, the lanes past 8 (16-lane set) set to `filling`.
@inlinable @inline(__always)
public func widen(_ v: Float8, filling: Float) -> FloatV {
    #if SPARGE_AVX512
    FloatV(lowHalf: v, highHalf: Float8(repeating: filling))
    #else
    v
    #endif
}

/// Reduces a group of `FloatV.scalarCount` row vectors in place: afterwards lane i of
/// `rows[0]` is the sum (with `maxima`, the maximum, NaN lanes ignored) of row i's lanes. Each
/// level folds neighbouring vectors (``foldSums(_:_:)``, ``foldMaxima(_:_:)``), halving the
/// lanes per row: about three instructions per row instead of a horizontal reduction each, in
/// a fixed order (the tree of ``treeSum(_:)``).
@inlinable @inline(__always)
public func reduceRowGroup(_ rows: UnsafeMutablePointer<FloatV>, maxima: Bool) {
    var count = FloatV.scalarCount
    while count > 1 {
        count /= 2
        for j in 0..<count {
            rows[j] = maxima ? foldMaxima(rows[2 * j], rows[2 * j + 1]) : foldSums(rows[2 * j], rows[2 * j + 1])
        }
    }
}

/// The first half of the lanes: sums of adjacent lane pairs of `a`; the second half: of `b`.
@inlinable @inline(__always)
public func foldSums(_ a: FloatV, _ b: FloatV) -> FloatV {
    let (even, odd) = deinterleave(a, b)
    return even + odd
}

/// The sum of `v`'s lanes by the tree a row gets in a row group (adjacent pairs, then
/// adjacent pairs of those, ...), so that a row's sum has the same bits wherever it falls.
@inlinable @inline(__always)
public func treeSum(_ v: FloatV) -> Float {
    var x = foldSums(v, v)
    x = foldSums(x, x)
    x = foldSums(x, x)
    #if SPARGE_AVX512
    x = foldSums(x, x)
    #endif
    return x[0]
}

/// ``foldSums(_:_:)`` with the maximum in place of the sum.
@inlinable @inline(__always)
public func foldMaxima(_ a: FloatV, _ b: FloatV) -> FloatV {
    let (even, odd) = deinterleave(a, b)
    return maximumNumber(even, odd)
}
