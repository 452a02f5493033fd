import Foundation
import SpargeAttn

/// A usage error: the tool prints the message on one line and exits with status 2.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A small hand-written parser for `--flag`, `--option value` and `--option=value`.
///
/// Each command declares its boolean flags and valued options up front, so an unknown or
/// misspelled argument is an error instead of being silently ignored.
struct Arguments {
    private var flags: Set<String> = []
    private var values: [String: String] = [:]
    private var lists: [String: [String]] = [:]
    /// Whether `--help` or `-h` was given (checked before anything else is validated).
    private(set) var helpRequested = false

    /// Old option spellings still accepted, with their current names (`--topk` is `--top-k`).
    static let renamedOptions = ["topk": "top-k"]

    /// Parses `arguments` (without the command name); prints `usage` and returns nil when
    /// `--help` or `-h` was given (the arguments are still checked first).
    static func parse(_ arguments: [String], flags: Set<String>, options: Set<String>, repeatable: Set<String> = [],
                      usage: String) throws -> Arguments? {
        let a = try Arguments(arguments, flags: flags, options: options, repeatable: repeatable)
        if a.helpRequested {
            print(usage)
            return nil
        }
        return a
    }

    /// Parses `arguments` (without the command name).
    /// - Parameters:
    ///   - flags: option names without value, e.g. `["causal"]` for `--causal`;
    ///   - options: option names that take a value;
    ///   - repeatable: those of `options` that may be given several times (see ``strings(_:)``).
    init(_ arguments: [String], flags known: Set<String>, options: Set<String>, repeatable: Set<String> = []) throws {
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--help" || arg == "-h" { helpRequested = true; continue }
            guard arg.hasPrefix("--"), arg.count > 2 else {
                throw UsageError("unexpected argument '\(arg)'; options start with -- (see --help)")
            }
            var name = String(arg.dropFirst(2))
            var inline: String? = nil
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if let current = Self.renamedOptions[name] { name = current }
            if known.contains(name) {
                if inline != nil { throw UsageError("--\(name) takes no value") }
                flags.insert(name)
            } else if options.contains(name) {
                let value: String
                if let inline {
                    value = inline
                } else {
                    guard i < arguments.count else { throw UsageError("--\(name) needs a value") }
                    value = arguments[i]
                    i += 1
                }
                lists[name, default: []].append(value)
                if values[name] != nil && !repeatable.contains(name) { throw UsageError("--\(name) is given twice") }
                values[name] = values[name] ?? value
            } else {
                throw UsageError("unknown option '--\(name)' (see --help)")
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func has(_ name: String) -> Bool { values[name] != nil }

    func string(_ name: String) -> String? { values[name] }

    /// Every value of a repeatable option, in order; comma-separated values are split.
    func strings(_ name: String) -> [String] {
        (lists[name] ?? []).flatMap { $0.split(separator: ",").map(String.init) }
    }

    /// A number option within `range` (inclusive).
    func double(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let s = values[name] else { return nil }
        guard let x = Double(s), x.isFinite else { throw UsageError("--\(name) '\(s)' is not a number") }
        guard range.contains(x) else { throw UsageError("--\(name) is \(x); it must be in \(range.lowerBound)...\(range.upperBound)") }
        return x
    }

    /// An integer option within `range`.
    func int(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let s = values[name] else { return nil }
        guard let x = Int(s) else { throw UsageError("--\(name) '\(s)' is not an integer") }
        guard range.contains(x) else {
            throw UsageError("--\(name) is \(x); it must be in \(range.lowerBound)...\(range.upperBound)")
        }
        return x
    }

    /// A number, or a comma-separated list of numbers (one per head). `inf` is accepted when
    /// `allowInfinity`; the library validates the ranges.
    func perHead(_ name: String, allowInfinity: Bool = false) throws -> PerHead? {
        guard let s = values[name] else { return nil }
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        var out: [Float] = []
        for p in parts {
            let t = String(p).trimmingCharacters(in: .whitespaces).lowercased()
            if allowInfinity, t == "inf" || t == "infinity" || t == "+inf" {
                out.append(.infinity)
            } else if let x = Float(t), x.isFinite {
                out.append(x)
            } else {
                throw UsageError("--\(name) '\(s)' is not a number\(parts.count > 1 ? " list" : "")\(allowInfinity ? " (or inf)" : "")")
            }
        }
        return PerHead(out)
    }
}

extension Arguments {
    /// Applies the attention options shared by `run`, `check` and `mask` (`--bq --bk
    /// --simthreshd1 --cdfthreshd|--top-k --pvthreshd --quant --causal --sliding-window --attention-sink
    /// --no-smooth-k --smooth-q --fixed-point-pv --gpu-rounding`) on top of `p`; options a command does not declare are
    /// never present, and flags only switch their setting on (a preset's stays otherwise).
    func applyAttentionOptions(to p: inout SpargeParameters) throws {
        if let bq = try int("bq", in: 1...1024) { p.blockQ = bq }
        if let bk = try int("bk", in: 1...1024) { p.blockK = bk }
        if let theta = try perHead("simthreshd1") { p.simThreshold = theta }
        if has("cdfthreshd") && has("top-k") { throw UsageError("give either --cdfthreshd or --top-k, not both") }
        if let tau = try perHead("cdfthreshd") { p.selection = .cdf(tau) }
        if let k = try perHead("top-k") { p.selection = .topK(k) }
        if let lambda = try perHead("pvthreshd", allowInfinity: true) { p.pvThreshold = lambda }
        if let quant = string("quant") {
            guard let variant = QuantizationVariant(rawValue: quant.lowercased()) else {
                throw UsageError("--quant '\(quant)' is not cuda or triton")
            }
            p.gpuReproduction.quantization = variant
        }
        if flag("causal") { p.causal = true }
        if let window = try int("sliding-window", in: 1...Int(Int32.max)) { p.slidingWindow = window }
        if flag("attention-sink") { p.attentionSink = true }
        if flag("no-smooth-k") { p.smoothK = false }
        if flag("smooth-q") { p.smoothQ = true }
        if flag("fixed-point-pv") { p.fixedPointPV = true }
        if flag("gpu-rounding") { p.gpuReproduction.gpuRounding = true }
    }
}

extension Arguments {
    /// `--token-order`, `--grid` and `--prefix` (``TokenOrderOption``), parsed the same way for
    /// every command that declares ``TokenOrderOption/names``; nil for the file's own order.
    func tokenOrder() throws -> TokenOrderOption? { try TokenOrderOption(self) }
}
