import SpargeAttn

/// (b) A prompt appended to a KV cache from a fused fp16 QKV array, then 64 decoding steps,
/// each appending one token's K and V and attending its query (fp32 output), checked against
/// the cache's exact decode path; then a rejected speculative draft of four tokens, attended in
/// one call and rolled back with `truncate(to:)`.
func decode() throws -> String {
    let heads = 4, kvHeads = 2, headDim = 64, prompt = 256, steps = 64
    let rowWidth = (heads + 2 * kvHeads) * headDim
    let kOffset = heads * headDim, vOffset = (heads + kvHeads) * headDim
    let x = Activations(positions: (0..<prompt + steps).map { (Float($0), 0) }, heads: heads, headDim: headDim, seed: 2)
    // The fused projection [N, H + 2*Hkv, D]: each token's q heads, then its k heads, then its v heads.
    let kv = kvHeads * headDim, qWidth = heads * headDim
    var all = [Float16]()
    for t in 0..<prompt + steps {
        all += x.q[t * qWidth..<(t + 1) * qWidth].map { Float16($0) }
        // Grouped-query attention: the K/V heads are the first kvHeads heads of the generated ones.
        all += x.k[t * qWidth..<t * qWidth + kv].map { Float16($0) }
        all += x.v[t * qWidth..<t * qWidth + kv].map { Float16($0) }
    }
    var parameters = SpargeParameters.recommended
    parameters.causal = true
    let draft = 4
    let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: prompt + steps + draft,
                                  maxQueryLength: draft, parameters: parameters)

    let promptQKV = Array(all[0..<prompt * rowWidth])
    let promptLayout = TensorLayout(batchStride: prompt * rowWidth, headStride: headDim, tokenStride: rowWidth)
    try cache.append(k: TensorArray(promptQKV, offset: kOffset, layout: promptLayout),
                     v: TensorArray(promptQKV, offset: vOffset, layout: promptLayout), tokens: prompt)

    let tokenLayout = TensorLayout(batchStride: rowWidth, headStride: headDim, tokenStride: rowWidth)
    var output = [Float](repeating: 0, count: heads * headDim)
    var exact = [Float](repeating: 0, count: heads * headDim)
    var worst = 1.0, outputs = [Float](), exacts = [Float]()
    for step in 0..<steps {
        let t = prompt + step
        let tokenQKV = Array(all[t * rowWidth..<(t + 1) * rowWidth])   // this token's row of the fused projection
        try cache.append(k: TensorArray(tokenQKV, offset: kOffset, layout: tokenLayout),
                         v: TensorArray(tokenQKV, offset: vOffset, layout: tokenLayout), tokens: 1)
        let q = TensorArray(tokenQKV, offset: 0, layout: tokenLayout)
        try cache.attend(q: q, output: &output, queries: 1)
        try cache.attendExact(q: q, output: &exact, queries: 1)
        let c = try requireClose("decode step \(step + 1)", output, exact, minimum: 0)   // finite
        worst = min(worst, c)
        outputs += output
        exacts += exact
    }
    guard cache.length == prompt + steps else { throw Check(description: "decode: the cache holds \(cache.length) keys") }
    // A draft of `draft` tokens (here the prompt's first rows) appended and attended in one
    // call, as speculative decoding verifies them; all rejected, so rolled back.
    let draftQKV = Array(all[0..<draft * rowWidth])
    let draftLayout = TensorLayout(batchStride: draft * rowWidth, headStride: headDim, tokenStride: rowWidth)
    try cache.append(k: TensorArray(draftQKV, offset: kOffset, layout: draftLayout),
                     v: TensorArray(draftQKV, offset: vOffset, layout: draftLayout), tokens: draft)
    var draftOutput = [Float](repeating: 0, count: heads * draft * headDim)
    try cache.attend(q: TensorArray(draftQKV, offset: 0, layout: draftLayout), output: &draftOutput, queries: draft)
    try cache.truncate(to: prompt + steps)
    let last = prompt + steps - 1, lastQKV = Array(all[last * rowWidth..<(last + 1) * rowWidth])
    var again = [Float](repeating: 0, count: heads * headDim)
    try cache.attend(q: TensorArray(lastQKV, offset: 0, layout: tokenLayout), output: &again, queries: 1)
    guard cache.length == prompt + steps, again == output else {
        throw Check(description: "decode: after the rollback the last step's output differs (cache holds \(cache.length) keys)")
    }
    // One decoding step can miss a block that matters (stage 1 predicts from block means); the
    // check is on all steps together, and the worst step is reported.
    let c = try requireClose("decode, all steps", outputs, exacts)
    return "\(steps) steps, cosine \(c), worst step \(worst); a \(draft)-token draft rolled back"
}
