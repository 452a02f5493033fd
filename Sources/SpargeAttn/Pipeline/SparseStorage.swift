/// All memory a sparse call needs besides the caller's tensors, allocated once (per call for
/// the one-shot API, once per workspace for ``SpargePlan``) and reused: the hot path never
/// allocates.
final class SparseStorage: @unchecked Sendable {
    let g: SparseGeometry
    let ops: SparseOperands
    let scratch: [WorkerScratch]
    let map: RawBuffer<UInt8>               // B,H,nq,nk
    let chunks: Int                         // split-K factor (of the shape and the P.V numerics)
    let counts: RawBuffer<TileCounts>       // per (query block, chunk)
    let partials: RawBuffer<Float>?         // split-K states
    let partialUnits: RawBuffer<Float>?     // per query block: score and value units (OverflowGuard)
    let probabilities: RawBuffer<Float>?    // stage-1 P_hat, when captured
    let temp: RawBuffer<Float>              // one row, for input scans
    let selectedPerHead: RawBuffer<Int>     // the last call's selected blocks per query head
    let pairStates: RawBuffer<UInt8>        // B,nq,nk: an attention mask's block states
    var allowedBlocks = 0                   // the last call's allowed blocks (all heads)

    init(shape s: AttentionShape, parameters p: SpargeParameters, threads: Int,
         captureInt8: Bool = false, captureProbabilities: Bool = false, keyBlockStride: Int? = nil, chunkStates: Int? = nil) {
        let g = SparseGeometry(shape: s, blockQ: p.blockQ, blockK: p.blockK, keyBlockStride: keyBlockStride,
                               fixedPointValues: p.fixedPointPV)
        self.g = g
        ops = SparseOperands(geometry: g, captureInt8: captureInt8, smoothQ: p.smoothQ)
        scratch = (0..<Swift.max(1, threads)).map { _ in
            WorkerScratch(tileRows: g.rowsPad, tileColumns: g.columnsPad, width: g.width,
                          blockRows: Swift.max(g.blockQ, g.blockK), d: s.headDim, keyBlocks: g.keyBlocks)
        }
        let blocks = s.batch * s.heads * g.queryBlocks
        map = RawBuffer(count: blocks * g.keyBlocks, zero: 0)
        chunks = sparseSplitFactor(shape: s, geometry: g, numerics: p.gpuReproduction.pvNumerics)
        // A KV cache's calls: fewer query blocks than `s` may take more ranges each
        // (`chunkStates`: the most states of any of its calls that splits, 0 if none does).
        let splitStates = Swift.max(chunks > 1 ? blocks * chunks : 0, chunkStates ?? 0)
        counts = RawBuffer(count: Swift.max(blocks, splitStates), zero: TileCounts())
        partials = splitStates > 0
            ? RawBuffer(uninitializedCount: splitStates * OnlineSoftmax.exportSize(rows: g.partialRows, width: g.width)) : nil
        partialUnits = splitStates > 0 ? OverflowGuard.identityUnits(items: blocks) : nil
        probabilities = captureProbabilities ? RawBuffer(count: blocks * g.keyBlocks, zero: 0) : nil
        temp = RawBuffer(count: s.headDim, zero: 0)
        selectedPerHead = RawBuffer(count: s.heads, zero: 0)
        pairStates = RawBuffer(uninitializedCount: s.batch * g.queryBlocks * g.keyBlocks)   // written by each masked call
    }

    /// The split-K states (query blocks x ranges) the calls of a KV cache that split can need
    /// (0 when none splits): every query length up to `maxShape.queryLength` against
    /// `maxShape.keyLength` keys (the capacity); a decoding step (one query, grouped) splits
    /// its keys the most, though a call of many query blocks may still need more states.
    static func cachedChunkStates(maxShape m: AttentionShape, parameters p: SpargeParameters) -> Int {
        let maxBlocks = (m.queryLength + p.blockQ - 1) / p.blockQ
        var most = 0
        for queryBlocks in 1...maxBlocks {
            let nq = queryBlocks == 1 ? 1 : Swift.min(m.queryLength, queryBlocks * p.blockQ)
            let shape = AttentionShape(batch: m.batch, heads: m.heads, kvHeads: m.kvHeads, queryLength: nq, keyLength: m.keyLength,
                                       headDim: m.headDim)
            let g = SparseGeometry(shape: shape, blockQ: p.blockQ, blockK: p.blockK, fixedPointValues: p.fixedPointPV)
            let chunks = sparseSplitFactor(shape: shape, geometry: g, numerics: p.gpuReproduction.pvNumerics)
            if chunks > 1 { most = Swift.max(most, m.batch * m.heads * g.queryBlocks * chunks) }
        }
        return most
    }

    var workers: Int { scratch.count }
}
