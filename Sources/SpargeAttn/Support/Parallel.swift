import Dispatch
import Synchronization

/// Runs `items` independent work items on `threads` workers with
/// `DispatchQueue.concurrentPerform`. Each worker claims items from a shared counter, so the
/// schedule adapts to uneven items; results never depend on which worker ran an item (every
/// item writes its own output region), which keeps outputs bitwise identical for any thread
/// count. `body(worker, item)`: `worker` in `0..<threads` indexes per-worker workspaces.
func parallelFor(items: Int, threads: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
    if items <= 0 { return }
    let workers = Swift.max(1, Swift.min(threads, items))
    if workers == 1 {
        for i in 0..<items { body(0, i) }
        return
    }
    let next = Atomic<Int>(0)
    withoutActuallyEscaping(body) { body in
        let box = UnsafeSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            while true {
                let item = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if item >= items { break }
                box.value(worker, item)
            }
        }
    }
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
