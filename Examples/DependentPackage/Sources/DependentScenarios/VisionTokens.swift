import SpargeAttn

/// (c) A vision transformer's tokens: a CLS token and a 32x32 patch grid in raster order,
/// attended in Hilbert order with the CLS token kept first (``TokenOrder``, a plan option),
/// the output back in raster order; checked against exact attention in raster order
/// (non-causal attention does not change when q, k and v are permuted together), and the
/// one-shot call with the same order against the plan.
func visionTokens() throws -> String {
    let heads = 4, headDim = 32, side = 32
    let order = try TokenOrder.hilbert(height: side, width: side, prefix: 1)
    let tokens = order.count   // 1 + 32 * 32
    let hd = heads * headDim
    // Patch t >= 1 sits at column (t - 1) % side, row (t - 1) / side; CLS has no place.
    let places: [(Float, Float)?] = [nil] + (0..<side * side).map { (Float($0 % side), Float($0 / side)) }
    let x = Activations(positions: places, heads: heads, headDim: headDim, seed: 3, strength: 2)
    let layout = TensorLayout.nhd(heads: heads, tokens: tokens, headDim: headDim)   // [1, N, H, D]
    let q = TensorArray(x.q, layout: layout), k = TensorArray(x.k, layout: layout), v = TensorArray(x.v, layout: layout)
    let shape = AttentionShape(heads: heads, queryLength: tokens, headDim: headDim)

    let plan = try SpargePlan(shape: shape, parameters: .recommended, tokenOrder: order)
    let workspace = plan.makeWorkspace()
    var output = [Float](repeating: 0, count: tokens * hd)
    let result = try plan.run(q: q, k: k, v: v, output: &output, outputLayout: layout, workspace: workspace)

    var oneShot = [Float](repeating: 0, count: tokens * hd)
    try SpargeAttention.sparse(q: q, k: k, v: v, output: &oneShot, outputLayout: layout, shape: shape, tokenOrder: order)
    guard oneShot == output else { throw Check(description: "ViT tokens: the one-shot call in Hilbert order differs from the plan") }

    var exact = [Float](repeating: 0, count: tokens * hd)
    try SpargeAttention.dense(q: q, k: k, v: v, output: &exact, outputLayout: layout, shape: shape)
    let c = try requireClose("ViT tokens in Hilbert order", output, exact)
    return "\(tokens) tokens, cosine \(c), density \(result.statistics.density)"
}
