// Row-wise reductions and transforms used by the online softmax.

/// Maximum of `count` floats (`-inf` for an empty row). NaN entries are ignored.
@inlinable @inline(__always)
public func rowMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var i = 0
    var m = Float8(repeating: -.infinity)
    while i + 8 <= count { m = maximum(m, load8(x + i)); i += 8 }
    var r = horizontalMax(m)
    while i < count { if x[i] > r { r = x[i] }; i += 1 }
    return r
}

/// Replaces `x[i]` by `2^(x[i] - shift)` for `count` entries (a multiple of 8) and returns their
/// sum over the first `valid` entries.
@inlinable @inline(__always)
public func exp2InPlace(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
    let s = Float8(repeating: shift)
    var acc = Float8()
    var i = 0
    while i < count {
        let e = exp2(load8(x + i) - s, flushBelow: probabilityFlushExponent)
        store8(e, x + i)
        acc += e
        i += 8
    }
    return horizontalSum(acc)
}

/// `x[i] *= factor` for `count` entries (a multiple of 8).
@inlinable @inline(__always)
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
    let f = Float8(repeating: factor)
    var i = 0
    while i < count { store8(load8(x + i) * f, x + i); i += 8 }
}

/// `sum[i] += x[i]` for `count` entries.
@inlinable @inline(__always)
public func addRow(_ x: UnsafePointer<Float>, into sum: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count { store8(load8(sum + i) + load8(x + i), sum + i); i += 8 }
    while i < count { sum[i] += x[i]; i += 1 }
}

/// `out[i] = x[i] - y[i]` for `count` entries.
@inlinable @inline(__always)
public func subtractRow(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count { store8(load8(x + i) - load8(y + i), out + i); i += 8 }
    while i < count { out[i] = x[i] - y[i]; i += 1 }
}

/// The index of the first of `count` 16-bit floats (their bits: fp16 or bf16) that is NaN or
/// infinite, or nil: those whose exponent bits, `exponentMask` (0x7C00 for fp16, 0x7F80 for
/// bf16), are all ones. Read as bits, never widened.
@inlinable
public func firstNonFinite(bits x: UnsafePointer<UInt16>, count: Int, exponentMask: UInt16) -> Int? {
    let mask = SIMD16<UInt16>(repeating: exponentMask)
    var i = 0
    while i + 16 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<UInt16>.self)
        if any((v & mask) .== mask) { break }
        i += 16
    }
    while i < count {
        if x[i] & exponentMask == exponentMask { return i }
        i += 1
    }
    return nil
}

/// The bits of the largest magnitude among `count` 16-bit floats (fp16, or bf16: `exponentMask`
/// 0x7C00 or 0x7F80), NaN ignored (0 when there is none else): with the sign cleared, magnitudes
/// order like their bits, so a KV cache's overflow guard scans its stored rows without widening
/// them (the same answer as the widened row's ``absoluteMax(_:count:)``, as widening is exact).
public func largestMagnitudeBits(_ x: UnsafePointer<UInt16>, count: Int, exponentMask: UInt16) -> UInt16 {
    let magnitude = SIMD16<UInt16>(repeating: 0x7FFF), infinity = SIMD16<UInt16>(repeating: exponentMask)
    var best = SIMD16<UInt16>()
    var i = 0
    while i + 16 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<UInt16>.self) & magnitude
        best = best.replacing(with: v, where: (v .<= infinity) .& (v .> best))   // above infinity: NaN
        i += 16
    }
    var m: UInt16 = 0
    for lane in 0..<16 { m = Swift.max(m, best[lane]) }
    while i < count {
        let v = x[i] & 0x7FFF
        if v <= exponentMask { m = Swift.max(m, v) }
        i += 1
    }
    return m
}

/// Index of the first NaN or infinite value among `count` floats, or nil. Vectorised:
/// `x - x` is 0 for finite lanes and NaN otherwise.
@inlinable
public func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
    var i = 0
    while i + 32 <= count {
        let a = load8(x + i), b = load8(x + i + 8), c = load8(x + i + 16), d = load8(x + i + 24)
        let z = (a - a) + (b - b) + (c - c) + (d - d)
        if any(.!(z .== 0)) { break }
        i += 32
    }
    while i < count {
        if !x[i].isFinite { return i }
        i += 1
    }
    return nil
}
