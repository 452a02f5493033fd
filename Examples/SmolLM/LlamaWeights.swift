import SpargeGGUF

/// The weights of one decoder layer, dequantized and packed for ``MatrixKernel``.
struct LayerWeights: Sendable {
    var attentionNorm: [Float]
    var ffnNorm: [Float]
    /// Wq, Wk, Wv stacked: one projection to the fused `[H + 2 Hkv, D]` row.
    var qkv: PackedMatrix
    var output: PackedMatrix
    /// Wgate, Wup stacked: one projection to `[gate | up]`.
    var gateUp: PackedMatrix
    var down: PackedMatrix
}

/// All weights of the model.
struct LlamaWeights: Sendable {
    var embedding: [Float]          // [vocab, hidden], row per token
    var lmHead: PackedMatrix        // the output projection (tied to the embedding when the file has no output.weight)
    var outputNorm: [Float]
    var layers: [LayerWeights]

    init(gguf: GGUFFile, config c: LlamaConfig, progress: (String) -> Void) throws {
        func matrix(_ name: String, rows: Int, columns: Int) throws -> [Float] {
            let t = try gguf.tensor(name)
            guard t.dimensions == [columns, rows] else {
                throw GGUFError.malformed("tensor '\(name)' has dimensions \(t.dimensions), expected [\(columns), \(rows)]")
            }
            return try gguf.floats(name)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            let t = try gguf.tensor(name)
            guard t.elementCount == n else { throw GGUFError.malformed("tensor '\(name)' has \(t.elementCount) elements, expected \(n)") }
            return try gguf.floats(name)
        }
        let kvWidth = c.kvHeads * c.headDim
        embedding = try matrix("token_embd.weight", rows: c.vocab, columns: c.hidden)
        let head = gguf.tensors.contains { $0.name == "output.weight" }
            ? try matrix("output.weight", rows: c.vocab, columns: c.hidden) : embedding
        lmHead = try PackedMatrix(rows: c.vocab, columns: c.hidden, rowMajor: head)
        outputNorm = try vector("output_norm.weight", c.hidden)
        var layers: [LayerWeights] = []
        for l in 0..<c.layers {
            progress("loading layer \(l + 1)/\(c.layers)")
            let p = "blk.\(l)."
            let q = try matrix(p + "attn_q.weight", rows: c.hidden, columns: c.hidden)
            let k = try matrix(p + "attn_k.weight", rows: kvWidth, columns: c.hidden)
            let v = try matrix(p + "attn_v.weight", rows: kvWidth, columns: c.hidden)
            let gate = try matrix(p + "ffn_gate.weight", rows: c.ffn, columns: c.hidden)
            let up = try matrix(p + "ffn_up.weight", rows: c.ffn, columns: c.hidden)
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", c.hidden),
                ffnNorm: try vector(p + "ffn_norm.weight", c.hidden),
                qkv: try PackedMatrix(rows: c.qkvWidth, columns: c.hidden, rowMajor: q + k + v),
                output: try PackedMatrix(rows: c.hidden, columns: c.hidden,
                                         rowMajor: try matrix(p + "attn_output.weight", rows: c.hidden, columns: c.hidden)),
                gateUp: try PackedMatrix(rows: 2 * c.ffn, columns: c.hidden, rowMajor: gate + up),
                down: try PackedMatrix(rows: c.hidden, columns: c.ffn,
                                       rowMajor: try matrix(p + "ffn_down.weight", rows: c.hidden, columns: c.ffn))))
        }
        self.layers = layers
    }
}
