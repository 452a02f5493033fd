import SpargeAttn

/// A value of the Python literal subset that `.npy` headers use (what `ast.literal_eval`
/// would accept in practice: dicts, tuples, lists, strings, integers, booleans, None).
enum PythonLiteral: Equatable, Sendable {
    case string(String)
    /// `value` is nil when the integer does not fit in `Int`; `text` keeps the digits for messages.
    case integer(value: Int?, text: String)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    /// Keys in file order (duplicates are rejected by the parser).
    case dict([(String, PythonLiteral)])

    static func == (a: PythonLiteral, b: PythonLiteral) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): return x == y
        case let (.integer(x, tx), .integer(y, ty)): return x == y && tx == ty
        case let (.bool(x), .bool(y)): return x == y
        case (.none, .none): return true
        case let (.tuple(x), .tuple(y)), let (.list(x), .list(y)): return x == y
        case let (.dict(x), .dict(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Python-like text for error messages (`'<f4'`, `(2, 3)`, `True`).
    var pythonText: String {
        switch self {
        case let .string(s): return "'\(s)'"
        case let .integer(_, text): return text
        case let .bool(b): return b ? "True" : "False"
        case .none: return "None"
        case let .tuple(items):
            return items.count == 1 ? "(\(items[0].pythonText),)" : "(" + items.map(\.pythonText).joined(separator: ", ") + ")"
        case let .list(items): return "[" + items.map(\.pythonText).joined(separator: ", ") + "]"
        case let .dict(pairs): return "{" + pairs.map { "'\($0.0)': \($0.1.pythonText)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Recursive-descent parser for the header text of a `.npy` file. Works on Unicode
/// scalars and never traps: every malformed input is a `NumpyFileError.invalidHeader`.
struct PythonLiteralParser {
    /// Nesting limit, so a header of 100,000 `(` cannot exhaust the stack.
    static let maxDepth = 32

    private let scalars: [Unicode.Scalar]
    private var position = 0

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    /// Parses the whole text as one literal; only whitespace may follow it.
    static func parse(_ text: String) throws -> PythonLiteral {
        var parser = PythonLiteralParser(text)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        if parser.position < parser.scalars.count {
            throw parser.error("unexpected '\(parser.scalars[parser.position])' after the dictionary")
        }
        return value
    }

    private func error(_ reason: String) -> NumpyFileError {
        .invalidHeader(reason: "\(reason) at character \(position)")
    }

    private var current: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    private mutating func skipWhitespace() {
        while let c = current, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" || c == "\u{0B}" {
            position += 1
        }
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        skipWhitespace()
        guard current == c else {
            throw error(current.map { "expected '\(c)' but found '\($0)'" } ?? "expected '\(c)' but the header ended")
        }
        position += 1
    }

    private mutating func value(depth: Int) throws -> PythonLiteral {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
        skipWhitespace()
        guard let c = current else { throw error("the header ended where a value was expected") }
        switch c {
        case "{": return try dict(depth: depth)
        case "(": return try sequence(close: ")", depth: depth)
        case "[": return try sequence(close: "]", depth: depth)
        case "'", "\"": return .string(try string())
        case "u", "U":
            // Python 2 era headers may spell strings u'...'.
            if position + 1 < scalars.count, scalars[position + 1] == "'" || scalars[position + 1] == "\"" {
                position += 1
                return .string(try string())
            }
            return try word()
        case "-", "+", "0"..."9": return try integer()
        default: return try word()
        }
    }

    private mutating func word() throws -> PythonLiteral {
        let start = position
        while let c = current, c.properties.isAlphabetic || c == "_" || ("0"..."9").contains(c) { position += 1 }
        let name = String(String.UnicodeScalarView(scalars[start..<position]))
        switch name {
        case "True": return .bool(true)
        case "False": return .bool(false)
        case "None": return .none
        case "": throw error("unexpected '\(scalars[start])'")
        default: throw error("unexpected name '\(name)' (only literals are allowed)")
        }
    }

    private mutating func integer() throws -> PythonLiteral {
        let start = position
        var negative = false
        if current == "-" || current == "+" {
            negative = current == "-"
            position += 1
            skipWhitespace()
        }
        var digits = ""
        while let c = current, ("0"..."9").contains(c) {
            digits.unicodeScalars.append(c)
            position += 1
        }
        guard !digits.isEmpty else { throw error("a sign without digits") }
        // Python 2 wrote longs as 3L; NumPy still reads such headers.
        if current == "L" || current == "l" { position += 1 }
        if let c = current, c == "." || c == "e" || c == "E" || c == "j" || c == "_" || c == "x" || c.properties.isAlphabetic {
            throw error("'\(String(String.UnicodeScalarView(scalars[start..<min(position + 1, scalars.count)])))' is not an integer")
        }
        let text = (negative ? "-" : "") + digits
        return .integer(value: Int(text), text: text)
    }

    private mutating func string() throws -> String {
        guard let quote = current else { throw error("the header ended inside a string") }
        position += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = current else { throw error("unterminated string") }
            position += 1
            if c == quote { break }
            if c == "\n" { throw error("newline inside a string") }
            if c != "\\" {
                out.append(c)
                continue
            }
            guard let e = current else { throw error("unterminated string") }
            position += 1
            switch e {
            case "\\", "'", "\"": out.append(e)
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "0": out.append("\0")
            case "x": out.append(try hexScalar(digits: 2))
            case "u": out.append(try hexScalar(digits: 4))
            case "U": out.append(try hexScalar(digits: 8))
            default: throw error("unsupported escape '\\\(e)' in a string")
            }
        }
        return String(out)
    }

    private mutating func hexScalar(digits: Int) throws -> Unicode.Scalar {
        guard position + digits <= scalars.count else { throw error("truncated escape") }
        let text = String(String.UnicodeScalarView(scalars[position..<(position + digits)]))
        position += digits
        guard let v = UInt32(text, radix: 16), let s = Unicode.Scalar(v) else { throw error("invalid escape '\(text)'") }
        return s
    }

    /// A tuple or a list. `(x)` without a comma is just `x`, as in Python.
    private mutating func sequence(close: Unicode.Scalar, depth: Int) throws -> PythonLiteral {
        position += 1
        var items: [PythonLiteral] = []
        var sawComma = false
        while true {
            skipWhitespace()
            if current == close { position += 1; break }
            if !items.isEmpty && !sawComma { throw error("expected ',' or '\(close)'") }
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            sawComma = current == ","
            if sawComma { position += 1 }
        }
        if close == "]" { return .list(items) }
        if items.count == 1 && !sawComma { return items[0] }
        return .tuple(items)
    }

    private mutating func dict(depth: Int) throws -> PythonLiteral {
        position += 1
        var pairs: [(String, PythonLiteral)] = []
        var sawComma = false
        while true {
            skipWhitespace()
            if current == "}" { position += 1; break }
            if !pairs.isEmpty && !sawComma { throw error("expected ',' or '}'") }
            guard let c = current, c == "'" || c == "\"" else {
                throw error(current.map { "dictionary keys must be strings, found '\($0)'" } ?? "the header ended inside the dictionary")
            }
            let key = try string()
            if pairs.contains(where: { $0.0 == key }) { throw error("key '\(key)' appears twice") }
            try expect(":")
            pairs.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            sawComma = current == ","
            if sawComma { position += 1 }
        }
        return .dict(pairs)
    }
}
