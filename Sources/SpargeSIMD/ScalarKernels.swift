// The plain twin of every tile kernel: the same contract written as obvious scalar loops.
// Tests compare each compiled kernel set against these (exact for the integer kernels,
// within fp32 rounding for the others), and a reader can learn what a kernel computes here
// before reading its register-tiled form in the file named beside each function.

/// Scalar versions of the ``KernelSet`` entry points, with identical signatures.
public enum ScalarKernels: Sendable {
    /// `"scalar"`, in reports beside the compiled sets' names.
    public static var name: String { "scalar" }
    /// Always `true`: the scalar loops are the same on every CPU.
    public static var isSpecialized: Bool { true }
    /// One element at a time.
    public static var lanes: Int { 1 }

    /// Int8ScoreKernel.swift: `out[r][c] = scale * sum_d q[r][d] * k[c][d] (+ terms[c])` over
    /// packed operands.
    public static func int8ScoreTile(
        q: UnsafePointer<Int32>, qStride: Int, rows: Int,
        k: UnsafePointer<Int16>, columns: Int, pairs: Int,
        scale: Float, terms: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            for c in 0..<columns {
                let sum = pairDot(q + r * qStride, k, column: c, columns: columns, pairs: pairs)
                let scaled = Float(sum) * scale
                out[r * outStride + c] = terms.map { scaled + $0[c] } ?? scaled
            }
        }
    }

    /// ScoreOperandLayout.swift: the pair layout's padding word (a pair of zeros).
    public static var scoreRowPadding: Int32 { 0 }

    /// ScoreOperandLayout.swift: query rows as int16 channel pairs (PairPacking.swift).
    public static func packScoreQueries(_ q8: UnsafePointer<Int8>, rows: Int, d: Int, rowStride: Int, rowsPad: Int,
                                        into packed: UnsafeMutablePointer<Int32>) {
        packed.update(repeating: 0, count: rowsPad * rowStride)
        for r in 0..<rows { packRowPairs(q8 + r * d, d: d, into: packed + r * rowStride) }
    }

    /// ScoreOperandLayout.swift: a key block as pair-major columns (PairPacking.swift).
    public static func packScoreKeys(_ k8: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int, columns: Int,
                                     into packed: UnsafeMutablePointer<Int16>) {
        packColumnPairs(k8, rows: rows, d: d, stride: stride, columns: columns, into: packed)
    }

    /// FixedPointValueKernel.swift: each row as `round(p * 8191 / rowMax)` in key pairs,
    /// `scales[r] = rowMax / 8191`.
    public static func quantizeProbabilityRows(
        _ p: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int,
        into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            var rowMax: Float = 0, poison: Float = 0  // poison: 0, or NaN when a value is not finite
            for c in 0..<columns { rowMax = Swift.max(rowMax, p[r * stride + c]); poison += p[r * stride + c] * 0 }
            scales[r] = (rowMax > 0 ? rowMax / probabilityQuantizationLevels : 0) + poison
            let factor = rowMax > 0 ? probabilityQuantizationLevels / rowMax : 0
            for j in 0..<(columns / 2) {
                let low = fixedPointLevel(p[r * stride + 2 * j], factor), high = fixedPointLevel(p[r * stride + 2 * j + 1], factor)
                out[r * pairStride + j] = low & 0xFFFF | high &<< 16
            }
        }
    }

    /// FixedPointValueKernel.swift: ``exponentiateRows(_:stride:rows:columns:shifts:sums:)``, then
    /// ``quantizeProbabilityRows(_:stride:rows:columns:into:pairStride:scales:)``.
    public static func exponentiateQuantizeRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
        shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>,
        into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>
    ) {
        exponentiateRows(x, stride: stride, rows: rows, columns: columns, shifts: shifts, sums: sums)
        quantizeProbabilityRows(x, stride: stride, rows: rows, columns: columns, into: out, pairStride: pairStride, scales: scales)
    }

    /// FixedPointValueKernel.swift: per channel `round(v * 4095 / max|v[:, c]|)`, pair-major
    /// over keys, `steps[c] = max / 4095`.
    public static func quantizeValueBlock(
        _ v: UnsafePointer<Float>, stride: Int, keys: Int, columns: Int,
        into out: UnsafeMutablePointer<Int16>, steps: UnsafeMutablePointer<Float>
    ) {
        for c in 0..<columns {
            var m: Float = 0, poison: Float = 0  // poison: 0, or NaN when a value is not finite
            for t in 0..<keys { m = Swift.max(m, Swift.abs(v[t * stride + c])); poison += v[t * stride + c] * 0 }
            steps[c] = m / valueQuantizationLevels + poison
            let pre = valueChannelPrescale(m)
            let factor = m > 0 && m.isFinite ? valueQuantizationLevels / (m * pre) : 0
            for t in 0..<((keys + 1) / 2 * 2) {
                let level = fixedPointLevel(t < keys ? v[t * stride + c] * pre : 0, factor)
                out[(t / 2 * columns + c) * 2 + t % 2] = Int16(truncatingIfNeeded: level)
            }
        }
    }

    /// FixedPointValueKernel.swift: `o[r][c] += (sum_j p[r][j] * v[j][c]) * rowScales[r] * columnScales[c]`.
    public static func accumulatePairProducts(
        p: UnsafePointer<Int32>, pStride: Int, rows: Int,
        v: UnsafePointer<Int16>, columns: Int, pairs: Int,
        rowScales: UnsafePointer<Float>, columnScales: UnsafePointer<Float>,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        for r in 0..<rows {
            for c in 0..<columns {
                let sum = pairDot(p + r * pStride, v, column: c, columns: columns, pairs: pairs)
                o[r * oStride + c] = o[r * oStride + c] + Float(sum) * rowScales[r] * columnScales[c]
            }
        }
    }

    /// GatedActivationKernel.swift: `out[i] = gate[i] * sigmoid(gate[i]) * up[i]`.
    public static func siluGate(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, count: Int,
                                into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { out[i] = gate[i] * siluSigmoid(gate[i]) * up[i] }
    }

    /// FloatScoreKernel.swift: `out[r][c] = sum_d q[r][d] * kT[d][c]`.
    public static func floatScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        kT: UnsafePointer<Float>, columns: Int, depth: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            for c in 0..<columns {
                var sum: Float = 0
                for d in 0..<depth { sum += q[r * qStride + d] * kT[d * columns + c] }
                out[r * outStride + c] = sum
            }
        }
    }

    /// One fp16 (bf16 with `bfloat16`) element widened by Swift's conversion.
    private static func widened(_ bits: UInt16, bfloat16: Bool) -> Float {
        bfloat16 ? Float(bitPattern: UInt32(bits) << 16) : Float(Float16(bitPattern: bits))
    }

    /// HalfRowKernels.swift: each 16-bit element widened by Swift's conversion.
    public static func widenHalfRow(_ bits: UnsafePointer<UInt16>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { out[i] = widened(bits[i], bfloat16: bfloat16) }
    }

    /// HalfRowKernels.swift: each float rounded to the nearest even fp16 (Swift's conversion) or
    /// bf16 (the carry into bit 16 rounds); a NaN becomes the quiet NaN of its sign.
    public static func narrowHalfRow(_ src: UnsafePointer<Float>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<UInt16>) {
        for i in 0..<count {
            let x = src[i], u = x.bitPattern
            if bfloat16 {
                out[i] = x.isNaN ? UInt16(u >> 16) | 0x0040 : UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
            } else {
                out[i] = x.isNaN ? UInt16(u >> 16) & 0x8000 | 0x7E00 : Float16(x).bitPattern
            }
        }
    }

    /// ChannelMajorScoreKernel.swift: `out[r][j] = sum_c q[r][c] * table[c][j]`, in channel order.
    public static func channelMajorScores(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        table: UnsafePointer<Float>, tableStride: Int, channels: Int, columns: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            for j in 0..<columns {
                var sum: Float = 0
                for c in 0..<channels { sum += q[r * qStride + c] * table[c * tableStride + j] }
                out[r * outStride + j] = sum
            }
        }
    }

    /// KeyRowScoreKernel.swift: `out[r][j] = sum_c q[r][c] * k[j][c]`.
    public static func keyRowScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        k: UnsafePointer<Float>, kStride: Int, count: Int, depth: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            for j in 0..<count {
                var sum: Float = 0
                for c in 0..<depth { sum += q[r * qStride + c] * k[j * kStride + c] }
                out[r * outStride + j] = sum
            }
        }
    }

    /// KeyRowScoreKernel.swift: the same over fp16 or bf16 keys, widened one by one.
    public static func halfKeyRowScoreTile(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        k: UnsafePointer<UInt16>, kStride: Int, count: Int, depth: Int, bfloat16: Bool,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            for j in 0..<count {
                var sum: Float = 0
                for c in 0..<depth {
                    sum += q[r * qStride + c] * widened(k[j * kStride + c], bfloat16: bfloat16)
                }
                out[r * outStride + j] = sum
            }
        }
    }

    /// ProbabilityValueKernel.swift: `o[r][x] += sum_c p[r][c] * v[c][x]`.
    public static func accumulateProbabilityValue(
        p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
        v: UnsafePointer<Float>, vStride: Int, width: Int,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        for r in 0..<rows {
            for c in 0..<count {
                let weight = p[r * pStride + c]
                for x in 0..<width { o[r * oStride + x] += weight * v[c * vStride + x] }
            }
        }
    }

    /// ProbabilityValueKernel.swift: the same over fp16 or bf16 values, widened one by one.
    public static func accumulateProbabilityHalfValue(
        p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
        v: UnsafePointer<UInt16>, vStride: Int, width: Int, bfloat16: Bool,
        o: UnsafeMutablePointer<Float>, oStride: Int
    ) {
        for r in 0..<rows {
            for c in 0..<count {
                let weight = p[r * pStride + c]
                for x in 0..<width {
                    o[r * oStride + x] += weight * widened(v[c * vStride + x], bfloat16: bfloat16)
                }
            }
        }
    }

    /// TileRowOps.swift: the largest entry of each row.
    public static func rowMaxima(
        _ x: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int, into maxima: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            var best = -Float.infinity
            for c in 0..<columns where x[r * stride + c] > best { best = x[r * stride + c] }
            maxima[r] = best
        }
    }

    /// TileRowOps.swift: `x = 2^(x - shift)` per row, with the row sums.
    public static func exponentiateRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
        shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            var total: Float = 0
            for c in 0..<columns {
                let y = x[r * stride + c] - shifts[r]
                let e = y < probabilityFlushExponent ? 0 : exp2(y)
                x[r * stride + c] = e
                total += e
            }
            sums[r] = total
        }
    }

    /// FloatScoreKernel.swift: `out[c] = sum_d x[d] * kT[d][c]`.
    public static func rowTimesColumns(
        _ x: UnsafePointer<Float>, kT: UnsafePointer<Float>, columns: Int, depth: Int, out: UnsafeMutablePointer<Float>
    ) {
        for c in 0..<columns {
            var sum: Float = 0
            for d in 0..<depth { sum += x[d] * kT[d * columns + c] }
            out[c] = sum
        }
    }

    /// TileRowOps.swift: `x *= factor` per row.
    public static func scaleRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int, factors: UnsafePointer<Float>
    ) {
        for r in 0..<rows {
            for c in 0..<columns { x[r * stride + c] *= factors[r] }
        }
    }

    /// MultiplyAddPeak.swift: the same dependent multiply-add chains, one lane.
    public static func multiplyAddLoop(steps: Int, seed: Float) -> Float {
        var x = (0..<12).map { seed + Float($0) }
        for _ in 0..<steps { for i in 0..<12 { x[i] = x[i] * 0.999_999 + 1e-7 } }
        return x.reduce(0, +)
    }
}

/// Scalar 2^x through the vector polynomial's definition (exactly 0 below -126).
@inline(__always)
private func exp2(_ x: Float) -> Float { exp2Scalar(x) }

/// Column `column` of a pair-major operand (`columns` wide) against one packed row, summed in
/// int32 pair by pair (wrapping, as `vpmaddwd` + `vpaddd` do).
private func pairDot(_ row: UnsafePointer<Int32>, _ b: UnsafePointer<Int16>, column c: Int, columns: Int, pairs: Int) -> Int32 {
    var sum: Int32 = 0
    for p in 0..<pairs {
        let word = row[p]
        let low = Int32(Int16(truncatingIfNeeded: word)), high = word >> 16
        sum &+= low &* Int32(b[(p * columns + c) * 2]) &+ high &* Int32(b[(p * columns + c) * 2 + 1])
    }
    return sum
}
