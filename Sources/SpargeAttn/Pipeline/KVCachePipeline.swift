import SpargeSIMD

// A KV cache's calls through the pipeline. The cache owns keys and values padded to `width`
// ([B*Hkv][capacity][...], fp32, fp16 or bf16) and a storage sized for its largest call, whose
// key-side buffers keep the capacity's layout (`keyBlockStride`) while the cache grows.

/// A KV cache's memory as the pipeline reads it.
struct CacheBuffers {
    let storage: SparseStorage
    let keys: TensorView            // [B*Hkv][capacity][D], the cache's element type
    let values: TensorView          // [B*Hkv][capacity][width], the same type, divided by `valueUnits`
    let capacityBlocks: Int
    /// Per (batch, kv head): the largest |k| and |v| appended so far (``OverflowGuard``).
    let magnitudes: CacheMagnitudes
}

/// The overflow guard of a KV cache (``OverflowGuard``): per (batch, kv head) the largest
/// |k| and |v| appended so far, and V stored divided by a power of two (`storage.ops.valueUnits`,
/// 1 normally) chosen from the largest |v| times the capacity, so that `O = sum P v` stays
/// finite however long the cache grows. When a later append raises the unit, the rows already
/// stored are divided by the ratio (a power of two: exact, but for values below about
/// 2^-126 times the unit, negligible beside the head's largest).
struct CacheMagnitudes {
    let keys: RawBuffer<Float>
    let values: RawBuffer<Float>

    init(heads: Int) {
        keys = RawBuffer(count: heads, zero: 0)
        values = RawBuffer(count: heads, zero: 0)
    }
}

extension CacheBuffers {
    /// Updates the magnitudes and value units after rows `first..<first + count` of every
    /// (batch, kv head) were written unscaled.
    func guardAppendedRows(first: Int, count: Int, capacity: Int, headDim d: Int) {
        let units = storage.ops.valueUnits.pointer
        let heads = magnitudes.keys.count
        for head in 0..<heads {
            var kMax = magnitudes.keys.pointer[head], vMax = magnitudes.values.pointer[head]
            for t in first..<(first + count) {
                kMax = Swift.max(kMax, keys.maxMagnitude(0, head, t, count: d))
                vMax = Swift.max(vMax, values.maxMagnitude(0, head, t, count: d))
            }
            magnitudes.keys.pointer[head] = kMax
            magnitudes.values.pointer[head] = vMax
            let old = units[head]
            let unit = Swift.max(old, OverflowGuard.unit(bound: Double(vMax) * Double(capacity), limit: OverflowGuard.valueLimit))
            if unit != old {
                // Rows stored before: from units of `old` to units of `unit`.
                for t in 0..<first { scaleValueRow(head: head, t, by: old / unit, headDim: d) }
                units[head] = unit
            }
            if unit != 1 {
                for t in first..<(first + count) { scaleValueRow(head: head, t, by: 1 / unit, headDim: d) }
            }
        }
    }

    /// Multiplies value row `t` of (batch, kv head) `head` by a power of two in place (16-bit
    /// rows through fp32, where the product is exact unless it falls below the normal range).
    private func scaleValueRow(head: Int, _ t: Int, by factor: Float, headDim d: Int) {
        if values.isFloat32 {
            scaleInPlace(UnsafeMutablePointer(mutating: values.row(0, head, t)), count: values.rowStride, by: factor)
            return
        }
        let row = storage.temp.pointer
        values.load(0, head, t, into: row, count: d)
        scaleInPlace(row, count: d, by: factor)
        values.writable.store(0, head, t, from: row, count: d)
    }
}

extension SparsePipeline {
    /// Phase 1 for the key blocks from `firstDirty` on (those an append touched) of a cache
    /// now holding `shape.keyLength` keys; with `setMean` the smoothing mean is computed first
    /// from those keys.
    func prepareCachedKeys(_ c: CacheBuffers, firstDirty: Int, setMean: Bool) {
        let s = shape, p = parameters, view = c.keys
        let g = SparseGeometry(shape: s, blockQ: p.blockQ, blockK: p.blockK, keyBlockStride: c.capacityBlocks)
        let ops = c.storage.ops, scratch = c.storage.scratch
        parallelFor(items: s.batch * s.kvHeads, threads: c.storage.workers) { worker, item in
            let b = item / s.kvHeads, h = item % s.kvHeads
            if setMean {
                ops.computeKeyMean(b: b, h: h, k: view, tokens: s.keyLength, smoothK: true, gpuRounding: p.gpuReproduction.gpuRounding,
                                   geometry: g, scratch: scratch[worker])
            }
            ops.prepareKeyBlocks(b: b, h: h, k: view, blocks: firstDirty..<g.keyBlocks, gpuRounding: p.gpuReproduction.gpuRounding,
                                 partialBlocks: p.gpuReproduction.partialBlocks, geometry: g, scratch: scratch[worker])
        }
    }

