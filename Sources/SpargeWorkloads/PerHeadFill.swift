import Foundation

/// Runs `body(item)` for `items` independent items on up to `threads` threads (default: the
/// CPUs this process may use). Each item writes only its own head of the output, so the
/// generated tensors do not depend on the thread count.
func fillInParallel(items: Int, threads: Int?, _ body: (Int) -> Void) {
    let workers = Swift.max(1, Swift.min(threads ?? ProcessInfo.processInfo.activeProcessorCount, items))
    if workers == 1 {
        for i in 0..<items { body(i) }
        return
    }
    // Safe to share: items write disjoint heads and only read the rest of what body captures.
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        for item in stride(from: worker, to: items, by: workers) { body(item) }
    }
}
