/// The order in which attention visits a sequence's tokens: the caller's own order (identity),
/// an explicit permutation, or a Hilbert curve over an image or video grid, with an optional
/// prefix of unordered leading tokens (a CLS token, register tokens) that stay first.
///
/// The order decides only which tokens share a block. Attention without a causal mask is
/// equivariant to a common permutation of Q, K and V, so visiting the tokens in another order
/// changes the block structure (and so the sparsity stage 1 finds) but not what is computed.
/// Along a Hilbert curve consecutive tokens are grid neighbours, so a block of them is a
/// compact patch of the image or video instead of a thin strip of rows.
///
/// Every entry point takes a token order (``SpargePlan/init(shape:parameters:tokenOrder:threads:)``,
/// ``SpargeAttention/sparse(q:k:v:output:shape:parameters:tokenOrder:blockMap:threads:captureQuantized:lse:keyPadding:attentionMask:)``,
/// ``SpargeAttention/dense(q:k:v:output:shape:tokenOrder:causal:causalAlignment:slidingWindow:sinkLogits:softmaxScale:nonFinitePolicy:threads:lse:keyPadding:attentionMask:)``
/// and their array forms). The caller passes and receives tensors in its own order: Q, K and V
/// are gathered into token order, attended, and the output (and the log-sum-exp) scattered
/// back. What describes blocks is in token order: the returned ``BlockMap``, a caller-supplied
/// map, and the INT8 tensors of ``QuantizedTensors``.
///
/// Position `p` of the token order holds the caller's token ``permutation``[`p`]:
///
/// ```swift
/// // A ViT: one CLS token, then a 37 x 37 grid of patches in raster order (N = 1,370).
/// let order = try TokenOrder.hilbert(height: 37, width: 37, prefix: 1)
/// order.count              // 1370
/// order.permutation[0]     // 0: the CLS token stays first
/// ```
///
/// A non-identity order and a causal mask exclude each other (a permutation would change which
/// keys each query may see); ``SpargeKVCache`` decodes in cache order, where no token order applies.
public struct TokenOrder: Sendable, Hashable, CustomStringConvertible {
    /// How an order was made.
    public enum Kind: Sendable, Hashable {
        /// The caller's own (raster) order.
        case identity
        /// An explicit permutation (``TokenOrder/init(permutation:prefix:)``).
        case permutation
        /// A Hilbert curve over a `frames x height x width` grid (frames 1 for an image).
        case hilbert(frames: Int, height: Int, width: Int)
    }

    /// How the order was made.
    public let kind: Kind
    /// Leading tokens that keep their places before the ordered ones (0 when none).
    public let prefix: Int
    /// Tokens of the sequence (`prefix` plus the ordered ones); a call's `queryLength` and
    /// `keyLength` must equal it.
    public let count: Int
    /// Position to caller token, empty when the order is the identity.
    let forward: [Int32]
    /// Caller token to position, empty when the order is the identity.
    let backward: [Int32]

    /// Whether every token keeps its place (such an order costs nothing, and is allowed with
    /// a causal mask).
    public var isIdentity: Bool { forward.isEmpty }

    /// Position `p` holds the caller's token `permutation[p]` (the tokens of the prefix map to
    /// themselves). Built on each use; the entry points read the order's own storage.
    public var permutation: [Int32] { isIdentity ? Array(0..<Int32(count)) : forward }

    /// The caller's token `t` sits at position `inverse[t]` (the inverse of ``permutation``).
    public var inverse: [Int32] { isIdentity ? Array(0..<Int32(count)) : backward }

    /// A short description: `identity (N = 36)`, `hilbert 5x7 + prefix 1 (N = 36)`.
    public var description: String {
        let prefixText = prefix > 0 ? " + prefix \(prefix)" : ""
        switch kind {
        case .identity: return "identity (N = \(count))"
        case .permutation: return "permutation\(prefixText) (N = \(count))"
        case .hilbert(let t, let h, let w): return "hilbert \(t > 1 ? "\(t)x" : "")\(h)x\(w)\(prefixText) (N = \(count))"
        }
    }

    private init(kind: Kind, prefix: Int, count: Int, ordered: [Int32]) {
        self.kind = kind
        self.prefix = prefix
        self.count = count
        // `ordered` permutes the tokens after the prefix; the identity is stored as nothing.
        if ordered.enumerated().allSatisfy({ Int($1) == $0 }) {
            forward = []
            backward = []
        } else {
            var f = [Int32](repeating: 0, count: count), b = [Int32](repeating: 0, count: count)
            for t in 0..<prefix { f[t] = Int32(t); b[t] = Int32(t) }
            for (p, t) in ordered.enumerated() {
                f[prefix + p] = Int32(prefix) + t
                b[prefix + Int(t)] = Int32(prefix + p)
            }
            forward = f
            backward = b
        }
    }

    /// The caller's own order over `count` tokens. Throws ``SpargeError/invalidTokenOrder(_:)``
    /// unless `count` is in `1...Int32.max`.
    public static func identity(count: Int) throws -> TokenOrder {
        try checkCount(count, of: "an identity order")
        return TokenOrder(kind: .identity, prefix: 0, count: count, ordered: [])
    }

