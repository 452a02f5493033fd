/// One metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    /// An array of strings (vocabularies, merges) kept as strings.
    case strings([String])
    /// An array of numbers (scores, token types) widened to Double.
    case numbers([Double])
    /// Any other array (nested arrays, booleans).
    case array([GGUFValue])

    /// The value as an integer, if it is one (or a whole float).
    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(exactly: v)
        case .float(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as a floating-point number, if it is a number.
    public var doubleValue: Double? {
        switch self {
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        case .float(let v): return v
        default: return nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var stringsValue: [String]? { if case .strings(let s) = self { return s } else { return nil } }
    public var numbersValue: [Double]? { if case .numbers(let s) = self { return s } else { return nil } }
}
