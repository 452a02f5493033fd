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
        pointer = Self.allocateLines(self.count)
        pointer.initialize(repeating: zero, count: self.count)
    }

    /// Leaves the memory uninitialised, for buffers that are written in full in parallel
    /// before being read (zeroing them here would be a serial pass over memory).
    init(uninitializedCount count: Int) where T: BitwiseCopyable {
        self.count = Swift.max(count, 1)
        pointer = Self.allocateLines(self.count)
    }

    /// Whole, aligned cache lines: buffers of different worker threads (each worker's per-row
    /// softmax state is a few hundred bytes, updated every tile) never share a line, whatever
    /// order malloc hands out its chunks in.
    private static func allocateLines(_ count: Int) -> UnsafeMutablePointer<T> {
        let bytes = (count * MemoryLayout<T>.stride + 63) & ~63
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Swift.max(64, MemoryLayout<T>.alignment))
            .bindMemory(to: T.self, capacity: count)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
