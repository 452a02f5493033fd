// P.V accumulation: O[r][0..<width] += sum_c P[r][c] * V[c][0..<width], fp32.
//
// The register tiles of RowTimesPanelTiles.swift with a = P's rows and B = V: 4 rows x 2 vectors
// of output channels (8 accumulators); the AVX-512 set first takes 4 vectors (64 channels) at a
// time: 16 accumulators fit its 32 registers. The accumulator tile O
// lives in the caller's workspace and is loaded/stored once per call. Channel blocks go outside
// the rows, so that a block of V stays in L1 while every row takes it. Channels left over
// after the 2-vector steps go one vector, then (16-lane sets) eight lanes, at a time.

extension KernelSet {
    /// Accumulates `O += P * V` for `rows` (multiple of 4; padded rows readable and writable)
    /// x `width` (multiple of 8) outputs over `count` keys.
    ///
    /// - Parameters:
    ///   - p: probabilities, row stride `pStride`.
    ///   - v: values, `count` rows with row stride `vStride` (at least `width` readable floats each).
    ///   - o: accumulators, row stride `oStride`.
    @inline(never)
    public static func accumulateProbabilityValue(
        p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
        v: UnsafePointer<Float>, vStride: Int, width: Int,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        probabilityTimesValues(Float32Rows.self, p: p, pStride: pStride, rows: rows, count: count, v: v, vStride: vStride,
                               width: width, o: o, oStride: oStride)
    }

    /// ``accumulateProbabilityValue(p:pStride:rows:count:v:vStride:width:o:oStride:)`` over
    /// 16-bit values (fp16, or bf16 with `bfloat16`; `vStride` in elements), widened to fp32
    /// as they are loaded: the same sums as the fp32 kernel over the widened rows, bit for bit.
    @inline(never)
    public static func accumulateProbabilityHalfValue(
        p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
        v: UnsafePointer<UInt16>, vStride: Int, width: Int, bfloat16: Bool,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        if bfloat16 {
            probabilityTimesValues(BFloat16Rows.self, p: p, pStride: pStride, rows: rows, count: count, v: v, vStride: vStride,
                                   width: width, o: o, oStride: oStride)
        } else {
            probabilityTimesValues(Float16Rows.self, p: p, pStride: pStride, rows: rows, count: count, v: v, vStride: vStride,
                                   width: width, o: o, oStride: oStride)
        }
    }
}

/// The P.V tile over rows of any stored element type (see the kernel set's entry points).
@inline(__always)
func probabilityTimesValues<E: RowElements>(
    _ e: E.Type, p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
    v: UnsafePointer<E.Stored>, vStride: Int, width: Int,
    o: UnsafeMutablePointer<Float>, oStride: Int
) {
    let n = FloatV.scalarCount
    var first = 0  // the first channel the row-by-row loop below takes
    #if SPARGE_AVX512
    // 32 zmm registers: 4 rows x 4 vectors (16 accumulators, 4 V loads, 1 broadcast)
    // read each P element once per 64 channels instead of twice. Channel blocks outside,
    // rows inside: one block of V (64 keys x 64 channels, 16 KB) stays in L1 while every
    // row takes it (with D = 128 the whole V tile is 32 KB, all of Zen 4's L1).
    while first + 4 * n <= width {
        var r = 0
        while r < rows {
            let p0 = p + r * pStride, o0 = o + r * oStride + first
            fourRowsTimesFourVectors(e, a: (p0, p0 + pStride, p0 + 2 * pStride, p0 + 3 * pStride), count: count,
                                     b: v + first, bStride: vStride,
                                     out: (o0, o0 + oStride, o0 + 2 * oStride, o0 + 3 * oStride), accumulate: true)
            r += 4
        }
        first += 4 * n
    }
    #endif
    // Every set: 4 rows x 2 vectors, channel blocks outside as above.
    while first + 2 * n <= width {
        var r = 0
        while r < rows {
            let p0 = p + r * pStride, o0 = o + r * oStride + first
            fourRowsTimesTwoVectors(e, a: (p0, p0 + pStride, p0 + 2 * pStride, p0 + 3 * pStride), count: count,
                                    b: v + first, bStride: vStride,
                                    out: (o0, o0 + oStride, o0 + 2 * oStride, o0 + 3 * oStride), accumulate: true)
            r += 4
        }
        first += 2 * n
    }
    var r = 0
    while r < rows && first < width {
        let p0 = p + r * pStride, p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride
        let o0 = o + r * oStride, o1 = o0 + oStride, o2 = o1 + oStride, o3 = o2 + oStride
        var x = first
        if x + n <= width {
            accumulateOneVector(FloatV.self, e, p: (p0, p1, p2, p3), count: count, v: v + x, vStride: vStride,
                                o: (o0 + x, o1 + x, o2 + x, o3 + x))
            x += n
        }
        if x < width {  // 8 channels left in a 16-lane set
            accumulateOneVector(Float8.self, e, p: (p0, p1, p2, p3), count: count, v: v + x, vStride: vStride,
                                o: (o0 + x, o1 + x, o2 + x, o3 + x))
        }
        r += 4
    }
}

/// One vector of channels of four rows: `o_r += sum_c p_r[c] * v[c]`.
@inline(__always)
func accumulateOneVector<V: SIMD, E: RowElements>(
    _: V.Type, _: E.Type,
    p: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>), count: Int,
    v: UnsafePointer<E.Stored>, vStride: Int,
    o: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
) where V.Scalar == Float {
    var a0: V = load(o.0), a1: V = load(o.1), a2: V = load(o.2), a3: V = load(o.3)
    var vp = v
    for c in 0..<count {
        let v0: V = E.load(vp)
        a0 = multiplyAdd(V(repeating: p.0[c]), v0, a0)
        a1 = multiplyAdd(V(repeating: p.1[c]), v0, a1)
        a2 = multiplyAdd(V(repeating: p.2[c]), v0, a2)
        a3 = multiplyAdd(V(repeating: p.3[c]), v0, a3)
        vp += vStride
    }
    store(a0, o.0); store(a1, o.1); store(a2, o.2); store(a3, o.3)
}

