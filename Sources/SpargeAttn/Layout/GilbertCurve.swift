/// The raster indices (`(t * height + y) * width + x`) of a `frames x height x width` grid in
/// the order of the generalized Hilbert curve (see ``TokenOrder/hilbert(frames:height:width:prefix:)``).
/// The sizes are validated by the caller (each at least 1, the product at most `Int32.max`).
func hilbertCurve(frames: Int, height: Int, width: Int) -> [Int32] {
    Gilbert.curve(sizes: SIMD3(width, height, frames), strides: SIMD3(1, width, height * width))
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
