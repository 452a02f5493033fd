import SpargeAttn

/// (a) Causal prefill of a fused fp16 QKV projection `[1, N, 3, H, D]` through a plan: q, k
/// and v are views of one array at offsets 0, H*D and 2*H*D; the output is fp16 `[1, N, H, D]`.
func fusedPrefill() throws -> String {
    let heads = 4, headDim = 64, tokens = 512
    let hd = heads * headDim, row = 3 * hd
    let x = Activations(positions: (0..<tokens).map { (Float($0), 0) }, heads: heads, headDim: headDim, seed: 1)
    let qkv: [Float16] = fuse(x.q, x.k, x.v, rowWidth: hd)
    let fused = TensorLayout(batchStride: tokens * row, headStride: headDim, tokenStride: row)
    let outputLayout = TensorLayout.nhd(heads: heads, tokens: tokens, headDim: headDim)

    var parameters = SpargeParameters.recommended
    parameters.causal = true
    let shape = AttentionShape(heads: heads, queryLength: tokens, headDim: headDim)
    let plan = try SpargePlan(shape: shape, parameters: parameters)
    let workspace = plan.makeWorkspace()
    var output = [Float16](repeating: 0, count: tokens * hd)
    let q = TensorArray(qkv, offset: 0, layout: fused)
    let k = TensorArray(qkv, offset: hd, layout: fused)
    let v = TensorArray(qkv, offset: 2 * hd, layout: fused)
    try plan.run(q: q, k: k, v: v, output: &output, outputLayout: outputLayout, workspace: workspace)
    // A second call with the same workspace, as a loop over layers makes.
    let result = try plan.run(q: q, k: k, v: v, output: &output, outputLayout: outputLayout, workspace: workspace)

    var exact = [Float](repeating: 0, count: tokens * hd)
    try SpargeAttention.dense(q: q, k: k, v: v, output: &exact, outputLayout: outputLayout, shape: shape, causal: true)
    let c = try requireClose("fused fp16 prefill", output.map { Float($0) }, exact)
    return "cosine \(c), density \(result.statistics.density)"
}
