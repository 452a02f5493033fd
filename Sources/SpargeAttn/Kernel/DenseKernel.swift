import SpargeSIMD

// Exact attention: the same tiled online softmax as stage 2, with fp32 Q.K^T, every key
// tile visited (up to the diagonal when causal, from the first row's window with a sliding
// window, except those an attention mask forbids entirely), no N x N buffer.

/// Tile sizes of the dense path (query rows x keys per tile).
struct DenseTiling {
    static let queryRows = 64
    static let keyColumns = 64
}

/// Computes exact attention for query tile `i` of (batch b, head h); with `chunks > 1`
/// only the `chunk`-th share of the key tiles, exported unnormalised to `partial` (split-K).
func denseQueryTile(
    b: Int, h: Int, i: Int, ops: DenseOperands, q: TensorView, scale: Float, causal: Bool,
    causalOffset: Int, window: Int = 0, output: MutableTensorView, scratch w: WorkerScratch,
    chunk: Int = 0, chunks: Int = 1, partial: UnsafeMutablePointer<Float>? = nil, units: UnsafeMutablePointer<Float>? = nil,
    keyValid: UnsafePointer<UInt8>? = nil, sinkLogits: PerHead? = nil, pairBlocks: PairBlockStates? = nil
) {
    let s = ops.shape, d = s.headDim
    let tr = DenseTiling.queryRows, tc = DenseTiling.keyColumns
    let kvh = h / s.groupSize
    let qStart = i * tr
    let rows = Swift.min(tr, s.queryLength - qStart)
    let rowsPad = roundUp(rows, 4)
    // Q rows times s * log2(e), so scores come out in base-2 units; padding rows are zero.
    let qTile = w.block.pointer
    var qMagnitude: Float = 0
    for r in 0..<rowsPad {
        let dst = qTile + r * d
        if r < rows {
            dst.update(from: q.floats(b, h, qStart + r, count: d, temp: w.row.pointer), count: d)
            qMagnitude = Swift.max(qMagnitude, OverflowGuard.maxMagnitude(dst, count: d))
        } else {
            dst.update(repeating: 0, count: d)
        }
    }
    // |score| <= D max|q| max|k| s log2(e): above 2^100 the tile keeps its scores in larger units.
    let kHead = b * s.kvHeads + kvh
    let scoreUnit = ScoreUnit(
        bound: Double(d) * Double(qMagnitude) * Double(ops.keyMagnitude.pointer[kHead]) * Double(scale) * Double(log2e),
        limit: OverflowGuard.scoreLimit)
    // Q's factor s * log2(e) over the score unit (in Double: it can be below fp32's range). A
    // large |q| against small keys: the scores fit but q * factor would not. Q then takes
    // factor / 2^e and each score tile is multiplied by 2^e (powers of two: exact).
    let unitFactor = scoreUnit.divide(Double(scale) * Double(log2e))
    let scoreRescale = OverflowGuard.unit(bound: Double(qMagnitude) * unitFactor, limit: OverflowGuard.scoreLimit)
    if scoreUnit.isOne && scoreRescale == 1 {
        let factor = scale * log2e
        for r in 0..<rows {
            let dst = qTile + r * d
            for c in 0..<d { dst[c] *= factor }
        }
    } else {
        // Rare (|q| or |q.k| near the fp32 limit): the product in Double, then rounded once.
        let qFactor = unitFactor / Double(scoreRescale)
        for r in 0..<rows {
            let dst = qTile + r * d
            for c in 0..<d { dst[c] = Float(Double(dst[c]) * qFactor) }
        }
    }
    let scores = w.scores.pointer
    var softmax = w.softmax
    softmax.scoreUnit = scoreUnit
    softmax.valueUnit = ops.valueUnits.pointer[kHead]
    softmax.reset(rows: rowsPad)
    // A sliding window (with causal): the tiles before the first row's window hold nothing.
    // (Capped: with top-left alignment and Nq > Nk a window can start after the last key.)
    let firstTile = causal && window > 0 ? Swift.min(ops.keyTiles, Swift.max(0, qStart + causalOffset - window + 1) / tc) : 0
    let span = ops.keyTiles - firstTile
    for j in (firstTile + chunk * span / chunks)..<(firstTile + (chunk + 1) * span / chunks) {
        let kStart = j * tc
        if causal && kStart > qStart + rows - 1 + causalOffset { break }
        let cols = Swift.min(tc, s.keyLength - kStart)
        // The attention mask: a tile it forbids entirely adds nothing; one it allows entirely needs no test.
        var pairs: UnsafePointer<UInt8>? = nil
        if let pairBlocks {
            switch pairBlocks.state(b, i, j) {
            case .forbidden: continue
            case .mixed: pairs = pairBlocks.view.row(b, qStart, from: kStart)
            case .allowed: break
            }
        }
        w.kernels.floatScoreTile(
            q: qTile, qStride: d, rows: rowsPad,
            kT: ops.kTransposed.pointer + ((b * s.kvHeads + kvh) * ops.keyTiles + j) * ops.tileSize,
            columns: tc, depth: d, out: scores, outStride: tc)
        if scoreRescale != 1 { scaleInPlace(scores, count: rowsPad * tc, by: scoreRescale) }
        maskTile(scores: scores, stride: tc, rows: rowsPad, validColumns: cols,
                 causal: causal, firstQuery: qStart, firstKey: kStart, offset: causalOffset, window: window,
                 keyValid: keyValid.map { $0 + b * s.keyLength + kStart }, pairs: pairs, pairStride: s.keyLength, pairRows: rows)
        softmax.measure(scores: scores, stride: tc, rows: rowsPad)
        softmax.absorb(scores: scores, stride: tc, rows: rowsPad, keys: cols,
                       values: ops.values.storedRows(b, kvh, kStart))
    }
    if let partial {
        softmax.export(rows: DenseTiling.queryRows, into: partial, units: chunk == 0 ? units : nil)
    } else {
        let sinks = sinkLogits.map { constantRowSinks($0[h], rows: rows, scratch: w) }
        softmax.finish(rows: rows, d: d, into: output, b: b, h: h, first: qStart, sinks: sinks, temp: w.row.pointer)
    }
}

/// `rows` copies of a sink logit in base-2 units, in `w.rowSinks` (exact attention scores
/// `q . k` unshifted, so every row's sink is the same).
func constantRowSinks(_ logit: Float, rows: Int, scratch w: WorkerScratch) -> UnsafePointer<Float> {
    w.rowSinks.pointer.update(repeating: logit * log2e, count: rows)
    return UnsafePointer(w.rowSinks.pointer)
}
