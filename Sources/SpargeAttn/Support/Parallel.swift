import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The C entry point behind `DispatchQueue.concurrentPerform`. The Swift wrapper converts its
/// closure into a heap-allocated block on every call; calling the function-pointer variant
/// directly keeps plan calls free of heap allocation (measured by sparge-allocation-check).
@_silgen_name("dispatch_apply_f")
private func dispatchApply(
    _ iterations: Int, _ queue: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
    _ work: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void)

/// Runs `items` independent work items on `threads` workers with the same machinery as
/// `DispatchQueue.concurrentPerform` (`dispatch_apply` on the global queue). Each worker
/// claims items from a shared counter, so the schedule adapts to uneven items; results never
/// depend on which worker ran an item (every item writes its own output region), which keeps
/// outputs bitwise identical for any thread count. `body(worker, item)`: `worker` in
/// `0..<threads` indexes per-worker workspaces. One phase of `parallelPhases`.
func parallelFor(items: Int, threads: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
    parallelPhases(1, items: { _ in items }, threads: threads) { worker, _, item in body(worker, item) }
}

/// What the workers of one `parallelPhases` share.
private struct PhasedContext {
    let body: (Int, Int, Int) -> Void
    let items: (Int) -> Int
    let phases: Int
    /// Per phase, on its own cache line: the next unclaimed item, then the finished count.
    let counters: UnsafeMutablePointer<Int>
}

/// Counters one cache line apart (so that one phase's traffic does not slow another's).
private let counterSpacing = 8

/// Runs `phases` phases of independent work items in order on `threads` workers, waking them
/// once: `body(worker, phase, item)` for every `item` in `0..<items(phase)`, each phase's items
/// all finished before any item of the next one starts. A worker that finds no unclaimed item
/// left in a phase waits (spinning, then yielding the CPU, then sleeping) until the items
/// other workers claimed are finished. It waits only for claimed items, each run by a live
/// worker, so it cannot deadlock even when dispatch runs fewer workers at once than asked.
///
/// Compared with one `parallelFor` per phase this saves waking the workers again per phase
/// (about 0.1 ms each on a 2-core virtual machine, a tenth of a small phase). As with
/// `parallelFor`, every item must write only its own region: results never depend on the
/// thread count. `items` is called by every worker and must give the same counts each time.
func parallelPhases(_ phases: Int, items: (Int) -> Int, threads: Int, _ body: (_ worker: Int, _ phase: Int, _ item: Int) -> Void) {
    guard phases > 0 else { return }
    var most = 0
    for p in 0..<phases { most = Swift.max(most, items(p)) }
    let workers = Swift.max(1, Swift.min(threads, most))
    if workers == 1 {
        for p in 0..<phases { for i in 0..<items(p) { body(0, p, i) } }
        return
    }
    withoutActuallyEscaping(body) { body in
        withoutActuallyEscaping(items) { items in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * phases * counterSpacing) { counters in
                counters.initialize(repeating: 0)
                var context = PhasedContext(body: body, items: items, phases: phases, counters: counters.baseAddress!)
                withUnsafeMutablePointer(to: &context) { ctx in
                    dispatchApply(workers, nil, UnsafeMutableRawPointer(ctx)) { raw, worker in
                        let c = raw!.assumingMemoryBound(to: PhasedContext.self).pointee
                        for p in 0..<c.phases {
                            let n = c.items(p)
                            let next = UnsafeAtomicCounter(c.counters + 2 * p * counterSpacing)
                            let done = UnsafeAtomicCounter(c.counters + (2 * p + 1) * counterSpacing)
                            while true {
                                let item = next.increment()
                                if item >= n { break }
                                c.body(worker, p, item)
                                done.finish()
                            }
                            // Spin briefly (a phase's last items are short), then yield the CPU,
                            // then sleep: a long item elsewhere does not keep this core busy.
                            var spins = 0
                            while done.finished() < n {
                                spins += 1
                                if spins > 20_000 { usleep(50) } else if spins > 256 { sched_yield() }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Atomic operations on a plain `Int` shared by the workers of one `parallelFor` or
/// `parallelPhases`: a relaxed fetch-and-add to claim items, release / acquire to count them done.
private struct UnsafeAtomicCounter {
    let pointer: UnsafeMutablePointer<Int>
    init(_ pointer: UnsafeMutablePointer<Int>) { self.pointer = pointer }

    /// Returns the previous value and adds one.
    @inline(__always)
    func increment() -> Int {
        // `Atomic` must live at a fixed address it owns; reinterpret the shared word instead.
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Atomic<Int>.self).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Counts one finished item, publishing what it wrote to a worker that sees the count.
    @inline(__always)
    func finish() {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Atomic<Int>.self).pointee.wrappingAdd(1, ordering: .releasing)
    }

    /// The finished items so far, with what they wrote visible to the caller.
    @inline(__always)
    func finished() -> Int {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Atomic<Int>.self).pointee.load(ordering: .acquiring)
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

/// The most workers a call takes: each has its own scratch, so an unbounded count would let a
/// caller's slip (a byte count passed as `threads`) allocate without bound.
let maximumThreadCount = Swift.max(1024, defaultThreadCount())

/// A `threads` argument as every entry point takes it: nil is `defaultThreadCount()`,
/// otherwise 1...`maximumThreadCount` (`SpargeError.invalidParameter` outside).
func resolvedThreadCount(_ threads: Int?) throws -> Int {
    guard let t = threads else { return defaultThreadCount() }
    guard t >= 1, t <= maximumThreadCount else {
        throw SpargeError.invalidParameter("threads is \(t); give 1...\(maximumThreadCount) workers, or nil for every CPU this process may run on")
    }
    return t
}

/// Wraps a value that is shared across workers by construction (disjoint writes, or a closure
/// whose captured state is only read), to cross the `concurrentPerform` boundary.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
