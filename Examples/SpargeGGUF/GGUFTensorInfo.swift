/// Where one tensor lies in a GGUF file and how it is stored.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// ggml's `ne`: the fastest-varying dimension first (a PyTorch `[out, in]` weight is `[in, out]`).
    public var dimensions: [Int]
    public var type: GGMLType
    /// Byte offset from the start of the tensor data section (a multiple of the alignment).
    public var offset: Int
    public var elementCount: Int
    public var byteCount: Int
}
