/// `--name value` options and `--flag` switches after the command name.
struct Arguments {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ args: ArraySlice<String>, flags known: Set<String>) throws {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            guard a.hasPrefix("--") else { throw ModelError.usage("unexpected argument '\(a)' (options start with --)") }
            let name = String(a.dropFirst(2))
            if known.contains(name) { flags.insert(name); i += 1; continue }
            guard i + 1 < args.endIndex else { throw ModelError.usage("\(a) needs a value") }
            values[name] = args[i + 1]
            i += 2
        }
    }

    func string(_ name: String) -> String? { values[name] }
    func flag(_ name: String) -> Bool { flags.contains(name) }

    func int(_ name: String, default d: Int) throws -> Int {
        guard let s = values[name] else { return d }
        guard let v = Int(s), v > 0 else { throw ModelError.usage("--\(name) '\(s)' is not a positive integer") }
        return v
    }

    func float(_ name: String, default d: Float) throws -> Float {
        guard let s = values[name] else { return d }
        guard let v = Float(s), v.isFinite else { throw ModelError.usage("--\(name) '\(s)' is not a number") }
        return v
    }
}
