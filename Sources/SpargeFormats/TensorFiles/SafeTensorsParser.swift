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

        let header = try decodeHeader(headerBytes)
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(header.count)
        // Sorted so that, with several bad entries, the reported one is deterministic.
        for name in header.keys.sorted() {
            let value = header[name]!
            if name == SafeTensorsFile.metadataKey {
                metadata = try decodeMetadata(value)
            } else {
                entries.append(try decodeEntry(name: name, value: value, bufferSize: bufferSize))
            }
        }

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

    private static func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws -> [String: Any] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw TensorFileError.invalidUTF8Header
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
            throw TensorFileError.invalidJSON(reason: reason)
        }
        guard let dictionary = object as? [String: Any] else { throw TensorFileError.headerNotObject }
        return dictionary
    }

    private static func decodeMetadata(_ value: Any) throws -> [String: String] {
        if value is NSNull { return [:] }
        guard let object = value as? [String: Any] else {
            throw TensorFileError.invalidMetadata(reason: "it is not an object")
        }
        var result: [String: String] = [:]
        for (key, item) in object {
            guard let string = item as? String else {
                throw TensorFileError.invalidMetadata(reason: "value of '\(key)' is not a string")
            }
            result[key] = string
        }
        return result
    }

    private static func decodeEntry(name: String, value: Any, bufferSize: Int) throws -> Entry {
        guard let object = value as? [String: Any] else {
            throw TensorFileError.invalidEntry(tensor: name, reason: "entry is not an object")
        }
        guard let dtypeValue = object["dtype"] else { throw TensorFileError.missingField(tensor: name, field: "dtype") }
        guard let shapeValue = object["shape"] else { throw TensorFileError.missingField(tensor: name, field: "shape") }
        guard let offsetsValue = object["data_offsets"] else {
            throw TensorFileError.missingField(tensor: name, field: "data_offsets")
        }

        guard let dtypeString = dtypeValue as? String else {
            throw TensorFileError.invalidEntry(tensor: name, reason: "\"dtype\" is not a string")
        }
        guard let dtype = TensorDType(rawValue: dtypeString) else {
            throw TensorFileError.unknownDType(tensor: name, dtype: dtypeString)
        }

        guard let shapeArray = shapeValue as? [Any] else {
            throw TensorFileError.invalidEntry(tensor: name, reason: "\"shape\" is not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeArray.count)
        for (axis, item) in shapeArray.enumerated() {
            guard let dim = integer(item) else {
                throw TensorFileError.invalidShape(tensor: name, reason: "dimension \(axis) is \(describe(item)), not an integer")
            }
            shape.append(dim)
        }
        let count = try Tensor.elementCount(of: shape, tensor: name)
        let expectedBytes = try Tensor.byteCount(elements: count, dtype: dtype, shape: shape, tensor: name)

        guard let offsets = offsetsValue as? [Any], offsets.count == 2 else {
            throw TensorFileError.invalidOffsets(tensor: name, reason: "data_offsets is not an array of two integers")
        }
        guard let begin = integer(offsets[0]), let end = integer(offsets[1]) else {
            throw TensorFileError.invalidOffsets(
                tensor: name, reason: "data_offsets [\(describe(offsets[0])), \(describe(offsets[1]))] are not both integers")
        }
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

    /// A JSON number that is an exact `Int`. JSON booleans are rejected even
    /// though Foundation bridges them to NSNumber (on Linux `NSNumber(1) is Bool`
    /// is true, so the check uses the boolean's objCType "c" instead); integral
    /// doubles such as `2.0` or `1e3` are accepted.
    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        if String(cString: number.objCType) == "c" { return nil }
        return number as? Int
    }

    private static func describe(_ value: Any) -> String {
        if let number = value as? NSNumber, String(cString: number.objCType) == "c" {
            return number.boolValue ? "true" : "false"
        }
        if value is NSNull { return "null" }
        if let string = value as? String { return "\"\(string)\"" }
        return String(describing: value)
    }
}
