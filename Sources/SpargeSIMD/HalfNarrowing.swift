// fp32 rows rounded to 16 bits (fp16 or bf16, to nearest even) as a KV cache or a 16-bit
// output stores them. Baseline x86-64 has no fp16 instruction, and Swift's `Float16(x)` there
// is a library call per value; these are vector integer operations (fp16 on the F16C sets: one
// conversion instruction), bit for bit Swift's conversion for every number (a NaN becomes the
// quiet NaN of its sign).

#if DispatchedKernels && arch(x86_64)
import SpargeSIMDShuffles
#endif

/// Rounds `count` floats of `src` to fp16 bits (or bf16 with `bfloat16`) into `out`.
public func narrowRow(_ src: UnsafePointer<Float>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<UInt16>) {
    var c = 0
    while c + 8 <= count {
        let x = UnsafeRawPointer(src + c).loadUnaligned(as: SIMD8<Int32>.self)
        UnsafeMutableRawPointer(out + c).storeBytes(of: narrowLanes(x, bfloat16: bfloat16), as: SIMD8<UInt16>.self)
        c += 8
    }
    if c < count {
        var tail = SIMD8<Int32>()
        for i in 0..<(count - c) { tail[i] = Int32(bitPattern: src[c + i].bitPattern) }
        let bits = narrowLanes(tail, bfloat16: bfloat16)
        for i in 0..<(count - c) { out[c + i] = bits[i] }
    }
}

/// Eight fp32 lanes (as bits) rounded to fp16 or bf16 bits. With F16C (the AVX2 and AVX-512
/// sets) fp16 is one conversion instruction, its NaN lanes then set to the quiet NaN of their
/// sign as the integer form gives, so every level stores the same bits.
@inline(__always)
private func narrowLanes(_ x: SIMD8<Int32>, bfloat16: Bool) -> SIMD8<UInt16> {
    if bfloat16 { return lowHalves(narrowToBFloat16(x)) }
    #if SPARGE_FMA && arch(x86_64)
    let h = narrowHalfBits(unsafeBitCast(x, to: SIMD8<Float>.self))
    let nan = lowHalves((0x7F80_0000 &- (x & 0x7FFF_FFFF)) &>> 31)   // all ones where NaN
    let quiet = lowHalves(((x &>> 16) & 0x8000) | 0x7E00)              // sign, quiet NaN
    return h ^ ((h ^ quiet) & nan)
    #else
    return lowHalves(narrowToFloat16(x))
    #endif
}

/// The low 16 bits of each lane.
@inline(__always)
private func lowHalves(_ x: SIMD8<Int32>) -> SIMD8<UInt16> {
    #if DispatchedKernels && arch(x86_64)
    return truncateToLow16(x)
    #else
    return SIMD8<UInt16>(truncatingIfNeeded: x)
    #endif
}

/// `(a - b) >> 31`: all ones where `a < b`, for lanes in 0..<2^31 (a compare without Swift's
/// lane-by-lane mask).
@inline(__always)
private func lanesBelow(_ a: SIMD8<Int32>, _ b: Int32) -> SIMD8<Int32> { (a &- b) &>> 31 }

/// fp32 bits to fp16 bits in the low half of each lane (F. Giesen's round-to-nearest-even
/// conversion): normals rebias the exponent and round the 13 dropped mantissa bits; values
/// below fp16's smallest normal are rounded by an fp32 addition of 0.5, whose ulp is fp16's
/// subnormal step; from 65520 on (rounding up past 65504) the result is infinity; NaN becomes
/// a quiet NaN with its sign.
@inline(__always)
func narrowToFloat16(_ x: SIMD8<Int32>) -> SIMD8<Int32> {
    let sign = x & Int32(bitPattern: 0x8000_0000)
    let a = x ^ sign                                         // |x|
    let normal = (a &+ (-112 << 23) &+ 0xFFF &+ ((a &>> 13) & 1)) &>> 13
    let subnormal = unsafeBitCast(unsafeBitCast(a, to: SIMD8<Float>.self) + 0.5, to: SIMD8<Int32>.self) &- 0x3F00_0000
    let special = 0x7C00 | (((0x7F80_0000 &- a) &>> 31) & 0x0200)   // infinity, or a quiet NaN
    var o = normal ^ ((normal ^ subnormal) & lanesBelow(a, 0x3880_0000))   // below 2^-14: subnormal
    let finite = lanesBelow(a, 0x4780_0000)                                // below 65536: rounds as a number
    o = special ^ ((special ^ o) & finite)
    return o | ((sign &>> 16) & 0x8000)
}

/// fp32 bits to bf16 bits in the low half of each lane, as ``BFloat16``'s initializer rounds.
@inline(__always)
func narrowToBFloat16(_ x: SIMD8<Int32>) -> SIMD8<Int32> {
    let u = unsafeBitCast(x, to: SIMD8<UInt32>.self)
    let rounded = (u &+ 0x7FFF &+ ((u &>> 16) & 1)) &>> 16
    let quiet = (u &>> 16) | 0x0040
    let nan = unsafeBitCast((0x7F80_0000 &- (x & 0x7FFF_FFFF)) &>> 31, to: SIMD8<UInt32>.self)   // all ones where NaN
    return unsafeBitCast(rounded ^ ((rounded ^ quiet) & nan), to: SIMD8<Int32>.self)
}
