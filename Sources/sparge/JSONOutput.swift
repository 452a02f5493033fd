import SpargeAttn
import SpargeFormats
/// A minimal JSON value with ordered object keys, so the `run` command's output is stable and
/// needs no Foundation encoder (whose key order and number formatting vary).
indirect enum JSON {
    case int(Int)
    case number(Double)
    case string(String)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    /// A number, or `null` when it is not finite (JSON has no infinity or NaN).
    static func finite(_ x: Double) -> JSON { x.isFinite ? .number(x) : .null }

    /// Compact single-line text.
    var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .int(let i): out += String(i)
        case .number(let x):
            if !x.isFinite { out += "null" }
            else if x == x.rounded(), abs(x) < 1e15 { out += String(Int64(x)) }
            else { out += "\(x)" }   // Swift's shortest round-trip form is valid JSON
        case .string(let s): out += Self.quoted(s)
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
                out += Self.quoted(key) + ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    static func quoted(_ s: String) -> String { JSONText.quoted(s) }
}

extension JSON {
    /// The library's settings of `p` (``SpargeParameters/settings``) as one object: a per-head
    /// value is a number or an array, infinity (stage 2 off) is `null`.
    static func parameters(_ p: SpargeParameters) -> JSON {
        // Through the Float's shortest text, so 0.1 prints as 0.1, not 0.10000000149011612.
        func number(_ x: Float) -> JSON { x.isFinite ? .number(Double("\(x)") ?? Double(x)) : .null }
        return .object(p.settings.map { setting in
            switch setting.value {
            case .integer(let n): return (setting.name, .int(n))
            case .number(let x): return (setting.name, number(x))
            case .perHead(let h): return (setting.name, h.values.count == 1 ? number(h.values[0]) : .array(h.values.map(number)))
            case .flag(let on): return (setting.name, .bool(on))
            case .choice(let name): return (setting.name, .string(name))
            }
        })
    }
}
