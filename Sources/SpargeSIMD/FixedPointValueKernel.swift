// Fixed-point P.V: O[r][x] += (sum_j p[r][j] * v[j][x]) * rowScales[r] * columnScales[x].
//
// P (probabilities, per row scaled to integers) and V (per channel scaled to integers) come as
// int16 pairs along the key dimension, in the layouts of the INT8 score tile (PairPacking.swift:
// P rows as packed pairs, V pair-major with the channels as columns), so the same register
// tile does the work (`packedProductTile`): one `vpmaddwd` per 16 multiply-adds with AVX2, one
// `vpdpwssd` per 32 with AVX-512 VNNI, against 8 or 16 per fp32 multiply-add. Integer sums are
// exact; the scaling is a multiply, a multiply, then an add, never fused, so every kernel set
// gives the same bits.
//
// The caller keeps the int32 sums in range: with 0 <= p <= 8191 (13 bits) and |v| <= 4095
// (12 bits and a sign), 64 keys sum to at most 64 * 8191 * 4095 < 2^31. `quantizeProbabilityRows`
// makes the P side: each row relative to its own maximum (8191), so a tile whose
// probabilities are all small keeps its 13 bits. A row or channel holding NaN or infinity
// (possible only when the caller lets non-finite inputs through) gets a NaN step, so the
// outputs it touches are NaN as with fp32 P.V, not finite garbage.

/// The largest quantized probability (13 bits).
public let probabilityQuantizationLevels: Float = 8191
/// The largest quantized value magnitude (12 bits).
public let valueQuantizationLevels: Float = 4095
/// Keys one call of `accumulatePairProducts` may sum with levels at their largest.
public let fixedPointKeysPerSum = 64

/// `round(x * factor)` lane by lane, ties to even, for `|x * factor| < 2^22`: a multiply, then
/// the 1.5 * 2^23 addition that leaves the integer in the low mantissa bits (never fused), so
/// every kernel set and the scalar twins get the same levels.
@inlinable @inline(__always)
public func fixedPointLevels(_ x: Float8, _ factor: Float8) -> SIMD8<Int32> {
    unsafeBitCast(x * factor + Float8(repeating: 12582912.0), to: SIMD8<Int32>.self) &- 0x4B40_0000
}

/// ``fixedPointLevels(_:_:)`` for one value.
@inlinable @inline(__always)
public func fixedPointLevel(_ x: Float, _ factor: Float) -> Int32 {
    fixedPointLevels(Float8(repeating: x), Float8(repeating: factor))[0]
}

extension KernelSet {
    /// Accumulates `O += P V` from fixed-point operands.
    ///
    /// - Parameters:
    ///   - p: `rows` packed probability rows, `pairs` Int32 words each (two int16 keys per word),
    ///     row stride `pStride` words. `rows` is a multiple of 4: the caller provides readable rows.
    ///   - v: pair-major values: for each key pair, `columns` channels of two int16 values;
    ///     `columns` is a multiple of ``KernelSet/columnTile``. At most ``fixedPointKeysPerSum``
    ///     keys (`pairs <= 32`) when the levels reach their bounds.
    ///   - rowScales: `rows` factors (the fp32 value of one integer step of each P row).
    ///   - columnScales: `columns` factors (the fp32 value of one integer step of each channel).
    ///   - o: fp32 accumulators, `rows x columns`, row stride `oStride`.
    @inline(never)
    public static func accumulatePairProducts(
        p: UnsafePointer<Int32>, pStride: Int, rows: Int,
        v: UnsafePointer<Int16>, columns: Int, pairs: Int,
        rowScales: UnsafePointer<Float>, columnScales: UnsafePointer<Float>,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        packedProductTile(PairProduct.self, a: p, aStride: pStride, rows: rows,
                          b: UnsafeRawPointer(v).assumingMemoryBound(to: Int32.self), columns: columns, depth: pairs,
                          epilogue: ScaledSumsAdded(rowScales: rowScales, columnScales: columnScales), out: o, outStride: oStride)
    }
}

