/// Sequences of different lengths packed along the token axis, as FlashAttention's varlen API
/// (`cu_seqlens`): sequence `i` owns tokens `cumulativeQueryLengths[i] ..< cumulativeQueryLengths[i + 1]`
/// of the packed queries and `cumulativeKeyLengths[i] ..< cumulativeKeyLengths[i + 1]` of the
/// packed keys and values. Tensors are token-major (`totalTokens x heads x headDim`, FlashAttention's
/// `(total, H, D)`), or any ``TensorLayout`` whose `tokenStride` and `headStride` say otherwise
/// (its `batchStride` is ignored).
public struct VariableLengthBatch: Sendable, Hashable {
    /// `B + 1` non-decreasing query offsets starting at 0.
    public let cumulativeQueryLengths: [Int]
    /// `B + 1` non-decreasing key offsets starting at 0 (the query offsets when nil at creation).
    public let cumulativeKeyLengths: [Int]

    /// Checks the offsets: `B + 1` values each, starting at 0, non-decreasing, and every
    /// sequence with at least one query and one key.
    public init(cumulativeQueryLengths: [Int], cumulativeKeyLengths: [Int]? = nil) throws {
        let keys = cumulativeKeyLengths ?? cumulativeQueryLengths
        for (name, c) in [("cumulativeQueryLengths", cumulativeQueryLengths), ("cumulativeKeyLengths", keys)] {
            guard c.count >= 2, c[0] == 0 else {
                throw SpargeError.invalidParameter("\(name) must start at 0 and hold B + 1 offsets (at least 2), got \(c)")
            }
            for i in 1..<c.count where c[i] <= c[i - 1] {
                throw SpargeError.invalidParameter("\(name)[\(i)] = \(c[i]) is not above \(c[i - 1]); every sequence needs at least one token")
            }
        }
        guard keys.count == cumulativeQueryLengths.count else {
            throw SpargeError.invalidParameter("\(cumulativeQueryLengths.count - 1) query sequences but \(keys.count - 1) key sequences; give one offset list per side with B + 1 values each")
        }
        self.cumulativeQueryLengths = cumulativeQueryLengths
        self.cumulativeKeyLengths = keys
    }

    /// Sequences in the batch (`B`).
    public var count: Int { cumulativeQueryLengths.count - 1 }
    /// Packed query tokens.
    public var totalQueries: Int { cumulativeQueryLengths.last! }
    /// Packed key tokens.
    public var totalKeys: Int { cumulativeKeyLengths.last! }
}

