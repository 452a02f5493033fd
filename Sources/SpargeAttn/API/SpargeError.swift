/// Errors thrown for bad input. Each message says what is wrong and how to fix it.
public enum SpargeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A size of ``AttentionShape`` is unusable.
    case invalidShape(String)
    /// A buffer is shorter than the shape requires.
    case bufferTooSmall(name: String, expected: Int, actual: Int)
    /// A buffer given without a ``TensorLayout`` (so read as a dense tensor of the shape) holds
    /// more elements than that tensor has: usually a shape mistake, such as K and V passed with
    /// `heads` heads where the shape says `kvHeads`.
    case bufferSizeMismatch(name: String, expected: Int, actual: Int)
    /// A view into a larger array (a ``TensorArray`` with an offset, such as the K part of a
    /// fused QKV buffer) reaches past the array's end: from element `offset` its layout needs
    /// the array to hold `needed` elements, and it holds `actual`.
    case viewOutOfBounds(name: String, offset: Int, needed: Int, actual: Int)
    /// A hyper-parameter is out of range.
    case invalidParameter(String)
    /// A caller-supplied block map does not fit the shape and block sizes.
    case invalidBlockMap(String)
    /// An input holds NaN or infinity and the policy is to reject it.
    case nonFiniteInput(name: String, index: Int, value: Float)
    /// An input that a GPU emulation rounds to fp16 (`reason` says which option) holds a
    /// value fp16 cannot represent (|x| >= 65520 rounds to infinity there).
    case beyondHalfRange(name: String, index: Int, value: Float, reason: String)
    /// An input to a ``SpargeKVCache`` that stores 16-bit elements holds a value that
    /// `type` cannot represent (it would become infinity there).
    case beyondStorageRange(name: String, index: Int, value: Float, type: ElementType)
    /// The combination of options is not supported.
    case unsupported(String)
    /// An object that holds one call's memory (a ``SpargeWorkspace`` or a ``SpargeKVCache``)
    /// was used by a second call while a first was still running; the second call did
    /// nothing. The message says which object and how to avoid the overlap.
    case concurrentUse(String)
    /// A ``TokenOrder`` is not a permutation, does not cover the call's tokens, or meets a
    /// causal mask; the message says which and how to fix it.
    case invalidTokenOrder(String)
    /// A CPU kernel level was requested (by `source`) that this build or processor cannot run.
    case unsupportedKernelLevel(requested: String, supported: [String], source: String)

    /// The message: what is wrong and how to fix it.
    public var description: String {
        switch self {
        case .invalidShape(let s): return "invalid shape: \(s)"
        case .bufferTooSmall(let name, let expected, let actual):
            return "buffer '\(name)' holds \(actual) elements but the shape needs \(expected); pass a buffer of the shape's size"
        case .bufferSizeMismatch(let name, let expected, let actual):
            return "buffer '\(name)' holds \(actual) elements but, given without a layout, it is read as a dense tensor of the shape, "
                + "which has \(expected) (k and v have kvHeads heads and Nk tokens); check the shape, or pass a TensorLayout "
                + "(or a TensorArray view, or a buffer rebased to the tensor's part) to use part of a larger buffer"
        case .viewOutOfBounds(let name, let offset, let needed, let actual):
            return "'\(name)' starts at element \(offset) of an array of \(actual) elements, and its layout reaches element \(needed - 1) "
                + "(the array would need \(needed)); check the offset and the layout's strides against the shape, or pass a larger array"
        case .invalidParameter(let s): return "invalid parameter: \(s)"
        case .invalidBlockMap(let s): return "invalid block map: \(s)"
        case .nonFiniteInput(let name, let index, let value):
            return "input '\(name)' has the non-finite value \(value) at element \(index); clean the input or set nonFinitePolicy to .propagate"
        case .beyondHalfRange(let name, let index, let value, let reason):
            return "input '\(name)' has \(value) at element \(index), beyond fp16's range (65504): \(reason), where it would become "
                + "infinity. Scale '\(name)' into fp16's range or turn the fp16 emulation off (gpuRounding false, pvNumerics .fp32)"
        case .beyondStorageRange(let name, let index, let value, let type):
            let largest = type == .float16 ? "65504" : "about 3.39e38"
            return "input '\(name)' has \(value) at element \(index), beyond the range of \(type) (largest \(largest)), the element type "
                + "this KV cache stores, where it would become infinity. Scale '\(name)' into that range, or create the cache with a "
                + "wider elementType (.bfloat16 or .float32)"
        case .unsupported(let s): return "unsupported: \(s)"
        case .concurrentUse(let s): return "concurrent use: \(s)"
        case .invalidTokenOrder(let s): return "invalid token order: \(s)"
        case .unsupportedKernelLevel(let requested, let supported, let source):
            return "\(source) asks for the CPU kernel level '\(requested)', but this build and processor run only "
                + "\(supported.joined(separator: ", ")); choose one of those (baseline runs everywhere) or leave it unset for the best one"
        }
    }
}
