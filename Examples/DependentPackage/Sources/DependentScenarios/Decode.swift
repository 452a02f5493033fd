import SpargeAttn

/// (b) A prompt appended to a KV cache from a fused fp16 QKV array, then 64 decoding steps,
/// each appending one token's K and V and attending its query (fp32 output), checked against
/// the cache's exact decode path.
func decode() throws -> String {
    let heads = 4, kvHeads = 2, headDim = 64, prompt = 256, steps = 64
    let rowWidth = (heads + 2 * kvHeads) * headDim
    let kOffset = heads * headDim, vOffset = (heads + kvHeads) * headDim
    var rng = Activations(seed: 2)
    var parameters = SpargeParameters.recommended
    parameters.causal = true
    let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: prompt + steps,
                                  maxQueryLength: 1, parameters: parameters)

    let promptQKV: [Float16] = rng.halves(prompt * rowWidth)
    let promptLayout = TensorLayout(batchStride: prompt * rowWidth, headStride: headDim, tokenStride: rowWidth)
    try cache.append(k: TensorArray(promptQKV, offset: kOffset, layout: promptLayout),
                     v: TensorArray(promptQKV, offset: vOffset, layout: promptLayout), tokens: prompt)

    let tokenLayout = TensorLayout(batchStride: rowWidth, headStride: headDim, tokenStride: rowWidth)
    var output = [Float](repeating: 0, count: heads * headDim)
    var exact = [Float](repeating: 0, count: heads * headDim)
    var worst = 1.0
    for _ in 0..<steps {
        let tokenQKV: [Float16] = rng.halves(rowWidth)   // this token's row of the fused projection
        try cache.append(k: TensorArray(tokenQKV, offset: kOffset, layout: tokenLayout),
                         v: TensorArray(tokenQKV, offset: vOffset, layout: tokenLayout), tokens: 1)
        let q = TensorArray(tokenQKV, offset: 0, layout: tokenLayout)
        try cache.attend(q: q, output: &output, queries: 1)
        try cache.attendExact(q: q, output: &exact, queries: 1)
        let c = try requireClose("decode step \(cache.length - prompt)", output, exact)
        worst = min(worst, c)
    }
    guard cache.length == prompt + steps else { throw Check(description: "decode: the cache holds \(cache.length) keys") }
    return "\(steps) steps, worst cosine \(worst)"
}
