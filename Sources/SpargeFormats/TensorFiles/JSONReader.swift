/// A pull parser for JSON text (RFC 8259) that the file readers drive directly, so reading a
/// header builds only what the reader keeps: memory stays proportional to the text, not to a
/// tree of boxed values (Foundation's JSONSerialization took 415 MB for a 5.8 MB header).
///
/// Unlike JSONSerialization it rejects duplicate keys in an object (the last one silently
/// won before), limits nesting to ``maxDepth`` (deep nesting cannot exhaust the stack), and
/// every error names the line and column where the text went wrong.
package struct JSONReader {
    /// The deepest nesting of arrays and objects accepted.
    static let maxDepth = 128

    /// A syntax error at a byte offset; ``description`` gives line and column.
    package struct SyntaxError: Error, CustomStringConvertible {
        package let message: String
        package let line: Int
        package let column: Int
        /// Set when the error is a key repeated in one object.
        package var duplicateKey: String? = nil
        /// Nesting depth where the error happened (1: inside the top-level value).
        package var depth = 0
        package var description: String { "\(message) at line \(line), column \(column)" }
    }

    /// The kind of the next value.
    package enum Kind { case object, array, string, number, bool, null }

    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0
    private var depth = 0

    /// `bytes` must stay valid while the reader is used.
    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    // MARK: Errors

    package func error(_ message: String, at position: Int? = nil) -> SyntaxError {
        let end = min(position ?? offset, bytes.count)
        var line = 1, column = 1
        for i in 0..<end {
            if bytes[i] == 0x0A { line += 1; column = 1 } else if bytes[i] & 0xC0 != 0x80 { column += 1 }
        }
        return SyntaxError(message: message, line: line, column: column)
    }

    private func describeNext() -> String {
        guard offset < bytes.count else { return "the end of the text" }
        let b = bytes[offset]
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(String(b, radix: 16))"
    }

    // MARK: Structure

    private mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    /// The kind of the next value (skipping whitespace).
    package mutating func peek() throws -> Kind {
        skipWhitespace()
        guard offset < bytes.count else { throw error("expected a value but the text ends") }
        switch bytes[offset] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw error("expected a value but found \(describeNext())")
        }
    }

    /// After the last value: only whitespace may follow.
    package mutating func finish() throws {
        skipWhitespace()
        if offset < bytes.count { throw error("unexpected \(describeNext()) after the end of the JSON value") }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == byte else { throw error("expected \(what) but found \(describeNext())") }
        offset += 1
    }

    private mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth) levels") }
    }

    /// Reads an object, calling `member` with each key while the reader stands on its value;
    /// `member` must consume that value. A key that appears twice is an error naming it.
    package mutating func readObject(_ member: (inout JSONReader, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), "'{'")
        try enter()
        var keys = Set<String>()
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") { offset += 1; depth -= 1; return }
        while true {
            skipWhitespace()
            let keyStart = offset
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
                throw error("expected a key (a string) but found \(describeNext())")
            }
            let key = try readString()
            guard keys.insert(key).inserted else {
                var e = error("duplicate key \(JSONText.quoted(key))", at: keyStart)
                e.duplicateKey = key
                e.depth = depth
                throw e
            }
            try expect(UInt8(ascii: ":"), "':' after a key")
            try member(&self, key)
            skipWhitespace()
            guard offset < bytes.count else { throw error("expected ',' or '}' but the text ends") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "}") { offset += 1; depth -= 1; return }
            throw error("expected ',' or '}' but found \(describeNext())")
        }
    }

    /// Reads an array, calling `element` with each index while the reader stands on the element.
    package mutating func readArray(_ element: (inout JSONReader, Int) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "'['")
        try enter()
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") { offset += 1; depth -= 1; return }
        var index = 0
        while true {
            try element(&self, index)
            index += 1
            skipWhitespace()
            guard offset < bytes.count else { throw error("expected ',' or ']' but the text ends") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "]") { offset += 1; depth -= 1; return }
            throw error("expected ',' or ']' but found \(describeNext())")
        }
    }

    /// Skips any value (checking its syntax).
    package mutating func skipValue() throws {
        _ = try readValue(keep: false)
    }

    // MARK: Scalars

    package mutating func readBool() throws -> Bool {
        skipWhitespace()
        if matches("true") { offset += 4; return true }
        if matches("false") { offset += 5; return false }
        throw error("expected true or false but found \(describeNext())")
    }

    package mutating func readNull() throws {
        skipWhitespace()
        guard matches("null") else { throw error("expected null but found \(describeNext())") }
        offset += 4
    }

    private func matches(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { return false }
        let w = word.utf8Start
        for i in 0..<n where bytes[offset + i] != w[i] { return false }
        return true
    }

    /// The text of a number, validated against the JSON grammar.
    package mutating func readNumberText() throws -> Substring {
        skipWhitespace()
        let start = offset
        func digits(_ r: inout JSONReader) -> Int {
            let s = r.offset
            while r.offset < r.bytes.count, (0x30...0x39).contains(r.bytes[r.offset]) { r.offset += 1 }
            return r.offset - s
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard offset < bytes.count, (0x30...0x39).contains(bytes[offset]) else { throw error("expected a digit but found \(describeNext())") }
        if bytes[offset] == 0x30 { offset += 1 } else { _ = digits(&self) }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits(&self) > 0 else { throw error("expected a digit after '.' but found \(describeNext())") }
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard digits(&self) > 0 else { throw error("expected a digit in the exponent but found \(describeNext())") }
        }
        if offset - start > 400 { throw error("number longer than 400 characters", at: start) }
        return Substring(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
    }

    /// A number as a Double (may be infinite for huge exponents; callers check the range).
    package mutating func readDouble() throws -> Double {
        let text = try readNumberText()
        return Double(text) ?? .nan
    }

    /// A number that is an exact integer: `12`, and integral `2.0` or `1e3` as well; nil when it
    /// is not integral or does not fit `Int`.
    package mutating func readInteger() throws -> Int? {
        Self.integer(try readNumberText())
    }

    /// The integer a number's text denotes exactly (see ``readInteger()``), or nil.
    package static func integer(_ text: Substring) -> Int? {
        if let i = Int(text) { return i }
        guard let x = Double(text), x == x.rounded(), abs(x) < 9.0e15 else { return nil }
        return Int(x)
    }

    /// A string, with its escapes decoded.
    package mutating func readString() throws -> String {
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
            throw error("expected a string but found \(describeNext())")
        }
        offset += 1
        let start = offset
        // Fast path: no escapes.
        while offset < bytes.count {
            let b = bytes[offset]
            if b == UInt8(ascii: "\"") {
                let s = try decodeUTF8(start, offset)
                offset += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character 0x\(String(b, radix: 16)) inside a string (escape it)") }
            offset += 1
        }
        var result = try decodeUTF8(start, offset)
        while offset < bytes.count {
            let b = bytes[offset]
            if b == UInt8(ascii: "\"") { offset += 1; return result }
            if b < 0x20 { throw error("control character 0x\(String(b, radix: 16)) inside a string (escape it)") }
            if b != UInt8(ascii: "\\") {
                let runStart = offset
                while offset < bytes.count, bytes[offset] != UInt8(ascii: "\""), bytes[offset] != UInt8(ascii: "\\"), bytes[offset] >= 0x20 {
                    offset += 1
                }
                result += try decodeUTF8(runStart, offset)
                continue
            }
            offset += 1
            guard offset < bytes.count else { break }
            let e = bytes[offset]
            offset += 1
            switch e {
            case UInt8(ascii: "\""): result += "\""
            case UInt8(ascii: "\\"): result += "\\"
            case UInt8(ascii: "/"): result += "/"
            case UInt8(ascii: "b"): result += "\u{8}"
            case UInt8(ascii: "f"): result += "\u{c}"
            case UInt8(ascii: "n"): result += "\n"
            case UInt8(ascii: "r"): result += "\r"
            case UInt8(ascii: "t"): result += "\t"
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard matches("\\u") else { throw error("unpaired surrogate \\u\(String(code, radix: 16))") }
                    offset += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate \\u\(String(code, radix: 16))") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(code) {
                    throw error("unpaired surrogate \\u\(String(code, radix: 16))")
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                result.unicodeScalars.append(scalar)
            default:
                offset -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in a string")
            }
        }
        throw error("unterminated string", at: start - 1)
    }

    private mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw error("\\u needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[offset]
            let d: UInt8
            switch b {
            case 0x30...0x39: d = b - 0x30
            case 0x41...0x46: d = b - 0x41 + 10
            case 0x61...0x66: d = b - 0x61 + 10
            default: throw error("\\u needs four hex digits")
            }
            v = v << 4 | UInt32(d)
            offset += 1
        }
        return v
    }

    private func decodeUTF8(_ start: Int, _ end: Int) throws -> String {
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) else {
            throw error("invalid UTF-8 inside a string", at: start)
        }
        return s
    }

    // MARK: Generic values

    /// Reads any value into a ``ParsedJSON`` (for small documents such as settings files).
    package mutating func readValue() throws -> ParsedJSON {
        try readValue(keep: true)
    }

    private mutating func readValue(keep: Bool) throws -> ParsedJSON {
        switch try peek() {
        case .null: try readNull(); return .null
        case .bool: return .bool(try readBool())
        case .string:
            let s = try readString()
            return keep ? .string(s) : .null
        case .number:
            let start = offset
            let text = try readNumberText()
            return keep ? .number(Double(text) ?? .nan, offset: start) : .null
        case .array:
            var items: [ParsedJSON] = []
            try readArray { r, _ in
                let v = try r.readValue(keep: keep)
                if keep { items.append(v) }
            }
            return .array(items)
        case .object:
            var members: [String: ParsedJSON] = [:]
            try readObject { r, key in
                let v = try r.readValue(keep: keep)
                if keep { members[key] = v }
            }
            return .object(members)
        }
    }
}

/// A parsed JSON value (objects without duplicate keys; numbers as Double with their offset).
package enum ParsedJSON {
    case null
    case bool(Bool)
    case number(Double, offset: Int)
    case string(String)
    case array([ParsedJSON])
    case object([String: ParsedJSON])

    subscript(key: String) -> ParsedJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    package var string: String? { if case .string(let s) = self { return s }; return nil }
    package var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    package var double: Double? { if case .number(let x, _) = self { return x }; return nil }
    package var array: [ParsedJSON]? { if case .array(let a) = self { return a }; return nil }
    package var isNull: Bool { if case .null = self { return true }; return false }
}
