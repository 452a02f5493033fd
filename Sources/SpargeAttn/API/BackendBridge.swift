// What another backend of this package (SpargeCUDA) needs from the CPU library's tensors
// and checks, at `package` access: the public API stays as it is.

/// A validated tensor argument: where it is, its element type and strides.
package struct ResolvedTensor: @unchecked Sendable {
    package let base: UnsafeRawPointer
    package let type: ElementType
    package let layout: TensorLayout
    /// Elements from `base` to the last one the shape touches, plus one.
    package let span: Int
}

extension SpargeAttention {
    /// Validates a sparse call exactly as the CPU path does (shape, layouts, element counts,
    /// non-finite policy, parameters, the block map) and returns the resolved tensors.
    package static func resolveSparseCall(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, parameters: SpargeParameters, blockMap: BlockMap?
    ) throws -> (q: ResolvedTensor, k: ResolvedTensor, v: ResolvedTensor, output: ResolvedTensor) {
        _ = try views(q: q, k: k, v: v, shape: shape, policy: parameters.nonFinitePolicy)
        _ = try output.view(shape: shape)
        try parameters.validate(for: shape)
        if let m = blockMap { try m.validate(for: shape, blockQ: parameters.blockQ, blockK: parameters.blockK) }
        func resolve(_ base: UnsafeRawPointer, _ type: ElementType, _ layout: TensorLayout?, heads: Int, tokens: Int) -> ResolvedTensor {
            let l = layout ?? .hnd(heads: heads, tokens: tokens, headDim: shape.headDim)
            let last = l.lastOffset(batch: shape.batch, heads: heads, tokens: tokens, headDim: shape.headDim) ?? 0
            return ResolvedTensor(base: base, type: type, layout: l, span: last + 1)
        }
        return (resolve(q.base, q.type, q.layout, heads: shape.heads, tokens: shape.queryLength),
                resolve(k.base, k.type, k.layout, heads: shape.kvHeads, tokens: shape.keyLength),
                resolve(v.base, v.type, v.layout, heads: shape.kvHeads, tokens: shape.keyLength),
                resolve(UnsafeRawPointer(output.base), output.type, output.layout, heads: shape.heads, tokens: shape.queryLength))
    }

    /// The block-map statistics of a finished call, as the CPU path reports them.
    package static func sparseResult(
        shape: AttentionShape, parameters: SpargeParameters, map: [UInt8], visited: Int, skipped: Int,
        timings: SparseTimings, quantized: QuantizedTensors?
    ) throws -> SparseAttentionResult {
        let pipeline = SparsePipeline(shape: shape, parameters: parameters)
        let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
        let blockMap = try BlockMap(batch: shape.batch, heads: shape.heads, queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks, bits: map)
        let (density, allowedDensity) = map.withUnsafeBufferPointer { pipeline.densities(map: $0.baseAddress!, g: g) }
        let statistics = SparseStatistics(
            density: density, allowedDensity: allowedDensity,
            densityPerHead: (0..<shape.heads).map { blockMap.density(head: $0) },
            visitedTiles: visited, skippedTiles: skipped,
            computedFraction: Double(visited - skipped) / Double(map.count))
        return SparseAttentionResult(blockMap: blockMap, timings: timings, statistics: statistics, quantized: quantized)
    }

    /// The partial-block rule stage 1 applies to the query side of `shape` (a query shorter
    /// than one block is measured; see the CPU pipeline).
    package static func queryPartialBlockRule(shape: AttentionShape, parameters: SpargeParameters) -> PartialBlockRule {
        SparsePipeline(shape: shape, parameters: parameters).queryPartialBlocks(
            SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK))
    }
}
