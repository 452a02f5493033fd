import SpargeSIMD

// The online-softmax accumulator shared by the dense and the sparse kernels (ExactSemantics.md
// section 4, steps 2, 4, 5): per row a running max `m` (base-2 units), a denominator `l` and
// an fp32 accumulator row `O`. Scores arrive as a tile in base-2 units (already multiplied
// by `s * log2(e)`), masked entries as -inf.

/// The SageAttention2 kernels' offset of the FP8 probabilities (base-2 units).
let fp8ProbabilityOffset: Float = 8.807

/// Pointers into a worker's workspace for one query tile.
struct OnlineSoftmax {
    var rowMax: UnsafeMutablePointer<Float>      // m, rowsPad
    var rowSum: UnsafeMutablePointer<Float>      // l, rowsPad
    var tileMax: UnsafeMutablePointer<Float>     // m_loc of the current tile, rowsPad
    var rowFactor: UnsafeMutablePointer<Float>   // 2^(m - m_new) of the current tile, rowsPad
    var rowTotal: UnsafeMutablePointer<Float>    // row sums of the current tile's P, rowsPad
    var acc: UnsafeMutablePointer<Float>         // O, rowsPad x width
    var width: Int                               // padded head dim (multiple of 8)
    var kernels: any TileKernels.Type
    var probabilityPairs: UnsafeMutablePointer<Int32>   // fixed-point P.V: P in key pairs, rowsPad x columns / 2
    var probabilityScales: UnsafeMutablePointer<Float>  // fixed-point P.V: per row, the value of one step
    /// Scores are stored divided by this power of two (see ``OverflowGuard``); 1 normally.
    var scoreUnit: ScoreUnit = .one
    /// V was stored divided by this power of two (see ``OverflowGuard``); 1 normally.
    var valueUnit: Float = 1

    /// Starts a query tile of `rows` rows (padded to a multiple of 4).
    func reset(rows: Int) {
        rowMax.update(repeating: -.infinity, count: rows)
        rowSum.update(repeating: 0, count: rows)
        acc.update(repeating: 0, count: rows * width)
    }

    /// Computes the tile's row maxima `m_loc` into `tileMax`.
    func measure(scores: UnsafePointer<Float>, stride: Int, rows: Int) {
        kernels.rowMaxima(scores, stride: stride, rows: rows, columns: stride, into: tileMax)
    }

    /// The stage-2 filter quantity: max over the first `rows` rows of `m_loc - m`
    /// (-inf for a row with nothing unmasked in this tile, +inf for a row seeing its first key).
    func largestIncrease(rows: Int) -> Float {
        var best = -Float.infinity
        for r in 0..<rows {
            let local = tileMax[r]
            if local == -.infinity { continue }
            let running = rowMax[r]
            if running == -.infinity { return .infinity }
            best = Swift.max(best, local - running)
        }
        return best == -.infinity ? best : scoreUnit.scale(best)
    }

