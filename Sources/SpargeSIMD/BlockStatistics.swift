// Per-block statistics that every kernel set computes with the same operations in the same
// order, eight lanes at a time and never fused, so that their results are bitwise identical
// whichever set runs them (the sets differ only in how wide the machine does each step).

/// `sums[c] += row[c]` for one row of `d` floats; returns the row's squared L2 norm, summed
/// eight lanes at a time and never fused (the same sums on every CPU).
@inlinable @inline(__always)
public func addRowReturningSquaredNorm(_ row: UnsafePointer<Float>, d: Int, into sums: UnsafeMutablePointer<Float>) -> Float {
    var largest = LargestMagnitude()
    return addRowReturningSquaredNorm(row, d: d, into: sums, largest: &largest)
}

/// ``addRowReturningSquaredNorm(_:d:into:)`` that also raises `largest` to the row's largest |x|.
/// With `mean`, the row is first centred, `row[c] - mean[c]` in fp32, and written to
/// `centered`; the sums, norm and largest |x| are then those of the centred row.
@inlinable @inline(__always)
public func addRowReturningSquaredNorm(_ row: UnsafePointer<Float>, d: Int, into sums: UnsafeMutablePointer<Float>,
                                       largest: inout LargestMagnitude, minus mean: UnsafePointer<Float>? = nil,
                                       centered: UnsafeMutablePointer<Float>? = nil) -> Float {
    let vectorEnd = d & ~7
    var squares = Float8()
    var c = 0
    while c < vectorEnd {
        var v = load8(row + c)
        if let mean, let centered {
            v -= load8(mean + c)
            store8(v, centered + c)
        }
        store8(load8(sums + c) + v, sums + c)
        squares = multiplyThenAdd(v, v, squares)  // never fused: the same sums on every CPU
        largest.lanes = maximum(largest.lanes, v.replacing(with: -v, where: v .< 0))
        c += 8
    }
    var norm2 = horizontalSum(squares)
    while c < d {
        var v = row[c]
        if let mean, let centered {
            v -= mean[c]
            centered[c] = v
        }
        sums[c] += v
        norm2 += v * v
        largest.tail = Swift.max(largest.tail, Swift.abs(v))
        c += 1
    }
    return norm2
}

/// The largest |x| seen so far, NaN ignored: eight lanes for the vector steps, one float for
/// the rest (a maximum is exact in any order, so ``value`` is ``absoluteMax(_:count:)``'s).
public struct LargestMagnitude {
    @usableFromInline var lanes = Float8()
    @usableFromInline var tail: Float = 0
    @inlinable public init() {}
    /// The largest |x| over everything seen.
    @inlinable public var value: Float { Swift.max(horizontalMax(lanes), tail) }
}

/// For `rows` rows of `d` floats (row stride `d`): `sums[c] += x[r][c]` and
/// `unitSums[c] += x[r][c] / |x[r]|` (each row divided by its L2 norm, not multiplied by
/// the reciprocal). Both outputs accumulate; a zero row adds NaN to `unitSums`.
///
/// Returns the largest |x| of the rows (NaN ignored): the value ``absoluteMax(_:count:)``
/// finds over them (a maximum is exact in any order), taken on this pass so that the
/// quantization of the same rows need not read them again for it.
@inlinable @inline(__always) @discardableResult
public func accumulateRowAndUnitRowSums(
    _ x: UnsafePointer<Float>, rows: Int, d: Int,
    sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
) -> Float {
    accumulateRowAndUnitRowSums(x, rows: rows, stride: d, d: d, minus: nil, centered: nil, sums: sums, unitSums: unitSums)
}

/// ``accumulateRowAndUnitRowSums(_:rows:d:sums:unitSums:)`` of the rows `x[r] - mean` (row
/// stride `stride`), which it writes to `centered` (row stride `d`) on the same pass: the
/// sums, unit rows and largest |x| of the centred rows, bit for bit those of centring first
/// (``subtractMeanFromRows(_:rows:stride:d:mean:into:)``) and summing after.
@inlinable @inline(__always) @discardableResult
public func accumulateRowAndUnitRowSums(
    _ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, minus mean: UnsafePointer<Float>?,
    centered: UnsafeMutablePointer<Float>?, sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
) -> Float {
    let vectorEnd = d & ~7
    var largest = LargestMagnitude()
    for r in 0..<rows {
        let out = centered.map { $0 + r * d }
        let norm = addRowReturningSquaredNorm(x + r * stride, d: d, into: sums, largest: &largest, minus: mean,
                                              centered: out).squareRoot()
        let row = out.map { UnsafePointer($0) } ?? x + r * stride
        let nv = Float8(repeating: norm)
        var c = 0
        while c < vectorEnd {
            store8(load8(unitSums + c) + load8(row + c) / nv, unitSums + c)
            c += 8
        }
        while c < d { unitSums[c] += row[c] / norm; c += 1 }
    }
    return largest.value
}

/// Symmetric INT8 quantization of `count` floats with one scale, as the authors' kernels do:
/// `scale = max|x * premultiplier| / 127 + 1e-7`, then ``quantizeRow``. Returns the scale.
@inlinable @inline(__always)
public func quantizeSymmetric(
    _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
) -> Float {
    quantizeSymmetric(x, count: count, premultiplier: premultiplier, largest: absoluteMax(x, count: count), into: out)
}

