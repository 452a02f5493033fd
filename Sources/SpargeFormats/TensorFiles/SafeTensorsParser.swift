import Foundation
import SpargeAttn

/// Validating safetensors reader. All checks happen before any tensor bytes are
/// copied, so a hostile header cannot trigger large allocations.
enum SafeTensorsParser {
    private struct Entry {
        let name: String
        let dtype: TensorDType
        let shape: [Int]
        let elementCount: Int
        let begin: Int
        let end: Int
    }

    private struct ByteRange: Hashable {
        let begin: Int
        let end: Int
    }

    static func parse(_ raw: UnsafeRawBufferPointer) throws -> SafeTensorsFile {
        guard raw.count >= 8 else { throw TensorFileError.fileTooShort(byteCount: raw.count) }
        let declared = LittleEndianBytes.load(raw, at: 0, as: UInt64.self)
        guard declared <= UInt64(SafeTensorsFile.maxHeaderBytes) else {
            throw TensorFileError.headerTooLarge(declared: declared, limit: SafeTensorsFile.maxHeaderBytes)
        }
        let headerLength = Int(declared)
        guard headerLength <= raw.count - 8 else {
            throw TensorFileError.headerExceedsFile(declared: declared, available: raw.count - 8)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[8 ..< 8 + headerLength])
        let bufferStart = 8 + headerLength
        let bufferSize = raw.count - bufferStart

        let (metadata, entries) = try decodeHeader(headerBytes, bufferSize: bufferSize)

        // Identical ranges share one copy; partial overlaps are allowed but bounded.
        var totalCopied = 0
        var seen = Set<ByteRange>()
        for entry in entries where seen.insert(ByteRange(begin: entry.begin, end: entry.end)).inserted {
            totalCopied += entry.end - entry.begin
            if totalCopied > bufferSize && totalCopied - bufferSize > bufferSize {
                throw TensorFileError.excessiveOverlap(totalBytes: totalCopied, bufferBytes: bufferSize)
            }
        }

        var copies: [ByteRange: [UInt8]] = [:]
        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let key = ByteRange(begin: entry.begin, end: entry.end)
            let bytes: [UInt8]
            if let cached = copies[key] {
                bytes = cached
            } else {
                bytes = Array(raw[(bufferStart + entry.begin) ..< (bufferStart + entry.end)])
                copies[key] = bytes
            }
            tensors[entry.name] = Tensor(validatedDType: entry.dtype, shape: entry.shape, data: bytes, elementCount: entry.elementCount)
        }
        return try SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    // MARK: Header pieces

    /// The most dimensions a tensor may have (a hostile header cannot make a huge shape array).
    static let maxRank = 64

