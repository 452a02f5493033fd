import SpargeSIMD

// Stage 2 (ExactSemantics.md section 4): the block-sparse online softmax over INT8 Q.K^T with
// the softmax-aware filter decided once per query block, fp32 P.V, token-level causal mask.

/// Counters of one query block: marked key blocks visited, and how many stage 2 skipped.
struct TileCounts {
    var visited: Int32 = 0
    var skipped: Int32 = 0
}

/// Where a kernel finds each row's learned sink (``SpargeParameters/sinkLogits``): the
/// per-head logits, the fp32 queries and, with K smoothing, the K means the scores are relative
/// to (see ``fillRowSinks(_:rows:first:logit:q:b:h:mean:scale:d:offset:temp:)``).
struct SinkSource {
    var logits: PerHead
    var queries: TensorView
    /// `B*Hkv*D` means, nil without K smoothing.
    var keyMeans: UnsafePointer<Float>?
    var scale: Float
    /// Base-2 units added to every row's sink: the FP8 emulation's `P` and `l` carry
    /// `2^fp8ProbabilityOffset`, so its sink must too (0 otherwise).
    var offset: Float = 0

    /// Rows `first..<first + rows` of query head `h` of batch `b` into `w.rowSinks`.
    func rows(_ rows: Int, first: Int, b: Int, h: Int, shape s: AttentionShape, scratch w: WorkerScratch) -> UnsafePointer<Float> {
        let d = s.headDim
        fillRowSinks(w.rowSinks.pointer, rows: rows, first: first, logit: logits[h], q: queries, b: b, h: h,
                     mean: keyMeans.map { $0 + (b * s.kvHeads + h / s.groupSize) * d }, scale: scale, d: d, offset: offset,
                     temp: w.row.pointer)
        return UnsafePointer(w.rowSinks.pointer)
    }
}

/// Options of the stage-2 kernel that do not change per tile.
struct SparseKernelOptions {
    var causal: Bool
    /// Nk - Nq: query i sees keys up to i + offset under the causal mask.
    var causalOffset: Int
    /// With `causal`: each query sees only the last `window` keys up to its limit (0: no window).
    var window: Int = 0
    var exemptTailBlocks: Int
    /// Multiplies the dequantized INT8 dot products into base-2 score units
    /// (`s * log2(e)` on the CUDA path; 1 on the Triton path, whose Q already carries it).
    var scoreFactor: Float
    /// See ``GPUReproduction/tritonKeyPadding``.
    var tritonKeyPadding: Bool
    /// See ``GPUReproduction/pvNumerics``.
    var numerics: PVNumerics = .fp32
    /// The key padding mask, `B x Nk` bytes (1 = real key), when the call has one.
    var keyValid: UnsafePointer<UInt8>? = nil
    /// The learned sinks, when the call has them.
    var sinks: SinkSource? = nil
    /// The attention mask's block states (for the call's block sizes), when the call has one.
    var pairMask: PairBlockStates? = nil
}

