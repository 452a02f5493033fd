import SpargeAttn

/// Element types of the safetensors format; raw values are the header spellings.
public enum TensorDType: String, Sendable, Hashable, CaseIterable {
    case float32 = "F32"
    case float16 = "F16"
    case bfloat16 = "BF16"
    case float64 = "F64"
    case int8 = "I8"
    case uint8 = "U8"
    case int16 = "I16"
    case int32 = "I32"
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
