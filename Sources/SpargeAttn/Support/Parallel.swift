import Dispatch
import Synchronization

/// The C entry point behind `DispatchQueue.concurrentPerform`. The Swift wrapper converts its
/// closure into a heap-allocated block on every call; calling the function-pointer variant
/// directly keeps plan calls free of heap allocation (measured by sparge-allocation-check).
@_silgen_name("dispatch_apply_f")
private func dispatchApply(
    _ iterations: Int, _ queue: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
    _ work: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void)

/// What the workers of one `parallelFor` share: the body and the next unclaimed item.
private struct ApplyContext {
    let body: (Int, Int) -> Void
    let items: Int
    let next: UnsafeMutablePointer<Int>
}

/// Runs `items` independent work items on `threads` workers with the same machinery as
/// `DispatchQueue.concurrentPerform` (`dispatch_apply` on the global queue). Each worker
/// claims items from a shared counter, so the schedule adapts to uneven items; results never
/// depend on which worker ran an item (every item writes its own output region), which keeps
/// outputs bitwise identical for any thread count. `body(worker, item)`: `worker` in
/// `0..<threads` indexes per-worker workspaces.
func parallelFor(items: Int, threads: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
    if items <= 0 { return }
    let workers = Swift.max(1, Swift.min(threads, items))
    if workers == 1 {
        for i in 0..<items { body(0, i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        var next = 0
        withUnsafeMutablePointer(to: &next) { counter in
            var context = ApplyContext(body: body, items: items, next: counter)
            withUnsafeMutablePointer(to: &context) { ctx in
                dispatchApply(workers, nil, UnsafeMutableRawPointer(ctx)) { raw, worker in
                    let c = raw!.assumingMemoryBound(to: ApplyContext.self)
                    let counter = UnsafeAtomicCounter(c.pointee.next)
                    while true {
                        let item = counter.increment()
                        if item >= c.pointee.items { break }
                        c.pointee.body(worker, item)
                    }
                }
            }
        }
    }
}

/// A relaxed fetch-and-add on a plain `Int` shared by the workers of one `parallelFor`.
private struct UnsafeAtomicCounter {
    let pointer: UnsafeMutablePointer<Int>
    init(_ pointer: UnsafeMutablePointer<Int>) { self.pointer = pointer }

    /// Returns the previous value and adds one.
    @inline(__always)
    func increment() -> Int {
        // `Atomic` must live at a fixed address it owns; reinterpret the shared word instead.
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Atomic<Int>.self).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// Workers for one pass over `elements` input values: below about a million (4 MiB of fp32)
/// the pass takes less than waking the workers, so it runs inline.
func scanWorkers(elements: Int, threads: Int) -> Int {
    elements >= 1 << 20 ? threads : 1
}

/// How many row ranges to cut each of `items` (batch, head) items of `rows` rows into for a
/// pass over the inputs on `workers` workers: one when there are at least twice as many items
/// as workers, else enough to give every worker two (ranges of at least 256 rows), so that a
/// model with few (KV) heads still uses every core.
func rowRanges(items: Int, rows: Int, workers: Int) -> Int {
    guard workers > 1, items < 2 * workers else { return 1 }
    return Swift.max(1, Swift.min((2 * workers + items - 1) / Swift.max(1, items), rows / 256))
}

/// The `part`-th of `parts` row ranges of `rows` rows.
@inline(__always)
func rowRange(_ part: Int, of parts: Int, rows: Int) -> Range<Int> {
    (part * rows / parts)..<((part + 1) * rows / parts)
}

/// The number of threads to use by default: the CPUs this process may run on.
func defaultThreadCount() -> Int {
    Swift.max(1, ProcessInfoCPU.activeProcessorCount)
}

/// Wraps a value that is shared across workers by construction (disjoint writes, or a closure
/// whose captured state is only read), to cross the `concurrentPerform` boundary.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
