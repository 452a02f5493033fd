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
    ///   - threads: workers for the scan of fp32 inputs by the non-finite policy (the call's own).
    ///   - pipelineChecksFinite: the sparse pipeline checks the values instead (see
    ///     `SparsePipeline.detectsNonFinite(_:tokenOrder:)`): no scan here.
    static func views(
        q: AttentionInput, k: AttentionInput, v: AttentionInput?, output: AttentionOutput?, shape: AttentionShape,
        policy: NonFinitePolicy, parameters: SpargeParameters? = nil, blockMap: BlockMap? = nil,
        halfRounded: HalfRoundedInputs = .none, temp: UnsafeMutablePointer<Float>? = nil, threads: Int = 1,
        pipelineChecksFinite: Bool = false
    ) throws -> CallViews {
        try shape.validate()
        let qv = try q.view(name: "q", heads: shape.heads, tokens: shape.queryLength, shape: shape)
        let kv = try k.view(name: "k", heads: shape.kvHeads, tokens: shape.keyLength, shape: shape)
        let vv = try v.map { try $0.view(name: "v", heads: shape.kvHeads, tokens: shape.keyLength, shape: shape) }
        if policy == .reject && !pipelineChecksFinite {
            let scratch = temp ?? UnsafeMutablePointer<Float>.allocate(capacity: shape.headDim)
            defer { if temp == nil { scratch.deallocate() } }
            try requireFiniteInputs(q: qv, k: kv, v: vv, shape: shape, temp: scratch, threads: threads)
        }
        if halfRounded.queriesAndKeys || (halfRounded.values && vv != nil) {
            let scratch = temp ?? UnsafeMutablePointer<Float>.allocate(capacity: shape.headDim)
            defer { if temp == nil { scratch.deallocate() } }
            if halfRounded.queriesAndKeys {
                try requireHalfRange(qv, name: "q", batch: shape.batch, heads: shape.heads, tokens: shape.queryLength, d: shape.headDim, temp: scratch)
                try requireHalfRange(kv, name: "k", batch: shape.batch, heads: shape.kvHeads, tokens: shape.keyLength, d: shape.headDim, temp: scratch)
            }
            if halfRounded.queriesAndKeys && halfRounded.centeredKeys {
                try requireCenteredKeysInHalfRange(kv, batch: shape.batch, kvHeads: shape.kvHeads, tokens: shape.keyLength,
                                                   d: shape.headDim, temp: scratch)
            }
            if halfRounded.values, let vv {
                try requireHalfRange(vv, name: "v", batch: shape.batch, heads: shape.kvHeads, tokens: shape.keyLength, d: shape.headDim, temp: scratch)
            }
        }
        if halfRounded.tritonQueries {
            let scratch = temp ?? UnsafeMutablePointer<Float>.allocate(capacity: shape.headDim)
            defer { if temp == nil { scratch.deallocate() } }
            try requireTritonScaleRange(qv, shape: shape, softmaxScale: halfRounded.softmaxScale, temp: scratch)
        }
        let out = try output.map { try $0.view(shape: shape) }
        try parameters?.validate(for: shape)
        if let m = blockMap, let p = parameters { try m.validate(for: shape, blockQ: p.blockQ, blockK: p.blockK) }
        return CallViews(q: qv, k: kv, v: vv ?? kv, output: out)
    }

    /// A KV-cache append's keys and values (`B,Hkv,tokens,D`; the cache checked its room).
    /// `keyMeans`: the cache's fixed smoothing mean (`B*Hkv*D`), nil when these keys will set it.
    static func cacheAppend(k: AttentionInput, v: AttentionInput, batch: Int, kvHeads: Int, tokens: Int, headDim: Int,
                            policy: NonFinitePolicy, halfRounded: HalfRoundedInputs = .none, keyMeans: UnsafePointer<Float>? = nil,
                            storedAs: ElementType = .float32, temp: UnsafeMutablePointer<Float>) throws -> (k: TensorView, v: TensorView) {
        let part = AttentionShape(batch: batch, heads: kvHeads, queryLength: tokens, headDim: headDim)
        let kv = try k.view(name: "k", heads: kvHeads, tokens: tokens, shape: part)
        let vv = try v.view(name: "v", heads: kvHeads, tokens: tokens, shape: part)
        if policy == .reject {
            try requireFinite(kv, name: "k", batch: batch, heads: kvHeads, tokens: tokens, d: headDim, temp: temp)
            try requireFinite(vv, name: "v", batch: batch, heads: kvHeads, tokens: tokens, d: headDim, temp: temp)
        }
        if halfRounded.queriesAndKeys {
            try requireHalfRange(kv, name: "k", batch: batch, heads: kvHeads, tokens: tokens, d: headDim, temp: temp)
        }
        if halfRounded.queriesAndKeys && halfRounded.centeredKeys {
            try requireCenteredKeysInHalfRange(kv, batch: batch, kvHeads: kvHeads, tokens: tokens, d: headDim, means: keyMeans, temp: temp)
        }
        for (view, name) in [(kv, "k"), (vv, "v")] {
            if let (i, x) = firstBeyondRange(of: storedAs, view, batch: batch, heads: kvHeads, tokens: tokens, d: headDim, temp: temp) {
                throw SpargeError.beyondStorageRange(name: name, index: i, value: x, type: storedAs)
            }
        }
        return (kv, vv)
    }

    /// A KV-cache call's queries and output (`B,H,Nq,D` of `shape`; keys and values are the
    /// cache's own).
    static func cacheQuery(q: AttentionInput, output: AttentionOutput, shape: AttentionShape, policy: NonFinitePolicy,
                           halfRounded: HalfRoundedInputs = .none,
                           temp: UnsafeMutablePointer<Float>) throws -> (q: TensorView, output: MutableTensorView) {
        let qv = try q.view(name: "q", heads: shape.heads, tokens: shape.queryLength, shape: shape)
        let out = try output.view(shape: shape)
        if policy == .reject {
            try requireFinite(qv, name: "q", batch: shape.batch, heads: shape.heads, tokens: shape.queryLength, d: shape.headDim, temp: temp)
        }
        if halfRounded.queriesAndKeys {
            try requireHalfRange(qv, name: "q", batch: shape.batch, heads: shape.heads, tokens: shape.queryLength, d: shape.headDim, temp: temp)
        }
        if halfRounded.tritonQueries {
            try requireTritonScaleRange(qv, shape: shape, softmaxScale: halfRounded.softmaxScale, temp: temp)
        }
        return (qv, out)
    }

    /// Throws ``SpargeError/beyondHalfRange(name:index:value:reason:)`` at the first element of
    /// `view` that fp16 cannot hold.
    static func requireHalfRange(_ view: TensorView, name: String, batch: Int, heads: Int, tokens: Int, d: Int,
                                 temp: UnsafeMutablePointer<Float>) throws {
        if let (i, x) = firstBeyondHalfRange(view, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) {
            throw SpargeError.beyondHalfRange(name: name, index: i, value: x, reason: HalfRoundedInputs.reason(name: name))
        }
    }

    /// Throws ``SpargeError/unsupported(_:)`` at the first query whose Triton INT8 block scale
    /// could not be stored in fp32 (``HalfRoundedInputs/tritonQueries``).
    static func requireTritonScaleRange(_ q: TensorView, shape: AttentionShape, softmaxScale: Float?,
                                        temp: UnsafeMutablePointer<Float>) throws {
        let factor = (softmaxScale ?? 1 / Float(shape.headDim).squareRoot()) * log2e
        if let (i, x) = firstBeyondTritonScaleRange(q, batch: shape.batch, heads: shape.heads, tokens: shape.queryLength,
                                                    d: shape.headDim, factor: factor, temp: temp) {
            throw SpargeError.unsupported("q has \(x) at element \(i); the Triton quantization multiplies Q by softmaxScale * log2(e) = \(factor) before INT8, as the Triton kernel does in fp32, and that block's scale (\(Double(abs(x)) * Double(factor) / 127)) is beyond fp32's range. Use the CUDA quantization (quantization .cuda, the default), a smaller softmaxScale, or scale q down")
        }
    }

    /// Throws ``SpargeError/beyondHalfRange(name:index:value:reason:)``, named `k - mean`, at the
    /// first key whose difference from its smoothing mean fp16 cannot hold
    /// (`firstCenteredKeyBeyondHalfRange`; `means`: a KV cache's fixed mean).
    static func requireCenteredKeysInHalfRange(_ k: TensorView, batch: Int, kvHeads: Int, tokens: Int, d: Int,
                                               means: UnsafePointer<Float>? = nil, temp: UnsafeMutablePointer<Float>) throws {
        if let (i, x) = firstCenteredKeyBeyondHalfRange(k, batch: batch, kvHeads: kvHeads, tokens: tokens, d: d, means: means, temp: temp) {
            throw SpargeError.beyondHalfRange(name: "k - mean", index: i, value: x, reason: HalfRoundedInputs.centeredKeysReason)
        }
    }

    /// ``requireFinite(_:name:batch:heads:tokens:d:temp:threads:)`` on Q, K and V (when given) of
    /// `shape`, in that order: the error names the first non-finite element in flat order.
    static func requireFiniteInputs(q: TensorView, k: TensorView, v: TensorView?, shape s: AttentionShape,
                                    temp: UnsafeMutablePointer<Float>, threads: Int) throws {
        try requireFinite(q, name: "q", batch: s.batch, heads: s.heads, tokens: s.queryLength, d: s.headDim, temp: temp, threads: threads)
        try requireFinite(k, name: "k", batch: s.batch, heads: s.kvHeads, tokens: s.keyLength, d: s.headDim, temp: temp, threads: threads)
        if let v {
            try requireFinite(v, name: "v", batch: s.batch, heads: s.kvHeads, tokens: s.keyLength, d: s.headDim, temp: temp, threads: threads)
        }
    }

    /// Throws ``SpargeError/nonFiniteInput(name:index:value:)`` at the first NaN or infinity
    /// of `view` (rows widened to fp32 into `temp`, one row; fp32 views on `threads` workers).
    static func requireFinite(_ view: TensorView, name: String, batch: Int, heads: Int, tokens: Int, d: Int,
                              temp: UnsafeMutablePointer<Float>, threads: Int = 1) throws {
        if let (i, x) = firstNonFiniteElement(view, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp, threads: threads) {
            throw SpargeError.nonFiniteInput(name: name, index: i, value: x)
        }
    }

    /// The destination of a call's log-sum-exp: `lse` must hold `B*H*Nq` floats (`B,H,Nq`).
    static func lseDestination(_ lse: UnsafeMutableBufferPointer<Float>?, shape: AttentionShape,
                               numerics: PVNumerics) throws -> LSEDestination? {
        guard let lse else { return nil }
        let needed = shape.batch * shape.heads * shape.queryLength
        guard let base = lse.baseAddress, lse.count >= needed else {
            throw SpargeError.bufferTooSmall(name: "lse", expected: needed, actual: lse.count)
        }
        return LSEDestination(base: base, batchStride: shape.heads * shape.queryLength, headStride: shape.queryLength,
                              bias: numerics == .fp8 ? -fp8ProbabilityOffset : 0)
    }
}