    /// Sparse attention of `shape.queryLength` new queries to the cached keys (prepared).
    /// The result reads the map from `memory` (call number `call`) on demand.
    func attendCached(q: TensorView, output: MutableTensorView, cache c: CacheBuffers,
                      memory: any CallMemory, call: UInt64) -> SparseAttentionResult {
        let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK, keyBlockStride: c.capacityBlocks)
        let heads = shape.batch * shape.kvHeads
        var scaled = false
        for head in 0..<heads where c.storage.ops.valueUnits.pointer[head] != 1 { scaled = true }
        c.storage.ops.bindPaddedValues(c.values, scaled: scaled)
        let outcome = run(q: q, k: c.keys, v: c.keys, output: output, given: nil, storage: c.storage,
                          geometry: g, keysPrepared: true)
        return memoryResult(outcome, storage: c.storage, geometry: g, memory: memory, call: call,
                            wroteLSE: output.lse != nil)
    }
}

/// Exact fp32 attention of `shape.queryLength` queries to every visible cached key: the
/// decode kernel over chunks of `decodeChunkKeys` keys per (batch, kv group), then the
/// split-K merge per row. `factor` is `s * log2(e)`. Overflow guard (``OverflowGuard``): a
/// group whose |q.k| bound exceeds the limit has its fp32 queries divided by a power of two
/// (scores in that unit), and V's unit of the cache is applied after the merge.
func exactCachedAttention(q: TensorView, output out: MutableTensorView, shape s: AttentionShape, causal: Bool,
                          window: Int = 0, factor: Float, sinkLogits: PerHead? = nil, pairMask: PairMaskView? = nil,
                          cache c: CacheBuffers) {
    let n = s.keyLength, queries = s.queryLength, d = s.headDim, w = c.values.rowStride
    let chunks = (n + decodeChunkKeys - 1) / decodeChunkKeys
    let group = s.groupSize, groupRows = group * queries
    let rows = s.batch * s.heads * queries
    let partSize = OnlineSoftmax.exportSize(rows: 1, width: w)
    // Per row: fp32 query, visible key count, and one exported one-row state per chunk.
    // Row order within a kv group is (head in group, query), so a group's rows are consecutive.
    // (Zeroed rows past the last group: the decode tiles read a group's rows four at a time.)
    let groupRowsPad = roundUp(groupRows, 4)
    let qRows = RawBuffer<Float>(count: (rows + groupRowsPad - groupRows) * d, zero: 0)
    let visible = RawBuffer<Int>(uninitializedCount: rows)
    // With a sliding window, each row's first key; per kv group the smallest, before which a chunk holds nothing.
    let firstVisible = window > 0 ? RawBuffer<Int>(uninitializedCount: rows) : nil
    let groupFirst = RawBuffer<Int>(count: s.batch * s.kvHeads, zero: 0)
    let parts = RawBuffer<Float>(uninitializedCount: rows * chunks * partSize)
    let units = RawBuffer<Float>(uninitializedCount: 2 * s.batch * s.kvHeads)   // score unit (stored), value unit per group
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            for t in 0..<queries {
                let row = (b * s.heads + h) * queries + t
                q.load(b, h, t, into: qRows.pointer + row * d, count: d)
                visible.pointer[row] = causal ? Swift.min(n, t + n - queries + 1) : n
                firstVisible?.pointer[row] = Swift.max(0, t + n - queries + 1 - window)
            }
        }
    }
    if let firstVisible {
        for bk in 0..<(s.batch * s.kvHeads) {
            groupFirst.pointer[bk] = (0..<groupRows).map { firstVisible.pointer[bk * groupRows + $0] }.min() ?? 0
        }
    }
    for bk in 0..<(s.batch * s.kvHeads) {
        let first = bk * groupRows   // (b * heads + kvh * group) * queries
        let qMax = OverflowGuard.maxMagnitude(qRows.pointer + first * d, count: groupRows * d)
        let bound = Double(d) * Double(qMax) * Double(c.magnitudes.keys.pointer[bk]) * Swift.max(1, Double(factor))
        let unit = ScoreUnit(bound: bound, limit: OverflowGuard.scoreLimit)
        if !unit.isOne { divideRowsInPlace(qRows.pointer + first * d, count: groupRows * d, by: unit) }
        units.pointer[2 * bk] = unit.stored
        units.pointer[2 * bk + 1] = c.storage.ops.valueUnits.pointer[bk]
    }
    let workers = c.storage.workers
    let groupScores = RawBuffer<Float>(uninitializedCount: workers * groupRowsPad * decodeTileKeys)
    let groupParts = RawBuffer<Float>(uninitializedCount: workers * groupRowsPad * partSize)
    let kView = c.keys, vView = c.values
    parallelFor(items: s.batch * s.kvHeads * chunks, threads: workers) { worker, item in
        let bk = item / chunks, chunk = item % chunks
        let b = bk / s.kvHeads, kvh = bk % s.kvHeads
        let first = (b * s.heads + kvh * group) * queries   // the group's first row
        let rowsOfGroup = DecodeRows(queries: qRows.pointer + first * d, visible: visible.pointer + first, rows: groupRows,
                                     firstVisible: firstVisible.map { UnsafePointer($0.pointer + first) },
                                     allowed: pairMask?.row(b, 0), queryCount: queries, keyLength: n)
        let local = groupParts.pointer + worker * groupRowsPad * partSize
        let end = Swift.min(n, (chunk + 1) * decodeChunkKeys)
        let start = Swift.min(end, Swift.max(chunk * decodeChunkKeys, groupFirst.pointer[bk]))   // empty before every window
        decodeChunk(rowsOfGroup, d: d, width: w, keys: start..<end,
                    k: kView, v: vView, b: b, kvh: kvh, factor: factor, scoreUnit: ScoreUnit(stored: units.pointer[2 * bk]),
                    scores: groupScores.pointer + worker * groupRowsPad * decodeTileKeys, parts: local,
                    kernels: c.storage.scratch[worker].kernels)
        for r in 0..<groupRows {
            (parts.pointer + ((first + r) * chunks + chunk) * partSize).update(from: local + r * partSize, count: partSize)
        }
    }
    let scratch = c.storage.scratch
    parallelFor(items: rows, threads: workers) { worker, row in
        let t = row % queries, bh = row / queries
        let bk = (bh / s.heads) * s.kvHeads + (bh % s.heads) / group
        let sinks = sinkLogits.map { constantRowSinks($0[bh % s.heads], rows: 1, scratch: scratch[worker]) }
        OnlineSoftmax.merge(parts.pointer + row * chunks * partSize, count: chunks, rows: 1, width: w, validRows: 1, d: d,
                            normalization: .division, units: units.pointer + 2 * bk, sinks: sinks,
                            into: out, b: bh / s.heads, h: bh % s.heads,
                            first: t, temp: scratch[worker].row.pointer)
    }
}

