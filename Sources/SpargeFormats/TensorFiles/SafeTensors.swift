import Foundation
import SpargeAttn

/// The contents of a safetensors file: named tensors plus string metadata.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON header
/// (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`), then
/// the data buffer that `data_offsets` index into.
///
/// Reading validates everything and throws `TensorFileError` on malformed input;
/// it never traps and never allocates much more than the file size.
public struct SafeTensorsFile: Sendable {
    /// The header key reserved for metadata; no tensor may use it.
    public static let metadataKey = "__metadata__"
    /// Largest header accepted, so a corrupt length cannot make us allocate gigabytes.
    public static let maxHeaderBytes = 100_000_000

    /// Tensors by name. Read-only so the reserved name cannot slip in; use `insert(_:named:)`.
    public private(set) var tensors: [String: Tensor]
    /// Free-form string metadata (`__metadata__` in the header).
    public var metadata: [String: String]

    /// Creates a file in memory.
    /// - Throws: `TensorFileError.reservedName` if a tensor is named `__metadata__`.
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) throws {
        if tensors[Self.metadataKey] != nil { throw TensorFileError.reservedName(Self.metadataKey) }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Adds or replaces a tensor.
    /// - Throws: `TensorFileError.reservedName` for `__metadata__`.
    public mutating func insert(_ tensor: Tensor, named name: String) throws {
        if name == Self.metadataKey { throw TensorFileError.reservedName(name) }
        tensors[name] = tensor
    }

    /// Removes a tensor, returning it if it was present.
    @discardableResult
    public mutating func removeTensor(named name: String) -> Tensor? {
        tensors.removeValue(forKey: name)
    }

    /// Tensor names in the (sorted) order they are written.
    public var names: [String] { tensors.keys.sorted() }

    /// The tensor of that name, or nil.
    public subscript(name: String) -> Tensor? { tensors[name] }

    /// The tensor of that name.
    /// - Throws: `TensorFileError.tensorNotFound`, listing the available names.
    public func tensor(_ name: String) throws -> Tensor {
        guard let tensor = tensors[name] else {
            throw TensorFileError.tensorNotFound(name: name, available: names)
        }
        return tensor
    }

    // MARK: Reading

    /// Reads and parses a file (memory-mapped where the OS allows).
    /// - Throws: `TensorFileError.fileNotFound`, `.readFailed`, or any parse error.
    public static func read(path: String) throws -> SafeTensorsFile {
        let data: Data
        do {
            data = try FileSafety.read(path, limit: .max, limitName: "")
        } catch {
            if error.notFound { throw TensorFileError.fileNotFound(path: path) }
            throw TensorFileError.readFailed(path: path, reason: error.reason)
        }
        return try parse(data)
    }

    /// Parses the bytes of a whole file. Trailing bytes after the last tensor are ignored.
    public static func parse(_ bytes: [UInt8]) throws -> SafeTensorsFile {
        try bytes.withUnsafeBytes { try SafeTensorsParser.parse($0) }
    }

    /// Parses the bytes of a whole file. Trailing bytes after the last tensor are ignored.
    public static func parse(_ data: Data) throws -> SafeTensorsFile {
        try data.withUnsafeBytes { try SafeTensorsParser.parse($0) }
    }

    // MARK: Writing

    /// The file's bytes: tensors sorted by name, packed back to back, header
    /// padded with spaces to a multiple of 8 so the data buffer stays 8-byte aligned.
    public func serialized() -> [UInt8] {
        SafeTensorsWriter.serialize(self)
    }

    /// Writes `serialized()` atomically (temporary file, then rename), so a crash
    /// never leaves a half-written file at `path`.
    /// - Throws: `TensorFileError.writeFailed`.
    public func write(path: String) throws {
        do {
            try FileSafety.writeAtomically(serialized(), to: path)
        } catch {
            throw TensorFileError.writeFailed(path: path, reason: error.reason)
        }
    }
}