extension SpargeAttention {
    /// Sparse attention over a variable-length batch: each sequence is its own call (its own
    /// block map, its own K mean and INT8 blocks, no padding computed), run one after the other,
    /// so the outputs equal running the sequences one by one bit for bit.
    ///
    /// - Parameters:
    ///   - q: packed queries, `totalQueries x heads x headDim` (token-major unless `layout` says otherwise).
    ///   - k: packed keys, `totalKeys x kvHeads x headDim`.
    ///   - v: packed values, like `k`.
    ///   - output: packed output, like `q`.
    ///   - batch: the sequences' offsets.
    ///   - heads: query heads `H`; `kvHeads` (default `heads`) divides it.
    ///   - kvHeads: key/value heads, dividing `heads`; `nil` means `heads`.
    ///   - headDim: `D`.
    ///   - parameters: the hyper-parameters and options of every sequence's call.
    ///   - tokenOrders: one ``TokenOrder`` per sequence (nil entries: the caller's order), each
    ///     covering its sequence's tokens (`Nq == Nk` then); tensors stay in the caller's
    ///     order, each result's block map is in its sequence's token order.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    ///   - lse: each query row's log-sum-exp, `heads x totalQueries` (FlashAttention's varlen layout).
    ///   - attentionMasks: one ``AttentionMask`` per sequence (nil entries: none), each `1 x Nq x
    ///     Nk` of its sequence (in the caller's order with a token order); nil for none at all.
    /// - Returns: one result per sequence.
    @discardableResult
    public static func sparse(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        batch: VariableLengthBatch, heads: Int, kvHeads: Int? = nil, headDim: Int,
        parameters: SpargeParameters = .recommended, tokenOrders: [TokenOrder?]? = nil, threads: Int? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, attentionMasks: [AttentionMask?]? = nil
    ) throws -> [SparseAttentionResult] {
        if let tokenOrders, tokenOrders.count != batch.count {
            throw SpargeError.invalidTokenOrder("\(tokenOrders.count) token orders for \(batch.count) sequences; give one per sequence (nil for the caller's order)")
        }
        if let attentionMasks, attentionMasks.count != batch.count {
            throw SpargeError.invalidParameter("\(attentionMasks.count) attention masks for \(batch.count) sequences; give one per sequence (nil for none)")
        }
        let kvh = kvHeads ?? heads
        // The packed tensors as one shape: sizes checked before any stride or count is multiplied.
        try AttentionShape(heads: heads, kvHeads: kvh, queryLength: batch.totalQueries, keyLength: batch.totalKeys,
                           headDim: headDim).validate()
        let qLayout = q.layout ?? .nhd(heads: heads, tokens: batch.totalQueries, headDim: headDim)
        let kLayout = k.layout ?? .nhd(heads: kvh, tokens: batch.totalKeys, headDim: headDim)
        let vLayout = v.layout ?? .nhd(heads: kvh, tokens: batch.totalKeys, headDim: headDim)
        let oLayout = output.layout ?? .nhd(heads: heads, tokens: batch.totalQueries, headDim: headDim)
        // Buffers without a layout are the packed tensors themselves: exactly their size (see checkLayout).
        try q.requirePackedSize(name: "q", tokens: batch.totalQueries, heads: heads, headDim: headDim)
        try k.requirePackedSize(name: "k", tokens: batch.totalKeys, heads: kvh, headDim: headDim)
        try v.requirePackedSize(name: "v", tokens: batch.totalKeys, heads: kvh, headDim: headDim)
        if output.layout == nil {
            try checkLayout(oLayout, name: "output", count: output.count, batch: 1, heads: heads, tokens: batch.totalQueries,
                            headDim: headDim, exact: true)
        }
        if let lse, lse.count < heads * batch.totalQueries {
            throw SpargeError.bufferTooSmall(name: "lse", expected: heads * batch.totalQueries, actual: lse.count)
        }
        // Every mask against its sequence before any output is written.
        for i in 0..<batch.count {
            guard let mask = attentionMasks?[i] else { continue }
            let nq = batch.cumulativeQueryLengths[i + 1] - batch.cumulativeQueryLengths[i]
            let nk = batch.cumulativeKeyLengths[i + 1] - batch.cumulativeKeyLengths[i]
            guard mask.batch == 1, mask.queryLength == nq, mask.keyLength == nk else {
                throw SpargeError.invalidParameter("attentionMasks[\(i)] is \(mask.batch) x \(mask.queryLength) x \(mask.keyLength) but sequence \(i) has \(nq) queries and \(nk) keys; make it 1 x \(nq) x \(nk)")
            }
        }
        var results = [SparseAttentionResult]()
        results.reserveCapacity(batch.count)
        for i in 0..<batch.count {
            let q0 = batch.cumulativeQueryLengths[i], nq = batch.cumulativeQueryLengths[i + 1] - q0
            let k0 = batch.cumulativeKeyLengths[i], nk = batch.cumulativeKeyLengths[i + 1] - k0
            let shape = AttentionShape(batch: 1, heads: heads, kvHeads: kvh, queryLength: nq, keyLength: nk, headDim: headDim)
            var views = try CallValidation.views(
                q: try q.tokens(from: q0, layout: qLayout, name: "q"), k: try k.tokens(from: k0, layout: kLayout, name: "k"),
                v: try v.tokens(from: k0, layout: vLayout, name: "v"), output: try output.tokens(from: q0, layout: oLayout),
                shape: shape, policy: parameters.nonFinitePolicy, parameters: parameters,
                halfRounded: HalfRoundedInputs(parameters))
            if let base = lse?.baseAddress {
                views.output?.lse = LSEDestination(base: base + q0, batchStride: 0, headStride: batch.totalQueries,
                                                   bias: parameters.gpuReproduction.pvNumerics == .fp8 ? -fp8ProbabilityOffset : 0)
            }
            let order = tokenOrders?[i]
            try order?.validate(for: shape, causal: parameters.causal)
            let threadCount = try resolvedThreadCount(threads)
            results.append(try withTokenOrder(order, views, shape: shape, keyPadding: nil, attentionMask: attentionMasks?[i],
                                              staging: nil, threads: threadCount) { views, _, pairMask in
                var pipeline = SparsePipeline(shape: shape, parameters: parameters)
                pipeline.pairMask = pairMask
                let result = try pipeline.callOnce(views, blockMap: nil, threads: threadCount, captureQuantized: false)
                parameters.markNonFiniteRows(views, shape: shape, keyValid: nil, pairMask: pairMask)
                return result
            })
        }
        return results
    }
}

extension AttentionInput {
    /// Throws unless an input given without a layout holds exactly the packed `tokens x heads x
    /// headDim` tensor (shorter or longer; a ``TensorArray`` view may sit in a larger array).
    func requirePackedSize(name: String, tokens: Int, heads: Int, headDim: Int) throws {
        guard layout == nil && placement == nil else { return }
        try checkLayout(.nhd(heads: heads, tokens: tokens, headDim: headDim), name: name, count: count, batch: 1, heads: heads,
                        tokens: tokens, headDim: headDim, exact: true)
    }

    /// The same buffer seen from token `first` on, with `layout` (batch stride unused).
    func tokens(from first: Int, layout: TensorLayout, name: String) throws -> AttentionInput {
        let offset = first * layout.tokenStride
        guard offset <= count else {
            if let placement {
                throw SpargeError.viewOutOfBounds(name: name, offset: placement.offset, needed: placement.offset + offset + 1,
                                                  actual: placement.bufferCount)
            }
            throw SpargeError.bufferTooSmall(name: name, expected: offset + 1, actual: count)
        }
        var view = AttentionInput(base: base + offset * type.size, count: count - offset, type: type,
                                  layout: TensorLayout(batchStride: 0, headStride: layout.headStride, tokenStride: layout.tokenStride))
        view.placement = placement.map { ViewPlacement(offset: $0.offset + offset, bufferCount: $0.bufferCount) }
        return view
    }
}

extension AttentionOutput {
    /// The same buffer seen from token `first` on, with `layout` (batch stride unused).
    func tokens(from first: Int, layout: TensorLayout) throws -> AttentionOutput {
        let offset = first * layout.tokenStride
        guard offset <= count else { throw SpargeError.bufferTooSmall(name: "output", expected: offset + 1, actual: count) }
        return AttentionOutput(base: base + offset * type.size, count: count - offset, type: type,
                               layout: TensorLayout(batchStride: 0, headStride: layout.headStride, tokenStride: layout.tokenStride))
    }
}