extension AttentionInput {
    /// The view of this input as `heads x tokens` rows of `shape.headDim`, its layout checked.
    func view(name: String, heads: Int, tokens: Int, shape: AttentionShape) throws -> TensorView {
        let l = layout ?? .hnd(heads: heads, tokens: tokens, headDim: shape.headDim)
        if let placement {
            try placement.check(l, name: name, batch: shape.batch, heads: heads, tokens: tokens, headDim: shape.headDim)
        }
        try checkLayout(l, name: name, count: count, batch: shape.batch, heads: heads, tokens: tokens, headDim: shape.headDim,
                        exact: layout == nil && placement == nil)
        return TensorView(base: base, type: type, batchStride: l.batchStride, headStride: l.headStride, rowStride: l.tokenStride)
    }
}

extension AttentionOutput {
    /// The view of this output as `B,H,Nq,D` of `shape`, its layout checked.
    func view(shape: AttentionShape) throws -> MutableTensorView {
        let l = layout ?? .hnd(heads: shape.heads, tokens: shape.queryLength, headDim: shape.headDim)
        try checkLayout(l, name: "output", count: count, batch: shape.batch, heads: shape.heads,
                        tokens: shape.queryLength, headDim: shape.headDim, exact: layout == nil)
        try checkDisjointRows(l, name: "output", batch: shape.batch, heads: shape.heads, tokens: shape.queryLength, headDim: shape.headDim)
        return MutableTensorView(base: base, type: type, batchStride: l.batchStride, headStride: l.headStride, rowStride: l.tokenStride)
    }
}

