import SpargeGGUF

/// The hyper-parameters of a Llama-architecture model, read from GGUF metadata.
struct LlamaConfig: Sendable {
    var layers: Int
    var hidden: Int
    var ffn: Int
    var heads: Int
    var kvHeads: Int
    var headDim: Int
    var vocab: Int
    var ropeBase: Float
    var rmsEpsilon: Float
    var contextLength: Int

    init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else { throw GGUFError.unsupportedType("architecture '\(arch)' (this example runs 'llama')") }
        layers = try gguf.int("llama.block_count")
        hidden = try gguf.int("llama.embedding_length")
        ffn = try gguf.int("llama.feed_forward_length")
        heads = try gguf.int("llama.attention.head_count")
        kvHeads = (try? gguf.int("llama.attention.head_count_kv")) ?? heads
        headDim = hidden / max(heads, 1)
        vocab = try gguf.strings("tokenizer.ggml.tokens").count
        ropeBase = Float((try? gguf.double("llama.rope.freq_base")) ?? 10_000)
        rmsEpsilon = Float(try gguf.double("llama.attention.layer_norm_rms_epsilon"))
        contextLength = (try? gguf.int("llama.context_length")) ?? 2048
        guard layers > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0, hidden == heads * headDim, headDim % 2 == 0 else {
            throw GGUFError.malformed("inconsistent shape: \(layers) layers, hidden \(hidden), \(heads) heads, \(kvHeads) KV heads")
        }
    }

    /// Width of one token's fused Q, K, V row: all query heads, then key heads, then value heads.
    var qkvWidth: Int { (heads + 2 * kvHeads) * headDim }
}