/// ``quantizeSymmetric(_:count:premultiplier:into:)`` given `largest`, the largest |x| of the
/// `count` floats (NaN ignored), found on an earlier pass over them.
@inlinable @inline(__always)
public func quantizeSymmetric(
    _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, largest: Float, into out: UnsafeMutablePointer<Int8>
) -> Float {
    // max|x * c| == max|x| * c in fp32 for c > 0 (rounding is monotone), so the scale matches
    // a kernel that multiplies first.
    let amax = largest * premultiplier
    let scale = amax / 127 + 1e-7
    quantizeRow(x, count: count, premultiplier: premultiplier, scale: scale, into: out)
    return scale
}

/// `sums[c] += x[r * stride + c]` for `rows` rows of `d` floats, in row order (each column's
/// sum in the same order at every vector width).
@inlinable @inline(__always)
public func sumRowsInOrder(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, into sums: UnsafeMutablePointer<Float>) {
    let vectorEnd = d - d % FloatV.scalarCount
    for r in 0..<rows {
        let row = x + r * stride
        var c = 0
        while c < vectorEnd {
            store(load(sums + c, as: FloatV.self) + load(row + c, as: FloatV.self), sums + c)
            c += FloatV.scalarCount
        }
        while c < d { sums[c] += row[c]; c += 1 }
    }
}

/// `out[r * d + c] = x[r * stride + c] - mean[c]` for `rows` rows of `d` floats.
@inlinable @inline(__always)
public func subtractMeanFromRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
                                into out: UnsafeMutablePointer<Float>) {
    let vectorEnd = d - d % FloatV.scalarCount
    for r in 0..<rows {
        let row = x + r * stride, dst = out + r * d
        var c = 0
        while c < vectorEnd {
            store(load(row + c, as: FloatV.self) - load(mean + c, as: FloatV.self), dst + c)
            c += FloatV.scalarCount
        }
        while c < d { dst[c] = row[c] - mean[c]; c += 1 }
    }
}

extension KernelSet {
    /// ``sumRowsInOrder(_:rows:stride:d:into:)`` compiled for this set.
    @inline(never)
    public static func addRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, into sums: UnsafeMutablePointer<Float>) {
        sumRowsInOrder(x, rows: rows, stride: stride, d: d, into: sums)
    }

    /// ``subtractMeanFromRows(_:rows:stride:d:mean:into:)`` compiled for this set.
    @inline(never)
    public static func subtractFromRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
                                        into out: UnsafeMutablePointer<Float>) {
        subtractMeanFromRows(x, rows: rows, stride: stride, d: d, mean: mean, into: out)
    }

    /// ``accumulateRowAndUnitRowSums(_:rows:d:sums:unitSums:)`` compiled for this set; returns
    /// the rows' largest |x|.
    @inline(never) @discardableResult
    public static func blockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, d: Int, sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) -> Float {
        accumulateRowAndUnitRowSums(x, rows: rows, d: d, sums: sums, unitSums: unitSums)
    }

    /// ``accumulateRowAndUnitRowSums(_:rows:stride:d:minus:centered:sums:unitSums:)`` compiled
    /// for this set: K's mean subtracted from a key block, written to `centered`, and the
    /// centred rows' sums, on one pass; returns their largest |x|.
    @inline(never) @discardableResult
    public static func centeredBlockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>, into centered: UnsafeMutablePointer<Float>,
        sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) -> Float {
        accumulateRowAndUnitRowSums(x, rows: rows, stride: stride, d: d, minus: mean, centered: centered, sums: sums, unitSums: unitSums)
    }

    /// ``quantizeSymmetric(_:count:premultiplier:into:)`` compiled for this set.
    @inline(never)
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, into: out)
    }

    /// ``quantizeSymmetric(_:count:premultiplier:largest:into:)`` compiled for this set.
    @inline(never)
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, largest: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, largest: largest, into: out)
    }
}

extension ScalarKernels {
    /// The portable statistics (already one operation order for every set); returns the rows'
    /// largest |x|.
    @discardableResult
    public static func blockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, d: Int, sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) -> Float {
        accumulateRowAndUnitRowSums(x, rows: rows, d: d, sums: sums, unitSums: unitSums)
    }

    /// The two steps apart: the plain subtraction, then the portable statistics.
    @discardableResult
    public static func centeredBlockRowSums(
        _ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>, into centered: UnsafeMutablePointer<Float>,
        sums: UnsafeMutablePointer<Float>, unitSums: UnsafeMutablePointer<Float>
    ) -> Float {
        subtractFromRows(x, rows: rows, stride: stride, d: d, mean: mean, into: centered)
        return blockRowSums(centered, rows: rows, d: d, sums: sums, unitSums: unitSums)
    }

    /// The portable quantization (already one operation order for every set).
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, into: out)
    }

    /// The portable quantization given the largest |x| (see ``blockRowSums(_:rows:d:sums:unitSums:)``).
    public static func quantizeBlock(
        _ x: UnsafePointer<Float>, count: Int, premultiplier: Float, largest: Float, into out: UnsafeMutablePointer<Int8>
    ) -> Float {
        quantizeSymmetric(x, count: count, premultiplier: premultiplier, largest: largest, into: out)
    }

    /// One row at a time, one element at a time (the plain twin of the set's row sums).
    public static func addRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, into sums: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { for c in 0..<d { sums[c] += x[r * stride + c] } }
    }

    /// One element at a time (the plain twin of the set's mean subtraction).
    public static func subtractFromRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
                                        into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { for c in 0..<d { out[r * d + c] = x[r * stride + c] - mean[c] } }
    }
}
