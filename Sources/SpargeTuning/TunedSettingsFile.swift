import Foundation
import SpargeAttn
import SpargeFormats

// The JSON form of ``TunedSettings``, version 1:
// {"format": "sparge-tuned", "version": 1, "metric": "l1", "bound": 0.07, "pv_bound": 0.08,
//  "safety_margin": 0.8, "layers": [{"name": "...", "causal": true, "attention_sink": true,
//  ("smooth_q": true only when tuned with Q smoothing)
//  "heads": [{"theta": 0.25, "tau": 0.89, "lambda": 12.5, "block_q": 128, "block_k": 64,
//             "error": 0.051, "density": 0.31, "sparsity": 0.42, "dense": false}, ...]}]}
// `tau` or `top_k` per head (files written before use `topk`, still read); `lambda: null` is infinity (stage 2 off).
extension TunedSettings {
    /// Stable, pretty JSON text (one head per line); numbers print as their shortest exact
    /// text, so a round trip gives the same values.
    public var jsonText: String {
        let number = JSONValue.shortest
        let layerValues: [JSONValue] = layers.map { l in
            var fields: [(String, JSONValue)] = [
                ("name", .string(l.name)), ("causal", .bool(l.causal)), ("attention_sink", .bool(l.attentionSink)),
            ]
            if l.smoothQ { fields.append(("smooth_q", .bool(true))) }
            if l.fixedPointPV { fields.append(("fixed_point_pv", .bool(true))) }
            let heads: [JSONValue] = l.heads.map { h in
                var f: [(String, JSONValue)] = [("theta", number(h.theta))]
                if let tau = h.tau { f.append(("tau", number(tau))) }
                if let k = h.topK { f.append(("top_k", number(k))) }
                f += [("lambda", number(h.lambda)), ("block_q", .int(h.blockQ)), ("block_k", .int(h.blockK)),
                      ("error", .finite(h.error)), ("density", .finite(h.density)),
                      ("sparsity", .finite(h.sparsity)), ("dense", .bool(h.dense))]
                return .object(f)
            }
            fields.append(("heads", .array(heads)))
            return .object(fields)
        }
        let file: JSONValue = .object([
            ("format", .string(Self.format)), ("version", .int(Self.currentVersion)),
            ("metric", .string(metric.rawValue)), ("bound", .finite(bound)), ("pv_bound", .finite(pvBound)),
            ("safety_margin", .finite(safetyMargin)), ("layers", .array(layerValues)),
        ])
        // Heads (depth 4) one per line.
        return file.prettyText(inlineDepth: 4)
    }

    /// The largest settings file read (32 MiB: room for some 150,000 heads), so a hostile or
    /// mistaken file cannot take gigabytes of memory.
    public static let maxFileBytes = 32 << 20

    /// Writes ``jsonText`` to `path` atomically (temporary file, then rename).
    public func write(path: String) throws {
        do { try FileSafety.writeAtomically(Array(jsonText.utf8), to: path) } catch {
            throw TuningError.unreadable(path: path, reason: "cannot write it: \(error.reason)")
        }
    }

    /// Reads a settings file written by ``write(path:)`` (or by hand), at most ``maxFileBytes``.
    public static func read(path: String) throws -> TunedSettings {
        let data: Data
        do { data = try FileSafety.read(path, limit: maxFileBytes, limitName: "tuned settings files (TunedSettings.maxFileBytes)") } catch {
            throw TuningError.unreadable(path: path, reason: error.reason)
        }
        return try parse(data)
    }

    /// Parses the JSON text of a settings file; every problem is a ``TuningError`` naming the
    /// field, or the line and column of a JSON syntax error. Time and memory are linear in the
    /// text: layers are converted one at a time.
    public static func parse(_ data: Data) throws -> TunedSettings {
        guard data.count <= maxFileBytes else {
            throw TuningError.wrongFormat("the text is \(data.count) bytes, more than the \(maxFileBytes)-byte limit (TunedSettings.maxFileBytes)")
        }
        return try data.withUnsafeBytes { raw in
            var reader = JSONReader(raw)
            do { return try parse(&reader) } catch let e as JSONReader.SyntaxError {
                throw TuningError.wrongFormat("not valid JSON: \(e.description)")
            }
        }
    }

    private static func parse(_ reader: inout JSONReader) throws -> TunedSettings {
        guard try reader.peek() == .object else {
            try reader.skipValue()
            try reader.finish()
            throw TuningError.wrongFormat("the top level is not a JSON object")
        }
        var obj: [String: ParsedJSON] = [:]
        var layers: [TunedLayer] = []
        var names = Set<String>()
        var sawLayers = false
        try reader.readObject { r, key in
            guard key == "layers", try r.peek() == .array else { obj[key] = try r.readValue(); return }
            sawLayers = true
            // Format and version come first in files this build writes; check them before the layers when present.
            try checkHeader(obj, complete: false)
            try r.readArray { r, li in
                let l = try layer(r.readValue(), path: "layers[\(li)]")
                guard names.insert(l.name).inserted else { throw TuningError.wrongFormat("layer name \"\(l.name)\" appears twice") }
                layers.append(l)
            }
        }
        try reader.finish()
        let metric = try checkHeader(obj, complete: true)
        guard sawLayers, !layers.isEmpty else { throw TuningError.missingField("layers") }
        return TunedSettings(layers: layers, metric: metric, bound: number(obj["bound"]) ?? metric.defaultBounds.bound,
                             pvBound: number(obj["pv_bound"]) ?? metric.defaultBounds.pvBound,
                             safetyMargin: number(obj["safety_margin"]) ?? 1)
    }

