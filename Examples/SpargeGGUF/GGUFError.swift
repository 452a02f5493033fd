/// Why a GGUF file could not be read. Every case says where and what, so a user can tell a
/// truncated download from a file of another format or an unsupported quantization.
public enum GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file does not start with the magic `GGUF`.
    case notGGUF(firstBytes: [UInt8])
    /// A GGUF version other than 2 or 3.
    case unsupportedVersion(UInt32)
    /// The file ends inside a field; `field` names what was being read.
    case truncated(field: String, offset: Int, needed: Int, available: Int)
    /// A value that cannot be right (count, length, dimension, offset, ...).
    case malformed(String)
    /// A tensor or metadata value type this reader does not know.
    case unsupportedType(String)
    /// A key or tensor the caller asked for is absent, or has another type.
    case missing(String)
    /// The file could not be opened.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .notGGUF(let bytes):
            return "not a GGUF file: it starts with \(bytes.map { String($0, radix: 16) }) instead of 'GGUF' (47 47 55 46)"
        case .unsupportedVersion(let v):
            return "GGUF version \(v) is not supported (this reader reads versions 2 and 3); convert the model with a current llama.cpp"
        case .truncated(let field, let offset, let needed, let available):
            return "GGUF file truncated: reading \(field) at byte \(offset) needs \(needed) bytes, \(available) left; the download is probably incomplete"
        case .malformed(let what):
            return "malformed GGUF file: \(what)"
        case .unsupportedType(let what):
            return "unsupported in this GGUF reader: \(what)"
        case .missing(let what):
            return "GGUF file lacks \(what)"
        case .io(let path, let reason):
            return "cannot read '\(path)': \(reason)"
        }
    }
}
