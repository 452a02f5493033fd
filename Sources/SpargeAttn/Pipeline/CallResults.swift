// The one place where a finished call's kernel output (its block map, tile counters, timings
// and captured buffers) becomes the public result types: `SparseCallSummary` (plan and KV
// cache calls, no arrays), `SparseAttentionResult` with its `SparseStatistics` (one-shot
// calls and other backends). Nothing below the pipeline builds a public type.

/// Marked blocks over all blocks, and marked blocks over those the causal rule allows
/// (`density` when not causal); counted without allocating.
func blockDensities(map: UnsafePointer<UInt8>, shape: AttentionShape, causal: Bool, offset: Int,
                    geometry g: SparseGeometry) -> (density: Double, allowedDensity: Double) {
    func allowed(_ i: Int, _ j: Int) -> Bool {
        !causal || blockCausallyAllowed(i: i, j: j, blockQ: g.blockQ, blockK: g.blockK, offset: offset)
    }
    var allowedCount = 0, marked = 0, markedAllowed = 0
    for i in 0..<g.queryBlocks {
        for j in 0..<g.keyBlocks where allowed(i, j) { allowedCount += 1 }
    }
    for bh in 0..<(shape.batch * shape.heads) {
        for i in 0..<g.queryBlocks {
            let row = map + (bh * g.queryBlocks + i) * g.keyBlocks
            for j in 0..<g.keyBlocks where row[j] != 0 {
                marked += 1
                if allowed(i, j) { markedAllowed += 1 }
            }
        }
    }
    return (Double(marked) / Double(g.mapCount),
            allowedCount == 0 ? 0 : Double(markedAllowed) / Double(allowedCount * shape.batch * shape.heads))
}

/// A copy of a call's `B,H,nq,nk` map bytes as a ``BlockMap`` (throws when the count is wrong).
func publicBlockMap(_ map: UnsafeBufferPointer<UInt8>, geometry g: SparseGeometry) throws -> BlockMap {
    try BlockMap(batch: g.shape.batch, heads: g.shape.heads, queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks, bits: Array(map))
}

/// What a plan or KV-cache call returns (building it does not allocate).
func callSummary(_ outcome: SparseRunOutcome, map: UnsafePointer<UInt8>, shape: AttentionShape,
                 parameters: SpargeParameters, geometry g: SparseGeometry) -> SparseCallSummary {
    let (density, allowed) = blockDensities(map: map, shape: shape, causal: parameters.causal,
                                            offset: parameters.causalOffset(for: shape), geometry: g)
    return SparseCallSummary(density: density, allowedDensity: allowed, visitedTiles: outcome.visited,
                             skippedTiles: outcome.skipped, timings: outcome.timings, mapBlocks: g.mapCount)
}

/// The one-shot result: the map, the statistics and the captured tensors as arrays.
/// `map` holds the call's `B,H,nq,nk` bytes.
func attentionResult(
    map: UnsafeBufferPointer<UInt8>, shape: AttentionShape, parameters: SpargeParameters, visited: Int, skipped: Int,
    timings: SparseTimings, quantized: QuantizedTensors?, probabilities: UnsafePointer<Float>? = nil
) throws -> SparseAttentionResult {
    let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
    let blockMap = try publicBlockMap(map, geometry: g)
    let (density, allowedDensity) = blockDensities(map: map.baseAddress!, shape: shape, causal: parameters.causal,
                                            offset: parameters.causalOffset(for: shape), geometry: g)
    let statistics = SparseStatistics(
        density: density, allowedDensity: allowedDensity,
        densityPerHead: (0..<shape.heads).map { blockMap.density(head: $0) },
        visitedTiles: visited, skippedTiles: skipped,
        computedFraction: Double(visited - skipped) / Double(map.count))
    return SparseAttentionResult(
        blockMap: blockMap, timings: timings, statistics: statistics, quantized: quantized,
        blockProbabilities: probabilities.map { Array(UnsafeBufferPointer(start: $0, count: map.count)) })
}

extension SparsePipeline {
    /// The one-shot result of a call run with `storage`.
    func result(_ outcome: SparseRunOutcome, storage st: SparseStorage, captureQuantized: Bool) -> SparseAttentionResult {
        try! attentionResult(
            map: UnsafeBufferPointer(start: st.map.pointer, count: st.g.mapCount), shape: shape, parameters: parameters,
            visited: outcome.visited, skipped: outcome.skipped, timings: outcome.timings,
            quantized: captureQuantized ? quantizedTensors(st.ops) : nil, probabilities: st.probabilities?.pointer)
    }

    /// The captured INT8 tensors as arrays.
    func quantizedTensors(_ ops: SparseOperands) -> QuantizedTensors {
        let s = shape, g = ops.g
        func array<T>(_ b: RawBuffer<T>?, _ n: Int) -> [T] { b.map { Array(UnsafeBufferPointer(start: $0.pointer, count: n)) } ?? [] }
        return QuantizedTensors(
            qInt8: array(ops.qInt8, s.batch * s.heads * s.queryLength * s.headDim),
            qScale: array(ops.qScale, s.batch * s.heads * g.queryBlocks),
            kInt8: array(ops.kInt8, s.batch * s.kvHeads * s.keyLength * s.headDim),
            kScale: array(ops.kScale, s.batch * s.kvHeads * g.keyBlocks),
            kMean: array(ops.kMean, s.batch * s.kvHeads * s.headDim))
    }
}
