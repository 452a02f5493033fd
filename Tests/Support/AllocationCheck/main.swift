import MallocCounter
import SpargeAttn

// Counts the heap allocations of SpargePlan.run calls after a warm-up call, for fp32 and
// fp16 inputs, a plain and a split-K shape, a caller-supplied map, and a token order, and compares them with
// what libdispatch itself allocates for the same number of dispatch_apply calls (its per-call
// bookkeeping, measured here on an empty body). With one thread nothing is dispatched, so
// every allocation would be the library's own: the tests require "allocations with 1 thread: 0".

@_silgen_name("dispatch_apply_f")
func dispatchApply(_ iterations: Int, _ queue: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
                   _ work: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void)

/// Allocations of one dispatch_apply of 2 iterations with an empty body (after a warm-up).
func dispatchBaseline() -> Int {
    dispatchApply(2, nil, nil) { _, _ in }
    malloc_counter_start()
    for _ in 0..<20 { dispatchApply(2, nil, nil) { _, _ in } }
    let n = malloc_counter_stop()
    return n / 20  // rounded down: an occasional thread-pool allocation is not per call
}

/// Parallel phases of one call: keys and queries (when they have more than one item), the
/// kernel, and the split-K merge (fewer than 16 query blocks).
func parallelPhases(_ s: AttentionShape, blockQ: Int) -> Int {
    let queryBlocks = s.batch * s.heads * ((s.queryLength + blockQ - 1) / blockQ)
    return (s.batch * s.kvHeads > 1 ? 1 : 0) + (s.batch * s.heads > 1 ? 1 : 0) + 1 + (queryBlocks < 16 ? 1 : 0)
}

func check(_ name: String, shape: AttentionShape, parameters: SpargeParameters, half: Bool, useMap: Bool, threads: Int,
           tokenOrder: TokenOrder? = nil, attentionMask: AttentionMask? = nil) throws -> Int {
    var q = [Float](repeating: 0, count: shape.queryElements), k = [Float](repeating: 0, count: shape.keyElements)
    var state: UInt64 = 1
    for i in q.indices { state = state &* 6364136223846793005 &+ 1; q[i] = Float(Int64(bitPattern: state) >> 40) / 1e6 }
    for i in k.indices { state = state &* 6364136223846793005 &+ 1; k[i] = Float(Int64(bitPattern: state) >> 40) / 1e6 }
    let v = k
    let plan = try SpargePlan(shape: shape, parameters: parameters, tokenOrder: tokenOrder, threads: threads)
    let workspace = plan.makeWorkspace()
    var out = [Float](repeating: 0, count: shape.queryElements)
    let q16 = q.map { Float16($0) }, k16 = k.map { Float16($0) }, v16 = v.map { Float16($0) }
    var map: BlockMap? = nil
    var counted = 0
    try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
    try q16.withUnsafeBufferPointer { q16p in try k16.withUnsafeBufferPointer { k16p in try v16.withUnsafeBufferPointer { v16p in
    try out.withUnsafeMutableBufferPointer { op in
        let inputs = half
            ? (AttentionInput(q16p), AttentionInput(k16p), AttentionInput(v16p))
            : (AttentionInput(qp), AttentionInput(kp), AttentionInput(vp))
        let output = AttentionOutput(op)
        // Warm-up (with a token order, a masked call permutes the mask into memory the workspace keeps).
        try plan.run(q: inputs.0, k: inputs.1, v: inputs.2, output: output, workspace: workspace, attentionMask: attentionMask)
        if useMap { map = try workspace.blockMap }
        // The least of 3 trials: libdispatch occasionally allocates when its thread pool grows.
        counted = Int.max
        do {
            for _ in 0..<3 {
                malloc_counter_start()
                for _ in 0..<5 {
                    try plan.run(q: inputs.0, k: inputs.1, v: inputs.2, output: output, workspace: workspace,
                                 blockMap: map, attentionMask: attentionMask)
                }
                counted = min(counted, malloc_counter_stop())
            }
        }
    } } } } } } }
    // With one thread nothing is dispatched: every allocation would be this library's.
    // A token order adds the gathers of Q, K and V and the scatter of the output (B*H > 1 here).
    // An attention mask adds the pass that finds its block states, and with a token order the
    // one that permutes it.
    let ordered = tokenOrder.map { !$0.isIdentity } ?? false
    let phases = parallelPhases(shape, blockQ: parameters.blockQ) + (ordered ? 4 : 0)
        + (attentionMask == nil ? 0 : ordered ? 2 : 1)
    let expected = threads == 1 ? 0 : 5 * phases * baseline
    print("\(name), \(threads) thread(s): \(counted) allocations in 5 calls"
          + (threads == 1 ? "" : "; libdispatch's own for its \(phases) dispatch_apply per call: \(expected)"))
    return counted - expected
}

