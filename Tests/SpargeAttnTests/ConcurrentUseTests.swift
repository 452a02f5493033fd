import Dispatch
import Synchronization
import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// A workspace or KV cache used by two calls at once: the second call throws
/// ``SpargeError/concurrentUse(_:)`` and never gives a wrong output.
///
/// Which types may cross threads: ``SpargePlan`` (immutable) is shared freely; a
/// ``SpargeWorkspace`` and a ``SpargeKVCache`` are `Sendable` so they can be handed between
/// threads, but they hold one call's memory, so an overlapping call is detected and rejected.
struct ConcurrentUseTests {
    static func isConcurrentUse(_ error: any Error) -> Bool {
        if case SpargeError.concurrentUse = error { return true }
        return false
    }

    /// The overlap staged deterministically: the workspace is marked busy as a running call
    /// marks it; every entry point then throws, and works again once the first call is over.
    @Test func busyWorkspaceThrows() throws {
        let shape = AttentionShape(heads: 2, queryLength: 100, headDim: 16)
        let plan = try SpargePlan(shape: shape, threads: 1)
        let workspace = plan.makeWorkspace()
        var rng = TestRNG(seed: 5)
        let x = rng.gaussians(shape.queryElements)
        var out = [Float](repeating: 0, count: shape.queryElements)
        func call() throws {
            _ = try x.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in
                try plan.run(q: AttentionInput(p), k: AttentionInput(p), v: AttentionInput(p), output: AttentionOutput(o), workspace: workspace)
            } }
        }
        #expect(workspace.exclusive.tryEnter())
        #expect(throws: SpargeError.self) { try call() }
        do { try call() } catch { #expect(Self.isConcurrentUse(error), "\(error)") }
        #expect(throws: SpargeError.self) { _ = try workspace.blockMap }
        #expect(out.allSatisfy { $0 == 0 }, "a rejected call wrote nothing")
        workspace.exclusive.leave()
        try call()
        _ = try workspace.blockMap
        #expect(out.contains { $0 != 0 })
    }

    @Test func busyCacheThrows() throws {
        let cache = try SpargeKVCache(heads: 2, headDim: 8, capacity: 64, threads: 1)
        let kv = [Float](repeating: 0.25, count: 2 * 8 * 8)
        let q = [Float](repeating: 0.5, count: 2 * 8)
        var out = [Float](repeating: 0, count: 2 * 8)
        func append() throws { try kv.withUnsafeBufferPointer { try cache.append(k: AttentionInput($0), v: AttentionInput($0), tokens: 8) } }
        func attend(exact: Bool) throws {
            try q.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in
                if exact { try cache.attendExact(q: AttentionInput(p), output: AttentionOutput(o), queries: 1) }
                else { try cache.attend(q: AttentionInput(p), output: AttentionOutput(o), queries: 1) }
            } }
        }
        try append()
        #expect(cache.exclusive.tryEnter())
        for body in [append, { try attend(exact: false) }, { try attend(exact: true) }, { _ = try cache.keyMean }] {
            do { try body(); Issue.record("a call on a busy cache did not throw") } catch {
                #expect(Self.isConcurrentUse(error), "\(error)")
            }
        }
        #expect(cache.length == 8, "the rejected append added nothing")
        cache.exclusive.leave()
        try append()
        try attend(exact: false)
        #expect(cache.length == 16)
    }

    /// The misuse of issue 16 for real: two threads share one workspace for 40 calls. Each
    /// call either throws `concurrentUse` or gives exactly the single-threaded output.
    @Test func sharedWorkspaceNeverGivesWrongOutputs() throws {
        let shape = AttentionShape(heads: 2, queryLength: 300, headDim: 32)
        let plan = try SpargePlan(shape: shape, threads: 1)
        var rng = TestRNG(seed: 9)
        let inputs = (0..<2).map { _ in (rng.gaussians(shape.queryElements), rng.gaussians(shape.keyElements), rng.gaussians(shape.keyElements)) }
        let expected = try inputs.map { try SpargeAttention.sparse(q: $0.0, k: $0.1, v: $0.2, shape: shape, threads: 1).output }
        let workspace = plan.makeWorkspace()
        let wrong = Atomic<Int>(0), rejected = Atomic<Int>(0), other = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            let (q, k, v) = inputs[t]
            var out = [Float](repeating: 0, count: shape.queryElements)
            for _ in 0..<20 {
                do {
                    _ = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
                        try out.withUnsafeMutableBufferPointer { o in
                            try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o), workspace: workspace)
                        } } } }
                    if out.map(\.bitPattern) != expected[t].map(\.bitPattern) { wrong.add(1, ordering: .relaxed) }
                } catch {
                    if Self.isConcurrentUse(error) { rejected.add(1, ordering: .relaxed) } else { other.add(1, ordering: .relaxed) }
                }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(other.load(ordering: .relaxed) == 0)
        print("shared workspace: \(rejected.load(ordering: .relaxed)) of 40 calls rejected as concurrent, 0 wrong")
    }
}
