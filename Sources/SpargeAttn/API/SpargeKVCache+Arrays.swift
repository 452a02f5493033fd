// The KV cache's calls over Swift arrays (``AttentionTensor``), wrapping the AttentionInput forms.

extension SpargeKVCache {
    /// Appends `tokens` keys and values held in Swift arrays (`B,Hkv,tokens,D`: `[E]`,
    /// `ArraySlice<E>`, `ContiguousArray<E>`, or ``TensorArray`` views such as the K and V
    /// parts of a fused QKV buffer), read in place.
    public func append(k: some AttentionTensor, v: some AttentionTensor, tokens: Int) throws {
        try k.withAttentionInput { k in
            try v.withAttentionInput { v in
                try append(k: k, v: v, tokens: tokens)
            }
        }
    }

    /// Attention of `queries` new tokens (`q` is `B,H,queries,D`, held in a Swift array) to the
    /// cached keys and values, into `output` (`B,H,queries,D` with `outputLayout`, nil meaning
    /// dense). After the first call it allocates nothing when `output` is uniquely referenced.
    ///
    /// - Parameters:
    ///   - q: the queries.
    ///   - output: where the result goes.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,queries,D`.
    ///   - queries: the query tokens of the call (at most ``maxQueryLength``).
    ///   - attentionMask: the pairs that may attend (``AttentionMask``, `B` or 1 x `queries` x ``heldKeys``); nil: all.
    @discardableResult
    public func attend<Output: AttentionElement>(
        q: some AttentionTensor, output: inout [Output], outputLayout: TensorLayout? = nil, queries: Int,
        attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try q.withAttentionInput { q in
            try output.withAttentionOutput(layout: outputLayout) { o in
                try attend(q: q, output: o, queries: queries, attentionMask: attentionMask)
            }
        }
    }

    /// The call above that also writes each query row's log-sum-exp into `lse`
    /// (`B*H*queries` floats, natural log).
    ///
    /// - Parameters:
    ///   - q: the queries.
    ///   - output: where the result goes.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,queries,D`.
    ///   - queries: the query tokens of the call (at most ``maxQueryLength``).
    ///   - lse: where each query row's log-sum-exp goes.
    ///   - attentionMask: the pairs that may attend (``AttentionMask``, `B` or 1 x `queries` x ``heldKeys``); nil: all.
    @discardableResult
    public func attend<Output: AttentionElement>(
        q: some AttentionTensor, output: inout [Output], outputLayout: TensorLayout? = nil, queries: Int,
        lse: inout [Float], attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try q.withAttentionInput { q in
            try output.withAttentionOutput(layout: outputLayout) { o in
                try lse.withUnsafeMutableBufferPointer { l in
                    try attend(q: q, output: o, queries: queries, lse: l, attentionMask: attentionMask)
                }
            }
        }
    }

    /// Exact fp32 attention of `queries` tokens held in a Swift array to every visible cached
    /// key, into `output` (see the ``AttentionInput`` form).
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,queries,D`.
    ///   - output: where the result goes.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,queries,D`.
    ///   - queries: the query tokens of the call.
    ///   - softmaxScale: the scale of the scores; nil means `1 / sqrt(D)`.
    ///   - attentionMask: the pairs that may attend (``AttentionMask``, `B` or 1 x `queries` x ``heldKeys``); nil: all.
    public func attendExact<Output: AttentionElement>(
        q: some AttentionTensor, output: inout [Output], outputLayout: TensorLayout? = nil, queries: Int,
        softmaxScale: Float? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        try q.withAttentionInput { q in
            try output.withAttentionOutput(layout: outputLayout) { o in
                try attendExact(q: q, output: o, queries: queries, softmaxScale: softmaxScale, attentionMask: attentionMask)
            }
        }
    }

    /// The call above that also writes each query row's log-sum-exp into `lse`
    /// (`B*H*queries` floats, natural log).
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,queries,D`.
    ///   - output: where the result goes.
    ///   - outputLayout: the strides of `output`; nil means dense `B,H,queries,D`.
    ///   - queries: the query tokens of the call.
    ///   - softmaxScale: the scale of the scores; nil means `1 / sqrt(D)`.
    ///   - lse: where each query row's log-sum-exp goes.
    ///   - attentionMask: the pairs that may attend (``AttentionMask``, `B` or 1 x `queries` x ``heldKeys``); nil: all.
    public func attendExact<Output: AttentionElement>(
        q: some AttentionTensor, output: inout [Output], outputLayout: TensorLayout? = nil, queries: Int,
        softmaxScale: Float? = nil, lse: inout [Float], attentionMask: AttentionMask? = nil
    ) throws {
        try q.withAttentionInput { q in
            try output.withAttentionOutput(layout: outputLayout) { o in
                try lse.withUnsafeMutableBufferPointer { l in
                    try attendExact(q: q, output: o, queries: queries, softmaxScale: softmaxScale, lse: l, attentionMask: attentionMask)
                }
            }
        }
    }
}
