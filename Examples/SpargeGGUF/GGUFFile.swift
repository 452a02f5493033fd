import Foundation

/// A parsed GGUF file (versions 2 and 3): its metadata, its tensor table and its bytes.
///
/// Parsing checks every length, count, dimension and offset against the file, so a truncated
/// or corrupt file throws a ``GGUFError`` instead of trapping; tensors are dequantized to
/// `Float` on request with ``floats(_:)``.
public struct GGUFFile: Sendable {
    public let version: UInt32
    /// Metadata in file order is not kept; keys are unique in a valid file.
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment` (32 when absent).
    public let alignment: Int
    /// Byte offset of the tensor data section.
    public let dataOffset: Int
    private let data: Data
    private let index: [String: Int]

    /// The most dimensions a ggml tensor has.
    static let maxDimensions = 4
    /// Nested arrays deeper than this are rejected (ggml writes none).
    static let maxArrayDepth = 2

    /// Reads and parses the file at `path` (memory-mapped).
    public init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw GGUFError.io(path: path, reason: error.localizedDescription)
        }
        try self.init(data: data)
    }

    /// Parses a GGUF file held in memory.
    public init(data: Data) throws {
        self.data = data
        var parsed: (UInt32, [String: GGUFValue], [GGUFTensorInfo], Int, Int)!
        try data.withUnsafeBytes { raw in parsed = try Self.parse(raw) }
        (version, metadata, tensors, alignment, dataOffset) = parsed
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() {
            guard index.updateValue(i, forKey: t.name) == nil else {
                throw GGUFError.malformed("tensor '\(t.name)' appears twice")
            }
        }
        self.index = index
    }

    public func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let i = index[name] else { throw GGUFError.missing("tensor '\(name)'") }
        return tensors[i]
    }

    /// The tensor dequantized to `Float`, in ggml order (row `r` of a 2-D tensor is elements
    /// `r * dimensions[0] ..< (r + 1) * dimensions[0]`).
    public func floats(_ name: String) throws -> [Float] {
        let t = try tensor(name)
        return try data.withUnsafeBytes { raw in
            let start = dataOffset + t.offset
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + t.byteCount)])
            var out = [Float](repeating: 0, count: t.elementCount)
            try out.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(bytes, type: t.type, into: $0) }
            return out
        }
    }

    // MARK: Metadata accessors

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw GGUFError.missing("metadata key '\(key)'") }
        guard let i = v.intValue else { throw GGUFError.missing("an integer at '\(key)' (found \(v))") }
        return i
    }

    public func double(_ key: String) throws -> Double {
        guard let v = metadata[key] else { throw GGUFError.missing("metadata key '\(key)'") }
        guard let d = v.doubleValue else { throw GGUFError.missing("a number at '\(key)' (found \(v))") }
        return d
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key]?.stringValue else { throw GGUFError.missing("a string at '\(key)'") }
        return v
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = metadata[key]?.stringsValue else { throw GGUFError.missing("an array of strings at '\(key)'") }
        return v
    }

    // MARK: Parsing

    private static func parse(_ raw: UnsafeRawBufferPointer) throws -> (UInt32, [String: GGUFValue], [GGUFTensorInfo], Int, Int) {
        var c = ByteCursor(raw)
        guard raw.count >= 4, raw[0] == 0x47, raw[1] == 0x47, raw[2] == 0x55, raw[3] == 0x46 else {
            throw GGUFError.notGGUF(firstBytes: Array(raw.prefix(4)))
        }
        _ = try c.read(UInt32.self, "magic")
        let version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        // A tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes, a key/value pair at least 8 + 4 + 1.
        let tensorCount = try c.readCount("tensor count", minimumBytes: 32)
        let kvCount = try c.readCount("metadata count", minimumBytes: 13)

        var metadata: [String: GGUFValue] = [:]
        for i in 0..<kvCount {
            let key = try c.readString("metadata key \(i)")
            let type = try c.read(UInt32.self, "type of '\(key)'")
            metadata[key] = try readValue(&c, type: type, key: key, depth: 0)
        }

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw GGUFError.malformed("general.alignment is \(a), not a power of two up to 1 MiB")
            }
            alignment = v
        }

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let name = try c.readString("name of tensor \(i)")
            let nd = try c.read(UInt32.self, "dimension count of '\(name)'")
            guard nd >= 1, nd <= UInt32(maxDimensions) else {
                throw GGUFError.malformed("tensor '\(name)' has \(nd) dimensions (1 to \(maxDimensions) allowed)")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nd) {
                let n = try c.read(UInt64.self, "dimension \(d) of '\(name)'")
                guard n >= 1, n <= UInt64(Int32.max) else {
                    throw GGUFError.malformed("dimension \(d) of tensor '\(name)' is \(n)")
                }
                let (p, overflow) = elements.multipliedReportingOverflow(by: Int(n))
                guard !overflow, p <= Int(Int32.max) * 64 else {
                    throw GGUFError.malformed("tensor '\(name)' has too many elements")
                }
                elements = p
                dims.append(Int(n))
            }
            let rawType = try c.read(UInt32.self, "type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unsupportedType("tensor '\(name)' has ggml type \(rawType); supported: \(GGMLType.allCases.map(\.description).joined(separator: ", "))")
            }
            guard dims[0] % type.blockElements == 0 else {
                throw GGUFError.malformed("tensor '\(name)': first dimension \(dims[0]) is not a multiple of the \(type) block (\(type.blockElements))")
            }
            let offset = try c.read(UInt64.self, "offset of '\(name)'")
            guard offset <= UInt64(raw.count), Int(offset) % alignment == 0 else {
                throw GGUFError.malformed("tensor '\(name)' has offset \(offset), beyond the file or not a multiple of \(alignment)")
            }
            let bytes = elements / type.blockElements * type.blockBytes
            infos.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: Int(offset),
                                        elementCount: elements, byteCount: bytes))
        }

        let dataOffset = (c.offset + alignment - 1) / alignment * alignment
        for t in infos {
            let end = dataOffset + t.offset + t.byteCount
            guard end <= raw.count else {
                throw GGUFError.truncated(field: "data of tensor '\(t.name)'", offset: dataOffset + t.offset,
                                          needed: t.byteCount, available: max(0, raw.count - dataOffset - t.offset))
            }
        }
        return (version, metadata, infos, alignment, dataOffset)
    }

    private static func readValue(_ c: inout ByteCursor, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try c.read(UInt8.self, key)))
        case 1: return .int(Int64(try c.read(Int8.self, key)))
        case 2: return .uint(UInt64(try c.read(UInt16.self, key)))
        case 3: return .int(Int64(try c.read(Int16.self, key)))
        case 4: return .uint(UInt64(try c.read(UInt32.self, key)))
        case 5: return .int(Int64(try c.read(Int32.self, key)))
        case 6: return .float(Double(try c.readFloat(key)))
        case 7: return .bool(try c.read(UInt8.self, key) != 0)
        case 8: return .string(try c.readString(key))
        case 10: return .uint(try c.read(UInt64.self, key))
        case 11: return .int(try c.read(Int64.self, key))
        case 12: return .float(try c.readDouble(key))
        case 9:
            guard depth < maxArrayDepth else { throw GGUFError.malformed("'\(key)' nests arrays deeper than \(maxArrayDepth)") }
            let elementType = try c.read(UInt32.self, "element type of '\(key)'")
            let minimum: Int = switch elementType {
            case 0, 1, 7: 1
            case 2, 3: 2
            case 4, 5, 6: 4
            case 8, 10, 11, 12: 8
            case 9: 12
            default: throw GGUFError.unsupportedType("metadata '\(key)' is an array of value type \(elementType)")
            }
            let n = try c.readCount("length of '\(key)'", minimumBytes: minimum)
            switch elementType {
            case 8:
                var s: [String] = []
                s.reserveCapacity(n)
                for i in 0..<n { s.append(try c.readString("\(key)[\(i)]")) }
                return .strings(s)
            case 7, 9:
                var a: [GGUFValue] = []
                a.reserveCapacity(n)
                for _ in 0..<n { a.append(try readValue(&c, type: elementType, key: key, depth: depth + 1)) }
                return .array(a)
            default:
                var a: [Double] = []
                a.reserveCapacity(n)
                for _ in 0..<n {
                    guard let d = try readValue(&c, type: elementType, key: key, depth: depth + 1).doubleValue else {
                        throw GGUFError.malformed("'\(key)' holds a non-number")
                    }
                    a.append(d)
                }
                return .numbers(a)
            }
        default:
            throw GGUFError.unsupportedType("metadata '\(key)' has value type \(type)")
        }
    }
}