    /// Reads the header with the pull parser: memory proportional to the header, duplicate
    /// tensor names rejected, every JSON error placed by line and column.
    private static func decodeHeader(_ bytes: UnsafeRawBufferPointer, bufferSize: Int) throws -> ([String: String], [Entry]) {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw TensorFileError.invalidUTF8Header
        }
        var reader = JSONReader(bytes)
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        do {
            guard try reader.peek() == .object else {
                try reader.skipValue()
                try reader.finish()
                throw TensorFileError.headerNotObject
            }
            try reader.readObject { r, name in
                if name == SafeTensorsFile.metadataKey {
                    metadata = try decodeMetadata(&r)
                } else {
                    entries.append(try decodeEntry(&r, name: name, bufferSize: bufferSize))
                }
            }
            try reader.finish()
        } catch let error as JSONReader.SyntaxError {
            if let name = error.duplicateKey, error.depth == 1 {
                throw TensorFileError.duplicateTensorName(name)
            }
            throw TensorFileError.invalidJSON(reason: error.description)
        }
        // Sorted so that, with several bad entries, the reported one is deterministic.
        entries.sort { $0.name < $1.name }
        return (metadata, entries)
    }

    private static func decodeMetadata(_ r: inout JSONReader) throws -> [String: String] {
        switch try r.peek() {
        case .null: try r.readNull(); return [:]
        case .object: break
        default: try r.skipValue(); throw TensorFileError.invalidMetadata(reason: "it is not an object")
        }
        var result: [String: String] = [:]
        try r.readObject { r, key in
            guard try r.peek() == .string else {
                throw TensorFileError.invalidMetadata(reason: "value of '\(key)' is not a string")
            }
            result[key] = try r.readString()
        }
        return result
    }

    private static func decodeEntry(_ r: inout JSONReader, name: String, bufferSize: Int) throws -> Entry {
        guard try r.peek() == .object else {
            throw TensorFileError.invalidEntry(tensor: name, reason: "entry is not an object")
        }
        var dtypeField = Field<String>.absent
        var shapeField = Field<[Int]>.absent
        var offsetsField = Field<[Int]>.absent
        // Reads an array of integers; the first non-integer is described.
        func integers(_ r: inout JSONReader, limit: Int, what: String) throws -> Field<[Int]> {
            guard try r.peek() == .array else { return .wrongType(describe(try r.readValue())) }
            var values: [Int] = []
            var bad: String? = nil
            try r.readArray { r, index in
                if index >= limit { throw TensorFileError.invalidEntry(tensor: name, reason: "\(what) has more than \(limit) entries") }
                if bad != nil {
                    try r.skipValue()
                } else if try r.peek() == .number {
                    let text = try r.readNumberText()
                    if let i = JSONReader.integer(text) { values.append(i) } else { bad = "dimension \(index) is \(text), not an integer" }
                } else {
                    bad = "dimension \(index) is \(describe(try r.readValue())), not an integer"
                }
            }
            if let bad { return .wrongType(bad) }
            return .value(values)
        }
        try r.readObject { r, key in
            switch key {
            case "dtype":
                dtypeField = try r.peek() == .string ? .value(try r.readString()) : .wrongType(describe(try r.readValue()))
            case "shape":
                shapeField = try integers(&r, limit: maxRank, what: "\"shape\"")
            case "data_offsets":
                offsetsField = try integers(&r, limit: 2, what: "data_offsets")
            default:
                try r.skipValue()
            }
        }
        guard !dtypeField.isAbsent else { throw TensorFileError.missingField(tensor: name, field: "dtype") }
        guard !shapeField.isAbsent else { throw TensorFileError.missingField(tensor: name, field: "shape") }
        guard !offsetsField.isAbsent else { throw TensorFileError.missingField(tensor: name, field: "data_offsets") }

        guard case .value(let dtypeString) = dtypeField else {
            throw TensorFileError.invalidEntry(tensor: name, reason: "\"dtype\" is not a string")
        }
        guard let dtype = TensorDType(rawValue: dtypeString) else {
            throw TensorFileError.unknownDType(tensor: name, dtype: dtypeString)
        }
        let shape: [Int]
        switch shapeField {
        case .value(let s): shape = s
        case .wrongType(let d) where d.hasPrefix("dimension "): throw TensorFileError.invalidShape(tensor: name, reason: d)
        default: throw TensorFileError.invalidEntry(tensor: name, reason: "\"shape\" is not an array")
        }
        let count = try Tensor.elementCount(of: shape, tensor: name)
        let expectedBytes = try Tensor.byteCount(elements: count, dtype: dtype, shape: shape, tensor: name)

        guard case .value(let offsets) = offsetsField, offsets.count == 2 else {
            if case .wrongType(let d) = offsetsField, d.hasPrefix("dimension ") {
                throw TensorFileError.invalidOffsets(tensor: name, reason: "data_offsets are not both integers (\(d.replacingOccurrences(of: "dimension", with: "entry")))")
            }
            throw TensorFileError.invalidOffsets(tensor: name, reason: "data_offsets is not an array of two integers")
        }
        let begin = offsets[0], end = offsets[1]
        guard begin >= 0, end >= 0 else {
            throw TensorFileError.invalidOffsets(tensor: name, reason: "data_offsets [\(begin), \(end)] are negative")
        }
        guard begin <= end else {
            throw TensorFileError.invalidOffsets(tensor: name, reason: "data_offsets [\(begin), \(end)] are reversed")
        }
        guard end <= bufferSize else {
            throw TensorFileError.invalidOffsets(
                tensor: name, reason: "data_offsets [\(begin), \(end)] run past the \(bufferSize)-byte data buffer (file truncated?)")
        }
        guard end - begin == expectedBytes else {
            throw TensorFileError.sizeMismatch(
                tensor: name, dtype: dtype, shape: shape, expectedBytes: expectedBytes, actualBytes: end - begin)
        }
        return Entry(name: name, dtype: dtype, shape: shape, elementCount: count, begin: begin, end: end)
    }

    /// One field of an entry as read: not there, a value, or a description of what was there instead.
    private enum Field<T> {
        case absent, value(T), wrongType(String)
        var isAbsent: Bool { if case .absent = self { return true }; return false }
    }

    private static func describe(_ value: ParsedJSON) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return "\"\(s)\""
        case .number(let x, _): return x == x.rounded() && abs(x) < 1e18 ? String(Int64(x)) : String(x)
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
