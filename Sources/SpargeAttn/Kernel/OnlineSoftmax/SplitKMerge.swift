import SpargeSIMD

// Split-K for every online softmax of the package: a key range split into shares, each share
// exported as an unnormalised state (`m`, `l`, `O` of its rows), then merged in share order
// by log-sum-exp (so the result does not depend on which thread produced which share).

extension OnlineSoftmax {
    /// How `O / l` is formed: the tiled kernels multiply by `1 / l` (as the GPU kernels'
    /// epilogue); the exact decode path divides.
    enum Normalization { case reciprocal, division }

    /// Floats of one exported state of `rows` rows: `m`, `l`, then `O`.
    static func exportSize(rows: Int, width: Int) -> Int { rows * (2 + width) }

    /// Copies the unnormalised state (`m`, `l`, `O`) of the first `rows` rows to `dst`, laid
    /// out as an exported state of `layoutRows` rows (split-K).
    /// With `units`, also stores this softmax's score and value units there (for ``merge``).
    func export(rows: Int, layoutRows: Int? = nil, into dst: UnsafeMutablePointer<Float>,
                units: UnsafeMutablePointer<Float>? = nil) {
        if let units { units[0] = scoreUnit.stored; units[1] = valueUnit }
        let stride = layoutRows ?? rows
        dst.update(from: rowMax, count: rows)
        (dst + stride).update(from: rowSum, count: rows)
        (dst + 2 * stride).update(from: acc, count: rows * width)
    }

    /// Merges `count` exported states of `rows` rows (in order, so the result does not depend
    /// on which thread produced which) and writes `O / l` for `validRows` rows of `d` channels:
    /// `m = max m_s`, `l = sum l_s 2^(m_s - m)`, `O = sum O_s 2^(m_s - m)`; a row that saw no
    /// key gets zeros. `units` (score unit as ``ScoreUnit/stored`` and value unit of the
    /// shares, ``OverflowGuard``) are 1 when nil. `sinks`: each row's sink logit in base-2 units
    /// (nil: none), folded in once, after the shares.
    static func merge(
        _ parts: UnsafePointer<Float>, count: Int, rows: Int, width: Int, validRows: Int, d: Int,
        normalization: Normalization = .reciprocal, units: UnsafePointer<Float>? = nil, sinks: UnsafePointer<Float>? = nil,
        into output: MutableTensorView, b: Int, h: Int, first: Int, temp dst: UnsafeMutablePointer<Float>
    ) {
        let scoreUnit = units.map { ScoreUnit(stored: $0[0]) } ?? .one, valueUnit = units?[1] ?? 1
        let size = exportSize(rows: rows, width: width)
        for r in 0..<validRows {
            let sink = sinks?[r] ?? -.infinity
            defer { output.store(b, h, first + r, from: dst, count: d) }
            var m = -Float.infinity
            for s in 0..<count { m = Swift.max(m, parts[s * size + r]) }
            dst.update(repeating: 0, count: d)
            var l: Float = 0
            defer { output.storeLSE(b, h, first + r, m: m, l: l, unit: scoreUnit) }
            if m == -.infinity {
                // No key: zeros, and the sink alone (if any) as the denominator.
                let row = foldSink(m: m, l: l, sink: sink, unit: scoreUnit)
                (m, l) = (row.m, row.l)
                continue
            }
            for s in 0..<count {
                let part = parts + s * size
                let ms = part[r]
                if ms == -.infinity { continue }
                let f = exp2Scalar(scoreUnit.scale(ms - m))
                l += part[rows + r] * f
                let o = part + 2 * rows + r * width
                for c in 0..<d { dst[c] += o[c] * f }
            }
            // The sink joins the denominator (O moves with the row maximum when the sink is larger).
            let row = foldSink(m: m, l: l, sink: sink, unit: scoreUnit)
            if row.outputFactor != 1 { for c in 0..<d { dst[c] *= row.outputFactor } }
            (m, l) = (row.m, row.l)
            switch normalization {
            case .reciprocal:
                let inv = valueUnit / l
                for c in 0..<d { dst[c] *= inv }
            case .division:
                for c in 0..<d { dst[c] /= l }
                if valueUnit != 1 { for c in 0..<d { dst[c] *= valueUnit } }
            }
            if valueUnit != 1 { for c in 0..<d { dst[c] = OverflowGuard.finiteRounding(dst[c]) } }
        }
    }
}
