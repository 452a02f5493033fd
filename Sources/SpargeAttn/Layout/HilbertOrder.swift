/// A token order along a generalized Hilbert curve over an image (`height x width`) or video
/// (`frames x height x width`) grid, the permutation of the SpargeAttn paper.
///
/// Raster order (`t`, then `y`, then `x`) puts tokens that are far apart in the grid (the ends
/// of neighbouring rows) next to each other, so a block of consecutive tokens is a thin strip.
/// Along a Hilbert curve consecutive tokens are grid neighbours, so a block is a compact
/// patch: its queries and keys are more alike (stage 1's self-similarity test passes more
/// often) and its attention is concentrated on fewer key blocks (sparser maps).
///
/// Any sizes work, not only powers of two: the curve is the "gilbert" generalized Hilbert
/// curve (Jakub Červený, 2018), which is the classical Hilbert curve on power-of-two squares
/// and cubes and elsewhere keeps almost every step a unit step (a diagonal step is needed only
/// for some odd sizes). Axes of size 1 are dropped, so `1 x H x W` is the 2-D curve of `H x W`.
///
/// Use: permute Q, K and V (`B,H,N,D`, `N` = ``count``) into Hilbert order, run attention,
/// and unpermute the output. Attention without a causal mask is equivariant to a common
/// permutation of the tokens, so only the block structure (and hence the sparsity) changes.
///
/// ```swift
/// let order = try HilbertOrder(frames: 8, height: 16, width: 32)
/// let bh = shape.batch * shape.heads, d = shape.headDim
/// let (o, _) = try SpargeAttention.sparse(q: order.permuted(q, batchHeads: bh, d: d),
///                                         k: order.permuted(k, batchHeads: bh, d: d),
///                                         v: order.permuted(v, batchHeads: bh, d: d), shape: shape)
/// let out = order.unpermuted(o, batchHeads: bh, d: d)
/// ```
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
        permutation = Gilbert.curve(sizes: SIMD3(width, height, frames), strides: SIMD3(1, width, plane))
        var inv = [Int32](repeating: 0, count: n)
        for (p, r) in permutation.enumerated() { inv[Int(r)] = Int32(p) }
        inverse = inv
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

/// The generalized Hilbert ("gilbert") curve of Jakub Červený, 2-D and 3-D, written with
/// axis-aligned integer vectors: `a` is the major direction of a box (its length is the box's
/// extent along it, its sign the direction of travel), `b` and `c` the others. The curve enters
/// a box at corner `p` and leaves it at the corner `p + a - unit(a)`, so boxes chain up.
private struct Gilbert {
    var out: [Int32]
    let strides: SIMD3<Int>

    /// The raster indices of the cells of a `sizes` box (`x`, `y`, `z`) in curve order, where
    /// the raster index of `p` is `p . strides`.
    static func curve(sizes s: SIMD3<Int>, strides: SIMD3<Int>) -> [Int32] {
        var g = Gilbert(out: [], strides: strides)
        g.out.reserveCapacity(s.x * s.y * s.z)
        let axes = [SIMD3(s.x, 0, 0), SIMD3(0, s.y, 0), SIMD3(0, 0, s.z)]
        // The longest axis leads (first one on ties), the others keep their order, as in the
        // reference; a size-1 axis is dropped (the 2-D curve of the rest is better than a
        // degenerate 3-D one).
        let major = s.x >= s.y && s.x >= s.z ? 0 : (s.y >= s.z ? 1 : 2)
        let rest = (0..<3).filter { $0 != major }
        if s.min() == 1 {
            let minor = rest.max { s[$0] < s[$1] }!   // the larger of the other two
            g.generate2D(.zero, axes[major], axes[minor])
        } else {
            g.generate3D(.zero, axes[major], axes[rest[0]], axes[rest[1]])
        }
        return g.out
    }

