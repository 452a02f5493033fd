/// A block map `M[b][h][i][j]`: whether query block `i` of head `h` attends to key block `j`.
///
/// Stored as bytes (0 or 1) in `B,H,nq,nk` order, the layout of the GPU code's `mask`
/// tensors, so a map read from a file can be used as is.
public struct BlockMap: Sendable, Hashable {
    /// Batch entries (`B`).
    public let batch: Int
    /// Query heads (`H`).
    public let heads: Int
    /// Query blocks per head (`nq = ceil(Nq / blockQ)`).
    public let queryBlocks: Int
    /// Key blocks per head (`nk = ceil(Nk / blockK)`).
    public let keyBlocks: Int
    /// `batch * heads * queryBlocks * keyBlocks` bytes, 0 or 1.
    public var bits: [UInt8]

    /// An all-zero map. Throws ``SpargeError/invalidBlockMap(_:)`` unless every dimension is
    /// positive and their product is addressable.
    public init(batch: Int, heads: Int, queryBlocks: Int, keyBlocks: Int) throws {
        let count = try Self.entryCount(batch, heads, queryBlocks, keyBlocks)
        self.batch = batch
        self.heads = heads
        self.queryBlocks = queryBlocks
        self.keyBlocks = keyBlocks
        bits = [UInt8](repeating: 0, count: count)
    }

    /// Wraps existing bytes (any non-zero byte counts as 1).
    public init(batch: Int, heads: Int, queryBlocks: Int, keyBlocks: Int, bits: [UInt8]) throws {
        guard bits.count == (try Self.entryCount(batch, heads, queryBlocks, keyBlocks)) else {
            throw SpargeError.invalidBlockMap("\(bits.count) entries for \(batch)x\(heads)x\(queryBlocks)x\(keyBlocks); give B*H*nq*nk bytes")
        }
        self.batch = batch
        self.heads = heads
        self.queryBlocks = queryBlocks
        self.keyBlocks = keyBlocks
        self.bits = bits.map { $0 != 0 ? 1 : 0 }
    }

    /// A map with every block marked.
    public static func full(batch: Int, heads: Int, queryBlocks: Int, keyBlocks: Int) throws -> BlockMap {
        var m = try BlockMap(batch: batch, heads: heads, queryBlocks: queryBlocks, keyBlocks: keyBlocks)
        for i in m.bits.indices { m.bits[i] = 1 }
        return m
    }

    /// Throws unless `batch` and `head` index this map (the text and picture renderers take
    /// them from users).
    public func checkEntry(batch b: Int, head h: Int) throws {
        guard (0..<batch).contains(b), (0..<heads).contains(h) else {
            throw SpargeError.invalidBlockMap("batch \(b), head \(h) is outside this \(batch)x\(heads)x\(queryBlocks)x\(keyBlocks) map")
        }
    }

    /// `B * H * nq * nk`, checked before anything is allocated.
    static func entryCount(_ batch: Int, _ heads: Int, _ queryBlocks: Int, _ keyBlocks: Int) throws -> Int {
        let dims = "\(batch)x\(heads)x\(queryBlocks)x\(keyBlocks)"
        guard batch > 0, heads > 0, queryBlocks > 0, keyBlocks > 0 else {
            throw SpargeError.invalidBlockMap("dimensions \(dims) must all be positive")
        }
        guard let count = addressableProduct(batch, heads, queryBlocks, keyBlocks) else {
            throw SpargeError.invalidBlockMap("dimensions \(dims) are too large to address")
        }
        return count
    }

    @inline(__always)
    func offset(_ b: Int, _ h: Int, _ i: Int) -> Int { ((b * heads + h) * queryBlocks + i) * keyBlocks }

    /// Whether block (i, j) of head h in batch b is marked.
    public subscript(b: Int, h: Int, i: Int, j: Int) -> Bool {
        get { bits[offset(b, h, i) + j] != 0 }
        set { bits[offset(b, h, i) + j] = newValue ? 1 : 0 }
    }

    /// Fraction of marked blocks over all blocks (the GPU code's density for non-causal maps;
    /// ``SparseStatistics/density`` counts over the blocks a causal mask or padding allows).
    public var density: Double {
        Double(bits.reduce(0) { $0 + Int($1) }) / Double(bits.count)
    }

    /// Fraction of marked blocks of head `h` over all its blocks (over the batch). A map does
    /// not know which blocks a causal mask or key padding excludes; a call's
    /// ``SparseAttentionResult/densityPerHead`` counts over the allowed blocks (``SparseStatistics``).
    public func density(head h: Int) -> Double {
        var marked = 0
        for b in 0..<batch {
            let o = offset(b, h, 0)
            for t in 0..<(queryBlocks * keyBlocks) { marked += Int(bits[o + t]) }
        }
        return Double(marked) / Double(batch * queryBlocks * keyBlocks)
    }

    /// Text picture of one head's map: `#` marked, `.` skipped; one line per query block.
    /// Throws ``SpargeError/invalidBlockMap(_:)`` when `batch` or `head` is out of range.
    public func render(batch b: Int = 0, head h: Int) throws -> String {
        try checkEntry(batch: b, head: h)
        var s = ""
        for i in 0..<queryBlocks {
            for j in 0..<keyBlocks { s.append(self[b, h, i, j] ? "#" : ".") }
            s.append("\n")
        }
        return s
    }

    /// Throws unless this map fits `shape` with the given block sizes.
    public func validate(for shape: AttentionShape, blockQ: Int, blockK: Int) throws {
        let (nq, nk) = shape.blockCounts(blockQ: blockQ, blockK: blockK)
        if batch != shape.batch || heads != shape.heads || queryBlocks != nq || keyBlocks != nk {
            throw SpargeError.invalidBlockMap(
                "map is \(batch)x\(heads)x\(queryBlocks)x\(keyBlocks) but \(shape) with blocks \(blockQ)x\(blockK) needs \(shape.batch)x\(shape.heads)x\(nq)x\(nk); use the same block sizes the map was made with")
        }
    }
}
