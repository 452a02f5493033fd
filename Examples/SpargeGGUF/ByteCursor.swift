/// A bounds-checked little-endian reader over the bytes of a file: every read checks the
/// remaining length first and throws ``GGUFError/truncated(field:offset:needed:available:)``.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func need(_ n: Int, _ field: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw GGUFError.truncated(field: field(), offset: offset, needed: n, available: remaining)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, field())
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func readFloat(_ field: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, field()))
    }

    mutating func readDouble(_ field: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, field()))
    }

    /// A count stored as u64 that must fit the rest of the file at `minimumBytes` per element.
    mutating func readCount(_ field: @autoclosure () -> String, minimumBytes: Int) throws -> Int {
        let name = field()
        let raw = try read(UInt64.self, name)
        guard raw <= UInt64(remaining / max(minimumBytes, 1)) else {
            throw GGUFError.malformed("\(name) is \(raw), more than the \(remaining) bytes left can hold")
        }
        return Int(raw)
    }

    /// A GGUF string: u64 length, then UTF-8 bytes (invalid sequences become U+FFFD).
    mutating func readString(_ field: @autoclosure () -> String) throws -> String {
        let name = field()
        let n = try readCount("length of \(name)", minimumBytes: 1)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]), as: UTF8.self)
        offset += n
        return s
    }

    mutating func skip(to newOffset: Int, _ field: @autoclosure () -> String) throws {
        guard newOffset >= offset else { throw GGUFError.malformed("\(field()) goes backwards") }
        try need(newOffset - offset, field())
        offset = newOffset
    }
}
