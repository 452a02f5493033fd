import SpargeSIMD
import Synchronization

// The input scans of the validation (the non-finite policy, the fp16 range of the GPU
// emulations), row by row.

/// The first element of a view that `find` flags in its row (rows widened to fp32 into `temp`):
/// its flat `B,H,N,D` index and value.
@inline(__always)
func firstFlaggedElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int, temp: UnsafeMutablePointer<Float>,
                         find: (UnsafePointer<Float>, Int) -> Int?) -> (index: Int, value: Float)? {
    for b in 0..<batch {
        for h in 0..<heads {
            for n in 0..<tokens {
                let row = v.floats(b, h, n, count: d, temp: temp)
                if let c = find(row, d) {
                    return (((b * heads + h) * tokens + n) * d + c, row[c])
                }
            }
        }
    }
    return nil
}

/// Scans a view for NaN or infinity (the SIMD row kernels: fp32 lanes, or the bits of fp16 /
/// bf16 elements, never widened). Each (batch, head) is one work item on `threads` workers, cut
/// into row ranges when there are few heads (a full pass over the inputs costs about as much
/// as stage 1, serially), contiguous rows scanned as one run; the first element in flat order
/// is reported whatever the thread count.
func firstNonFiniteElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                           temp: UnsafeMutablePointer<Float>, threads: Int = 1) -> (index: Int, value: Float)? {
    var first = Int.max  // the smallest flagged flat index, lowered atomically by the workers
    withUnsafeMutablePointer(to: &first) { firstPointer in
        let shared = UnsafeSendable(firstPointer)
        let workers = scanWorkers(elements: batch * heads * tokens * d, threads: threads)
        let parts = rowRanges(items: batch * heads, rows: tokens, workers: workers)
        parallelFor(items: batch * heads * parts, threads: workers) { _, item in
            let head = item / parts
            let b = head / heads, h = head % heads
            if let (n, c) = firstFlaggedRow(v, b, h, rows: rowRange(item % parts, of: parts, rows: tokens), d: d) {
                let atomic = UnsafeMutableRawPointer(shared.value).assumingMemoryBound(to: Atomic<Int>.self)
                _ = atomic.pointee.min((head * tokens + n) * d + c, ordering: .relaxed)
            }
        }
    }
    guard first != Int.max else { return nil }
    let n = first / d, c = first % d
    return (first, v.floats(n / tokens / heads, n / tokens % heads, n % tokens, count: d, temp: temp)[c])
}

/// The first row among `rows` of head (b, h) holding a NaN or infinity, and its first such
/// channel: contiguous rows are scanned as one run.
private func firstFlaggedRow(_ v: TensorView, _ b: Int, _ h: Int, rows: Range<Int>, d: Int) -> (row: Int, channel: Int)? {
    guard !rows.isEmpty else { return nil }
    if v.rowStride == d {
        return firstNonFinite(v, b, h, rows.lowerBound, count: rows.count * d).map { (rows.lowerBound + $0 / d, $0 % d) }
    }
    for n in rows { if let c = firstNonFinite(v, b, h, n, count: d) { return (n, c) } }
    return nil
}

/// The first NaN or infinity among `count` elements from row (b, h, n) on.
@inline(__always)
func firstNonFinite(_ v: TensorView, _ b: Int, _ h: Int, _ n: Int, count: Int) -> Int? {
    v.isFloat32 ? firstNonFinite(v.row(b, h, n), count: count)
        : firstNonFinite(bits: v.bits(b, h, n), count: count, exponentMask: v.halfExponentMask)
}