    /// Folds a measured tile into the accumulator: rescales by `2^(m - m_new)`, turns the scores
    /// into `P = 2^(S - m_new)` in place, adds their row sums to `l`, and `O += P V`: in fp32,
    /// or with `fixedValues` (the tile's V as integers and per-channel steps) in fixed
    /// point, P quantized per row (`l` is summed from the unquantized P). Scores kept in
    /// larger units (``OverflowGuard``, |Q.K| near the fp32 limit) take the fp32 product.
    func absorb(
        scores: UnsafeMutablePointer<Float>, stride: Int, rows: Int, keys: Int,
        values: StoredRows, numerics: PVNumerics = .fp32,
        fixedValues: (values: UnsafePointer<Int16>, steps: UnsafePointer<Float>)? = nil
    ) {
        if !scoreUnit.isOne {
            absorbScaled(scores: scores, stride: stride, rows: rows, keys: keys, values: values, numerics: numerics)
            return
        }
        // Per row: the new maximum, the rescale factor, and the exponent shift, which replaces
        // m_loc in `tileMax` (+inf for a row with nothing visible: its P row is all zeros).
        var rescale = false
        for r in 0..<rows {
            let local = tileMax[r]
            let running = rowMax[r]
            rowFactor[r] = 1
            if local == -.infinity {
                (scores + r * stride).update(repeating: 0, count: stride)  // 2^(0 - inf) = 0, even for NaN entries
                tileMax[r] = .infinity
                continue
            }
            let updated = Swift.max(running, local)
            if updated > running && running != -.infinity {
                let alpha = rescaleFactor(running - updated)
                rowSum[r] *= alpha
                rowFactor[r] = alpha
                rescale = true
            }
            rowMax[r] = updated
            // FP8: P carries 2^8.807 (about 448) so it uses the e4m3 range; l sums the unrounded
            // P, so the factor cancels in O / l.
            tileMax[r] = numerics == .fp8 ? updated - fp8ProbabilityOffset : updated
        }
        if rescale { kernels.scaleRows(acc, stride: width, rows: rows, columns: width, factors: rowFactor) }
        if let fixedValues {
            // P, its row sums and its levels in one pass (fixed point is fp32-only, so no rounding step).
            kernels.exponentiateQuantizeRows(scores, stride: stride, rows: rows, columns: stride, shifts: tileMax, sums: rowTotal,
                                             into: probabilityPairs, pairStride: stride / 2, scales: probabilityScales)
            for r in 0..<rows { rowSum[r] += rowTotal[r] }
            // Key pairs up to the last real key (the packed V is zero past it), in calls whose
            // int32 sums cannot overflow.
            let pairs = (keys + 1) / 2
            var first = 0
            while first < pairs {
                let count = Swift.min(fixedPointKeysPerSum / 2, pairs - first)
                kernels.accumulatePairProducts(p: probabilityPairs + first, pStride: stride / 2, rows: rows,
                                               v: fixedValues.values + first * width * 2, columns: width, pairs: count,
                                               rowScales: probabilityScales, columnScales: fixedValues.steps, o: acc, oStride: width)
                first += count
            }
            return
        }
        kernels.exponentiateRows(scores, stride: stride, rows: rows, columns: stride, shifts: tileMax, sums: rowTotal)
        for r in 0..<rows { rowSum[r] += rowTotal[r] }
        // fp16 / FP8 P.V: l from the unrounded P, the product with P rounded (V is rounded when bound).
        if numerics != .fp32 { for r in 0..<rows { Self.roundProbabilities(scores + r * stride, keys: keys, numerics: numerics) } }
        accumulateValues(p: scores, pStride: stride, rows: rows, keys: keys, values: values)
    }

    /// `acc += P V` over `keys` value rows as stored: fp32, or fp16 / bf16 (a KV cache's)
    /// widened as the kernel loads them.
    @inline(__always)
    private func accumulateValues(p: UnsafePointer<Float>, pStride: Int, rows: Int, keys: Int, values: StoredRows) {
        if values.type == .float32 {
            kernels.accumulateProbabilityValue(p: p, pStride: pStride, rows: rows, count: keys,
                                               v: values.base.assumingMemoryBound(to: Float.self), vStride: values.stride,
                                               width: width, o: acc, oStride: width)
        } else {
            kernels.accumulateProbabilityHalfValue(p: p, pStride: pStride, rows: rows, count: keys,
                                                   v: values.base.assumingMemoryBound(to: UInt16.self), vStride: values.stride,
                                                   width: width, bfloat16: values.type == .bfloat16, o: acc, oStride: width)
        }
    }