    /// An explicit order: after the first `prefix` tokens (which keep their places), position
    /// `prefix + p` holds the caller's token `prefix + permutation[p]`; ``count`` is
    /// `prefix + permutation.count`.
    ///
    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless `permutation` holds every index of
    /// `0..<permutation.count` exactly once and `prefix >= 0`; the message names the first
    /// index out of range, repeated or missing.
    public init<Index: BinaryInteger>(permutation: [Index], prefix: Int = 0) throws {
        let n = permutation.count
        guard prefix >= 0 else {
            throw SpargeError.invalidTokenOrder("prefix is \(prefix); give the number of leading tokens that keep their places (0 or more)")
        }
        let (total, overflow) = prefix.addingReportingOverflow(n)
        guard !overflow else {
            throw SpargeError.invalidTokenOrder("prefix \(prefix) plus \(n) permuted tokens is too many to address")
        }
        try Self.checkCount(total, of: "a permutation with prefix \(prefix)")
        var seenAt = [Int32](repeating: -1, count: n)
        var ordered = [Int32](repeating: 0, count: n)
        for (p, entry) in permutation.enumerated() {
            guard entry >= 0, entry < n else {
                throw SpargeError.invalidTokenOrder(
                    "permutation[\(p)] is \(entry), outside 0..<\(n); a permutation of \(n) tokens holds each of 0..<\(n) exactly once (the tokens after the prefix, counted from 0)")
            }
            let t = Int(entry)
            if seenAt[t] >= 0 {
                // Error path only: find a token that never appears, to name it.
                let present = Set(permutation.compactMap { $0 >= 0 && $0 < n ? Int($0) : nil })
                let missing = (0..<n).first { !present.contains($0) }.map { ", and \($0) is missing" } ?? ""
                throw SpargeError.invalidTokenOrder(
                    "permutation[\(p)] repeats token \(t) (already at position \(seenAt[t]))\(missing); give each of 0..<\(n) exactly once")
            }
            seenAt[t] = Int32(p)
            ordered[p] = Int32(t)
        }
        self.init(kind: .permutation, prefix: prefix, count: prefix + n, ordered: ordered)
    }

    /// The Hilbert order of an image grid of `height x width` tokens in raster order (row by
    /// row), after `prefix` unordered leading tokens: ``count`` is `prefix + height * width`.
    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless both sizes are at least 1, `prefix`
    /// is at least 0 and the sequence has at most `Int32.max` tokens.
    public static func hilbert(height: Int, width: Int, prefix: Int = 0) throws -> TokenOrder {
        try hilbert(frames: 1, height: height, width: width, prefix: prefix)
    }

    /// The Hilbert order of a video grid of `frames x height x width` tokens in raster order
    /// (`t`, then `y`, then `x`), after `prefix` unordered leading tokens: ``count`` is
    /// `prefix + frames * height * width`.
    ///
    /// Any sizes work, not only powers of two: the curve is the "gilbert" generalized Hilbert
    /// curve (Jakub Červený, 2018), the classical Hilbert curve on power-of-two squares and
    /// cubes, and elsewhere almost every step a unit step (a diagonal step is needed only for
    /// some odd sizes). Axes of size 1 are dropped, so `1 x H x W` is the 2-D curve of `H x W`.
    ///
    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless every size is at least 1, `prefix`
    /// is at least 0 and the sequence has at most `Int32.max` tokens.
    public static func hilbert(frames: Int, height: Int, width: Int, prefix: Int = 0) throws -> TokenOrder {
        let grid = "\(frames)x\(height)x\(width)"
        guard frames >= 1, height >= 1, width >= 1 else {
            throw SpargeError.invalidTokenOrder("the Hilbert grid is \(grid); every size must be at least 1")
        }
        guard prefix >= 0 else {
            throw SpargeError.invalidTokenOrder("prefix is \(prefix); give the number of leading tokens that keep their places (0 or more)")
        }
        let (plane, o1) = height.multipliedReportingOverflow(by: width)
        let (cells, o2) = plane.multipliedReportingOverflow(by: frames)
        let (n, o3) = cells.addingReportingOverflow(prefix)
        guard !o1, !o2, !o3, n <= Int(Int32.max) else {
            throw SpargeError.invalidTokenOrder("the Hilbert grid \(grid) with prefix \(prefix) has more than \(Int32.max) tokens")
        }
        return TokenOrder(kind: .hilbert(frames: frames, height: height, width: width), prefix: prefix, count: n,
                          ordered: hilbertCurve(frames: frames, height: height, width: width))
    }

    private static func checkCount(_ n: Int, of what: String) throws {
        guard n >= 1, n <= Int(Int32.max) else {
            throw SpargeError.invalidTokenOrder("\(what) of \(n) tokens; a token order covers 1...\(Int32.max) tokens")
        }
    }

    /// Throws ``SpargeError/invalidTokenOrder(_:)`` unless the order fits a call of `shape`
    /// (`queryLength == keyLength == count`: the queries and the keys are the same tokens) and,
    /// when `causal`, is the identity (a causal mask is defined on the caller's order).
    public func validate(for shape: AttentionShape, causal: Bool = false) throws {
        guard shape.queryLength == count && shape.keyLength == count else {
            throw SpargeError.invalidTokenOrder(
                "the token order \(self) covers \(count) tokens but the call has queryLength \(shape.queryLength) and keyLength \(shape.keyLength); "
                + "a token order needs self-attention over exactly its tokens (for a grid: prefix + frames x height x width = N)")
        }
        if causal && !isIdentity {
            throw SpargeError.invalidTokenOrder(
                "the token order \(self) reorders the tokens, but causal attention is defined on the caller's order (a permutation would change which keys each query sees); turn causal off (image and video tokens attend both ways) or use the identity order")
        }
    }
}
