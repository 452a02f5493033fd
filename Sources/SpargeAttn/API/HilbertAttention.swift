extension SpargeAttention {
    /// Sparse attention with image or video tokens visited in Hilbert-curve order (the paper's
    /// permutation): Q, K and V are permuted along ``HilbertOrder``, attended, and the output
    /// is returned in the original (raster) order. Blocks of consecutive Hilbert tokens are
    /// compact in space and time, which helps stage 1 when attention is local in all
    /// directions; measure density at equal error on your model (see the docs).
    ///
    /// Requires `queryLength == keyLength == order.count`. The block map of the result is in
    /// Hilbert order.
    public static func sparse(
        q: [Float], k: [Float], v: [Float], shape: AttentionShape, parameters: SpargeParameters = .recommended,
        tokenOrder order: HilbertOrder, threads: Int? = nil
    ) throws -> (output: [Float], result: SparseAttentionResult) {
        try shape.validate()
        if shape.queryLength != order.count || shape.keyLength != order.count {
            throw SpargeError.invalidShape(
                "Hilbert order of \(order.count) tokens (\(order.frames)x\(order.height)x\(order.width)) for queryLength \(shape.queryLength) and keyLength \(shape.keyLength); the grid must cover exactly the tokens")
        }
        if q.count < shape.queryElements || k.count < shape.keyElements || v.count < shape.keyElements {
            throw SpargeError.bufferTooSmall(name: q.count < shape.queryElements ? "q" : (k.count < shape.keyElements ? "k" : "v"),
                                             expected: q.count < shape.queryElements ? shape.queryElements : shape.keyElements,
                                             actual: min(q.count, k.count, v.count))
        }
        let d = shape.headDim
        let (out, result) = try sparse(
            q: order.permuted(Array(q.prefix(shape.queryElements)), batchHeads: shape.batch * shape.heads, d: d),
            k: order.permuted(Array(k.prefix(shape.keyElements)), batchHeads: shape.batch * shape.kvHeads, d: d),
            v: order.permuted(Array(v.prefix(shape.keyElements)), batchHeads: shape.batch * shape.kvHeads, d: d),
            shape: shape, parameters: parameters, threads: threads)
        return (order.unpermuted(out, batchHeads: shape.batch * shape.heads, d: d), result)
    }
}
