/// SpargeAttn on the CPU: sparse + INT8-quantized attention, exact dense attention, and the
/// block-map prediction, over caller-owned tensors (fp32 arrays, or any layout and element
/// type through ``AttentionInput``).
///
/// Every entry point validates its input and throws ``SpargeError``; all of them are
/// thread-safe (no shared mutable state) and give bitwise identical results for any `threads`.
///
/// ```swift
/// let shape = AttentionShape(batch: 1, heads: 8, queryLength: 4096, headDim: 64)
/// var out = [Float](repeating: 0, count: shape.queryElements)
/// let result = try SpargeAttention.sparse(q: q, k: k, v: v, output: &out, shape: shape,
///                                         parameters: .recommended)
/// print(result.statistics.density)
/// ```
public enum SpargeAttention {
    /// Sparse attention (<doc:ExactSemantics> sections 1-4) over caller-owned tensors of any layout
    /// (``TensorLayout``: HND, NHD, strided rows of a fused QKV buffer) and element type
    /// (fp32, fp16, bf16; compute is fp32). Inputs are read in place.
    ///
    /// - Parameters:
    ///   - q: the queries, `B,H,Nq,D`.
    ///   - k: the keys, `B,Hkv,Nk,D`.
    ///   - v: the values, `B,Hkv,Nk,D`.
    ///   - output: where the result goes, `B,H,Nq,D`.
    ///   - shape: the sizes `B`, `H`, `Hkv`, `Nq`, `Nk`, `D`.
    ///   - parameters: the hyper-parameters and options.
    ///   - blockMap: a caller-supplied map (`B,H,nq,nk` for the parameters' block sizes) used
    ///     instead of stage 1's prediction.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - captureQuantized: also return the INT8 tensors.
    ///   - lse: where to write each query row's log-sum-exp (`B,H,Nq` floats, natural log;
    ///     see <doc:EmbeddingInAnInferenceEngine> for the exact definition).
    ///   - keyPadding: which keys are padding (``KeyPaddingMask``): they get no weight.
    ///   - attentionMask: which query-key pairs may attend (``AttentionMask``, shared by the heads): the others get no weight.
    @discardableResult
    public static func sparse(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        threads: Int? = nil, captureQuantized: Bool = false, lse: UnsafeMutableBufferPointer<Float>? = nil,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try sparse(q: q, k: k, v: v, output: output, shape: shape, parameters: parameters, tokenOrder: nil,
                   blockMap: blockMap, threads: threads, captureQuantized: captureQuantized, lse: lse, keyPadding: keyPadding, attentionMask: attentionMask)
    }

    /// Sparse attention over dense `B,H,N,D` fp32 buffers (see the ``AttentionInput`` form
    /// for other layouts and element types).
    @discardableResult
    public static func sparse(
        q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, shape: AttentionShape,
        parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        threads: Int? = nil, captureQuantized: Bool = false, lse: UnsafeMutableBufferPointer<Float>? = nil,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try sparse(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(output),
                   shape: shape, parameters: parameters, blockMap: blockMap, threads: threads,
                   captureQuantized: captureQuantized, lse: lse, keyPadding: keyPadding, attentionMask: attentionMask)
    }

    /// Array convenience for ``sparse(q:k:v:output:shape:parameters:blockMap:threads:captureQuantized:lse:keyPadding:attentionMask:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_,_,_,_)``;
    /// with `captureLSE` the result's ``SparseAttentionResult/lse`` holds each row's log-sum-exp.
    public static func sparse(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape,
        parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        threads: Int? = nil, captureQuantized: Bool = false, captureLSE: Bool = false, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> (output: [Float], result: SparseAttentionResult) {
        try sparse(q: q, k: k, v: v, shape: shape, parameters: parameters, tokenOrder: nil, blockMap: blockMap,
                   threads: threads, captureQuantized: captureQuantized, captureLSE: captureLSE, keyPadding: keyPadding, attentionMask: attentionMask)
    }

    /// Stage 1 alone: the predicted block map (and, optionally, the INT8 tensors and the block
    /// probabilities `P_hat` each row's selection was made from). With `keyPadding` or
    /// `attentionMask`, the map a sparse call with them would predict: blocks they leave
    /// nothing in are masked, never selected.
    public static func predictBlockMap(
        q: [Float], k: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        threads: Int? = nil, captureQuantized: Bool = false, captureProbabilities: Bool = false,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                let threadCount = try resolvedThreadCount(threads)
                let views = try CallValidation.views(q: AttentionInput(q), k: AttentionInput(k), v: nil, output: nil, shape: shape,
                                                     policy: parameters.nonFinitePolicy, parameters: parameters,
                                                     halfRounded: HalfRoundedInputs(parameters), threads: threadCount)
                try keyPadding?.validate(for: shape)
                try attentionMask?.validate(for: shape)
                return try withKeyValid(keyPadding) { keyValid in
                    try withPairMask(attentionMask) { pairMask in
                        var pipeline = SparsePipeline(shape: shape, parameters: parameters)
                        pipeline.keyValid = keyValid
                        pipeline.pairMask = pairMask
                        return try pipeline.callOnce(views, blockMap: nil, threads: threadCount, captureQuantized: captureQuantized,
                                                     captureProbabilities: captureProbabilities)
                    }
                }
            }
        }
    }

    /// Exact attention (fp32 compute, tiled online softmax, no N x N buffer) over tensors of any
    /// layout and element type.
    /// With `lse` (`B,H,Nq` floats) each query row's log-sum-exp is written too (natural log);
    /// `causalAlignment` places the diagonal when `Nq != Nk` (``CausalAlignment``).
    public static func dense(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, causal: Bool = false, causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        try dense(q: q, k: k, v: v, output: output, shape: shape, tokenOrder: nil, causal: causal,
                  causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits, softmaxScale: softmaxScale, nonFinitePolicy: nonFinitePolicy,
                  threads: threads, lse: lse, keyPadding: keyPadding, attentionMask: attentionMask)
    }

    /// Exact attention over dense `B,H,N,D` fp32 buffers.
    public static func dense(
        q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, shape: AttentionShape, causal: Bool = false,
        causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws {
        try dense(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(output),
                  shape: shape, causal: causal, causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits, softmaxScale: softmaxScale, nonFinitePolicy: nonFinitePolicy, threads: threads,
                  lse: lse, keyPadding: keyPadding, attentionMask: attentionMask)
    }

    /// Array convenience for ``dense(q:k:v:output:shape:causal:causalAlignment:slidingWindow:sinkLogits:softmaxScale:nonFinitePolicy:threads:lse:keyPadding:attentionMask:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_,_,_,_,_,_,_)``.
    public static func dense(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, causal: Bool = false,
        causalAlignment: CausalAlignment = .bottomRight, slidingWindow: Int? = nil, sinkLogits: PerHead? = nil, softmaxScale: Float? = nil, threads: Int? = nil,
        keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> [Float] {
        try shape.validate()  // before its sizes are multiplied
        var out = [Float](unsafeUninitializedCapacity: shape.queryElements) { _, n in n = shape.queryElements }
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try dense(q: q, k: k, v: v, output: o, shape: shape, causal: causal,
                                  causalAlignment: causalAlignment, slidingWindow: slidingWindow, sinkLogits: sinkLogits, softmaxScale: softmaxScale, threads: threads,
                                  keyPadding: keyPadding, attentionMask: attentionMask)
                    }
                }
            }
        }
        return out
    }
}