/// Computes the output rows of query block `i` of (batch b, head h) from the marked key
/// blocks of `mapRow` (`nk` bytes) and returns the tile counters.
///
/// With `chunks > 1` (split-K) only the `chunk`-th share of the marked blocks is visited and
/// the unnormalised state goes to `partial` (see ``OnlineSoftmax/export(rows:into:)``); each
/// share starts its own running max, so the stage-2 filter sees only that share's history.
func sparseQueryBlock(
    b: Int, h: Int, i: Int, ops: SparseOperands, geometry g: SparseGeometry, mapRow: UnsafePointer<UInt8>, lambda: Float,
    options o: SparseKernelOptions, output: MutableTensorView, scratch w: WorkerScratch,
    chunk: Int = 0, chunks: Int = 1, partial: UnsafeMutablePointer<Float>? = nil, units: UnsafeMutablePointer<Float>? = nil
) -> TileCounts {
    let s = g.shape, d = s.headDim
    let kvh = h / s.groupSize
    let qHead = b * s.heads + h, kHead = b * s.kvHeads + kvh
    let qStart = i * g.blockQ
    let rows = Swift.min(g.blockQ, s.queryLength - qStart)
    let rowsPad = roundUp(rows, 4)
    let stride = g.columnsPad
    let scores = w.scores.pointer
    var softmax = w.softmax
    softmax.reset(rows: rowsPad)

    let qPacked = UnsafePointer(ops.qPacked.pointer + qHead * g.packedQueryHead + i * g.rowsPad * g.pairs)
    let qScale = ops.qScale.pointer[qHead * g.queryBlocks + i]
    // |score| <= 127^2 D q_scale k_scale factor: above 2^100 this block keeps its scores in
    // larger units (``OverflowGuard``), and the dequantization scale is formed in Double.
    let kScaleMax = Swift.max(0, rowMax(ops.kScale.pointer + kHead * g.keyBlockStride, count: g.keyBlocks))
    // Q smoothing adds mean . k' (|k'| <= 127 k_scale) to every score of the block.
    let qMean = ops.qMean.map { UnsafePointer($0.pointer + (qHead * g.queryBlocks + i) * d) }
    var meanMax: Float = 0
    if let qMean { for c in 0..<d { meanMax = Swift.max(meanMax, abs(qMean[c])) } }
    let scoreUnit = ScoreUnit(
        bound: (16129 * Double(qScale) + 127 * Double(meanMax)) * Double(d) * Double(kScaleMax) * Double(o.scoreFactor),
        limit: OverflowGuard.scoreLimit)
    softmax.scoreUnit = scoreUnit
    let dequantization = DequantizationScale(unit: scoreUnit, factor: o.scoreFactor, qScaleMax: qScale, kScaleMax: kScaleMax)
    if let qMean {
        // The mean in the tile's score units.
        let factor = scoreUnit.divide(Double(o.scoreFactor))
        for c in 0..<d { w.queryMean.pointer[c] = Float(Double(qMean[c]) * factor) }
    }
    if ops.valuesScaled { softmax.valueUnit = ops.valueUnits.pointer[kHead] }
    let selected = markedBlocks(mapRow, 0..<g.keyBlocks)

    // This chunk's share: the marked blocks with ordinals first..<last, from the first of them on.
    let first = chunk * selected / chunks, last = (chunk + 1) * selected / chunks
    var counts = TileCounts()
    var ordinal = first
    let start = first < last ? markedBlockPosition(mapRow, count: g.keyBlocks, ordinal: first) : g.keyBlocks
    for j in start..<g.keyBlocks where mapRow[j] != 0 {
        if ordinal >= last { break }
        defer { ordinal += 1 }
        let kStart = j * g.blockK
        let cols = Swift.min(g.blockK, s.keyLength - kStart)
        // Under the causal mask a block entirely in the future of every row has nothing to add.
        if o.causal && kStart > qStart + rows - 1 + o.causalOffset { continue }
        // Nor does one entirely before the window of its first (earliest) row.
        if o.window > 0 && kStart + cols - 1 <= qStart + o.causalOffset - o.window { continue }
        // Nor does one whose pairs the attention mask all forbids (a map given by the caller may mark it).
        let pairState = o.pairMask?.state(b, i, j) ?? .allowed
        if pairState == .forbidden { continue }
        counts.visited += 1
        let t = kHead * g.keyBlockStride + j
        // Step 1: S = dequant(Q_i K_j^T) in base-2 units (+ mean . K_j^T with Q smoothing), then masks.
        let terms = ops.kSmoothedT.map { kT -> UnsafePointer<Float> in
            w.kernels.rowTimesColumns(w.queryMean.pointer, kT: kT.pointer + t * d * stride, columns: stride, depth: d,
                                      out: w.keyTerms.pointer)
            return UnsafePointer(w.keyTerms.pointer)
        }
        w.kernels.int8ScoreTile(
            q: qPacked, qStride: g.pairs, rows: rowsPad,
            k: ops.kPacked.pointer + t * g.packedKeyBlock, columns: stride, pairs: g.pairs,
            scale: dequantization(qScale, ops.kScale.pointer[t]),
            terms: terms, out: scores, outStride: stride)
        maskTile(scores: scores, stride: stride, rows: rowsPad, validColumns: cols,
                 causal: o.causal, firstQuery: qStart, firstKey: kStart, offset: o.causalOffset, window: o.window,
                 zeroPaddingUpTo: o.tritonKeyPadding ? g.blockK : 0,
                 keyValid: o.keyValid.map { $0 + b * s.keyLength + kStart },
                 pairs: pairState == .mixed ? o.pairMask?.view.row(b, qStart, from: kStart) : nil, pairStride: s.keyLength,
                 pairRows: rows)
        // Steps 2-3: tile maxima and the filter (the first visit always passes: m = -inf).
        softmax.measure(scores: scores, stride: stride, rows: rowsPad)
        let exempt = ordinal >= selected - o.exemptTailBlocks
        if stage2SkipsTile(softmax, rows: rows, lambda: lambda, exempt: exempt) {
            counts.skipped += 1
            continue
        }
        // Steps 4-5.
        softmax.absorb(scores: scores, stride: stride, rows: rowsPad, keys: cols,
                       values: ops.values.storedRows(b, kvh, kStart), numerics: o.numerics,
                       fixedValues: ops.fixedValues?.block(t))
    }
    if let partial {
        softmax.export(rows: g.partialRows, into: partial, units: chunk == 0 ? units : nil)
    } else {
        let sinks = o.sinks?.rows(rows, first: qStart, b: b, h: h, shape: s, scratch: w)
        softmax.finish(rows: rows, d: d, into: output, b: b, h: h, first: qStart, sinks: sinks, temp: w.row.pointer)
    }
    return counts
}
