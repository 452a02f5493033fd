// 16-bit rows (fp16 or bf16: a KV cache that stores its values in half the memory) widened to
// fp32 as a tile loads them. The widening is exact, so a tile over 16-bit rows computes, bit
// for bit, what the fp32 tile computes over the widened rows; only the bytes read change.

#if DispatchedKernels && arch(x86_64)
import SpargeSIMDShuffles
#endif

/// Each 16-bit lane zero-extended to 32 bits (with the `DispatchedKernels` trait on x86-64 one
/// instruction from SpargeSIMDShuffles; the portable form is Swift's generic conversion).
@inline(__always)
func zeroExtended(_ h: SIMD8<UInt16>) -> SIMD8<Int32> {
    #if DispatchedKernels && arch(x86_64)
    return zeroExtend(h)
    #else
    return SIMD8<Int32>(truncatingIfNeeded: h)
    #endif
}

@inline(__always)
func zeroExtended(_ h: SIMD16<UInt16>) -> SIMD16<Int32> {
    #if DispatchedKernels && arch(x86_64)
    return zeroExtend(h)
    #else
    return SIMD16<Int32>(truncatingIfNeeded: h)
    #endif
}

/// How a register tile reads a vector of fp32 from a row of stored elements.
protocol RowElements {
    associatedtype Stored
    /// `V.scalarCount` elements from `p` (any alignment), as fp32.
    static func load<V: SIMD>(_ p: UnsafePointer<Stored>) -> V where V.Scalar == Float
}

extension RowElements {
    /// The first `count` (< `V.scalarCount` <= 16) elements from `p` as fp32, the other lanes
    /// zero: a row's last, partial vector, read without touching memory past the row. The
    /// widening is `load`'s, so a partial vector converts exactly as a full one.
    @inline(__always)
    static func loadPartial<V: SIMD>(_ p: UnsafePointer<Stored>, count: Int) -> V where V.Scalar == Float {
        // Stored is fp32 or 16-bit: zero bits are +0 either way.
        withUnsafeTemporaryAllocation(of: Stored.self, capacity: 16) { buffer in
            let base = buffer.baseAddress!
            UnsafeMutableRawPointer(base).initializeMemory(as: UInt8.self, repeating: 0, count: 16 * MemoryLayout<Stored>.stride)
            UnsafeMutableRawPointer(base).copyMemory(from: p, byteCount: count * MemoryLayout<Stored>.stride)
            return load(UnsafePointer(base))
        }
    }
}

/// fp32 rows, read as they are.
enum Float32Rows: RowElements {
    @inline(__always)
    static func load<V: SIMD>(_ p: UnsafePointer<Float>) -> V where V.Scalar == Float { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
}

/// bf16 rows: a bf16 is the upper half of the fp32 with the same bits.
enum BFloat16Rows: RowElements {
    @inline(__always)
    static func load<V: SIMD>(_ p: UnsafePointer<UInt16>) -> V where V.Scalar == Float {
        if V.scalarCount == 16 {
            return unsafeBitCast(zeroExtended(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt16>.self)) &<< 16, to: V.self)
        }
        precondition(V.scalarCount == 8)
        return unsafeBitCast(zeroExtended(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt16>.self)) &<< 16, to: V.self)
    }
}

/// IEEE fp16 rows.
enum Float16Rows: RowElements {
    @inline(__always)
    static func load<V: SIMD>(_ p: UnsafePointer<UInt16>) -> V where V.Scalar == Float {
        if V.scalarCount == 16 {
            return unsafeBitCast(widen(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt16>.self)), to: V.self)
        }
        precondition(V.scalarCount == 8)
        return unsafeBitCast(widen(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt16>.self)), to: V.self)
    }

    /// fp16 bits to fp32. With F16C (the AVX2 and AVX-512 sets) one instruction; baseline
    /// x86-64 would call a library routine per lane, so there the bits are moved
    /// (``widenBits(_:)``). arm64 converts natively.
    @inline(__always)
    static func widen(_ h: SIMD8<UInt16>) -> SIMD8<Float> {
        #if SPARGE_FMA && arch(x86_64)
        return widenHalfBits(h)
        #elseif arch(x86_64)
        return widenBits(zeroExtended(h))
        #else
        return SIMD8<Float>(unsafeBitCast(h, to: SIMD8<Float16>.self))
        #endif
    }

    @inline(__always)
    static func widen(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
        #if SPARGE_FMA && arch(x86_64)
        return widenHalfBits(h)
        #elseif arch(x86_64)
        return widenBits(zeroExtended(h))
        #else
        return SIMD16<Float>(unsafeBitCast(h, to: SIMD16<Float16>.self))
        #endif
    }

    /// The bit-moving widening of `widen`, for any lane count (`x` holds fp16 bits), with no
    /// fp32 subnormal anywhere (so a host that sets denormals-are-zero gets the same values):
    /// normals and infinity / NaN by integer moves (exponent rebiased by 112, or set to all
    /// ones), subnormals as their 10-bit mantissa times 2^-24 (the mantissa made a float by
    /// the 2^23 trick). No comparison: in generic code Swift's SIMD compares build their mask
    /// lane by lane.
    @inline(__always)
    static func widenBits<W: SIMD, F: SIMD>(_ x: W) -> F where W.Scalar == Int32, F.Scalar == Float {
        let magnitude = (x & 0x7FFF) &<< 13                          // exponent and mantissa in fp32's places
        let special = W.zero &- ((magnitude &+ 0x0080_0000) &>> 28)   // all ones where the exponent is 31
        let tiny = (magnitude &- 0x0080_0000) &>> 31                  // all ones where it is 0 (zero, subnormal)
        let normal = (magnitude &+ 0x3800_0000) ^ (((magnitude &+ 0x3800_0000) ^ (magnitude | 0x7F80_0000)) & special)
        let mantissa = unsafeBitCast((x & 0x03FF) | 0x4B00_0000, to: F.self) - 8_388_608   // 2^23 + m, less 2^23
        let subnormal = unsafeBitCast(mantissa * 0x1p-24, to: W.self)
        let bits = normal ^ ((normal ^ subnormal) & tiny)
        return unsafeBitCast(bits | ((x & 0x8000) &<< 16), to: F.self)
    }
}

/// Widens `count` 16-bit elements (fp16, or bf16 with `bfloat16`) of `bits` into `out`.
public func widenRow(_ bits: UnsafePointer<UInt16>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<Float>) {
    var c = 0
    if bfloat16 {
        while c + 8 <= count { store(BFloat16Rows.load(bits + c) as Float8, out + c); c += 8 }
        while c < count { out[c] = Float(bitPattern: UInt32(bits[c]) << 16); c += 1 }
    } else {
        while c + 8 <= count { store(Float16Rows.load(bits + c) as Float8, out + c); c += 8 }
        if c < count {
            var tail = SIMD8<UInt16>()
            for i in 0..<(count - c) { tail[i] = bits[c + i] }
            let wide = Float16Rows.widen(tail)
            for i in 0..<(count - c) { out[c + i] = wide[i] }
        }
    }
}