    /// ``absorb(scores:stride:rows:keys:values:valueStride:numerics:)`` for scores stored in
    /// power-of-two units (``OverflowGuard``: |Q.K| near the fp32 limit). Rare, so one element
    /// at a time: `P = 2^((S - m) * unit)`.
    private func absorbScaled(
        scores: UnsafeMutablePointer<Float>, stride: Int, rows: Int, keys: Int,
        values: StoredRows, numerics: PVNumerics
    ) {
        for r in 0..<rows {
            let local = tileMax[r]
            let row = scores + r * stride
            if local == -.infinity {
                row.update(repeating: 0, count: stride)
                continue
            }
            let updated = Self.raiseMax(rowMax + r, sum: rowSum + r, acc: acc + r * width, width: width, tileMax: local,
                                        unit: scoreUnit)
            var sum: Float = 0
            for c in 0..<stride {
                let e = scoreUnit.scale(row[c] - updated)
                row[c] = e < probabilityFlushExponent ? 0 : exp2Scalar(e)
                sum += row[c]
            }
            if numerics == .fp8 {
                sum = 0
                for c in 0..<stride {
                    row[c] *= exp2Scalar(fp8ProbabilityOffset)
                    sum += row[c]
                }
            }
            Self.roundProbabilities(row, keys: keys, numerics: numerics)
            rowSum[r] += sum
        }
        accumulateValues(p: scores, pStride: stride, rows: rows, keys: keys, values: values)
    }

    /// Rounds the first `keys` probabilities of a row as the GPU's P.V takes them (fp16 or FP8
    /// e4m3; fp32 leaves them): `l` was summed before, from the unrounded P.
    @inline(__always)
    static func roundProbabilities(_ row: UnsafeMutablePointer<Float>, keys: Int, numerics: PVNumerics) {
        switch numerics {
        case .fp32: break
        case .fp16: for c in 0..<keys { row[c] = roundToHalf(row[c]) }
        case .fp8: for c in 0..<keys { row[c] = roundToE4M3(row[c]) }
        }
    }

    /// The running-max step of one row for a tile whose maximum `tileMax` is finite: when the
    /// max grows, `l` and `O` are rescaled by `2^(m - m_new)`; stores and returns `m_new`.
    /// Every online softmax of the package (tiled kernels, exact decode) goes through it.
    @inline(__always)
    static func raiseMax(_ m: UnsafeMutablePointer<Float>, sum l: UnsafeMutablePointer<Float>,
                         acc: UnsafeMutablePointer<Float>, width: Int, tileMax: Float, unit: ScoreUnit = .one) -> Float {
        let running = m.pointee
        let updated = Swift.max(running, tileMax)
        if updated > running && running != -.infinity {
            let alpha = rescaleFactor(unit.scale(running - updated))
            l.pointee *= alpha
            scaleInPlace(acc, count: width, by: alpha)
        }
        m.pointee = updated
        return updated
    }

    /// Writes `O / l` for `rows` rows of `d` channels as rows `first...` of (b, h) of `output`;
    /// a row that saw no key gets zeros. `sinks`: each row's learned sink logit in base-2 units
    /// (nil: none; see ``foldSink(m:l:sink:unit:)``). `temp` holds one row.
    func finish(rows: Int, d: Int, into output: MutableTensorView, b: Int, h: Int, first: Int,
                sinks: UnsafePointer<Float>? = nil, temp: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = foldSink(m: rowMax[r], l: rowSum[r], sink: sinks?[r] ?? -.infinity, unit: scoreUnit)
            if rowSum[r] == 0 {
                temp.update(repeating: 0, count: d)
            } else {
                let inv = row.outputFactor == 1 ? valueUnit / row.l : valueUnit * row.outputFactor / row.l
                let src = acc + r * width
                for c in 0..<d { temp[c] = src[c] * inv }
                if valueUnit != 1 { for c in 0..<d { temp[c] = OverflowGuard.finiteRounding(temp[c]) } }
            }
            output.store(b, h, first + r, from: temp, count: d)
            output.storeLSE(b, h, first + r, m: row.m, l: row.l, unit: scoreUnit)
        }
    }
}

/// `2^shift` for the rescale of a row's state when its maximum rises by `-shift`, flushed to 0
/// below 2^-64 like the probabilities themselves (see `KernelSet.exponentiateRows`): what it
/// would keep is below fp32 resolution, and the product would be a slow denormal on Intel cores.
@inline(__always)
func rescaleFactor(_ shift: Float) -> Float {
    shift < probabilityFlushExponent ? 0 : exp2Scalar(shift)
}
