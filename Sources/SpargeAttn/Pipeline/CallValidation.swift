// The one validation sequence of every entry point (one-shot, plan, KV cache, other
// backends): the shape, each tensor against its layout and element count, the output, the
// values by the non-finite policy, the parameters and a block map, in that order, each
// failure a thrown ``SpargeError`` that says what to fix.

/// The validated views of one call's tensors.
struct CallViews {
    var q: TensorView
    var k: TensorView
    var v: TensorView
    var output: MutableTensorView?
}

enum CallValidation {
    /// Validates a whole call and returns its views.
    ///
    /// - Parameters:
    ///   - v: nil for stage 1 alone (the view of `k` stands in).
    ///   - output: nil when the call writes no output.
    ///   - parameters: nil when they were validated before (a plan).
    ///   - blockMap: a caller's map, checked against the shape and the block sizes.
    ///   - temp: one row of scratch for the scans (allocated when nil).
    static func views(
        q: AttentionInput, k: AttentionInput, v: AttentionInput?, output: AttentionOutput?, shape: AttentionShape,
        policy: NonFinitePolicy, parameters: SpargeParameters? = nil, blockMap: BlockMap? = nil,
        temp: UnsafeMutablePointer<Float>? = nil
    ) throws -> CallViews {
        try shape.validate()
        let qv = try q.view(name: "q", heads: shape.heads, tokens: shape.queryLength, shape: shape)
        let kv = try k.view(name: "k", heads: shape.kvHeads, tokens: shape.keyLength, shape: shape)
        let vv = try v.map { try $0.view(name: "v", heads: shape.kvHeads, tokens: shape.keyLength, shape: shape) }
        if policy == .reject {
            let scratch = temp ?? UnsafeMutablePointer<Float>.allocate(capacity: shape.headDim)
            defer { if temp == nil { scratch.deallocate() } }
            try requireFinite(qv, name: "q", batch: shape.batch, heads: shape.heads, tokens: shape.queryLength, d: shape.headDim, temp: scratch)
            try requireFinite(kv, name: "k", batch: shape.batch, heads: shape.kvHeads, tokens: shape.keyLength, d: shape.headDim, temp: scratch)
            if let vv {
                try requireFinite(vv, name: "v", batch: shape.batch, heads: shape.kvHeads, tokens: shape.keyLength, d: shape.headDim, temp: scratch)
            }
        }
        let out = try output.map { try $0.view(shape: shape) }
        try parameters?.validate(for: shape)
        if let m = blockMap, let p = parameters { try m.validate(for: shape, blockQ: p.blockQ, blockK: p.blockK) }
        return CallViews(q: qv, k: kv, v: vv ?? kv, output: out)
    }

    /// Throws ``SpargeError/nonFiniteInput(name:index:value:)`` at the first NaN or infinity
    /// of `view` (rows widened to fp32 into `temp`, one row).
    static func requireFinite(_ view: TensorView, name: String, batch: Int, heads: Int, tokens: Int, d: Int,
                              temp: UnsafeMutablePointer<Float>) throws {
        if let (i, x) = firstNonFiniteElement(view, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) {
            throw SpargeError.nonFiniteInput(name: name, index: i, value: x)
        }
    }

    /// Checks a plan call's raw block map against the call's `B*H*nq*nk`.
    static func requireMapBytes(_ map: UnsafeBufferPointer<UInt8>?, geometry g: SparseGeometry) throws {
        if let m = map, m.count != g.mapCount {
            throw SpargeError.invalidBlockMap("\(m.count) bytes given; this plan needs B*H*nq*nk = \(g.mapCount)")
        }
    }
}
