// The one place where a finished call's kernel output (its block map, tile counters, timings
// and captured buffers) becomes the public result type, `SparseAttentionResult`, for every
// entry point. Nothing below the pipeline builds a public type.

/// What decides which blocks of a call are masked: the causal rule, the sliding window, the key
/// padding and the attention mask.
struct BlockMaskRule {
    var causal: Bool
    var causalOffset: Int
    /// The sliding window in keys (0: none).
    var window: Int
    /// `B x Nk` bytes, 1 = a real key; nil without padding.
    var keyValid: UnsafePointer<UInt8>?
    /// The attention mask's block states; nil without a mask.
    var pairBlocks: PairBlockStates?

    init(parameters: SpargeParameters, shape: AttentionShape, keyValid: UnsafePointer<UInt8>?, pairBlocks: PairBlockStates? = nil) {
        causal = parameters.causal
        causalOffset = parameters.causalOffset(for: shape)
        window = parameters.windowKeys
        self.keyValid = keyValid
        self.pairBlocks = pairBlocks
    }
}

/// Counts the total, allowed and selected blocks of a `B,H,nq,nk` map (the definitions of
/// ``SparseStatistics``) without allocating; with `selectedPerHead` (`H` counters, zeroed
/// here) also each head's selected blocks.
func countBlocks(map: UnsafePointer<UInt8>, geometry g: SparseGeometry, shape s: AttentionShape, rule: BlockMaskRule,
                 selectedPerHead: UnsafeMutablePointer<Int>? = nil) -> (total: Int, allowed: Int, selected: Int) {
    var allowed = 0, selected = 0
    selectedPerHead?.update(repeating: 0, count: s.heads)
    for b in 0..<s.batch {
        for j in 0..<g.keyBlocks {
            if let valid = rule.keyValid {
                var real = false
                for t in (j * g.blockK)..<Swift.min(s.keyLength, (j + 1) * g.blockK) where valid[b * s.keyLength + t] != 0 {
                    real = true
                    break
                }
                if !real { continue }
            }
            for i in 0..<g.queryBlocks {
                if rule.causal && !blockCausallyAllowed(i: i, j: j, blockQ: g.blockQ, blockK: g.blockK, offset: rule.causalOffset) { continue }
                if !blockInsideWindow(i: i, j: j, blockQ: g.blockQ, blockK: g.blockK, offset: rule.causalOffset, window: rule.window,
                                      keyLength: s.keyLength) { continue }
                if rule.pairBlocks?.state(b, i, j) == .forbidden { continue }
                allowed += s.heads
                for h in 0..<s.heads where map[((b * s.heads + h) * g.queryBlocks + i) * g.keyBlocks + j] != 0 {
                    selected += 1
                    selectedPerHead?[h] += 1
                }
            }
        }
    }
    return (s.batch * s.heads * g.queryBlocks * g.keyBlocks, allowed, selected)
}

/// The statistics of a finished call from its map and tile counts (no allocation).
func sparseStatistics(map: UnsafePointer<UInt8>, geometry g: SparseGeometry, shape: AttentionShape, rule: BlockMaskRule,
                      visited: Int, skipped: Int) -> SparseStatistics {
    let c = countBlocks(map: map, geometry: g, shape: shape, rule: rule)
    return SparseStatistics(totalBlocks: c.total, allowedBlocks: c.allowed, selectedBlocks: c.selected,
                            visitedTiles: visited, skippedTiles: skipped)
}

/// A copy of a call's map as a ``BlockMap`` with each head's density (selected over allowed
/// blocks; every head has the same allowed blocks).
func ownedMaps(_ map: UnsafeBufferPointer<UInt8>, geometry g: SparseGeometry, shape: AttentionShape,
               rule: BlockMaskRule) throws -> (map: BlockMap, densityPerHead: [Double]) {
    let blockMap = try BlockMap(batch: shape.batch, heads: shape.heads, queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks,
                                bits: Array(map))
    var perHead = [Int](repeating: 0, count: shape.heads)
    let c = perHead.withUnsafeMutableBufferPointer {
        countBlocks(map: map.baseAddress!, geometry: g, shape: shape, rule: rule, selectedPerHead: $0.baseAddress)
    }
    let allowedPerHead = c.allowed / Swift.max(1, shape.heads)
    return (blockMap, perHead.map { allowedPerHead == 0 ? 0 : Double($0) / Double(allowedPerHead) })
}

