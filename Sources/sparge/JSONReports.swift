import SpargeAttn
import SpargeFormats

extension JSONValue {
    /// What a timing report (bench, demo) starts with: the command and the build it measured.
    static func buildPairs(command: String) -> [(String, JSONValue)] {
        [("command", .string(command)), ("kernel_level", .string(BuildInfo.name)), ("build", .string(BuildInfo.detail)),
         ("configuration", .string(BuildInfo.configuration))]
    }

    /// The sizes of `s` under snake-case names.
    static func shape(_ s: AttentionShape) -> JSONValue {
        .object([
            ("batch", .int(s.batch)), ("heads", .int(s.heads)), ("kv_heads", .int(s.kvHeads)),
            ("query_length", .int(s.queryLength)), ("key_length", .int(s.keyLength)), ("head_dim", .int(s.headDim)),
        ])
    }

    /// The library's settings of `p` (``SpargeParameters/settings``) as one object: a per-head
    /// value is a number or an array, infinity (stage 2 off) is `null`.
    static func parameters(_ p: SpargeParameters) -> JSONValue {
        let number = JSONValue.shortest
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