/// Throws unless `l` addresses `batch x heads x tokens x headDim` elements inside `count`
/// without overlapping rows; `exact` (a buffer given without a layout, read as the dense
/// tensor `l`) also refuses one longer than that tensor, which is a shape mistake far more
/// often than an intent (the data would be read from the wrong places without a word).
func checkLayout(_ l: TensorLayout, name: String, count: Int, batch: Int, heads: Int, tokens: Int, headDim: Int,
                 exact: Bool = false) throws {
    guard let last = l.lastOffset(batch: batch, heads: heads, tokens: tokens, headDim: headDim) else {
        throw SpargeError.invalidShape("'\(name)' has negative or overflowing strides \(l); strides are in elements and must be >= 0")
    }
    if last >= count {
        throw SpargeError.bufferTooSmall(name: name, expected: last + 1, actual: count)
    }
    if exact && count > last + 1 && batch > 0 && heads > 0 && tokens > 0 && headDim > 0 {
        throw SpargeError.bufferSizeMismatch(name: name, expected: last + 1, actual: count)
    }
    if l.tokenStride < headDim && tokens > 1 {
        throw SpargeError.invalidShape("'\(name)' token stride \(l.tokenStride) is smaller than headDim \(headDim): rows would overlap")
    }
}

/// Throws unless the `batch x heads x tokens` rows of `headDim` elements that `l` addresses
/// are disjoint: an output whose rows share memory (a zero head stride, say) would be written
/// by several rows at once. Inputs may share rows (a broadcast K); outputs may not. The test is
/// the usual sufficient one: in order of increasing stride, each dimension's stride clears
/// everything the smaller ones reach (it refuses interleavings that happen not to collide).
func checkDisjointRows(_ l: TensorLayout, name: String, batch: Int, heads: Int, tokens: Int, headDim: Int) throws {
    // The three (extent, stride) pairs sorted by stride in place: plan calls allocate nothing.
    var a = (batch, l.batchStride), b = (heads, l.headStride), c = (tokens, l.tokenStride)
    if a.1 > b.1 { swap(&a, &b) }
    if b.1 > c.1 { swap(&b, &c) }
    if a.1 > b.1 { swap(&a, &b) }
    var reach = headDim
    func clear(_ dimension: (extent: Int, stride: Int)) throws {
        guard dimension.extent > 1 else { return }
        if dimension.stride < reach {
            throw SpargeError.invalidShape("'\(name)' has strides \(l) under which rows of different tokens, heads or batch entries share memory; "
                + "each of the \(batch) x \(heads) x \(tokens) rows of \(headDim) elements needs its own (the default layout is B,H,N,D)")
        }
        reach = dimension.stride * (dimension.extent - 1) + reach    // within Int: checkLayout bounded the span
    }
    try clear(a)
    try clear(b)
    try clear(c)
}

extension ViewPlacement {
    /// Throws unless `l` from ``offset`` stays inside the whole buffer (the message counts from
    /// the buffer's first element, as the caller does). An offset of 0 is left to `checkLayout`.
    func check(_ l: TensorLayout, name: String, batch: Int, heads: Int, tokens: Int, headDim: Int) throws {
        if offset < 0 {
            throw SpargeError.invalidParameter("'\(name)' starts at offset \(offset); an offset counts elements from the array's first element and must be at least 0")
        }
        guard offset != 0, let last = l.lastOffset(batch: batch, heads: heads, tokens: tokens, headDim: headDim) else { return }
        let (needed, overflow) = offset.addingReportingOverflow(last + 1)
        if overflow || needed > bufferCount {
            throw SpargeError.viewOutOfBounds(name: name, offset: offset, needed: overflow ? Int.max : needed, actual: bufferCount)
        }
    }
}
