/// Rounds `x` up to a multiple of `m`.
@inline(__always)
func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// Number of blocks of size `b` covering `n` rows.
@inline(__always)
func blockCount(_ n: Int, _ b: Int) -> Int { (n + b - 1) / b }

/// An owned, uninitialised-then-zeroed buffer freed on deinit. Workspaces are built from
/// these so that kernels work on raw pointers (no ARC or bounds checks in hot loops).
final class RawBuffer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(count: Int, zero: T) {
        self.count = Swift.max(count, 1)
        pointer = UnsafeMutablePointer<T>.allocate(capacity: self.count)
        pointer.initialize(repeating: zero, count: self.count)
    }

    /// Leaves the memory uninitialised, for buffers that are written in full in parallel
    /// before being read (zeroing them here would be a serial pass over memory).
    init(uninitializedCount count: Int) where T: BitwiseCopyable {
        self.count = Swift.max(count, 1)
        pointer = UnsafeMutablePointer<T>.allocate(capacity: self.count)
    }

    deinit { pointer.deallocate() }
}
