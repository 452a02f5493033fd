// The one-shot entry points with a token order (``TokenOrder``): the same calls as in
// SpargeAttention.swift, with the tensors in the caller's order and attention in token order.

extension SpargeAttention {
    /// Sparse attention visiting the tokens in `tokenOrder` (a Hilbert curve over an image or
    /// video grid, an explicit permutation), over caller-owned tensors of any layout and
    /// element type: Q, K and V are gathered into token order (copies of the same element type),
    /// attended, and the output and `lse` scattered back, so every tensor is in the caller's
    /// order. The result's ``SparseAttentionResult/blockMap``, a given `blockMap` and the
    /// ``QuantizedTensors`` are in token order. The same as permuting Q, K and V by hand
    /// (``TokenOrder/permute(_:into:rowWidth:)``), calling
    /// ``sparse(q:k:v:output:shape:parameters:blockMap:threads:captureQuantized:lse:keyPadding:attentionMask:)-(AttentionInput,_,_,_,_,_,_,_,_,_,_,_)``
    /// and unpermuting the output, bit for bit.
    ///
    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless `queryLength == keyLength ==
    /// tokenOrder.count`, and for a non-identity order with `parameters.causal`; otherwise as
    /// the call without a token order.
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,N,D`, in the caller's order.
    ///   - k: the keys, `B,Hkv,N,D`.
    ///   - v: the values, `B,Hkv,N,D`.
    ///   - output: where the result goes, `B,H,N,D`, in the caller's order.
    ///   - shape: the sizes `B`, `H`, `Hkv`, `N`, `D`.
    ///   - parameters: the hyper-parameters and options.
    ///   - tokenOrder: the order attention visits the tokens in; nil is the caller's order (the
    ///     call without a token order).
    ///   - blockMap: a caller-supplied map in token order (`B,H,nq,nk`) used instead of stage 1's.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - captureQuantized: also return the INT8 tensors (in token order).
    ///   - lse: where to write each query row's log-sum-exp (`B,H,N` floats, caller's order).
    ///   - keyPadding: which keys (caller's order) are padding.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads, in the caller's order): the others get no weight.
    @discardableResult
    public static func sparse(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, parameters: SpargeParameters = .recommended, tokenOrder: TokenOrder?,
        blockMap: BlockMap? = nil, threads: Int? = nil, captureQuantized: Bool = false,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        let threadCount = try resolvedThreadCount(threads)
        let checksFinite = SparsePipeline.detectsNonFinite(parameters, tokenOrder: tokenOrder)
        var views = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                             parameters: parameters, blockMap: blockMap, halfRounded: HalfRoundedInputs(parameters),
                                             threads: threadCount, pipelineChecksFinite: checksFinite)
        views.output?.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: parameters.gpuReproduction.pvNumerics)
        try keyPadding?.validate(for: shape)
        try tokenOrder?.validate(for: shape, causal: parameters.causal)
        try attentionMask?.validate(for: shape)
        return try withTokenOrder(tokenOrder, views, shape: shape, keyPadding: keyPadding, attentionMask: attentionMask, staging: nil,
                                  threads: threadCount) { views, keyValid, pairMask in
            var pipeline = SparsePipeline(shape: shape, parameters: parameters)
            pipeline.keyValid = keyValid
            pipeline.pairMask = pairMask
            pipeline.detectsNonFinite = checksFinite
            let result = try pipeline.callOnce(views, blockMap: blockMap, threads: threadCount, captureQuantized: captureQuantized)
            parameters.markNonFiniteRows(views, shape: shape, keyValid: keyValid, pairMask: pairMask)
            return result
        }
    }

    /// Array form of ``sparse(q:k:v:output:shape:parameters:tokenOrder:blockMap:threads:captureQuantized:lse:keyPadding:attentionMask:)``
    /// for dense `B,H,N,D` fp32 arrays in the caller's order; the output is in the caller's
    /// order too, and with `captureLSE` the result's ``SparseAttentionResult/lse`` holds each
    /// row's log-sum-exp (caller's order).
    public static func sparse(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        tokenOrder: TokenOrder?, blockMap: BlockMap? = nil, threads: Int? = nil, captureQuantized: Bool = false,
        captureLSE: Bool = false, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> (output: [Float], result: SparseAttentionResult) {
        // Every output element is written by the kernel, so the array is not zero-filled first.
        try shape.validate()  // before its sizes are multiplied
        var out = [Float](unsafeUninitializedCapacity: shape.queryElements) { _, n in n = shape.queryElements }
        var lse = [Float](repeating: 0, count: captureLSE ? shape.batch * shape.heads * shape.queryLength : 0)
        var result = try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try lse.withUnsafeMutableBufferPointer { l in
                            try sparse(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o),
                                       shape: shape, parameters: parameters, tokenOrder: tokenOrder, blockMap: blockMap,
                                       threads: threads, captureQuantized: captureQuantized, lse: captureLSE ? l : nil,
                                       keyPadding: keyPadding, attentionMask: attentionMask)
                        }
                    }
                }
            }
        }
        if captureLSE { result.lse = lse }
        return (out, result)
    }

    /// Stage 1 alone in `tokenOrder`: the predicted block map (in token order) of `q` and `k`
    /// (dense `B,H,N,D` and `B,Hkv,N,D` fp32 arrays in the caller's order), and optionally the
    /// INT8 tensors and the block probabilities, in token order too.
    public static func predictBlockMap(
        q: [Float], k: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        tokenOrder: TokenOrder?, threads: Int? = nil, captureQuantized: Bool = false, captureProbabilities: Bool = false
    ) throws -> SparseAttentionResult {
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                let views = try CallValidation.views(q: AttentionInput(q), k: AttentionInput(k), v: nil, output: nil, shape: shape,
                                                     policy: parameters.nonFinitePolicy, parameters: parameters,
                                                     halfRounded: HalfRoundedInputs(parameters))
                try tokenOrder?.validate(for: shape, causal: parameters.causal)
                let threadCount = try resolvedThreadCount(threads)
                return try withTokenOrder(tokenOrder, views, shape: shape, keyPadding: nil, staging: nil, threads: threadCount) { views, _, _ in
                    try SparsePipeline(shape: shape, parameters: parameters).callOnce(
                        views, blockMap: nil, threads: threadCount, captureQuantized: captureQuantized,
                        captureProbabilities: captureProbabilities)
                }
            }
        }
    }

    /// Exact attention visiting the tokens in `tokenOrder`, over tensors of any layout and
    /// element type in the caller's order (output and `lse` too). Without a causal mask the
    /// order changes only the rounding (the keys are summed in another order); it is here so
    /// that a dense reference runs on exactly the tensors a sparse call in that order sees.
    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless `queryLength == keyLength ==
    /// tokenOrder.count`, and for a non-identity order with `causal`.
    public static func dense(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, tokenOrder: TokenOrder?, causal: Bool = false, causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        var p = SpargeParameters()
        p.causal = causal
        p.causalAlignment = causalAlignment
        p.slidingWindow = slidingWindow
        p.sinkLogits = sinkLogits
        p.softmaxScale = softmaxScale
        p.nonFinitePolicy = nonFinitePolicy
        let threadCount = try resolvedThreadCount(threads)
        var views = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: nonFinitePolicy, parameters: p,
                                             threads: threadCount)
        views.output?.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: .fp32)
        try keyPadding?.validate(for: shape)
        try tokenOrder?.validate(for: shape, causal: causal)
        try attentionMask?.validate(for: shape)
        withTokenOrder(tokenOrder, views, shape: shape, keyPadding: keyPadding, attentionMask: attentionMask, staging: nil,
                       threads: threadCount) { views, keyValid, pairMask in
            denseAttention(q: views.q, k: views.k, v: views.v, output: views.output!, shape: shape, causal: causal,
                           causalOffset: p.causalOffset(for: shape), window: p.windowKeys, scale: p.scale(headDim: shape.headDim),
                           threads: threadCount, keyValid: keyValid, sinkLogits: sinkLogits, pairMask: pairMask)
            p.markNonFiniteRows(views, shape: shape, keyValid: keyValid, sparse: false, pairMask: pairMask)
        }
    }

    /// Array form of ``dense(q:k:v:output:shape:tokenOrder:causal:causalAlignment:slidingWindow:sinkLogits:softmaxScale:nonFinitePolicy:threads:lse:keyPadding:attentionMask:)``
    /// for dense `B,H,N,D` fp32 arrays in the caller's order.
    public static func dense(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, tokenOrder: TokenOrder?, causal: Bool = false,
        causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil, softmaxScale: Float? = nil, threads: Int? = nil,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> [Float] {
        try shape.validate()  // before its sizes are multiplied
        var out = [Float](unsafeUninitializedCapacity: shape.queryElements) { _, n in n = shape.queryElements }
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try dense(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o),
                                  shape: shape, tokenOrder: tokenOrder, causal: causal, causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits,
                                  softmaxScale: softmaxScale, threads: threads, keyPadding: keyPadding, attentionMask: attentionMask)
                    }
                }
            }
        }
        return out
    }

    /// Sparse attention in the Hilbert order of a grid without a prefix (fp32 arrays).
    @available(*, deprecated, message: "pass a TokenOrder: tokenOrder: TokenOrder.hilbert(frames:height:width:prefix:)")
    public static func sparse(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        tokenOrder order: HilbertOrder, threads: Int? = nil
    ) throws -> (output: [Float], result: SparseAttentionResult) {
        try sparse(q: q, k: k, v: v, shape: shape, parameters: parameters, tokenOrder: order.tokenOrder, threads: threads)
    }
}
