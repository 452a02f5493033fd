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

/// Scans a view for NaN or infinity (the SIMD row kernel). An fp32 view is scanned one
/// (batch, head) per work item on `threads` workers (a full pass over the inputs costs about
/// as much as stage 1, serially), with contiguous rows as one run; the first element in
/// flat order is reported whatever the thread count.
func firstNonFiniteElement(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                           temp: UnsafeMutablePointer<Float>, threads: Int = 1) -> (index: Int, value: Float)? {
    guard v.isFloat32 else {
        return firstFlaggedElement(v, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { firstNonFinite($0, count: $1) }
    }
    var first = Int.max  // the smallest flagged flat index, lowered atomically by the workers
    withUnsafeMutablePointer(to: &first) { firstPointer in
        let shared = UnsafeSendable(firstPointer)
        let workers = scanWorkers(elements: batch * heads * tokens * d, threads: threads)
        parallelFor(items: batch * heads, threads: workers) { _, item in
            let b = item / heads, h = item % heads
            let headStart = item * tokens * d
            if let n = firstFlaggedRow(v, b, h, tokens: tokens, d: d) {
                let c = firstNonFinite(v.row(b, h, n), count: d) ?? 0
                let atomic = UnsafeMutableRawPointer(shared.value).assumingMemoryBound(to: Atomic<Int>.self)
                _ = atomic.pointee.min(headStart + n * d + c, ordering: .relaxed)
            }
        }
    }
    guard first != Int.max else { return nil }
    let n = first / d, c = first % d
    return (first, v.row(n / tokens / heads, n / tokens % heads, n % tokens)[c])
}

/// The first row of head (b, h) of an fp32 view holding a NaN or infinity: contiguous rows are
/// scanned as one run.
private func firstFlaggedRow(_ v: TensorView, _ b: Int, _ h: Int, tokens: Int, d: Int) -> Int? {
    if v.rowStride == d {
        return firstNonFinite(v.row(b, h, 0), count: tokens * d).map { $0 / d }
    }
    for n in 0..<tokens where firstNonFinite(v.row(b, h, n), count: d) != nil { return n }
    return nil
}
