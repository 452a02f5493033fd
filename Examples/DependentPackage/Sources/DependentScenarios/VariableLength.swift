import SpargeAttn

/// (d) A variable-length batch of three sequences packed along the tokens (`(total, H, D)`
/// arrays and cumulative offsets), each checked against exact attention over its own slice.
func variableLength() throws -> String {
    let heads = 4, kvHeads = 2, headDim = 64
    let lengths = [100, 257, 64]
    var offsets = [0]
    for n in lengths { offsets.append(offsets.last! + n) }
    let batch = try VariableLengthBatch(cumulativeQueryLengths: offsets)
    let qRow = heads * headDim, kRow = kvHeads * headDim
    // Each sequence its own activations (positions from 0); K/V are the first kvHeads heads.
    var q = [Float](), k = [Float](), v = [Float]()
    for (i, n) in lengths.enumerated() {
        let x = Activations(positions: (0..<n).map { (Float($0), 0) }, heads: heads, headDim: headDim, seed: 4 + UInt64(i))
        q += x.q
        for t in 0..<n {
            k += x.k[t * qRow..<t * qRow + kRow]
            v += x.v[t * qRow..<t * qRow + kRow]
        }
    }
    var parameters = SpargeParameters.recommended
    parameters.causal = true
    var output = [Float](repeating: 0, count: q.count)
    let results = try SpargeAttention.sparse(q: q, k: k, v: v, output: &output, batch: batch, heads: heads, kvHeads: kvHeads,
                                             headDim: headDim, parameters: parameters)
    guard results.count == lengths.count else { throw Check(description: "varlen: \(results.count) results for 3 sequences") }

    var report = [String]()
    for (i, n) in lengths.enumerated() {
        let first = offsets[i], last = offsets[i + 1]
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, queryLength: n, headDim: headDim)
        var exact = [Float](repeating: 0, count: n * qRow)
        try SpargeAttention.dense(q: TensorArray(q[first * qRow..<last * qRow], layout: .nhd(heads: heads, tokens: n, headDim: headDim)),
                                  k: TensorArray(k[first * kRow..<last * kRow], layout: .nhd(heads: kvHeads, tokens: n, headDim: headDim)),
                                  v: TensorArray(v[first * kRow..<last * kRow], layout: .nhd(heads: kvHeads, tokens: n, headDim: headDim)),
                                  output: &exact, outputLayout: .nhd(heads: heads, tokens: n, headDim: headDim),
                                  shape: shape, causal: true)
        let c = try requireClose("varlen sequence \(i)", Array(output[first * qRow..<last * qRow]), exact)
        report.append("\(n) tokens cosine \(c)")
    }
    return report.joined(separator: ", ")
}