extension KernelSet {
    /// Quantizes each row of a probability tile (values >= 0) to integers
    /// `round(p * 8191 / rowMax)` and packs them in key pairs, the row layout of
    /// ``accumulatePairProducts(p:pStride:rows:v:columns:pairs:rowScales:columnScales:o:oStride:)``;
    /// `scales[r] = rowMax / 8191` (0 for a row of zeros, whose pairs are all 0).
    ///
    /// - Parameters:
    ///   - p: `rows` x `columns` probabilities, row stride `stride`; `columns` is a multiple of 8.
    ///   - out: `rows` rows of `columns / 2` words, row stride `pairStride` words.
    @inline(never)
    public static func quantizeProbabilityRows(
        _ p: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int,
        into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let row = p + r * stride, words = out + r * pairStride
            var m = Float8(), poison = Float8()  // poison: 0, or NaN when a value is not finite
            var c = 0
            while c < columns {
                let x = load8(row + c)
                m = maximum(m, x)
                poison += x * 0
                c += 8
            }
            let rowMax = horizontalMax(m), rowPoison = horizontalSum(poison)
            scales[r] = (rowMax > 0 ? rowMax / probabilityQuantizationLevels : 0) + rowPoison
            quantizeProbabilityRow(row, columns: columns, rowMax: rowMax, factor: probabilityQuantizationLevels / rowMax, into: words)
        }
    }
}

extension KernelSet {
    /// ``exponentiateRows(_:stride:rows:columns:shifts:sums:)`` followed by
    /// ``quantizeProbabilityRows(_:stride:rows:columns:into:pairStride:scales:)``, bit for bit,
    /// in one visit to each row while it sits in L1: the exponentials' maximum and sum are
    /// gathered on the way, and the levels come from the same `quantizeProbabilityRow`, so the
    /// fixed-point softmax step reads its tile twice instead of four times.
    ///
    /// - Parameters:
    ///   - x: `rows` x `columns` scores (row stride `stride`, `columns` a multiple of 8),
    ///     replaced by `P = 2^(x - shifts[r])` as ``exponentiateRows(_:stride:rows:columns:shifts:sums:)`` does.
    ///   - sums: the rows' sums of P.
    ///   - out: `rows` rows of `columns / 2` packed words, row stride `pairStride` words.
    ///   - scales: the fp32 value of one step of each row (`rowMax / 8191`).
    @inline(never)
    public static func exponentiateQuantizeRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
        shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>,
        into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>
    ) {
        // The separate quantizer's NaN term (a NaN P poisons its row's step) comes from the row's
        // sum here: P <= 2^127 is never infinite, so the sum is NaN exactly when some P is.
        let g = FloatV.scalarCount, levels = FloatV(repeating: probabilityQuantizationLevels)
        var r = 0
        // Two buffers of at most 1 KiB: larger ones are checked against the stack at run time.
        withUnsafeTemporaryAllocation(of: FloatV.self, capacity: g) { sumsGroup in
        withUnsafeTemporaryAllocation(of: FloatV.self, capacity: g) { maximaGroup in
            let totals = sumsGroup.baseAddress!, largest = maximaGroup.baseAddress!
            while r + g <= rows {
                let base = x + r * stride
                for i in 0..<g {
                    (totals[i], largest[i]) = exponentiateRow(base + i * stride, columns: columns, shift: shifts[r + i], trackMax: true)
                }
                reduceRowGroup(totals, maxima: false)
                reduceRowGroup(largest, maxima: true)
                store(totals[0], sums + r)
                store(largest[0] / levels + totals[0] * 0, scales + r)
                let factors = levels / largest[0]
                for i in 0..<g {
                    quantizeProbabilityRow(base + i * stride, columns: columns, rowMax: largest[0][i], factor: factors[i],
                                           into: out + (r + i) * pairStride)
                }
                r += g
            }
        }
        }
        while r < rows {
            let row = x + r * stride
            let e = exponentiateRow(row, columns: columns, shift: shifts[r], trackMax: true)
            let total = treeSum(e.sum), rowMax = horizontalMax(e.max)
            sums[r] = total
            scales[r] = rowMax / probabilityQuantizationLevels + total * 0
            quantizeProbabilityRow(row, columns: columns, rowMax: rowMax, factor: probabilityQuantizationLevels / rowMax,
                                   into: out + r * pairStride)
            r += 1
        }
    }

    /// One row's levels `round(p * factor)` (`factor = 8191 / rowMax`) narrowed to int16 in key
    /// order, which is the packed-pair order; all 0 when `rowMax` is not positive.
    @inline(__always)
    static func quantizeProbabilityRow(
        _ row: UnsafePointer<Float>, columns: Int, rowMax: Float, factor: Float, into words: UnsafeMutablePointer<Int32>
    ) {
        guard rowMax > 0 else {
            words.update(repeating: 0, count: columns / 2)
            return
        }
        let levels = UnsafeMutableRawPointer(words)  // int16 level c at byte 2c
        let n = FloatV.scalarCount, f = FloatV(repeating: factor)
        var c = 0
        while c + n <= columns {
            let q = unsafeBitCast(load(row + c) * f + FloatV(repeating: 12582912.0), to: FloatV.MaskStorage.self) &- 0x4B40_0000
            (levels + (c &<< 1)).storeBytes(of: narrowedLevels(q), as: ProbabilityLevelsV.self)
            c += n
        }
        if c < columns {
            let q = fixedPointLevels(load8(row + c), Float8(repeating: factor))
            (levels + (c &<< 1)).storeBytes(of: narrowedLevels(q), as: SIMD8<Int16>.self)
        }
    }
}

