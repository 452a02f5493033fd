import SpargeSIMD

// The online-softmax accumulator shared by the dense and the sparse kernels (ALGORITHM.md
// section 4, steps 2, 4, 5): per row a running max `m` (base-2 units), a denominator `l` and
// an fp32 accumulator row `O`. Scores arrive as a tile in base-2 units (already multiplied
// by `s * log2(e)`), masked entries as -inf.

/// Pointers into a worker's workspace for one query tile.
/// The SageAttention2 kernels' offset of the FP8 probabilities (base-2 units).
let fp8ProbabilityOffset: Float = 8.807

struct OnlineSoftmax {
    var rowMax: UnsafeMutablePointer<Float>      // m, rowsPad
    var rowSum: UnsafeMutablePointer<Float>      // l, rowsPad
    var tileMax: UnsafeMutablePointer<Float>     // m_loc of the current tile, rowsPad
    var acc: UnsafeMutablePointer<Float>         // O, rowsPad x width
    var width: Int                               // padded head dim (multiple of 8)
    /// Scores are stored divided by this power of two (see ``OverflowGuard``); 1 normally.
    var scoreUnit: Float = 1
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
        for r in 0..<rows { tileMax[r] = SpargeSIMD.rowMax(scores + r * stride, count: stride) }
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
        return best == -.infinity ? best : best * scoreUnit
    }

    /// Folds a measured tile into the accumulator: rescales by `2^(m - m_new)`, turns the scores
    /// into `P = 2^(S - m_new)` in place, adds their row sums to `l`, and `O += P V`.
    func absorb(
        scores: UnsafeMutablePointer<Float>, stride: Int, rows: Int, keys: Int,
        values: UnsafePointer<Float>, valueStride: Int, numerics: PVNumerics = .fp32
    ) {
        for r in 0..<rows {
            let local = tileMax[r]
            let running = rowMax[r]
            let row = scores + r * stride
            if local == -.infinity {
                // Nothing visible in this tile for this row: P = 0.
                row.update(repeating: 0, count: stride)
                continue
            }
            let updated = Swift.max(running, local)
            if updated > running && running != -.infinity {
                let alpha = exp2Scalar((running - updated) * scoreUnit)
                rowSum[r] *= alpha
                scaleInPlace(acc + r * width, count: width, by: alpha)
            }
            rowMax[r] = updated
            if scoreUnit != 1 {
                // Rare (scores near the fp32 limit): P = 2^((S - m) * unit), one element at a time.
                var sum: Float = 0
                for c in 0..<stride {
                    row[c] = exp2Scalar((row[c] - updated) * scoreUnit)
                    sum += row[c]
                }
                if numerics == .fp16 {
                    for c in 0..<keys { row[c] = roundToHalf(row[c]) }
                } else if numerics == .fp8 {
                    sum = 0
                    for c in 0..<stride {
                        row[c] *= exp2Scalar(fp8ProbabilityOffset)
                        sum += row[c]
                    }
                    for c in 0..<keys { row[c] = roundToE4M3(row[c]) }
                }
                rowSum[r] += sum
                continue
            }
            switch numerics {
            case .fp32:
                rowSum[r] += exp2InPlace(row, count: stride, shift: updated)
            case .fp16:
                // l from the unrounded P; P.V with P rounded to fp16 (V is rounded when bound).
                rowSum[r] += exp2InPlace(row, count: stride, shift: updated)
                for c in 0..<keys { row[c] = roundToHalf(row[c]) }
            case .fp8:
                // P carries 2^8.807 (about 448) so it uses the e4m3 range; l sums the unrounded
                // P, so the factor cancels in O / l.
                rowSum[r] += exp2InPlace(row, count: stride, shift: updated - fp8ProbabilityOffset)
                for c in 0..<keys { row[c] = roundToE4M3(row[c]) }
            }
        }
        accumulateProbabilityValue(
            p: scores, pStride: stride, rows: rows, count: keys,
            v: values, vStride: valueStride, width: width, o: acc, oStride: width)
    }

    /// Writes `O / l` for `rows` rows of `d` channels as rows `first...` of (b, h) of `output`;
    /// a row that saw no key gets zeros. `temp` holds one row.
    func finish(rows: Int, d: Int, into output: MutableTensorView, b: Int, h: Int, first: Int,
                temp: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let l = rowSum[r]
            if l == 0 {
                temp.update(repeating: 0, count: d)
            } else {
                let inv = valueUnit / l
                let src = acc + r * width
                for c in 0..<d { temp[c] = src[c] * inv }
            }
            output.store(b, h, first + r, from: temp, count: d)
        }
    }

    /// Floats of one exported state of `rows` rows: `m`, `l`, `O`, then the two units.
    static func exportSize(rows: Int, width: Int) -> Int { rows * (2 + width) + 2 }

    /// Copies the unnormalised state (`m`, `l`, `O`, `scoreUnit`, `valueUnit`) of `rows` rows
    /// to `dst` (split-K).
    func export(rows: Int, into dst: UnsafeMutablePointer<Float>) {
        dst.update(from: rowMax, count: rows)
        (dst + rows).update(from: rowSum, count: rows)
        (dst + 2 * rows).update(from: acc, count: rows * width)
        dst[rows * (2 + width)] = scoreUnit
        dst[rows * (2 + width) + 1] = valueUnit
    }

    /// Merges `count` exported states of `rows` rows (in order, so the result does not depend
    /// on which thread produced which) and writes `O / l` for `validRows` rows of `d` channels:
    /// `m = max m_s`, `l = sum l_s 2^(m_s - m)`, `O = sum O_s 2^(m_s - m)`.
    static func merge(
        _ parts: UnsafePointer<Float>, count: Int, rows: Int, width: Int, validRows: Int, d: Int,
        into output: MutableTensorView, b: Int, h: Int, first: Int, temp dst: UnsafeMutablePointer<Float>
    ) {
        let size = exportSize(rows: rows, width: width)
        // Every share of one tile has the same units (they depend on the tile and the head only).
        let scoreUnit = parts[rows * (2 + width)], valueUnit = parts[rows * (2 + width) + 1]
        for r in 0..<validRows {
            defer { output.store(b, h, first + r, from: dst, count: d) }
            var m = -Float.infinity
            for s in 0..<count { m = Swift.max(m, parts[s * size + r]) }
            dst.update(repeating: 0, count: d)
            if m == -.infinity { continue }
            var l: Float = 0
            for s in 0..<count {
                let part = parts + s * size
                let ms = part[r]
                if ms == -.infinity { continue }
                let f = exp2Scalar((ms - m) * scoreUnit)
                l += part[rows + r] * f
                let o = part + 2 * rows + r * width
                for c in 0..<d { dst[c] += o[c] * f }
            }
            let inv = valueUnit / l
            for c in 0..<d { dst[c] *= inv }
        }
    }
}
