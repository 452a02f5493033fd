import SpargeAttn
import Testing

/// Runs sparse attention with `p` on one thread and on five, and through a plan, expects the
/// same bits from all three, and returns the one-thread output and result.
func expectDeterministicSparse(q: [Float], k: [Float], v: [Float], shape: AttentionShape,
                               parameters p: SpargeParameters) throws -> (output: [Float], result: SparseAttentionResult) {
    let (one, r1) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 1)
    let (five, r5) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 5)
    #expect(one.map(\.bitPattern) == five.map(\.bitPattern), "output depends on the thread count")
    #expect(r1 == r5)
    let plan = try SpargePlan(shape: shape, parameters: p, threads: 2)
    var planOut = [Float](repeating: 0, count: shape.queryElements)
    try plan.run(q: q, k: k, v: v, output: &planOut, workspace: plan.makeWorkspace())
    #expect(planOut.map(\.bitPattern) == one.map(\.bitPattern), "the plan differs from the one-shot call")
    return (one, r1)
}