/// A copy of the last call's map in `storage` (`geometry` is that call's) with each head's
/// density from the counts the call left there (no mask needed afterwards).
func storedMaps(_ storage: SparseStorage, geometry g: SparseGeometry,
                shape: AttentionShape) throws -> (map: BlockMap, densityPerHead: [Double]) {
    let map = try BlockMap(batch: shape.batch, heads: shape.heads, queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks,
                           bits: Array(UnsafeBufferPointer(start: storage.map.pointer, count: g.mapCount)))
    let allowedPerHead = storage.allowedBlocks / Swift.max(1, shape.heads)
    let perHead = (0..<shape.heads).map {
        allowedPerHead == 0 ? 0 : Double(storage.selectedPerHead.pointer[$0]) / Double(allowedPerHead)
    }
    return (map, perHead)
}

/// The one-shot (or other backend's) result: the statistics, the map and the captured tensors
/// as arrays. `map` holds the call's `B,H,nq,nk` bytes.
func attentionResult(
    map: UnsafeBufferPointer<UInt8>, shape: AttentionShape, parameters: SpargeParameters, keyValid: UnsafePointer<UInt8>? = nil,
    pairBlocks: PairBlockStates? = nil, visited: Int, skipped: Int, timings: SparseTimings, quantized: QuantizedTensors?, probabilities: UnsafePointer<Float>? = nil,
    wroteLSE: Bool
) throws -> SparseAttentionResult {
    let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
    let rule = BlockMaskRule(parameters: parameters, shape: shape, keyValid: keyValid, pairBlocks: pairBlocks)
    let owned = try ownedMaps(map, geometry: g, shape: shape, rule: rule)
    return SparseAttentionResult(
        statistics: sparseStatistics(map: map.baseAddress!, geometry: g, shape: shape, rule: rule, visited: visited, skipped: skipped),
        timings: timings, maps: .owned(owned.map, densityPerHead: owned.densityPerHead), quantized: quantized,
        blockProbabilities: probabilities.map { Array(UnsafeBufferPointer(start: $0, count: map.count)) }, wroteLSE: wroteLSE)
}

extension SparsePipeline {
    /// The one-shot result of a call run with `storage`.
    func result(_ outcome: SparseRunOutcome, storage st: SparseStorage, captureQuantized: Bool, wroteLSE: Bool) -> SparseAttentionResult {
        // The map's dimensions come from validated parameters, so it is well formed.
        try! attentionResult(
            map: UnsafeBufferPointer(start: st.map.pointer, count: st.g.mapCount), shape: shape, parameters: parameters,
            keyValid: keyValid, pairBlocks: pairBlockStates(st), visited: outcome.visited, skipped: outcome.skipped, timings: outcome.timings,
            quantized: captureQuantized ? quantizedTensors(st.ops) : nil, probabilities: st.probabilities?.pointer,
            wroteLSE: wroteLSE)
    }

    /// A plan or KV-cache call's result: statistics counted in place (each head's selected
    /// blocks kept in `storage` for ``storedMaps(_:geometry:shape:)``), the map left in
    /// `memory` (read on demand); no allocation.
    func memoryResult(_ outcome: SparseRunOutcome, storage: SparseStorage, geometry g: SparseGeometry,
                      memory: any CallMemory, call: UInt64, wroteLSE: Bool) -> SparseAttentionResult {
        let c = countBlocks(map: storage.map.pointer, geometry: g, shape: shape,
                            rule: BlockMaskRule(parameters: parameters, shape: shape, keyValid: keyValid,
                                                pairBlocks: pairBlockStates(storage)),
                            selectedPerHead: storage.selectedPerHead.pointer)
        storage.allowedBlocks = c.allowed
        return SparseAttentionResult(
            statistics: SparseStatistics(totalBlocks: c.total, allowedBlocks: c.allowed, selectedBlocks: c.selected,
                                         visitedTiles: outcome.visited, skippedTiles: outcome.skipped),
            timings: outcome.timings, maps: .memory(memory, call: call), wroteLSE: wroteLSE)
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
