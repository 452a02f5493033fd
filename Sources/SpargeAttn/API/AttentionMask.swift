/// Which keys each query may attend to, pair by pair: `Nq x Nk` booleans per batch entry,
/// shared by every head (`true` = attend). The general mask of an inference engine: a prefix
/// attended both ways before a causal suffix (prefix-LM, image tokens), the tree of draft
/// tokens of speculative decoding, documents packed into one sequence, any pattern the causal
/// rule, the sliding window and ``KeyPaddingMask`` do not express.
///
/// Exact semantics: a pair the mask forbids gets no weight (its score is -inf before the
/// softmax, on the dense and the sparse path alike); the mask combines with `causal`, the
/// sliding window and the key padding (a pair is seen only when every rule allows it). A row
/// that sees no key outputs zeros and has log-sum-exp -inf (a learned sink, if any, is then
/// its whole denominator). Stage 1 treats a block in which the mask forbids every pair as
/// *masked* (``SparseStatistics``): it never scores, selects or computes it; pooling is
/// unchanged (every row and key of a block is pooled, as with padding).
///
/// `batch` may be 1 for a mask shared by every batch entry. The mask stores one byte a pair,
/// so `B x Nq x Nk` bytes must fit in memory; a call with a mask reads it once per call to
/// find the blocks that are wholly forbidden or wholly allowed (the kernels test single
/// pairs only in blocks that are neither).
///
/// Taken by the one-shot sparse and dense calls, stage 1 alone (`predictBlockMap`),
/// ``SpargePlan`` and a ``SpargeKVCache``'s `attend` and `attendExact` (`B` or 1 x `queries` x
/// its held keys); not with a ``TokenOrder``
/// other than the identity, nor by variable-length batches or the GPU backend.
public struct AttentionMask: Sendable, Hashable {
    /// Batch entries the mask holds: 1 (shared by the whole batch) or `B`.
    public let batch: Int
    /// Queries (`Nq`).
    public let queryLength: Int
    /// Keys (`Nk`).
    public let keyLength: Int
    /// `batch * Nq * Nk` bytes in `batch,Nq,Nk` order, 1 = attend.
    let bytes: [UInt8]

    /// A mask from `batch * queryLength * keyLength` booleans in `batch,Nq,Nk` order.
    public init(batch: Int = 1, queryLength: Int, keyLength: Int, allowed: [Bool]) throws {
        try Self.checkSize(batch: batch, queryLength: queryLength, keyLength: keyLength)
        guard allowed.count == batch * queryLength * keyLength else {
            throw SpargeError.invalidParameter("an attention mask of \(batch) x \(queryLength) x \(keyLength) needs \(batch * queryLength * keyLength) booleans (batch,Nq,Nk order), got \(allowed.count)")
        }
        self.batch = batch
        self.queryLength = queryLength
        self.keyLength = keyLength
        bytes = allowed.map { $0 ? 1 : 0 }
    }

    /// A mask from a rule: `allows(b, query, key)` for every pair, in `batch,Nq,Nk` order.
    ///
    /// ```swift
    /// // Prefix-LM: the first 32 tokens see each other, the rest are causal.
    /// let mask = try AttentionMask(queryLength: n, keyLength: n) { _, i, j in j <= i || j < 32 }
    /// ```
    public init(batch: Int = 1, queryLength: Int, keyLength: Int,
                allows: (_ b: Int, _ query: Int, _ key: Int) throws -> Bool) throws {
        try Self.checkSize(batch: batch, queryLength: queryLength, keyLength: keyLength)
        var bytes = [UInt8](repeating: 0, count: batch * queryLength * keyLength)
        var n = 0
        for b in 0..<batch {
            for i in 0..<queryLength {
                for j in 0..<keyLength {
                    bytes[n] = try allows(b, i, j) ? 1 : 0
                    n += 1
                }
            }
        }
        self.batch = batch
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.bytes = bytes
    }

    /// Every size positive and `batch * Nq * Nk` bytes addressable, before anything is allocated.
    static func checkSize(batch: Int, queryLength: Int, keyLength: Int) throws {
        guard batch > 0, queryLength > 0, keyLength > 0 else {
            throw SpargeError.invalidParameter("an attention mask of \(batch) x \(queryLength) x \(keyLength); every size must be positive")
        }
        guard addressableProduct(batch, queryLength, keyLength) != nil else {
            throw SpargeError.invalidParameter("an attention mask of \(batch) x \(queryLength) x \(keyLength) is too large to address")
        }
    }

    /// Whether query `query` of batch entry `b` may attend to key `key` (`b` is 0 for a shared mask).
    public subscript(b: Int, query: Int, key: Int) -> Bool { bytes[(b * queryLength + query) * keyLength + key] != 0 }

    /// Throws unless the mask fits `shape` (`1` or `B` batch entries, `Nq x Nk` pairs). With a
    /// token order the mask stays in the caller's order: the call permutes its rows and keys.
    func validate(for shape: AttentionShape) throws {
        guard batch == 1 || batch == shape.batch, queryLength == shape.queryLength, keyLength == shape.keyLength else {
            throw SpargeError.invalidParameter("the attention mask is \(batch) x \(queryLength) x \(keyLength) but the call has batch \(shape.batch), \(shape.queryLength) queries and \(shape.keyLength) keys; make it B x Nq x Nk (or 1 x Nq x Nk for every batch entry)")
        }
    }

    /// The mask as the kernels read it; valid while `body` runs.
    func withView<R>(_ body: (PairMaskView) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer {
            try body(PairMaskView(allowed: $0.baseAddress!, batchStride: batch == 1 ? 0 : queryLength * keyLength,
                                  queryLength: queryLength, keyLength: keyLength))
        }
    }
}

/// Runs `body` with the mask's view (nil without a mask); no allocation.
func withPairMask<R>(_ mask: AttentionMask?, _ body: (PairMaskView?) throws -> R) rethrows -> R {
    guard let mask else { return try body(nil) }
    return try mask.withView { try body($0) }
}
