// The one-shot calls over Swift arrays (``AttentionTensor``): the same calls as the
// AttentionInput forms, which they wrap; the arrays are read and written in place.

extension SpargeAttention {
    /// Sparse attention over tensors held in Swift arrays: `[E]`, `ArraySlice<E>`,
    /// `ContiguousArray<E>` (dense `B,H,N,D`) or ``TensorArray`` views (an offset and a
    /// ``TensorLayout``, such as the parts of a fused QKV buffer), of `Float`, `Float16` or
    /// ``BFloat16``, mixed freely. Reads the inputs in place and writes `output`'s elements in place.
    ///
    /// ```swift
    /// // A fused QKV projection [1, N, 3, H, D]: q at 0, k at H*D, v at 2*H*D.
    /// let fused = TensorLayout(batchStride: n * 3 * h * d, headStride: d, tokenStride: 3 * h * d)
    /// var out = [Float16](repeating: 0, count: shape.queryElements)
    /// let result = try SpargeAttention.sparse(q: TensorArray(qkv, offset: 0, layout: fused),
    ///                                         k: TensorArray(qkv, offset: h * d, layout: fused),
    ///                                         v: TensorArray(qkv, offset: 2 * h * d, layout: fused),
    ///                                         output: &out, shape: shape)
    /// ```
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D` with `outputLayout`.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,Nq,D`.
    ///   - shape: the sizes `B`, `H`, `Hkv`, `Nq`, `Nk`, `D`.
    ///   - parameters: the hyper-parameters and options.
    ///   - tokenOrder: the order attention visits the tokens in (``TokenOrder``); nil is the
    ///     caller's order. Tensors, output and log-sum-exps stay in the caller's order.
    ///   - blockMap: a caller-supplied map (in token order) used instead of stage 1's prediction.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - captureQuantized: also return the INT8 tensors.
    ///   - captureLSE: also return each query row's log-sum-exp in the result's `lse`.
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    @discardableResult
    public static func sparse<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        shape: AttentionShape, parameters: SpargeParameters = .recommended, tokenOrder: TokenOrder? = nil,
        blockMap: BlockMap? = nil, threads: Int? = nil, captureQuantized: Bool = false, captureLSE: Bool = false,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try shape.validate()  // before its sizes are multiplied
        var lse = [Float](repeating: 0, count: captureLSE ? shape.batch * shape.heads * shape.queryLength : 0)
        var result = try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try lse.withUnsafeMutableBufferPointer { l in
                            try sparse(q: q, k: k, v: v, output: o, shape: shape, parameters: parameters,
                                       tokenOrder: tokenOrder, blockMap: blockMap,
                                       threads: threads, captureQuantized: captureQuantized, lse: captureLSE ? l : nil,
                                       keyPadding: keyPadding, attentionMask: attentionMask)
                        }
                    }
                }
            }
        }
        if captureLSE { result.lse = lse }
        return result
    }

    /// Exact attention over tensors held in Swift arrays (as the sparse call above takes them),
    /// into `output`.
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D` with `outputLayout`.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,Nq,D`.
    ///   - shape: the sizes `B`, `H`, `Hkv`, `Nq`, `Nk`, `D`.
    ///   - tokenOrder: the order attention visits the tokens in (``TokenOrder``); nil is the caller's order.
    ///   - causal: apply a causal mask.
    ///   - causalAlignment: where the diagonal sits when `Nq != Nk` (``CausalAlignment``).
    ///   - slidingWindow: with `causal`, each query sees only the last `slidingWindow` keys up to
    ///     its causal limit (``SpargeParameters/slidingWindow``); nil: no window.
    ///   - sinkLogits: learned sink logits, one for all heads or one per query head
    ///     (``SpargeParameters/sinkLogits``); nil: none.
    ///   - softmaxScale: the scale of the scores; nil means `1 / sqrt(D)`.
    ///   - nonFinitePolicy: whether NaN and infinity in the inputs are rejected.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    public static func dense<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        shape: AttentionShape, tokenOrder: TokenOrder? = nil, causal: Bool = false,
        causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try dense(q: q, k: k, v: v, output: o, shape: shape, tokenOrder: tokenOrder, causal: causal,
                                  causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits,
                                  softmaxScale: softmaxScale, nonFinitePolicy: nonFinitePolicy, threads: threads,
                                  keyPadding: keyPadding, attentionMask: attentionMask)
                    }
                }
            }
        }
    }

    /// The exact call above that also writes each query row's log-sum-exp into `lse`
    /// (`B*H*Nq` floats, `B,H,Nq` order, natural log), to merge partial attentions.
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D` with `outputLayout`.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,Nq,D`.
    ///   - shape: the sizes `B`, `H`, `Hkv`, `Nq`, `Nk`, `D`.
    ///   - tokenOrder: the order attention visits the tokens in (``TokenOrder``); nil is the caller's order.
    ///   - causal: apply a causal mask.
    ///   - causalAlignment: where the diagonal sits when `Nq != Nk` (``CausalAlignment``).
    ///   - slidingWindow: with `causal`, each query sees only the last `slidingWindow` keys up to
    ///     its causal limit (``SpargeParameters/slidingWindow``); nil: no window.
    ///   - sinkLogits: learned sink logits, one for all heads or one per query head
    ///     (``SpargeParameters/sinkLogits``); nil: none.
    ///   - softmaxScale: the scale of the scores; nil means `1 / sqrt(D)`.
    ///   - nonFinitePolicy: whether NaN and infinity in the inputs are rejected.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - lse: where each query row's log-sum-exp goes.
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    public static func dense<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        shape: AttentionShape, tokenOrder: TokenOrder? = nil, causal: Bool = false,
        causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil,
        lse: inout [Float], keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try lse.withUnsafeMutableBufferPointer { l in
                            try dense(q: q, k: k, v: v, output: o, shape: shape, tokenOrder: tokenOrder, causal: causal,
                                  causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits,
                                      softmaxScale: softmaxScale, nonFinitePolicy: nonFinitePolicy, threads: threads,
                                      lse: l, keyPadding: keyPadding, attentionMask: attentionMask)
                        }
                    }
                }
            }
        }
    }

    /// Sparse attention over a ``VariableLengthBatch`` of tensors held in Swift arrays
    /// (token-major `total x heads x headDim` unless a ``TensorArray``'s layout says otherwise),
    /// into `output`; see the ``AttentionInput`` form for the semantics.
    ///
    /// - Parameters:
    ///   - q: packed queries, `totalQueries x heads x headDim`.
    ///   - k: packed keys, `totalKeys x kvHeads x headDim`.
    ///   - v: packed values, like `k`.
    ///   - output: packed output, like `q` (token-major unless `outputLayout` says otherwise).
    ///   - outputLayout: the strides of `output` (its batch stride is unused); nil means token-major.
    ///   - batch: the sequences' offsets.
    ///   - heads: query heads `H`.
    ///   - kvHeads: key/value heads, dividing `heads`; `nil` means `heads`.
    ///   - headDim: `D`.
    ///   - parameters: the hyper-parameters and options of every sequence's call.
    ///   - tokenOrders: one ``TokenOrder`` per sequence (nil entries: the caller's order); nil
    ///     for the caller's order everywhere.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - attentionMasks: one ``AttentionMask`` per sequence (nil entries: none), each `1 x Nq x Nk` of its sequence; nil for none.
    /// - Returns: one result per sequence.
    @discardableResult
    public static func sparse<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        batch: VariableLengthBatch, heads: Int, kvHeads: Int? = nil, headDim: Int,
        parameters: SpargeParameters = .recommended, tokenOrders: [TokenOrder?]? = nil, threads: Int? = nil,
        attentionMasks: [AttentionMask?]? = nil
    ) throws -> [SparseAttentionResult] {
        try variableLength(q: q, k: k, v: v, output: &output, outputLayout: outputLayout, batch: batch, heads: heads,
                           kvHeads: kvHeads, headDim: headDim, parameters: parameters, tokenOrders: tokenOrders,
                           threads: threads, lse: nil, attentionMasks: attentionMasks)
    }

    /// The variable-length call above that also writes each query row's log-sum-exp into `lse`
    /// (`heads x totalQueries` floats, FlashAttention's varlen layout, natural log).
    ///
    /// - Parameters:
    ///   - q: packed queries, `totalQueries x heads x headDim`.
    ///   - k: packed keys, `totalKeys x kvHeads x headDim`.
    ///   - v: packed values, like `k`.
    ///   - output: packed output, like `q` (token-major unless `outputLayout` says otherwise).
    ///   - outputLayout: the strides of `output` (its batch stride is unused); nil means token-major.
    ///   - batch: the sequences' offsets.
    ///   - heads: query heads `H`.
    ///   - kvHeads: key/value heads, dividing `heads`; `nil` means `heads`.
    ///   - headDim: `D`.
    ///   - parameters: the hyper-parameters and options of every sequence's call.
    ///   - tokenOrders: one ``TokenOrder`` per sequence (nil entries: the caller's order); nil
    ///     for the caller's order everywhere.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - lse: where each query row's log-sum-exp goes, at least `heads x totalQueries` floats.
    ///   - attentionMasks: one ``AttentionMask`` per sequence (nil entries: none), each `1 x Nq x Nk` of its sequence; nil for none.
    /// - Returns: one result per sequence.
    @discardableResult
    public static func sparse<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout? = nil,
        batch: VariableLengthBatch, heads: Int, kvHeads: Int? = nil, headDim: Int,
        parameters: SpargeParameters = .recommended, tokenOrders: [TokenOrder?]? = nil, threads: Int? = nil,
        lse: inout [Float], attentionMasks: [AttentionMask?]? = nil
    ) throws -> [SparseAttentionResult] {
        try lse.withUnsafeMutableBufferPointer { l in
            try variableLength(q: q, k: k, v: v, output: &output, outputLayout: outputLayout, batch: batch, heads: heads,
                               kvHeads: kvHeads, headDim: headDim, parameters: parameters, tokenOrders: tokenOrders,
                               threads: threads, lse: l, attentionMasks: attentionMasks)
        }
    }

    private static func variableLength<Output: AttentionElement>(
        q: some AttentionTensor, k: some AttentionTensor, v: some AttentionTensor,
        output: inout [Output], outputLayout: TensorLayout?, batch: VariableLengthBatch, heads: Int, kvHeads: Int?, headDim: Int,
        parameters: SpargeParameters, tokenOrders: [TokenOrder?]?, threads: Int?, lse: UnsafeMutableBufferPointer<Float>?,
        attentionMasks: [AttentionMask?]?
    ) throws -> [SparseAttentionResult] {
        try q.withAttentionInput { q in
            try k.withAttentionInput { k in
                try v.withAttentionInput { v in
                    try output.withAttentionOutput(layout: outputLayout) { o in
                        try sparse(q: q, k: k, v: v, output: o, batch: batch, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                   parameters: parameters, tokenOrders: tokenOrders, threads: threads, lse: lse,
                                   attentionMasks: attentionMasks)
                    }
                }
            }
        }
    }
}