/// Allocations of warm plan calls through the array layer (``TensorArray`` views of one fused
/// fp16 array, an fp16 output array, and the lse form), one thread: the layer borrows the
/// arrays' storage, so it must add none.
func checkArrays() throws -> Int {
    let heads = 4, d = 64, n = 512, row = 3 * heads * d
    let shape = AttentionShape(heads: heads, queryLength: n, headDim: d)
    var state: UInt64 = 3
    let qkv = (0..<n * row).map { _ -> Float16 in
        state = state &* 6364136223846793005 &+ 1
        return Float16(Float(Int64(bitPattern: state) >> 40) / 1e6)
    }
    let fused = TensorLayout(batchStride: n * row, headStride: d, tokenStride: row)
    let q = TensorArray(qkv, offset: 0, layout: fused), k = TensorArray(qkv, offset: heads * d, layout: fused)
    let v = TensorArray(qkv, offset: 2 * heads * d, layout: fused)
    var out = [Float16](repeating: 0, count: shape.queryElements)
    var lse = [Float](repeating: 0, count: heads * n)
    let plan = try SpargePlan(shape: shape, parameters: .recommended, threads: 1)
    let workspace = plan.makeWorkspace()
    try plan.run(q: q, k: k, v: v, output: &out, workspace: workspace)   // warm-up
    var counted = Int.max
    for _ in 0..<3 {
        malloc_counter_start()
        for _ in 0..<5 {
            try plan.run(q: q, k: k, v: v, output: &out, workspace: workspace)
            try plan.run(q: q, k: k, v: v, output: &out, outputLayout: .nhd(heads: heads, tokens: n, headDim: d),
                         workspace: workspace, lse: &lse)
        }
        counted = min(counted, malloc_counter_stop())
    }
    print("fused fp16 TensorArray views, 1 thread: \(counted) allocations in 10 calls")
    return counted
}

let baseline = dispatchBaseline()
print("libdispatch: \(baseline) allocations per dispatch_apply")
var own = 0, dispatched = 0
for threads in [1, 2] {
    var p = SpargeParameters.recommended
    var n = 0
    n += try check("fp32 B=1 H=4 N=1024 D=64", shape: AttentionShape(heads: 4, queryLength: 1024, headDim: 64), parameters: p, half: false, useMap: false, threads: threads)
    n += try check("fp16 GQA H=4 Hkv=2 N=700 D=40", shape: AttentionShape(heads: 4, kvHeads: 2, queryLength: 700, headDim: 40), parameters: p, half: true, useMap: false, threads: threads)
    n += try check("fp16 Hilbert order 31x33 + CLS H=2 N=1024 D=64", shape: AttentionShape(heads: 2, queryLength: 1024, headDim: 64),
                   parameters: p, half: true, useMap: false, threads: threads, tokenOrder: .hilbert(height: 31, width: 33, prefix: 1))
    n += try check("fp16 Hilbert order 31x33 + CLS with an attention mask H=2 N=1024 D=64", shape: AttentionShape(heads: 2, queryLength: 1024, headDim: 64),
                   parameters: p, half: true, useMap: false, threads: threads, tokenOrder: .hilbert(height: 31, width: 33, prefix: 1),
                   attentionMask: try AttentionMask(queryLength: 1024, keyLength: 1024) { _, i, j in i / 300 == j / 300 || j == 0 })
    p.causal = true
    n += try check("fp32 causal split-K H=1 N=300 D=64", shape: AttentionShape(heads: 1, queryLength: 300, headDim: 64), parameters: p, half: false, useMap: false, threads: threads)
    n += try check("fp32 causal documents (attention mask) H=2 N=600 D=32", shape: AttentionShape(heads: 2, queryLength: 600, headDim: 32),
                   parameters: p, half: false, useMap: false, threads: threads,
                   attentionMask: try AttentionMask(queryLength: 600, keyLength: 600) { _, i, j in i / 250 == j / 250 })
    n += try check("fp32 caller map H=2 N=512 D=64", shape: AttentionShape(heads: 2, queryLength: 512, headDim: 64), parameters: p, half: false, useMap: true, threads: threads)
    if threads == 1 { own = n } else { dispatched = n }
}
print("allocations beyond libdispatch with 2 threads: \(dispatched) (libdispatch's count varies with the host's load)")
print("allocations with 1 thread: \(own)")
print("array-layer allocations with 1 thread: \(try checkArrays())")