    /// Signed extent of an axis-aligned vector, as a non-negative length.
    private static func length(_ v: SIMD3<Int>) -> Int { abs(v.wrappedSum()) }
    /// The unit step along an axis-aligned vector.
    private static func unit(_ v: SIMD3<Int>) -> SIMD3<Int> { SIMD3(v.x.signum(), v.y.signum(), v.z.signum()) }
    /// Half a vector, rounded toward minus infinity (the reference's `//`; arithmetic shift).
    private static func half(_ v: SIMD3<Int>) -> SIMD3<Int> { v &>> 1 }
    /// Half of `v`, made even when `v` is longer than 2, so that both halves of an even extent
    /// stay even: an odd-by-even box cannot be crossed corner to corner by unit steps.
    private static func evenHalf(_ v: SIMD3<Int>) -> SIMD3<Int> {
        let h = half(v)
        return length(h) % 2 == 1 && length(v) > 2 ? h &+ unit(v) : h
    }

    private mutating func line(_ p: SIMD3<Int>, _ v: SIMD3<Int>) {
        let step = Self.unit(v)
        var p = p
        for _ in 0..<Self.length(v) {
            out.append(Int32((p &* strides).wrappedSum()))
            p &+= step
        }
    }

    /// A `|a| x |b|` rectangle: split the long side in two when it is much longer (long case),
    /// else the Hilbert "U": up the first half of `b`, along all of `a`, back down.
    private mutating func generate2D(_ p: SIMD3<Int>, _ a: SIMD3<Int>, _ b: SIMD3<Int>) {
        let w = Self.length(a), h = Self.length(b)
        if h == 1 { return line(p, a) }
        if w == 1 { return line(p, b) }
        let da = Self.unit(a), db = Self.unit(b)
        if 2 * w > 3 * h {
            let a2 = Self.evenHalf(a)
            generate2D(p, a2, b)
            generate2D(p &+ a2, a &- a2, b)
        } else {
            let a2 = Self.half(a), b2 = Self.evenHalf(b)
            generate2D(p, b2, a2)
            generate2D(p &+ b2, a, b &- b2)
            generate2D(p &+ (a &- da) &+ (b2 &- db), .zero &- b2, a2 &- a)
        }
    }

    /// A `|a| x |b| x |c|` box: split only the much longer `a` (wide case), or `a` and one of
    /// `b`, `c` when the other is much shorter (a 2-D "U" extruded along it), else all three
    /// (the 3-D Hilbert cell of five sub-boxes).
    private mutating func generate3D(_ p: SIMD3<Int>, _ a: SIMD3<Int>, _ b: SIMD3<Int>, _ c: SIMD3<Int>) {
        let w = Self.length(a), h = Self.length(b), d = Self.length(c)
        if h == 1 && d == 1 { return line(p, a) }
        if w == 1 && d == 1 { return line(p, b) }
        if w == 1 && h == 1 { return line(p, c) }
        let da = Self.unit(a), db = Self.unit(b), dc = Self.unit(c)
        let a2 = Self.evenHalf(a), b2 = Self.evenHalf(b), c2 = Self.evenHalf(c)
        if 2 * w > 3 * h && 2 * w > 3 * d {
            generate3D(p, a2, b, c)
            generate3D(p &+ a2, a &- a2, b, c)
        } else if 3 * h > 4 * d {   // do not split c
            generate3D(p, b2, c, a2)
            generate3D(p &+ b2, a, b &- b2, c)
            generate3D(p &+ (a &- da) &+ (b2 &- db), .zero &- b2, c, a2 &- a)
        } else if 3 * d > 4 * h {   // do not split b
            generate3D(p, c2, a2, b)
            generate3D(p &+ c2, a, b, c &- c2)
            generate3D(p &+ (a &- da) &+ (c2 &- dc), .zero &- c2, a2 &- a, b)
        } else {
            generate3D(p, b2, c2, a2)
            generate3D(p &+ b2, c, a2, b &- b2)
            generate3D(p &+ (b2 &- db) &+ (c &- dc), a, .zero &- b2, c2 &- c)
            generate3D(p &+ (a &- da) &+ b2 &+ (c &- dc), .zero &- c, a2 &- a, b &- b2)
            generate3D(p &+ (a &- da) &+ (b2 &- db), .zero &- b2, c2, a2 &- a)
        }
    }
}
