import Foundation
import SpargeAttn

/// Everything that can go wrong reading or writing a NumPy `.npy` file.
///
/// A separate type from ``TensorFileError`` because Swift enums cannot gain cases in
/// another file. Each message says what is wrong and how to fix it, so a command-line
/// tool can print it unchanged.
public enum NumpyFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No file at the path.
    case fileNotFound(path: String)
    /// The file exists but could not be read.
    case readFailed(path: String, reason: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)
    /// Fewer bytes than the fixed preamble (magic, version and header length) needs.
    case fileTooShort(byteCount: Int, needed: Int)
    /// The file does not start with `\x93NUMPY`.
    case badMagic(found: [UInt8])
    /// A format version other than 1.0, 2.0 or 3.0.
    case unsupportedVersion(major: UInt8, minor: UInt8)
    /// The declared header length exceeds the safety limit.
    case headerTooLarge(declared: UInt64, limit: Int)
    /// The declared header length runs past the end of the file.
    case headerExceedsFile(declared: UInt64, available: Int)
    /// The header bytes are not valid text in the version's encoding (v3: UTF-8).
    case invalidHeaderEncoding(version: String)
    /// The header is not a Python dictionary literal of the expected form.
    case invalidHeader(reason: String)
    /// A required header key (`descr`, `fortran_order`, `shape`) is absent.
    case missingKey(String)
    /// The header has a key NumPy does not write (NumPy rejects such files too).
    case unexpectedKey(String)
    /// A header value has the wrong type or form.
    case invalidHeaderValue(key: String, reason: String)
    /// The `descr` names a dtype with no ``TensorDType`` equivalent (or a structured dtype).
    case unsupportedDType(String)
    /// The array is stored in Fortran (column-major) order.
    case fortranOrder(shape: [Int])
    /// The product of the shape (or its size in bytes) overflows `Int`.
    case shapeOverflow(shape: [Int])
    /// The data after the header is shorter than the shape and dtype need.
    case truncatedData(shape: [Int], descr: String, expectedBytes: Int, availableBytes: Int)
    /// The tensor's dtype has no `.npy` spelling (BF16).
    case dtypeNotRepresentable(TensorDType)
    /// The header is too long for the requested format version (v1 stores its length in 16 bits).
    case headerTooLongForVersion(length: Int, version: String)

    /// What is wrong and how to fix it, in one line.
    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "No file at '\(path)'. Check the path (relative paths resolve against the current directory)."
        case let .readFailed(path, reason):
            return "Could not read '\(path)': \(reason)."
        case let .writeFailed(path, reason):
            return "Could not write '\(path)': \(reason)."
        case let .fileTooShort(count, needed):
            return ".npy file is \(count) bytes; the magic, version and header length alone need \(needed). The file is truncated or not .npy."
        case let .badMagic(found):
            let hex = found.map { String(format: "%02x", $0) }.joined(separator: " ")
            return ".npy files start with \\x93NUMPY but this one starts with bytes \(hex). The file is not .npy (an .npz is a zip of .npy files: unzip it first)."
        case let .unsupportedVersion(major, minor):
            return ".npy format version \(major).\(minor) is not supported (1.0, 2.0 and 3.0 are). Re-save the array with numpy.save."
        case let .headerTooLarge(declared, limit):
            return ".npy header length \(declared) exceeds the \(limit)-byte limit. The file is corrupt."
        case let .headerExceedsFile(declared, available):
            return ".npy header length \(declared) is larger than the \(available) bytes that follow it. The file is truncated or corrupt."
        case let .invalidHeaderEncoding(version):
            return ".npy header is not valid \(version == "3.0" ? "UTF-8" : "latin-1") text (format \(version)). The file is corrupt."
        case let .invalidHeader(reason):
            return ".npy header is not a valid dictionary literal: \(reason). Expected {'descr': ..., 'fortran_order': ..., 'shape': (...)}; the file is corrupt or was written by a broken tool."
        case let .missingKey(key):
            return ".npy header has no '\(key)' key. It needs 'descr', 'fortran_order' and 'shape'."
        case let .unexpectedKey(key):
            return ".npy header has the unexpected key '\(key)'. It must have exactly 'descr', 'fortran_order' and 'shape'."
        case let .invalidHeaderValue(key, reason):
            return ".npy header '\(key)' is invalid: \(reason)."
        case let .unsupportedDType(descr):
            return ".npy dtype '\(descr)' is not supported. Supported: f2, f4, f8, i1, u1, b1, i2, i4, i8 in either byte order (for example '<f4', '>f8', '|u1'); convert with a.astype(...) before saving."
        case let .fortranOrder(shape):
            return ".npy array of shape \(shape) is in Fortran (column-major) order; only C order is supported. Save np.ascontiguousarray(a) instead."
        case let .shapeOverflow(shape):
            return ".npy shape \(shape) has a size that overflows a 64-bit integer. The file is corrupt."
        case let .truncatedData(shape, descr, expected, available):
            return ".npy array '\(descr)' \(shape) needs \(expected) data bytes but only \(available) follow the header. The file is truncated or its header is wrong."
        case let .dtypeNotRepresentable(dtype):
            return "\(dtype) tensors have no .npy dtype (NumPy has no bfloat16). Convert to F32 or F16 first, or write safetensors."
        case let .headerTooLongForVersion(length, version):
            return ".npy header of \(length) bytes does not fit format \(version) (at most 65535 bytes). Use version 2.0 or 3.0."
        }
    }
}

extension NumpyFileError: LocalizedError {
    /// Same text as `description`, so `localizedDescription` is useful on Linux too.
    public var errorDescription: String? { description }
}
