// Per-block statistics that every kernel set computes with the same operations in the same
// order, eight lanes at a time and never fused, so that their results are bitwise identical
// whichever set runs them (the sets differ only in how wide the machine does each step).

/// `sums[c] += row[c]` for one row of `d` floats; returns the row's squared L2 norm, summed
/// eight lanes at a time and never fused (the same sums on every CPU).
@inlinable @inline(__always)
public func addRowReturningSquaredNorm(_ row: UnsafePointer<Float>, d: Int, into sums: UnsafeMutablePointer<Float>) -> Float {
    let vectorEnd = d & ~7
    var squares = Float8()
    var c = 0
    while c < vectorEnd {
        let v = load8(row + c)
        store8(load8(sums + c) + v, sums + c)
        squares = multiplyThenAdd(v, v, squares)  // never fused: the same sums on every CPU
        c += 8
    }
    var norm2 = horizontalSum(squares)
    while c < d {
        sums[c] += row[c]
        norm2 += row[c] * row[c]
        c += 1
    }
    return norm2
}

/// For `rows` rows of `d` floats (row stride `d`): `sums[c] += x[r][c]` and
/// `unitSums[c] += x[r][c] / |x[r]|` (each row divided by its L2 norm, not multiplied by
/// the reciprocal). Both outputs accumulate; a zero row adds NaN to `unitSums`.
@inlinable @inline(__always)
public func accumulateRowAndUnitRowSums(
    _ x: UnsafePointer<Float>, rows: Int, d: Int,
    sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
) {
    let vectorEnd = d & ~7
    for r in 0..<rows {
        let row = x + r * d
        let norm = addRowReturningSquaredNorm(row, d: d, into: sums).squareRoot()
        let nv = Float8(repeating: norm)
        var c = 0
        while c < vectorEnd {
            store8(load8(unitSums + c) + load8(row + c) / nv, unitSums + c)
            c += 8
        }
        while c < d { unitSums[c] += row[c] / norm; c += 1 }
    }
}

/// Symmetric INT8 quantization of `count` floats with one scale, as the authors' kernels do:
/// `scale = max|x * premultiplier| / 127 + 1e-7`, then ``quantizeRow``. Returns the scale.
@inlinable @inline(__always)
public func quantizeSymmetric(
    _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
) -> Float {
    // max|x * c| == max|x| * c in fp32 for c > 0 (rounding is monotone), so the scale matches
    // a kernel that multiplies first.
    let amax = absoluteMax(x, count: count) * premultiplier
    let scale = amax / 127 + 1e-7
    quantizeRow(x, count: count, premultiplier: premultiplier, scale: scale, into: out)
    return scale
}

extension KernelSet {
    /// ``accumulateRowAndUnitRowSums(_:rows:d:sums:unitSums:)`` compiled for this set.
    @inline(never)
    public static func blockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, d: Int, sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) {
        accumulateRowAndUnitRowSums(x, rows: rows, d: d, sums: sums, unitSums: unitSums)
    }

    /// ``quantizeSymmetric(_:count:premultiplier:into:)`` compiled for this set.
    @inline(never)
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, into: out)
    }
}

extension ScalarKernels {
    /// The portable statistics (already one operation order for every set).
    public static func blockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, d: Int, sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) {
        accumulateRowAndUnitRowSums(x, rows: rows, d: d, sums: sums, unitSums: unitSums)
    }

    /// The portable quantization (already one operation order for every set).
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, into: out)
    }
}
