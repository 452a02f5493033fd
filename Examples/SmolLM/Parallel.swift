import Dispatch
import Synchronization

/// A shared item counter for ``parallelFor(items:threads:_:)``.
private final class ItemCounter: Sendable {
    let next = Atomic<Int>(0)
}

/// Runs `items` independent items on at most `threads` workers of
/// `DispatchQueue.concurrentPerform`; workers claim items from a shared counter, so uneven
/// items balance. Each item must write its own region of any shared output.
func parallelFor(items: Int, threads: Int, _ body: (Int) -> Void) {
    let workers = max(1, min(threads, items))
    if workers == 1 {
        for i in 0..<items { body(i) }
        return
    }
    let counter = ItemCounter()
    withoutActuallyEscaping(body) { body in
        let work = UncheckedBody(run: body)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = counter.next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= items { break }
                work.run(i)
            }
        }
    }
}

/// The body of ``parallelFor(items:threads:_:)`` shared by its workers: items write disjoint
/// regions, which the compiler cannot see.
private struct UncheckedBody: @unchecked Sendable {
    let run: (Int) -> Void
}

/// A pointer that work items share; safe because each item touches its own region.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
    init(_ base: UnsafeMutablePointer<T>) { self.base = base }
}
