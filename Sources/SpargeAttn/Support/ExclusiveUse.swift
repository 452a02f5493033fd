import Synchronization

/// Detects two calls at once on an object that holds per-call memory (``SpargeWorkspace``,
/// ``SpargeKVCache``): the first call marks the object busy with one atomic compare-exchange,
/// a second call that finds it busy throws ``SpargeError/concurrentUse(_:)`` instead of
/// overwriting the first call's buffers. No lock is held and nothing is allocated on success,
/// so plan calls stay allocation-free.
final class ExclusiveUse: Sendable {
    private let busy = Atomic<Bool>(false)

    /// Runs `body` with the object marked busy; throws when it already is.
    /// `what` names the object and the fix in the error message.
    @inline(__always)
    func run<R>(_ what: StaticString, _ body: () throws -> R) throws -> R {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw SpargeError.concurrentUse("\(what)")
        }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }

    /// Marks the object busy without running anything (tests use it to stage an overlap
    /// deterministically); returns false when it already was.
    func tryEnter() -> Bool {
        busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    /// Clears the mark set by ``tryEnter()``.
    func leave() { busy.store(false, ordering: .releasing) }
}