/// `x[i] /= unit` for any `count`, through Double (`1 / unit` can be below fp32's range).
private func divideRowsInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, by unit: ScoreUnit) {
    for i in 0..<count { x[i] = Float(unit.divide(Double(x[i]))) }
}

extension CacheBuffers {
    /// Moves the prepared key side of key blocks `first..<first + count` of each of `heads`
    /// (batch, kv head) pairs to blocks `0..<count`: a sliding-window cache dropping its first
    /// blocks keeps its other blocks' INT8 keys, scales and summaries as they are, which costs
    /// a memmove instead of preparing them again. Returns false, moving nothing, when the
    /// storage holds per-block state this move does not carry (the caller then prepares).
    func moveKeyBlocksToFront(from first: Int, count: Int, heads: Int) -> Bool {
        let ops = storage.ops, g = storage.g, d = g.shape.headDim
        guard ops.kInt8 == nil && ops.kSmoothedT == nil && ops.fixedValues == nil && g.keyBlockStride == capacityBlocks else {
            return false
        }
        func move<T>(_ buffer: RawBuffer<T>, perBlock: Int) {
            for head in 0..<heads {
                let base = buffer.pointer + head * capacityBlocks * perBlock
                UnsafeMutableRawPointer(base).copyMemory(from: base + first * perBlock, byteCount: count * perBlock * MemoryLayout<T>.stride)
            }
        }
        move(ops.kPacked, perBlock: g.packedKeyBlock)
        move(ops.kScale, perBlock: 1)
        move(ops.kPooled, perBlock: d)
        move(ops.kSim, perBlock: 1)
        // The channel-major copy: each channel's row of blocks moves within itself.
        let cs = ops.pooledChannelStride
        for row in 0..<(heads * d) {
            let base = ops.kPooledByChannel.pointer + row * cs
            UnsafeMutableRawPointer(base).copyMemory(from: base + first, byteCount: count * MemoryLayout<Float>.stride)
        }
        return true
    }
}
