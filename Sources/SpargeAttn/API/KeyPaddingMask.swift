/// Which keys of each batch entry are real tokens and which are padding (a batch of
/// sequences of different lengths padded to one `Nk`): `B x Nk` booleans, `true` = attend.
///
/// Exact semantics: a padded key gets no weight in any row (its score is -inf before the
/// softmax, on the dense and the sparse path alike, so the output equals attention over the
/// real keys only). A row whose keys are all padded (or all padded or causally masked)
/// outputs zeros and has log-sum-exp -inf. Stage 1 never selects a key block whose keys are
/// all padded; a partly padded block is pooled over all its rows (padding included: it only
/// moves that block's predicted score, never the attention itself, which masks the padding).
/// Used by the one-shot calls and ``SpargePlan``; the K mean of smoothing includes the
/// padding, which leaves the softmax unchanged.
public struct KeyPaddingMask: Sendable, Hashable {
    /// Batch entries (`B`).
    public let batch: Int
    /// Keys per batch entry (`Nk`).
    public let keyLength: Int
    /// `B * Nk` bytes, 1 for a real key, 0 for padding.
    let bytes: [UInt8]

    /// A mask from `B * Nk` booleans in `B,Nk` order (`true` = a real key to attend).
    public init(batch: Int, keyLength: Int, valid: [Bool]) throws {
        try Self.checkSize(batch: batch, keyLength: keyLength)
        guard valid.count == batch * keyLength else {
            throw SpargeError.invalidParameter("a key padding mask needs batch * keyLength = \(batch * keyLength) booleans, got \(valid.count)")
        }
        self.batch = batch
        self.keyLength = keyLength
        bytes = valid.map { $0 ? 1 : 0 }
    }

    /// Right padding: batch entry `b` has `validLengths[b]` real keys, then padding up to `keyLength`.
    public init(validLengths: [Int], keyLength: Int) throws {
        try Self.checkSize(batch: validLengths.count, keyLength: keyLength)
        if let bad = validLengths.first(where: { $0 < 0 || $0 > keyLength }) {
            throw SpargeError.invalidParameter("a valid length of \(bad) keys; each must be in 0...\(keyLength)")
        }
        try self.init(batch: validLengths.count, keyLength: keyLength,
                      valid: validLengths.flatMap { n in (0..<keyLength).map { $0 < n } })
    }

    /// Both sizes positive and `B * Nk` bytes addressable (as ``AttentionShape/validate()``
    /// bounds a call), before anything is allocated.
    static func checkSize(batch: Int, keyLength: Int) throws {
        guard batch > 0, keyLength > 0 else {
            throw SpargeError.invalidParameter("a key padding mask of \(batch) x \(keyLength); both must be positive")
        }
        guard addressableProduct(batch, keyLength) != nil else {
            throw SpargeError.invalidParameter("a key padding mask of \(batch) x \(keyLength) is too large to address")
        }
    }

    /// Whether key `j` of batch entry `b` is a real key.
    public subscript(b: Int, j: Int) -> Bool { bytes[b * keyLength + j] != 0 }

    /// Throws unless the mask is `shape.batch x shape.keyLength`.
    func validate(for shape: AttentionShape) throws {
        if batch != shape.batch || keyLength != shape.keyLength {
            throw SpargeError.invalidParameter("the key padding mask is \(batch) x \(keyLength) but the call has batch \(shape.batch) and \(shape.keyLength) keys; make it B x Nk")
        }
    }
}

/// Runs `body` with the mask's bytes (nil without a mask); no allocation.
func withKeyValid<R>(_ mask: KeyPaddingMask?, _ body: (UnsafePointer<UInt8>?) throws -> R) rethrows -> R {
    guard let mask else { return try body(nil) }
    return try mask.bytes.withUnsafeBufferPointer { try body($0.baseAddress) }
}
