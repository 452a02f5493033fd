// Row-wise work on a whole score tile, for the online softmax: the row maxima, the
// exponentials with their row sums, and the rescaling of accumulator rows. One call per tile
// (not per row), so that a kernel set chosen at run time costs one indirect call per tile.
// Row lengths are multiples of 8; a 16-lane set finishes a row with one 8-lane step.
// Per-row results (maxima, sums) are gathered for a group of as many rows as a vector has
// lanes and reduced together (``reduceRowGroup(_:maxima:)``): a horizontal reduction per row
// costs about as much as exponentiating a 64-wide row.

extension KernelSet {
    /// `maxima[r] = max_c x[r][c]` over `columns` columns of `rows` rows (-inf for a row of
    /// -inf; NaN entries are ignored).
    @inline(never)
    public static func rowMaxima(
        _ x: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int, into maxima: UnsafeMutablePointer<Float>
    ) {
        let g = FloatV.scalarCount
        var r = 0
        withUnsafeTemporaryAllocation(of: FloatV.self, capacity: g) { group in
            let vectors = group.baseAddress!
            while r + g <= rows {
                for i in 0..<g { vectors[i] = rowMaximumVector(x + (r + i) * stride, columns: columns) }
                reduceRowGroup(vectors, maxima: true)
                store(vectors[0], maxima + r)
                r += g
            }
        }
        while r < rows {
            maxima[r] = horizontalMax(rowMaximumVector(x + r * stride, columns: columns))
            r += 1
        }
    }

    /// Lane-wise maxima of one row's vectors (an 8-lane tail fills the high lanes with -inf).
    @inline(__always)
    static func rowMaximumVector(_ row: UnsafePointer<Float>, columns: Int) -> FloatV {
        let n = FloatV.scalarCount
        var m = FloatV(repeating: -.infinity)
        var c = 0
        while c + n <= columns { m = maximum(m, load(row + c)); c += n }
        if c < columns { m = maximum(m, widen(load8(row + c), filling: -.infinity)) }
        return m
    }

    /// Replaces `x[r][c]` by `2^(x[r][c] - shifts[r])` for `columns` columns of `rows` rows and
    /// writes each row's sum to `sums[r]`. A shift of +inf gives a row of zeros; so does every
    /// exponent below ``probabilityFlushExponent``.
    @inline(never)
    public static func exponentiateRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
        shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>
    ) {
        let g = FloatV.scalarCount
        var r = 0
        withUnsafeTemporaryAllocation(of: FloatV.self, capacity: g) { group in
            let vectors = group.baseAddress!
            while r + g <= rows {
                for i in 0..<g {
                    vectors[i] = exponentiateRow(x + (r + i) * stride, columns: columns, shift: shifts[r + i], trackMax: false).sum
                }
                reduceRowGroup(vectors, maxima: false)
                store(vectors[0], sums + r)
                r += g
            }
        }
        while r < rows {
            sums[r] = treeSum(exponentiateRow(x + r * stride, columns: columns, shift: shifts[r], trackMax: false).sum)
            r += 1
        }
    }

    /// One row of ``exponentiateRows(_:stride:rows:columns:shifts:sums:)``: `2^(x - shift)` in
    /// place, with the lane-wise sums of the row's vectors and, with `trackMax`, their lane-wise
    /// maxima (else 0). An 8-lane tail adds zeros in the high lanes.
    @inline(__always)
    static func exponentiateRow(
        _ row: UnsafeMutablePointer<Float>, columns: Int, shift: Float, trackMax: Bool
    ) -> (sum: FloatV, max: FloatV) {
        let n = FloatV.scalarCount
        let s = FloatV(repeating: shift)
        var acc = FloatV(), m = FloatV()
        var c = 0
        while c + n <= columns {
            let e = exp2(load(row + c) - s, flushBelow: probabilityFlushExponent)
            store(e, row + c)
            acc += e
            if trackMax { m = maximum(m, e) }
            c += n
        }
        if c < columns {
            let e = exp2(load8(row + c) - Float8(repeating: shift), flushBelow: probabilityFlushExponent)
            store(e, row + c)
            let wide = widen(e, filling: 0)
            acc += wide
            if trackMax { m = maximum(m, wide) }
        }
        return (acc, m)
    }

    /// `x[r][c] *= factors[r]` for `columns` columns of `rows` rows.
    @inline(never)
    public static func scaleRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int, factors: UnsafePointer<Float>
    ) {
        let n = FloatV.scalarCount
        for r in 0..<rows {
            let row = x + r * stride
            let f = FloatV(repeating: factors[r])
            var c = 0
            while c + n <= columns { store(load(row + c) * f, row + c); c += n }
            if c < columns { store(load8(row + c) * Float8(repeating: factors[r]), row + c) }
        }
    }
}
