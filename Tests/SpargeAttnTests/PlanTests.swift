import Foundation
import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The reusable plan: same results as the one-shot API, workspaces per thread, no heap
/// allocation inside a call.
struct PlanTests {
    @Test func planMatchesOneShotCallsAndReusesItsWorkspace() throws {
        var rng = TestRNG(seed: 21)
        let shape = AttentionShape(batch: 1, heads: 4, kvHeads: 2, queryLength: 300, headDim: 48)
        var p = SpargeParameters.recommended
        p.causal = true
        p.pvThreshold = 6
        let plan = try SpargePlan(shape: shape, parameters: p)
        let workspace = plan.makeWorkspace()
        for round in 0..<3 {
            let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
            let (expected, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            var out = [Float](repeating: 0, count: shape.queryElements)
            let summary = try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
                try out.withUnsafeMutableBufferPointer { op in
                    try plan.run(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(op), workspace: workspace)
                } } } }
            #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "round \(round)")
            #expect(try workspace.blockMap == r.blockMap)
            // One result type: the plan returns the one-shot call's SparseAttentionResult, its
            // map and per-head densities read from the workspace on demand.
            #expect(summary.statistics == r.statistics)
            #expect(summary.blockMap == r.blockMap && summary.blockMap != nil)
            #expect(summary.densityPerHead == r.densityPerHead)
            #expect(summary == r && !summary.wroteLSE)
            // The one-shot call's map given to the plan as the same BlockMap type: the same output.
            var again = [Float](repeating: 0, count: shape.queryElements)
            _ = try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
                try again.withUnsafeMutableBufferPointer { op in
                    try plan.run(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(op),
                                 workspace: workspace, blockMap: r.blockMap)
                } } } }
            #expect(again.map(\.bitPattern) == expected.map(\.bitPattern))
            // The workspace has moved on: the first call's result no longer has a map to read.
            #expect(summary.blockMap == nil && summary.densityPerHead == nil)
            #expect(summary.statistics == r.statistics)
        }
    }

    @Test func workspacesOfOnePlanRunConcurrently() async throws {
        let shape = AttentionShape(heads: 2, queryLength: 256, headDim: 32)
        let plan = try SpargePlan(shape: shape, parameters: .recommended, threads: 1)
        var rng = TestRNG(seed: 3)
        let inputs = (0..<4).map { _ in (rng.gaussians(shape.queryElements), rng.gaussians(shape.keyElements), rng.gaussians(shape.keyElements)) }
        let expected = try inputs.map { try SpargeAttention.sparse(q: $0.0, k: $0.1, v: $0.2, shape: shape, threads: 1).output }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (n, input) in inputs.enumerated() {
                group.addTask {
                    let workspace = plan.makeWorkspace()
                    var out = [Float](repeating: 0, count: shape.queryElements)
                    for _ in 0..<3 {
                        try input.0.withUnsafeBufferPointer { q in try input.1.withUnsafeBufferPointer { k in try input.2.withUnsafeBufferPointer { v in
                            try out.withUnsafeMutableBufferPointer { o in
                                _ = try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o), workspace: workspace)
                            } } } }
                    }
                    return (n, out)
                }
            }
            var all = [[Float]](repeating: [], count: inputs.count)
            for try await (n, out) in group { all[n] = out }
            return all
        }
        for n in inputs.indices { #expect(results[n].map(\.bitPattern) == expected[n].map(\.bitPattern)) }
    }

    @Test func foreignWorkspaceIsRejected() throws {
        let shape = AttentionShape(heads: 1, queryLength: 16, headDim: 8)
        let a = try SpargePlan(shape: shape), b = try SpargePlan(shape: shape)
        let x = [Float](repeating: 0.5, count: shape.queryElements)
        var out = x
        #expect(throws: SpargeError.self) {
            try x.withUnsafeBufferPointer { p in try out.withUnsafeMutableBufferPointer { o in
                _ = try a.run(q: AttentionInput(p), k: AttentionInput(p), v: AttentionInput(p), output: AttentionOutput(o), workspace: b.makeWorkspace())
            } }
        }
    }

    /// Runs Tests/Support/AllocationCheck (which replaces malloc to count calls) as a subprocess.
    @Test func planCallsDoNotAllocate() throws {
        let p = Process()
        p.executableURL = try BuiltExecutable.url(named: "sparge-allocation-check")
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("allocations with 1 thread: 0"), "\(text)")
    }
}
