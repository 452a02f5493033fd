import SpargeAttn

/// Element types of the safetensors format; raw values are the header spellings.
public enum TensorDType: String, Sendable, Hashable, CaseIterable {
    /// IEEE single precision.
    case float32 = "F32"
    /// IEEE half precision.
    case float16 = "F16"
    /// Brain floating point (the upper half of a `Float`).
    case bfloat16 = "BF16"
    /// IEEE double precision.
    case float64 = "F64"
    /// Signed 8-bit integers (the INT8 tensors of the quantization).
    case int8 = "I8"
    /// Unsigned 8-bit integers (block maps).
    case uint8 = "U8"
    /// Signed 16-bit integers.
    case int16 = "I16"
    /// Signed 32-bit integers.
    case int32 = "I32"
    /// Signed 64-bit integers.
    case int64 = "I64"
    /// One byte per element; zero is false, anything else true.
    case bool = "BOOL"

    /// Bytes per element, used to validate buffer sizes.
    public var byteSize: Int {
        switch self {
        case .int8, .uint8, .bool: 1
        case .float16, .bfloat16, .int16: 2
        case .float32, .int32: 4
        case .float64, .int64: 8
        }
    }

    /// Whether the type is a floating-point format.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: true
        default: false
        }
    }
}

extension TensorDType: CustomStringConvertible {
    /// The header spelling ("F32", "BF16", ...), as users see it in files.
    public var description: String { rawValue }
}
