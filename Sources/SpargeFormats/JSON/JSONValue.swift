/// A JSON value with ordered object keys, written as compact text: the one JSON writer of the
/// tools (the command-line reports, the safetensors header), stable byte for byte and free of
/// Foundation's encoder (whose key order and number formatting vary).
public indirect enum JSONValue: Sendable {
    /// An integer, written in decimal.
    case int(Int)
    /// A number: an integral value below 1e15 is written as an integer, any other in Swift's
    /// shortest round-trip form; a non-finite one as `null` (JSON has no infinity or NaN).
    case number(Double)
    /// A string, quoted by ``JSONText/quoted(_:)``.
    case string(String)
    /// `true` or `false`.
    case bool(Bool)
    /// `null`.
    case null
    /// An array.
    case array([JSONValue])
    /// An object whose keys keep the given order.
    case object([(String, JSONValue)])

    /// A number, or `null` when it is not finite.
    public static func finite(_ x: Double) -> JSONValue { x.isFinite ? .number(x) : .null }

    /// A Float through its shortest text, so 0.1 is written as 0.1, not 0.10000000149011612;
    /// `null` when it is not finite.
    public static func shortest(_ x: Float) -> JSONValue { x.isFinite ? .number(Double("\(x)") ?? Double(x)) : .null }

    /// Compact single-line text.
    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Text for people: containers nested less than `inlineDepth` levels deep one entry a
    /// line (indented by two spaces a level), deeper ones on one line with `", "` and `": "`;
    /// ends with a newline. `inlineDepth: 1` puts each entry of the top level on its own line.
    public func prettyText(inlineDepth: Int) -> String {
        var out = ""
        writePretty(to: &out, depth: 0, inlineDepth: inlineDepth)
        return out + "\n"
    }

    private func writePretty(to out: inout String, depth: Int, inlineDepth: Int) {
        let entries: [(String?, JSONValue)]
        let (open, close): (String, String)
        switch self {
        case .array(let items): entries = items.map { (nil, $0) }; (open, close) = ("[", "]")
        case .object(let pairs): entries = pairs.map { ($0.0, $0.1) }; (open, close) = ("{", "}")
        default: write(to: &out); return
        }
        let multiline = depth < inlineDepth && !entries.isEmpty
        let indent = String(repeating: "  ", count: depth + 1)
        out += open
        for (i, (key, value)) in entries.enumerated() {
            out += i == 0 ? (multiline ? "\n" + indent : "") : (multiline ? ",\n" + indent : ", ")
            if let key { out += JSONText.quoted(key) + ": " }
            value.writePretty(to: &out, depth: depth + 1, inlineDepth: inlineDepth)
        }
        out += multiline ? "\n" + String(repeating: "  ", count: depth) + close : close
    }

    private func write(to out: inout String) {
        switch self {
        case .int(let i): out += String(i)
        case .number(let x):
            if !x.isFinite { out += "null" }
            else if x == x.rounded(), abs(x) < 1e15 { out += String(Int64(x)) }
            else { out += "\(x)" }   // Swift's shortest round-trip form is valid JSON
        case .string(let s): out += JSONText.quoted(s)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out += "," }
                out += JSONText.quoted(key) + ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }
}
