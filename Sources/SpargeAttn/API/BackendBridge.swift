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
        _ = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                     parameters: parameters, blockMap: blockMap, halfRounded: HalfRoundedInputs(parameters))
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

    /// Checks a layout of a tensor whose element count is not known (device memory): valid
    /// strides, rows that do not overlap, and for an output (`isOutput`), rows that share no
    /// memory, as a host output view is checked.
    package static func checkResidentLayout(_ l: TensorLayout, name: String, batch: Int, heads: Int, tokens: Int, headDim: Int,
                                            isOutput: Bool) throws {
        try checkLayout(l, name: name, count: Int.max, batch: batch, heads: heads, tokens: tokens, headDim: headDim)
        if isOutput { try checkDisjointRows(l, name: name, batch: batch, heads: heads, tokens: tokens, headDim: headDim) }
    }

    /// A finished call's result, the CPU path's type and statistics (``SparseAttentionResult``).
    package static func sparseResult(
        shape: AttentionShape, parameters: SpargeParameters, map: [UInt8], visited: Int, skipped: Int,
        timings: SparseTimings, quantized: QuantizedTensors?
    ) throws -> SparseAttentionResult {
        try map.withUnsafeBufferPointer {
            try attentionResult(map: $0, shape: shape, parameters: parameters, visited: visited, skipped: skipped,
                                timings: timings, quantized: quantized, wroteLSE: false)
        }
    }

    /// The partial-block rule stage 1 applies to the query side of `shape` (a query shorter
    /// than one block is measured; see the CPU pipeline).
    package static func queryPartialBlockRule(shape: AttentionShape, parameters: SpargeParameters) -> PartialBlockRule {
        SparsePipeline.queryPartialBlocks(shape: shape, parameters: parameters)
    }
}
