/// The sizes of one attention call: `batch` x `heads` query heads of `queryLength` tokens
/// attending to `kvHeads` key/value heads of `keyLength` tokens, each of `headDim` channels.
///
/// Tensors are dense `B,H,N,D` ("HND") arrays of fp32 unless an API says otherwise:
/// `q` is `batch x heads x queryLength x headDim`, `k` and `v` are
/// `batch x kvHeads x keyLength x headDim`, the output has the shape of `q`.
/// With `kvHeads < heads` (grouped-query attention), query head `h` uses key/value head
/// `h / (heads / kvHeads)`.
public struct AttentionShape: Sendable, Hashable, CustomStringConvertible {
    /// Independent sequences of the call (`B`).
    public var batch: Int
    /// Query heads (`H`).
    public var heads: Int
    /// Key/value heads (`Hkv`, a divisor of `heads`).
    public var kvHeads: Int
    /// Query tokens per head (`Nq`).
    public var queryLength: Int
    /// Key/value tokens per head (`Nk`).
    public var keyLength: Int
    /// Channels per head (`D`, 1...256).
    public var headDim: Int

    /// Creates a shape; `kvHeads` defaults to `heads`, `keyLength` to `queryLength`.
    public init(batch: Int = 1, heads: Int, kvHeads: Int? = nil, queryLength: Int, keyLength: Int? = nil, headDim: Int) {
        self.batch = batch
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.queryLength = queryLength
        self.keyLength = keyLength ?? queryLength
        self.headDim = headDim
    }

    /// Elements of `q` (and of the output).
    public var queryElements: Int { batch * heads * queryLength * headDim }
    /// Elements of `k` (and of `v`).
    public var keyElements: Int { batch * kvHeads * keyLength * headDim }
    /// Query heads per key/value head.
    public var groupSize: Int { heads / kvHeads }

    /// Floating-point operations of exact attention (2 for Q.K^T, 2 for P.V per multiply-add),
    /// halved for causal attention with equal lengths.
    public func denseFlops(causal: Bool) -> Double {
        let full = 4.0 * Double(batch * heads) * Double(queryLength) * Double(keyLength) * Double(headDim)
        return causal ? full / 2 : full
    }

    /// The sizes as `B=.. H=.. [Hkv=..] Nq=.. Nk=.. D=..`.
    public var description: String {
        "B=\(batch) H=\(heads)\(kvHeads != heads ? " Hkv=\(kvHeads)" : "") Nq=\(queryLength) Nk=\(keyLength) D=\(headDim)"
    }

    /// Throws ``SpargeError/invalidShape(_:)`` unless every size is usable, and
    /// ``SpargeError/unsupportedKernelLevel(requested:supported:source:)`` when `SPARGE_ISA`
    /// names a CPU kernel level this build or processor cannot run (every entry point
    /// validates its shape first, so a bad level is reported before anything runs).
    public func validate() throws {
        _ = try SpargeCPU.currentLevel()
        func fail(_ s: String) throws -> Never { throw SpargeError.invalidShape(s) }
        if batch < 1 { try fail("batch is \(batch); it must be at least 1") }
        if heads < 1 { try fail("heads is \(heads); it must be at least 1") }
        if kvHeads < 1 { try fail("kvHeads is \(kvHeads); it must be at least 1") }
        if heads % kvHeads != 0 {
            try fail("kvHeads (\(kvHeads)) must divide heads (\(heads)) for grouped-query attention; repeat the K/V heads or pick a divisor")
        }
        if queryLength < 1 { try fail("queryLength is \(queryLength); it must be at least 1") }
        if keyLength < 1 { try fail("keyLength is \(keyLength); it must be at least 1") }
        if headDim < 1 || headDim > 256 {
            try fail("headDim is \(headDim); supported head dimensions are 1...256 (split larger heads)")
        }
        if addressableProduct(batch, Swift.max(heads, kvHeads), Swift.max(queryLength, keyLength), headDim) == nil {
            try fail("\(self) is too large to address")
        }
    }
}
