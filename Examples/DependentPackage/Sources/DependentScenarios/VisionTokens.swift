import SpargeAttn

/// (c) A vision transformer's tokens: a CLS token and a 32x32 patch grid, attended in Hilbert
/// order (CLS first, then the patches along the curve) and returned in the original order;
/// checked against exact attention in the original order (non-causal attention does not
/// change when q, k and v are permuted together).
///
/// TODO(token order): when `TokenOrder` (a Hilbert order with a prefix of unordered tokens,
/// a `tokenOrder:` option of the one-shot call and of `SpargePlan`) is on main, replace the
/// gathers below with that option.
func visionTokens() throws -> String {
    let heads = 4, headDim = 32, side = 32
    let order = try HilbertOrder(height: side, width: side)
    let tokens = 1 + order.count
    let hd = heads * headDim
    // Position p of the attended sequence holds original token sequence[p] (CLS stays first).
    let sequence = [0] + order.permutation.map { Int($0) + 1 }
    // Patch t >= 1 sits at column (t - 1) % side, row (t - 1) / side; CLS has no place.
    let places: [(Float, Float)?] = [nil] + (0..<side * side).map { (Float($0 % side), Float($0 / side)) }
    let x = Activations(positions: places, heads: heads, headDim: headDim, seed: 3, strength: 2)
    let q = x.q, k = x.k, v = x.v   // [1, N, H, D]
    func gather(_ x: [Float], _ rows: [Int]) -> [Float] { rows.flatMap { x[$0 * hd..<($0 + 1) * hd] } }

    let layout = TensorLayout.nhd(heads: heads, tokens: tokens, headDim: headDim)
    let shape = AttentionShape(heads: heads, queryLength: tokens, headDim: headDim)
    var ordered = [Float](repeating: 0, count: tokens * hd)
    let result = try SpargeAttention.sparse(q: TensorArray(gather(q, sequence), layout: layout),
                                            k: TensorArray(gather(k, sequence), layout: layout),
                                            v: TensorArray(gather(v, sequence), layout: layout),
                                            output: &ordered, outputLayout: layout, shape: shape)
    var output = [Float](repeating: 0, count: tokens * hd)
    for (p, t) in sequence.enumerated() { output[t * hd..<(t + 1) * hd] = ordered[p * hd..<(p + 1) * hd] }

    var exact = [Float](repeating: 0, count: tokens * hd)
    try SpargeAttention.dense(q: TensorArray(q, layout: layout), k: TensorArray(k, layout: layout),
                              v: TensorArray(v, layout: layout), output: &exact, outputLayout: layout, shape: shape)
    let c = try requireClose("ViT tokens in Hilbert order", output, exact)
    return "\(tokens) tokens, cosine \(c), density \(result.statistics.density)"
}
