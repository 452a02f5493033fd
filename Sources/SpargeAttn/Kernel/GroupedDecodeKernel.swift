import SpargeSIMD

// Stage 2 for decoding with grouped-query attention: the query rows of all query heads that
// share a kv head (G heads x Nq tokens, Nq <= one query block) form one tile, so each marked
// K/V block is read once per group instead of once per head, and a single query row no longer
// fills a 4-row tile alone. Each head keeps its own block map, ordinals, stage-2 filter and
// online-softmax rows; a head that did not select a block sees it as fully masked (P = 0,
// state unchanged), so the result is bit-identical to `sparseQueryBlock` per head.

/// Whether the grouped decode kernel applies: one query block and the group's rows fit a tile.
func usesGroupedDecode(_ g: SparseGeometry) -> Bool {
    let s = g.shape
    return s.groupSize > 1 && s.queryLength <= g.blockQ && s.groupSize * s.queryLength <= g.rowsPad
}

/// Stage 2 of the group of kv head `kvh` in batch `b` for chunk `chunk` of each head's marked
/// blocks; writes the heads' outputs (or split-K partials) and their tile counters.
func groupedDecodeBlock(
    b: Int, kvh: Int, ops: SparseOperands, geometry g: SparseGeometry, map: UnsafePointer<UInt8>,
    lambda: (Int) -> Float, options o: SparseKernelOptions, output: MutableTensorView, scratch w: WorkerScratch,
    chunk: Int, chunks: Int, partials: UnsafeMutablePointer<Float>?, units: UnsafeMutablePointer<Float>?,
    counts: UnsafeMutablePointer<TileCounts>
) {
    let s = g.shape, d = s.headDim, group = s.groupSize, nq = s.queryLength
    let rows = group * nq, rowsPad = roundUp(rows, 4), stride = g.columnsPad
    let kHead = b * s.kvHeads + kvh
    let firstHead = kvh * group
    // The group's packed query rows, one head after another.
    let qTile = w.groupQuery.pointer
    qTile.update(repeating: w.kernels.scoreRowPadding, count: rowsPad * g.pairs)
    for gh in 0..<group {
        let qHead = b * s.heads + firstHead + gh
        (qTile + gh * nq * g.pairs).update(from: ops.qPacked.pointer + qHead * g.packedQueryHead, count: nq * g.pairs)
    }
    // Per head: selected count, share of this chunk, counters. The chunk's blocks lie between
    // the first block of the earliest share and the last block of the latest one: the loop
    // below runs over those alone (a long cache split in many chunks would otherwise walk
    // every key block in every chunk), each head's ordinal counted up to its start.
    // (The tile counts are summed here and stored once: the chunks of one head are neighbours
    // in `counts`, and workers bumping them block by block would share their cache line.)
    let selected = w.groupInts.pointer, ordinal = selected + group, first = ordinal + group, last = first + group
    let visitedTiles = last + group, skippedTiles = visitedTiles + group
    visitedTiles.update(repeating: 0, count: 2 * group)
    var start = g.keyBlocks, end = 0
    for gh in 0..<group {
        let row = map + (b * s.heads + firstHead + gh) * g.keyBlocks
        let n = markedBlocks(row, 0..<g.keyBlocks)
        selected[gh] = n
        first[gh] = chunk * n / chunks
        last[gh] = (chunk + 1) * n / chunks
        if first[gh] < last[gh] {
            start = Swift.min(start, markedBlockPosition(row, count: g.keyBlocks, ordinal: first[gh]))
            end = Swift.max(end, markedBlockPosition(row, count: g.keyBlocks, ordinal: last[gh] - 1) + 1)
        }
    }
    for gh in 0..<group {
        ordinal[gh] = start < end ? markedBlocks(map + (b * s.heads + firstHead + gh) * g.keyBlocks, 0..<start) : 0
    }
    let scores = w.scores.pointer
    var softmax = w.softmax
    softmax.reset(rows: rowsPad)
    // The overflow guard of `sparseQueryBlock` (``OverflowGuard``), one score unit for the
    // group (its largest query scale): 1, and the same products as per head, in normal ranges.
    let kScaleMax = Swift.max(0, rowMax(ops.kScale.pointer + kHead * g.keyBlockStride, count: g.keyBlocks))
    var qScaleMax: Float = 0
    for gh in 0..<group { qScaleMax = Swift.max(qScaleMax, ops.qScale.pointer[(b * s.heads + firstHead + gh) * g.queryBlocks]) }
    let scoreUnit = ScoreUnit(
        bound: 16129 * Double(d) * Double(qScaleMax) * Double(kScaleMax) * Double(o.scoreFactor), limit: OverflowGuard.scoreLimit)
    softmax.scoreUnit = scoreUnit
    let dequantization = DequantizationScale(unit: scoreUnit, factor: o.scoreFactor, qScaleMax: qScaleMax, kScaleMax: kScaleMax)
    if ops.valuesScaled { softmax.valueUnit = ops.valueUnits.pointer[kHead] }
    func headSoftmax(_ gh: Int) -> OnlineSoftmax {
        OnlineSoftmax(rowMax: softmax.rowMax + gh * nq, rowSum: softmax.rowSum + gh * nq, tileMax: softmax.tileMax + gh * nq,
                      rowFactor: softmax.rowFactor + gh * nq, rowTotal: softmax.rowTotal + gh * nq,
                      acc: softmax.acc + gh * nq * softmax.width, width: softmax.width, kernels: softmax.kernels,
                      probabilityPairs: softmax.probabilityPairs, probabilityScales: softmax.probabilityScales,
                      scoreUnit: softmax.scoreUnit, valueUnit: softmax.valueUnit)
    }
    let active = w.groupFlags.pointer
    for j in start..<Swift.max(start, end) {
        let kStart = j * g.blockK
        let cols = Swift.min(g.blockK, s.keyLength - kStart)
        let pairState = o.pairMask?.state(b, 0, j)   // shared by the group's heads
        var any = false
        for gh in 0..<group {
            active[gh] = 0
            let row = map + (b * s.heads + firstHead + gh) * g.keyBlocks
            guard row[j] != 0 else { continue }
            defer { ordinal[gh] += 1 }
            if ordinal[gh] < first[gh] || ordinal[gh] >= last[gh] { continue }
            if o.causal && kStart > nq - 1 + o.causalOffset { continue }
            if o.window > 0 && kStart + cols - 1 <= o.causalOffset - o.window { continue }   // before the window
            if pairState == .forbidden { continue }   // every pair forbidden by the mask
            visitedTiles[gh] += 1
            active[gh] = 1
            any = true
        }
        if !any { continue }
        let t = kHead * g.keyBlockStride + j
        w.kernels.int8ScoreTile(q: qTile, qStride: g.pairs, rows: rowsPad, k: ops.kPacked.pointer + t * g.packedKeyBlock,
                      columns: stride, pairs: g.pairs, scale: 1, terms: nil, out: scores, outStride: stride)
        for gh in 0..<group {
            let headRows = scores + gh * nq * stride
            if active[gh] == 0 {
                headRows.update(repeating: -.infinity, count: nq * stride)
                continue
            }
            // The same product as the per-head kernel: int32 sum (exact in fp32) times one scale.
            let qScale = ops.qScale.pointer[(b * s.heads + firstHead + gh) * g.queryBlocks]
            let scale = dequantization(qScale, ops.kScale.pointer[t])
            for r in 0..<nq { scaleInPlace(headRows + r * stride, count: stride, by: scale) }
            maskTile(scores: headRows, stride: stride, rows: nq, validColumns: cols, causal: o.causal,
                     firstQuery: 0, firstKey: kStart, offset: o.causalOffset, window: o.window,
                     zeroPaddingUpTo: o.tritonKeyPadding ? g.blockK : 0,
                     keyValid: o.keyValid.map { $0 + b * s.keyLength + kStart },
                     pairs: pairState == .mixed ? o.pairMask?.view.row(b, 0, from: kStart) : nil,
                     pairStride: s.keyLength, pairRows: nq)
        }
        if rowsPad > rows { (scores + rows * stride).update(repeating: -.infinity, count: (rowsPad - rows) * stride) }
        softmax.measure(scores: scores, stride: stride, rows: rowsPad)
        for gh in 0..<group where active[gh] != 0 {
            let exempt = ordinal[gh] - 1 >= selected[gh] - o.exemptTailBlocks
            if stage2SkipsTile(headSoftmax(gh), rows: nq, lambda: lambda(firstHead + gh), exempt: exempt) {
                skippedTiles[gh] += 1
                (scores + gh * nq * stride).update(repeating: -.infinity, count: nq * stride)
                headSoftmax(gh).tileMax.update(repeating: -.infinity, count: nq)
            }
        }
        softmax.absorb(scores: scores, stride: stride, rows: rowsPad, keys: cols,
                       values: ops.values.storedRows(b, kvh, kStart), numerics: o.numerics)
    }
    for gh in 0..<group {
        let h = firstHead + gh
        let item = (b * s.heads + h) * g.queryBlocks
        counts[item * chunks + chunk] = TileCounts(visited: Int32(visitedTiles[gh]), skipped: Int32(skippedTiles[gh]))
        let hs = headSoftmax(gh)
        if let partials {
            hs.export(rows: nq, layoutRows: g.partialRows,
                      into: partials + (item * chunks + chunk) * OnlineSoftmax.exportSize(rows: g.partialRows, width: g.width),
                      units: chunk == 0 ? units.map { $0 + item * 2 } : nil)
        } else {
            let sinks = o.sinks?.rows(nq, first: 0, b: b, h: h, shape: s, scratch: w)
            hs.finish(rows: nq, d: d, into: output, b: b, h: h, first: 0, sinks: sinks, temp: w.row.pointer)
        }
    }
}
