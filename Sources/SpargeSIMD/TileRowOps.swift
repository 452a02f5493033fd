// Row-wise work on a whole score tile, for the online softmax: the row maxima, the
// exponentials with their row sums, and the rescaling of accumulator rows. One call per tile
// (not per row), so that a kernel set chosen at run time costs one indirect call per tile.
// Row lengths are multiples of 8; a 16-lane set finishes a row with one 8-lane step.

extension KernelSet {
    /// `maxima[r] = max_c x[r][c]` over `columns` columns of `rows` rows (-inf for a row of
    /// -inf; NaN entries are ignored).
    @inline(never)
    public static func rowMaxima(
        _ x: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int, into maxima: UnsafeMutablePointer<Float>
    ) {
        let n = FloatV.scalarCount
        for r in 0..<rows {
            let row = x + r * stride
            var m = FloatV(repeating: -.infinity)
            var c = 0
            while c + n <= columns { m = maximum(m, load(row + c)); c += n }
            var best = horizontalMax(m)
            if c < columns { best = Swift.max(best, horizontalMax(load8(row + c))) }
            maxima[r] = best
        }
    }

    /// Replaces `x[r][c]` by `2^(x[r][c] - shifts[r])` for `columns` columns of `rows` rows and
    /// writes each row's sum to `sums[r]`. A shift of +inf gives a row of zeros; so does every
    /// exponent below ``probabilityFlushExponent``.
    @inline(never)
    public static func exponentiateRows(
        _ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
        shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>
    ) {
        let n = FloatV.scalarCount
        for r in 0..<rows {
            let row = x + r * stride
            let s = FloatV(repeating: shifts[r])
            var acc = FloatV()
            var c = 0
            while c + n <= columns {
                let e = exp2(load(row + c) - s, flushBelow: probabilityFlushExponent)
                store(e, row + c)
                acc += e
                c += n
            }
            var total = horizontalSum(acc)
            if c < columns {
                let e = exp2(load8(row + c) - Float8(repeating: shifts[r]), flushBelow: probabilityFlushExponent)
                store(e, row + c)
                total += horizontalSum(e)
            }
            sums[r] = total
        }
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
