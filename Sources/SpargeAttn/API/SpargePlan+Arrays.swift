// SpargePlan.run over Swift arrays (``AttentionTensor``), wrapping the AttentionInput form.

extension SpargePlan {
    /// Sparse attention with `workspace`'s memory over tensors held in Swift arrays: `[E]`,
    /// `ArraySlice<E>`, `ContiguousArray<E>` (dense `B,H,N,D`) or ``TensorArray`` views (an
    /// offset and a ``TensorLayout``, such as the parts of a fused QKV buffer), of `Float`,
    /// `Float16` or ``BFloat16``, into `output`.
    ///
    /// The arrays are read and written in place; like the ``AttentionInput`` form, a call
    /// after the workspace's first allocates nothing, provided `output` is uniquely
    /// referenced (otherwise writing to it copies it first, as any array mutation does).
    ///
    /// ```swift
    /// let fused = TensorLayout(batchStride: n * 3 * h * d, headStride: d, tokenStride: 3 * h * d)
    /// var out = [Float16](repeating: 0, count: n * h * d)
    /// try plan.run(q: TensorArray(qkv, offset: 0, layout: fused),
    ///              k: TensorArray(qkv, offset: h * d, layout: fused),
    ///              v: TensorArray(qkv, offset: 2 * h * d, layout: fused),
    ///              output: &out, outputLayout: .nhd(heads: h, tokens: n, headDim: d), workspace: workspace)
    /// ```
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D` with `outputLayout`.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,Nq,D`.
    ///   - workspace: the memory of this caller's calls (``makeWorkspace()``).
    ///   - blockMap: a map used instead of stage 1's prediction.
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    @discardableResult
    public func run<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        workspace: SpargeWorkspace, blockMap: BlockMap? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try run(q: q, k: k, v: v, output: o, workspace: workspace, blockMap: blockMap, keyPadding: keyPadding, attentionMask: attentionMask)
                    }
                }
            }
        }
    }

    /// The call above that also writes each query row's log-sum-exp into `lse` (`B*H*Nq`
    /// floats, `B,H,Nq` order, natural log, as FlashAttention's `softmax_lse`).
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D` with `outputLayout`.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,Nq,D`.
    ///   - workspace: the memory of this caller's calls (``makeWorkspace()``).
    ///   - blockMap: a map used instead of stage 1's prediction.
    ///   - lse: where each query row's log-sum-exp goes.
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    @discardableResult
    public func run<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        workspace: SpargeWorkspace, blockMap: BlockMap? = nil, lse: inout [Float], keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try lse.withUnsafeMutableBufferPointer { l in
                            try run(q: q, k: k, v: v, output: o, workspace: workspace, blockMap: blockMap, lse: l,
                                    keyPadding: keyPadding, attentionMask: attentionMask)
                        }
                    }
                }
            }
        }
    }
}