    /// Checks format, version and metric; with `complete` false, only the fields present so far.
    @discardableResult
    private static func checkHeader(_ obj: [String: ParsedJSON], complete: Bool) throws -> TuningMetric {
        if complete || obj["format"] != nil {
            guard let format = obj["format"]?.string else {
                throw TuningError.wrongFormat("no \"format\" field; expected \"format\": \"\(Self.format)\"")
            }
            guard format == Self.format else { throw TuningError.wrongFormat("\"format\" is \"\(format)\", expected \"\(Self.format)\"") }
        }
        if complete || obj["version"] != nil {
            guard let version = integer(obj["version"]) else { throw TuningError.missingField("version") }
            guard version == currentVersion else { throw TuningError.unsupportedVersion(version) }
        }
        let metricName = obj["metric"]?.string ?? TuningMetric.l1.rawValue
        guard let metric = TuningMetric(rawValue: metricName) else { throw TuningError.missingField("metric") }
        return metric
    }

    private static func layer(_ value: ParsedJSON, path lp: String) throws -> TunedLayer {
        guard case .object(let lo) = value else { throw TuningError.missingField(lp) }
        guard let name = lo["name"]?.string, !name.isEmpty else { throw TuningError.missingField("\(lp).name") }
        guard let hs = lo["heads"]?.array, !hs.isEmpty else { throw TuningError.missingField("\(lp).heads") }
        var heads: [TunedHead] = []
        for (hi, h) in hs.enumerated() {
            let hp = "\(lp).heads[\(hi)]"
            guard case .object(let ho) = h else { throw TuningError.missingField(hp) }
            // The values run as Float: they must be finite there too (1e300 would become inf),
            // as the command-line options must.
            func required(_ key: String, nullIsInfinity: Bool = false) throws -> Double {
                if nullIsInfinity, ho[key]?.isNull == true { return .infinity }
                guard let x = number(ho[key]) else { throw TuningError.missingField("\(hp).\(key)") }
                guard Float(x).isFinite else {
                    throw TuningError.missingField("\(hp).\(key) (\(x) is outside the Float range; it must be a finite number)")
                }
                return x
            }
            func optional(_ key: String) throws -> Double? {
                guard let v = ho[key], !v.isNull else { return nil }
                return try required(key)
            }
            let theta = try required("theta")
            let tau = try optional("tau"), topk = try optional(ho["top_k"] != nil ? "top_k" : "topk")
            if tau == nil && topk == nil { throw TuningError.missingField("\(hp).tau (or top_k)") }
            if tau != nil && topk != nil { throw TuningError.wrongFormat("\(hp) has both tau and top_k; keep one") }
            if let tau, !(0...1).contains(tau) { throw TuningError.missingField("\(hp).tau (must be in [0, 1])") }
            if let topk, !(Float(topk) > 0 && topk <= 1) { throw TuningError.missingField("\(hp).top_k (must be in (0, 1])") }
            let lambda = try required("lambda", nullIsInfinity: true)
            if !(lambda >= 0) { throw TuningError.missingField("\(hp).lambda (must be >= 0 or null)") }
            guard let bq = integer(ho["block_q"]), (1...1024).contains(bq) else { throw TuningError.missingField("\(hp).block_q") }
            guard let bk = integer(ho["block_k"]), (1...1024).contains(bk) else { throw TuningError.missingField("\(hp).block_k") }
            if let first = heads.first, first.blockQ != bq || first.blockK != bk {
                throw TuningError.wrongFormat("\(hp) has blocks \(bq)x\(bk) but head 0 has \(first.blockQ)x\(first.blockK); one layer runs with one block size")
            }
            heads.append(TunedHead(theta: Float(theta), tau: tau.map(Float.init), topK: topk.map(Float.init),
                                   lambda: Float(lambda), blockQ: bq, blockK: bk,
                                   error: number(ho["error"]) ?? .nan, density: number(ho["density"]) ?? .nan,
                                   sparsity: number(ho["sparsity"]) ?? .nan,
                                   dense: ho["dense"]?.bool ?? false))
        }
        if Set(heads.map { $0.tau == nil }).count > 1 {
            throw TuningError.wrongFormat("\(lp) mixes tau and topk heads; one layer runs in one mode")
        }
        return TunedLayer(name: name, heads: heads, causal: lo["causal"]?.bool ?? false,
                          attentionSink: lo["attention_sink"]?.bool ?? false, smoothQ: lo["smooth_q"]?.bool ?? false,
                          fixedPointPV: lo["fixed_point_pv"]?.bool ?? false)
    }

    /// A JSON number (not a boolean), finite.
    private static func number(_ v: ParsedJSON?) -> Double? {
        guard let x = v?.double else { return nil }
        return x.isFinite ? x : nil
    }

    private static func integer(_ v: ParsedJSON?) -> Int? {
        guard let x = number(v), x == x.rounded(), abs(x) < 1e9 else { return nil }
        return Int(x)
    }
}