/// Levels (below 2^15) narrowed to int16, lane by lane: the generic conversion is a call in
/// some builds.
@inline(__always)
func narrowedLevels(_ q: SIMD16<Int32>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(truncatingIfNeeded: q[i]) }
    return r
}

/// The same narrowing on eight lanes.
@inline(__always)
func narrowedLevels(_ q: SIMD8<Int32>) -> SIMD8<Int16> {
    var r = SIMD8<Int16>()
    for i in 0..<8 { r[i] = Int16(truncatingIfNeeded: q[i]) }
    return r
}

/// The power of two a value channel with largest magnitude `m` is multiplied by before its
/// levels are formed: 2^100 below 2^-100, where `4095 / m` would pass fp32's range (exact; the
/// levels are the same), else 1.
@inline(__always)
public func valueChannelPrescale(_ m: Float) -> Float { m < 0x1p-100 ? 0x1p100 : 1 }

extension KernelSet {
    /// Quantizes a block of `keys` value rows per channel to integers
    /// `round(v * 4095 / max|v[:, c]|)` and stores them pair-major over keys, the V layout of
    /// ``accumulatePairProducts(p:pStride:rows:v:columns:pairs:rowScales:columnScales:o:oStride:)``
    /// (`out[(pair * columns + c) * 2 + t]` holds key `2 pair + t`; an odd last key's partner is
    /// 0); `steps[c] = max|v[:, c]| / 4095` (0 for a channel of zeros, whose levels are 0).
    ///
    /// - Parameters:
    ///   - v: `keys` rows of `columns` readable floats (a multiple of 8), row stride `stride`.
    ///   - out: `(keys + 1) / 2 * columns * 2` int16 values.
    @inline(never)
    public static func quantizeValueBlock(
        _ v: UnsafePointer<Float>, stride: Int, keys: Int, columns: Int,
        into out: UnsafeMutablePointer<Int16>, steps: UnsafeMutablePointer<Float>
    ) {
        var c = 0
        while c < columns {
            var m = Float8(), poison = Float8()  // poison: 0, or NaN when a value is not finite
            for t in 0..<keys {
                let x = load8(v + t * stride + c)
                m = maximum(m, x.replacing(with: -x, where: x .< 0))
                poison += x * 0
            }
            var factor = Float8(), pre = Float8(repeating: 1)
            for l in 0..<8 {
                steps[c + l] = m[l] / valueQuantizationLevels + poison[l]
                pre[l] = valueChannelPrescale(m[l])
                factor[l] = m[l] > 0 && m[l].isFinite ? valueQuantizationLevels / (m[l] * pre[l]) : 0
            }
            // |v * factor| <= 4095 up to one rounding, so the levels stay in 12 bits and a sign.
            func levels(_ t: Int) -> SIMD8<Int32> {
                guard t < keys else { return SIMD8<Int32>() }
                return fixedPointLevels(load8(v + t * stride + c) * pre, factor)
            }
            var t = 0
            while t < keys {
                let pair = (levels(t) & 0xFFFF) | (levels(t + 1) &<< 16)
                UnsafeMutableRawPointer(out + (t / 2 * columns + c) * 2).storeBytes(of: pair, as: SIMD8<Int32>.self)
                t += 2
            }
            c += 8
        }
    }
}

/// Fixed-point P.V: `out += sums * rowScales[row] * columnScales[column]`.
struct ScaledSumsAdded: PairSumEpilogue {
    let rowScales: UnsafePointer<Float>
    let columnScales: UnsafePointer<Float>
    @inline(__always)
    func finish(_ sums: Int32V, row: Int, column: Int, out: UnsafeMutablePointer<Float>) {
        let x = convertToFloat(sums) * ScoreFloatV(repeating: rowScales[row]) * load(columnScales + column, as: ScoreFloatV.self)
        store(load(out, as: ScoreFloatV.self) + x, out)
    }
}
