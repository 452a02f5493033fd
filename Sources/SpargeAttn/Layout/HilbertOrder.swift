/// The Hilbert-curve token order of an image or video grid, without a prefix, over raw
/// pointers without lengths.
///
/// Deprecated: ``TokenOrder`` replaces it. ``TokenOrder/hilbert(frames:height:width:prefix:)``
/// is the same curve (with a prefix of unordered tokens such as CLS), every entry point takes
/// it as `tokenOrder:` (any element type, ``SpargePlan`` included), and
/// ``TokenOrder/permute(_:into:rowWidth:)`` moves rows between buffers with lengths, checked.
@available(*, deprecated, message: "use TokenOrder.hilbert(frames:height:width:prefix:) and pass it as tokenOrder: to the attention call or plan")
public struct HilbertOrder: Sendable, Hashable {
    /// Frames `T` of the grid (1 for an image).
    public let frames: Int
    /// Rows `H` of a frame.
    public let height: Int
    /// Columns `W` of a frame.
    public let width: Int
    /// Position `p` of the Hilbert order holds raster token `permutation[p]`
    /// (raster index `(t * H + y) * W + x`).
    public let permutation: [Int32]
    /// Raster token `r` sits at Hilbert position `inverse[r]`.
    public let inverse: [Int32]

    /// Tokens `N = T * H * W`.
    public var count: Int { permutation.count }

    /// The order of an image grid. Throws ``SpargeError/invalidShape(_:)`` unless both sizes
    /// are at least 1 and the grid has at most `Int32.max` tokens.
    public init(height: Int, width: Int) throws {
        try self.init(frames: 1, height: height, width: width)
    }

    /// The order of a video grid (raster order `t`, `y`, `x`). Throws
    /// ``SpargeError/invalidShape(_:)`` unless every size is at least 1 and the grid has at
    /// most `Int32.max` tokens.
    public init(frames: Int, height: Int, width: Int) throws {
        guard frames >= 1, height >= 1, width >= 1 else {
            throw SpargeError.invalidShape("Hilbert grid is \(frames)x\(height)x\(width); every size must be at least 1")
        }
        let (plane, o1) = height.multipliedReportingOverflow(by: width)
        let (n, o2) = plane.multipliedReportingOverflow(by: frames)
        guard !o1, !o2, n <= Int(Int32.max) else {
            throw SpargeError.invalidShape("Hilbert grid \(frames)x\(height)x\(width) has more than \(Int32.max) tokens")
        }
        self.frames = frames
        self.height = height
        self.width = width
        permutation = hilbertCurve(frames: frames, height: height, width: width)
        var inv = [Int32](repeating: 0, count: n)
        for (p, r) in permutation.enumerated() { inv[Int(r)] = Int32(p) }
        inverse = inv
    }

    /// The same order as a ``TokenOrder`` (what every entry point takes).
    public var tokenOrder: TokenOrder {
        // The grid was validated when this order was made.
        try! TokenOrder.hilbert(frames: frames, height: height, width: width)
    }

    /// Throws ``SpargeError/invalidShape(_:)`` unless `tokens` equals ``count``.
    public func validate(tokens: Int) throws {
        guard tokens == count else {
            throw SpargeError.invalidShape("the Hilbert grid \(frames)x\(height)x\(width) has \(count) tokens but the sequence has \(tokens); make frames x height x width equal the sequence length")
        }
    }

    /// The grid coordinates `(t, y, x)` of raster token `r`.
    public func coordinates(ofRasterToken r: Int) -> (t: Int, y: Int, x: Int) {
        (r / (height * width), r / width % height, r % width)
    }

    // MARK: - Permuting B,H,N,D buffers

    /// Gathers the rows of `x` (`batchHeads` heads of ``count`` rows of `d` floats) into
    /// Hilbert order in `y`: row `p` of each head of `y` is row `permutation[p]` of `x`.
    /// `x` and `y` must not overlap (use ``permute(_:batchHeads:d:)`` in place).
    public func permute(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, batchHeads: Int, d: Int) {
        Self.gather(x, into: y, rows: permutation, batchHeads: batchHeads, d: d)
    }

    /// The inverse of ``permute(_:into:batchHeads:d:)``: puts rows in Hilbert order (an
    /// attention output) back into raster order. `x` and `y` must not overlap.
    public func unpermute(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, batchHeads: Int, d: Int) {
        Self.gather(x, into: y, rows: inverse, batchHeads: batchHeads, d: d)
    }

    /// ``permute(_:into:batchHeads:d:)`` in place (one head of scratch memory).
    public func permute(_ x: UnsafeMutablePointer<Float>, batchHeads: Int, d: Int) {
        Self.gatherInPlace(x, rows: permutation, batchHeads: batchHeads, d: d)
    }

    /// ``unpermute(_:into:batchHeads:d:)`` in place (one head of scratch memory).
    public func unpermute(_ x: UnsafeMutablePointer<Float>, batchHeads: Int, d: Int) {
        Self.gatherInPlace(x, rows: inverse, batchHeads: batchHeads, d: d)
    }

    /// `x` (`batchHeads x count x d`) in Hilbert order.
    public func permuted(_ x: [Float], batchHeads: Int, d: Int) -> [Float] {
        Self.gathered(x, rows: permutation, batchHeads: batchHeads, d: d)
    }

    /// `x` (`batchHeads x count x d`, Hilbert order) back in raster order.
    public func unpermuted(_ x: [Float], batchHeads: Int, d: Int) -> [Float] {
        Self.gathered(x, rows: inverse, batchHeads: batchHeads, d: d)
    }

    /// `y[h][i] = x[h][rows[i]]` for every head `h`.
    private static func gather(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               rows: [Int32], batchHeads: Int, d: Int) {
        precondition(batchHeads >= 0 && d >= 0, "batchHeads and d must be non-negative")
        let n = rows.count
        rows.withUnsafeBufferPointer { rows in
            for h in 0..<batchHeads {
                let src = x + h * n * d, dst = y + h * n * d
                for i in 0..<n { (dst + i * d).update(from: src + Int(rows[i]) * d, count: d) }
            }
        }
    }

    private static func gatherInPlace(_ x: UnsafeMutablePointer<Float>, rows: [Int32], batchHeads: Int, d: Int) {
        let n = rows.count * d
        guard n > 0, batchHeads > 0 else { return }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { scratch.deallocate() }
        for h in 0..<batchHeads {
            scratch.update(from: x + h * n, count: n)
            gather(scratch, into: x + h * n, rows: rows, batchHeads: 1, d: d)
        }
    }

    private static func gathered(_ x: [Float], rows: [Int32], batchHeads: Int, d: Int) -> [Float] {
        precondition(batchHeads >= 0 && d >= 0 && x.count == batchHeads * rows.count * d,
                     "the array holds \(x.count) floats but batchHeads x count x d = \(batchHeads) x \(rows.count) x \(d)")
        guard !x.isEmpty else { return [] }
        return [Float](unsafeUninitializedCapacity: x.count) { y, initialized in
            x.withUnsafeBufferPointer { gather($0.baseAddress!, into: y.baseAddress!, rows: rows, batchHeads: batchHeads, d: d) }
            initialized = x.count
        }
    }
}

