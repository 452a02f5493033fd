import Foundation
import SpargeAttn

/// Everything that can go wrong reading, writing or using tensor files.
///
/// Each message says what is wrong and how to fix it, so a command-line tool
/// can print it unchanged.
public enum TensorFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No file at the path.
    case fileNotFound(path: String)
    /// The file exists but could not be read.
    case readFailed(path: String, reason: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)
    /// Fewer than the 8 bytes that hold the header length.
    case fileTooShort(byteCount: Int)
    /// The declared header length exceeds the safety limit.
    case headerTooLarge(declared: UInt64, limit: Int)
    /// The declared header length runs past the end of the file.
    case headerExceedsFile(declared: UInt64, available: Int)
    /// The header bytes are not valid UTF-8.
    case invalidUTF8Header
    /// The header is not valid JSON.
    case invalidJSON(reason: String)
    /// The header is valid JSON but not an object.
    case headerNotObject
    /// `__metadata__` is not an object of string values.
    case invalidMetadata(reason: String)
    /// A tensor entry is not an object or a field has the wrong type.
    case invalidEntry(tensor: String, reason: String)
    /// A tensor entry lacks a required field.
    case missingField(tensor: String, field: String)
    /// The dtype is not one of `TensorDType`.
    case unknownDType(tensor: String, dtype: String)
    /// A shape entry is negative or not an integer.
    case invalidShape(tensor: String?, reason: String)
    /// The product of the shape (or its size in bytes) overflows `Int`.
    case elementCountOverflow(tensor: String?, shape: [Int])
    /// `data_offsets` are malformed, reversed or outside the data buffer.
    case invalidOffsets(tensor: String, reason: String)
    /// The byte count does not equal element count × dtype size.
    case sizeMismatch(tensor: String?, dtype: TensorDType, shape: [Int], expectedBytes: Int, actualBytes: Int)
    /// A typed constructor got a different number of values than the shape holds.
    case valueCountMismatch(dtype: TensorDType, shape: [Int], expected: Int, actual: Int)
    /// Overlapping tensors would copy far more bytes than the file holds.
    case excessiveOverlap(totalBytes: Int, bufferBytes: Int)
    /// No tensor of that name.
    case tensorNotFound(name: String, available: [String])
    /// An accessor was called on a tensor of an incompatible dtype.
    case dtypeMismatch(requested: String, actual: TensorDType, accepted: [TensorDType])
    /// The name is reserved by the format.
    case reservedName(String)
    /// The header names the same tensor twice.
    case duplicateTensorName(String)
    /// An output path that must not be written: it is an input, a device, a FIFO, a directory,
    /// or its directory is missing or not writable. Checked before any computation.
    case unsafeOutput(path: String, reason: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "No file at '\(path)'. Check the path (relative paths resolve against the current directory)."
        case let .readFailed(path, reason):
            return "Could not read '\(path)': \(reason)."
        case let .writeFailed(path, reason):
            return "Could not write '\(path)': \(reason)."
        case let .fileTooShort(count):
            return "File is \(count) bytes; a safetensors file starts with an 8-byte header length. The file is truncated or not safetensors."
        case let .headerTooLarge(declared, limit):
            return "Header length \(declared) exceeds the \(limit)-byte limit. The file is corrupt or not safetensors."
        case let .headerExceedsFile(declared, available):
            return "Header length \(declared) is larger than the \(available) bytes that follow it. The file is truncated or not safetensors."
        case .invalidUTF8Header:
            return "Header is not valid UTF-8. The file is corrupt or not safetensors."
        case let .invalidJSON(reason):
            return "Header is not valid JSON (\(reason)). The file is corrupt or was written by a broken tool."
        case .headerNotObject:
            return "Header JSON must be an object mapping tensor names to entries. The file was written by a broken tool."
        case let .invalidMetadata(reason):
            return "__metadata__ is invalid: \(reason). It must be an object whose values are all strings."
        case let .invalidEntry(tensor, reason):
            return "Tensor '\(tensor)': \(reason). Each entry needs {\"dtype\": string, \"shape\": [ints], \"data_offsets\": [begin, end]}."
        case let .missingField(tensor, field):
            return "Tensor '\(tensor)' has no \"\(field)\" field. Each entry needs dtype, shape and data_offsets."
        case let .unknownDType(tensor, dtype):
            let known = TensorDType.allCases.map(\.rawValue).joined(separator: ", ")
            return "Tensor '\(tensor)' has unsupported dtype '\(dtype)'. Supported: \(known); convert the tensor before saving."
        case let .invalidShape(tensor, reason):
            return "\(Self.subject(tensor)) has an invalid shape: \(reason). Shape entries must be non-negative integers."
        case let .elementCountOverflow(tensor, shape):
            return "\(Self.subject(tensor)) has shape \(shape), whose size overflows a 64-bit integer. The file is corrupt."
        case let .invalidOffsets(tensor, reason):
            return "Tensor '\(tensor)': \(reason). data_offsets must be [begin, end] with 0 <= begin <= end <= data buffer size."
        case let .sizeMismatch(tensor, dtype, shape, expected, actual):
            return "\(Self.subject(tensor)): \(dtype) \(shape) needs \(expected) bytes but has \(actual). Fix the shape, dtype or data."
        case let .valueCountMismatch(dtype, shape, expected, actual):
            return "A \(dtype) tensor of shape \(shape) holds \(expected) values but \(actual) were given. Pass a shape whose product equals the value count."
        case let .excessiveOverlap(total, buffer):
            return "Overlapping tensors would need \(total) bytes of copies from a \(buffer)-byte data buffer. The file is corrupt or malicious."
        case let .tensorNotFound(name, available):
            let shown = available.prefix(20).joined(separator: ", ")
            let more = available.count > 20 ? ", … (\(available.count - 20) more)" : ""
            return "No tensor named '\(name)'. Available: \(available.isEmpty ? "(none)" : shown + more). Check the name or the file."
        case let .dtypeMismatch(requested, actual, accepted):
            let list = accepted.map(\.rawValue).joined(separator: ", ")
            return "\(requested) cannot read a \(actual) tensor (it accepts \(list)). Use the accessor that matches the dtype, or floats()."
        case let .reservedName(name):
            return "'\(name)' is reserved by the safetensors format for metadata. Rename the tensor."
        case let .duplicateTensorName(name):
            return "The header names tensor \(JSONText.quoted(name)) twice; which one is meant is ambiguous. The file was written by a broken tool: rewrite it with unique names."
        case let .unsafeOutput(path, reason):
            return "Refusing to write '\(path)': \(reason)."
        }
    }

    private static func subject(_ tensor: String?) -> String {
        tensor.map { "Tensor '\($0)'" } ?? "Tensor"
    }
}

extension TensorFileError: LocalizedError {
    /// Same text as `description`, so `localizedDescription` is useful on Linux too.
    public var errorDescription: String? { description }
}
