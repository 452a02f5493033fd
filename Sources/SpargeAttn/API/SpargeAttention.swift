/// SpargeAttn on the CPU: sparse + INT8-quantized attention, exact dense attention, and the
/// block-map prediction, over caller-owned `B,H,N,D` fp32 buffers.
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
    /// Sparse attention (ALGORITHM.md sections 1-4) into `output`.
    ///
    /// - Parameters:
    ///   - q, k, v: `B,H,Nq,D`, `B,Hkv,Nk,D`, `B,Hkv,Nk,D` fp32.
    ///   - output: `B,H,Nq,D`.
    ///   - blockMap: a caller-supplied map (`B,H,nq,nk` for the parameters' block sizes) used
    ///     instead of stage 1's prediction.
    ///   - threads: worker count; `nil` uses every CPU this process may run on.
    ///   - captureQuantized: also return the INT8 tensors.
    public static func sparse(
        q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, shape: AttentionShape,
        parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        threads: Int? = nil, captureQuantized: Bool = false
    ) throws -> SparseAttentionResult {
        try validate(q: q, k: k, v: v, output: output.count, shape: shape, policy: parameters.nonFinitePolicy)
        try parameters.validate(for: shape)
        if let m = blockMap { try m.validate(for: shape, blockQ: parameters.blockQ, blockK: parameters.blockK) }
        return SparsePipeline(shape: shape, parameters: parameters, threads: threads ?? defaultThreadCount())
            .run(q: view(q, shape.heads, shape.queryLength, shape.headDim),
                 k: view(k, shape.kvHeads, shape.keyLength, shape.headDim),
                 v: view(v, shape.kvHeads, shape.keyLength, shape.headDim),
                 output: MutableTensorView(contiguous: output.baseAddress!, heads: shape.heads, rows: shape.queryLength, d: shape.headDim),
                 blockMap: blockMap, captureQuantized: captureQuantized, computeOutput: true)
    }

    /// Array convenience for ``sparse(q:k:v:output:shape:parameters:blockMap:threads:captureQuantized:)``.
    public static func sparse(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape,
        parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        threads: Int? = nil, captureQuantized: Bool = false
    ) throws -> (output: [Float], result: SparseAttentionResult) {
        // Every output element is written by the kernel, so the array is not zero-filled first.
        var out = [Float](unsafeUninitializedCapacity: shape.queryElements) { _, n in n = shape.queryElements }
        let result = try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try sparse(q: q, k: k, v: v, output: o, shape: shape, parameters: parameters,
                                   blockMap: blockMap, threads: threads, captureQuantized: captureQuantized)
                    }
                }
            }
        }
        return (out, result)
    }

    /// Stage 1 alone: the predicted block map (and, optionally, the INT8 tensors and the block
    /// probabilities `P_hat` each row's selection was made from).
    public static func predictBlockMap(
        q: [Float], k: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        threads: Int? = nil, captureQuantized: Bool = false, captureProbabilities: Bool = false
    ) throws -> SparseAttentionResult {
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try validate(q: q, k: k, v: k, output: shape.queryElements, shape: shape, policy: parameters.nonFinitePolicy)
                try parameters.validate(for: shape)
                return SparsePipeline(shape: shape, parameters: parameters, threads: threads ?? defaultThreadCount())
                    .run(q: view(q, shape.heads, shape.queryLength, shape.headDim),
                         k: view(k, shape.kvHeads, shape.keyLength, shape.headDim),
                         v: view(k, shape.kvHeads, shape.keyLength, shape.headDim),
                         output: nil, blockMap: nil, captureQuantized: captureQuantized, computeOutput: false,
                         captureProbabilities: captureProbabilities)
            }
        }
    }

    /// Exact attention (fp32, tiled online softmax, no N x N buffer) into `output`.
    public static func dense(
        q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, shape: AttentionShape, causal: Bool = false,
        softmaxScale: Float? = nil, nonFinitePolicy: NonFinitePolicy = .reject, threads: Int? = nil
    ) throws {
        try validate(q: q, k: k, v: v, output: output.count, shape: shape, policy: nonFinitePolicy)
        var p = SpargeParameters()
        p.causal = causal
        p.softmaxScale = softmaxScale
        try p.validate(for: shape)
        denseAttention(
            q: view(q, shape.heads, shape.queryLength, shape.headDim),
            k: view(k, shape.kvHeads, shape.keyLength, shape.headDim),
            v: view(v, shape.kvHeads, shape.keyLength, shape.headDim),
            output: MutableTensorView(contiguous: output.baseAddress!, heads: shape.heads, rows: shape.queryLength, d: shape.headDim),
            shape: shape, causal: causal, scale: p.scale(headDim: shape.headDim), threads: threads ?? defaultThreadCount())
    }

    /// Array convenience for ``dense(q:k:v:output:shape:causal:softmaxScale:nonFinitePolicy:threads:)``.
    public static func dense(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, causal: Bool = false,
        softmaxScale: Float? = nil, threads: Int? = nil
    ) throws -> [Float] {
        var out = [Float](unsafeUninitializedCapacity: shape.queryElements) { _, n in n = shape.queryElements }
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try dense(q: q, k: k, v: v, output: o, shape: shape, causal: causal,
                                  softmaxScale: softmaxScale, threads: threads)
                    }
                }
            }
        }
        return out
    }

    static func view(_ x: UnsafeBufferPointer<Float>, _ heads: Int, _ rows: Int, _ d: Int) -> TensorView {
        TensorView(contiguous: x.baseAddress!, heads: heads, rows: rows, d: d)
    }

    static func validate(
        q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        output: Int, shape: AttentionShape, policy: NonFinitePolicy
    ) throws {
        try shape.validate()
        try InputChecks.size("q", q.count, shape.queryElements)
        try InputChecks.size("k", k.count, shape.keyElements)
        try InputChecks.size("v", v.count, shape.keyElements)
        try InputChecks.size("output", output, shape.queryElements)
        try InputChecks.finite("q", q, count: shape.queryElements, policy: policy)
        try InputChecks.finite("k", k, count: shape.keyElements, policy: policy)
        try InputChecks.finite("v", v, count: shape.keyElements, policy: policy)
    }
}
