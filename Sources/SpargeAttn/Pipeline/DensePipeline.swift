// Exact attention: phase 1 transposes the key tiles per (batch, kv head), phase 2 runs the
// dense tile kernel per (batch, head, query tile) with split-K when tiles are few, then the
// split-K merge. Same thread-independence rule as the sparse pipeline.

/// K transposed per tile (`kT[d][c]`) and V padded when needed, for every (batch, kv head).
final class DenseOperands: @unchecked Sendable {
    let shape: AttentionShape
    let keyTiles: Int
    let width: Int
    let kTransposed: RawBuffer<Float>     // [B*Hkv][keyTiles][D][keyColumns]
    let vPadded: RawBuffer<Float>?
    let values: TensorView
    /// Per (batch, kv head): V is stored divided by it (``OverflowGuard``); 1 normally.
    let valueUnits: RawBuffer<Float>
    /// Per (batch, kv head): the largest |k| (set by ``prepareKeys``), for ``OverflowGuard``.
    let keyMagnitude: RawBuffer<Float>

    init(shape s: AttentionShape, v: TensorView, threads: Int = 1) {
        shape = s
        keyTiles = blockCount(s.keyLength, DenseTiling.keyColumns)
        width = roundUp(s.headDim, 8)
        kTransposed = RawBuffer(uninitializedCount: s.batch * s.kvHeads * keyTiles * s.headDim * DenseTiling.keyColumns)  // zero-filled per tile
        keyMagnitude = RawBuffer(count: s.batch * s.kvHeads, zero: 0)
        valueUnits = RawBuffer(count: s.batch * s.kvHeads, zero: 1)
        let scaled = OverflowGuard.valueUnits(v, shape: s, into: valueUnits.pointer, threads: threads).scaled
        if valuesReadInPlace(v, headDim: s.headDim, numerics: .fp32) && !scaled {
            vPadded = nil
            values = v
        } else {
            let buf = RawBuffer<Float>(count: s.batch * s.kvHeads * s.keyLength * width, zero: 0)
            vPadded = buf
            values = widenValues(v, shape: s, width: width, units: valueUnits.pointer, into: buf.pointer, threads: threads)
        }
    }

    var tileSize: Int { shape.headDim * DenseTiling.keyColumns }

    /// Transposes the key tiles of (batch b, kv head h).
    func prepareKeys(b: Int, h: Int, k: TensorView, scratch w: WorkerScratch) {
        let s = shape, tc = DenseTiling.keyColumns
        var magnitude: Float = 0
        for j in 0..<keyTiles {
            let start = j * tc
            let rows = Swift.min(tc, s.keyLength - start)
            let dst = kTransposed.pointer + ((b * s.kvHeads + h) * keyTiles + j) * tileSize
            dst.update(repeating: 0, count: tileSize)
            for c in 0..<rows {
                let src = k.floats(b, h, start + c, count: s.headDim, temp: w.row.pointer)
                for x in 0..<s.headDim { dst[x * tc + c] = src[x] }
            }
            magnitude = Swift.max(magnitude, OverflowGuard.maxMagnitude(dst, count: tileSize))
        }
        keyMagnitude.pointer[b * s.kvHeads + h] = magnitude
    }
}

/// Exact attention over views (the body of ``SpargeAttention/dense``).
func denseAttention(
    q: TensorView, k: TensorView, v: TensorView, output: MutableTensorView,
    shape s: AttentionShape, causal: Bool, causalOffset: Int, window: Int = 0, scale: Float, threads: Int,
    keyValid: UnsafePointer<UInt8>? = nil, sinkLogits: PerHead? = nil, pairMask: PairMaskView? = nil
) {
    let workers = Swift.max(1, threads)
    let ops = DenseOperands(shape: s, v: v, threads: workers)
    let width = roundUp(s.headDim, 8)
    let scratch = (0..<workers).map { _ in
        WorkerScratch(tileRows: DenseTiling.queryRows, tileColumns: DenseTiling.keyColumns, width: width,
                      blockRows: DenseTiling.queryRows, d: s.headDim, keyBlocks: 1)
    }
    parallelFor(items: s.batch * s.kvHeads, threads: workers) { worker, item in
        ops.prepareKeys(b: item / s.kvHeads, h: item % s.kvHeads, k: k, scratch: scratch[worker])
    }
    let tiles = blockCount(s.queryLength, DenseTiling.queryRows)
    // The attention mask's state per tile, found once for all heads.
    let pairStates = pairMask.map { RawBuffer<UInt8>(uninitializedCount: ($0.batchStride == 0 ? 1 : s.batch) * tiles * ops.keyTiles) }
    let pairBlocks = pairMask.map { view in
        PairBlockStates(view: view, blockQ: DenseTiling.queryRows, blockK: DenseTiling.keyColumns, states: pairStates!.pointer)
    }
    pairBlocks?.fill(batch: s.batch, threads: workers)
    let items = s.batch * s.heads * tiles
    let chunks = splitFactor(items: items, keyBlocks: ops.keyTiles)
    let partSize = OnlineSoftmax.exportSize(rows: DenseTiling.queryRows, width: width)
    let partials = chunks > 1 ? RawBuffer<Float>(count: items * chunks * partSize, zero: 0) : nil
    // The score and value units of each split tile (``OverflowGuard``), written by its first share.
    let units = chunks > 1 ? OverflowGuard.identityUnits(items: items) : nil
    parallelFor(items: items * chunks, threads: workers) { worker, work in
        let item = work / chunks, chunk = work % chunks
        let i = item % tiles, bh = item / tiles
        denseQueryTile(b: bh / s.heads, h: bh % s.heads, i: i, ops: ops, q: q, scale: scale, causal: causal,
                       causalOffset: causalOffset, window: window, output: output, scratch: scratch[worker],
                       chunk: chunk, chunks: chunks, partial: partials.map { $0.pointer + work * partSize },
                       units: units.map { $0.pointer + item * 2 }, keyValid: keyValid, sinkLogits: sinkLogits,
                       pairBlocks: pairBlocks)
    }
    if let partials {
        parallelFor(items: items, threads: workers) { worker, item in
            let i = item % tiles, bh = item / tiles
            let qStart = i * DenseTiling.queryRows
            let validRows = Swift.min(DenseTiling.queryRows, s.queryLength - qStart)
            let sinks = sinkLogits.map { constantRowSinks($0[bh % s.heads], rows: validRows, scratch: scratch[worker]) }
            OnlineSoftmax.merge(
                partials.pointer + item * chunks * partSize, count: chunks, rows: DenseTiling.queryRows, width: width,
                validRows: validRows, d: s.headDim,
                units: units.map { UnsafePointer($0.pointer + item * 2) }, sinks: sinks, into: output, b: bh / s.heads, h: bh % s.heads, first: qStart, temp: scratch[worker].row.pointer)
        }
    }
}
