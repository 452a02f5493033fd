import Foundation
import SpargeAttn
import SpargeFormats

// The JSON form of ``TunedSettings``, version 1:
// {"format": "sparge-tuned", "version": 1, "metric": "l1", "bound": 0.07, "pv_bound": 0.08,
//  "safety_margin": 0.8, "layers": [{"name": "...", "causal": true, "attention_sink": true,
//  "heads": [{"theta": 0.25, "tau": 0.89, "lambda": 12.5, "block_q": 128, "block_k": 64,
//             "error": 0.051, "density": 0.31, "sparsity": 0.42, "dense": false}, ...]}]}
// `tau` or `topk` per head; `lambda: null` is infinity (stage 2 off).
extension TunedSettings {
    /// Stable, pretty JSON text (one head per line); numbers print as their shortest exact
    /// text, so a round trip gives the same values.
    public var jsonText: String {
        func number(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        var s = "{\n  \"format\": \(JSONText.quoted(Self.format)),\n  \"version\": \(Self.currentVersion),\n"
        s += "  \"metric\": \(JSONText.quoted(metric.rawValue)),\n  \"bound\": \(number(bound)),\n"
        s += "  \"pv_bound\": \(number(pvBound)),\n  \"safety_margin\": \(number(safetyMargin)),\n  \"layers\": [\n"
        s += layers.map { l in
            var t = "    {\n      \"name\": \(JSONText.quoted(l.name)),\n"
            t += "      \"causal\": \(l.causal),\n      \"attention_sink\": \(l.attentionSink),\n      \"heads\": [\n"
            t += l.heads.map { h in
                var f = ["\"theta\": \(number(h.theta))"]
                if let tau = h.tau { f.append("\"tau\": \(number(tau))") }
                if let k = h.topk { f.append("\"topk\": \(number(k))") }
                f += ["\"lambda\": \(number(h.lambda))", "\"block_q\": \(h.blockQ)", "\"block_k\": \(h.blockK)",
                      "\"error\": \(number(h.error))", "\"density\": \(number(h.density))",
                      "\"sparsity\": \(number(h.sparsity))", "\"dense\": \(h.dense)"]
                return "        {" + f.joined(separator: ", ") + "}"
            }.joined(separator: ",\n")
            return t + "\n      ]\n    }"
        }.joined(separator: ",\n")
        return s + "\n  ]\n}\n"
    }

    /// Writes ``jsonText`` to `path`.
    public func write(path: String) throws {
        do { try Data(jsonText.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TuningError.unreadable(path: path, reason: "cannot write it: \(error.localizedDescription)")
        }
    }

    /// Reads a settings file written by ``write(path:)`` (or by hand).
    public static func read(path: String) throws -> TunedSettings {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TuningError.unreadable(path: path, reason: error.localizedDescription)
        }
        return try parse(data)
    }

    /// Parses the JSON text of a settings file; every problem is a ``TuningError`` naming the field.
    public static func parse(_ data: Data) throws -> TunedSettings {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw TuningError.wrongFormat("not valid JSON")
        }
        guard let obj = root as? [String: Any] else { throw TuningError.wrongFormat("the top level is not a JSON object") }
        guard let format = obj["format"] as? String else {
            throw TuningError.wrongFormat("no \"format\" field; expected \"format\": \"\(Self.format)\"")
        }
        guard format == Self.format else { throw TuningError.wrongFormat("\"format\" is \"\(format)\", expected \"\(Self.format)\"") }
        guard let version = integer(obj["version"]) else { throw TuningError.missingField("version") }
        guard version == currentVersion else { throw TuningError.unsupportedVersion(version) }
        let metricName = obj["metric"] as? String ?? TuningMetric.l1.rawValue
        guard let metric = TuningMetric(rawValue: metricName) else { throw TuningError.missingField("metric") }
        guard let layerList = obj["layers"] as? [Any], !layerList.isEmpty else { throw TuningError.missingField("layers") }
        var layers: [TunedLayer] = []
        for (li, l) in layerList.enumerated() {
            layers.append(try layer(l, path: "layers[\(li)]"))
        }
        let names = layers.map(\.name)
        if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw TuningError.wrongFormat("layer name \"\(dup)\" appears twice")
        }
        return TunedSettings(layers: layers, metric: metric, bound: number(obj["bound"]) ?? metric.defaultBounds.bound,
                             pvBound: number(obj["pv_bound"]) ?? metric.defaultBounds.pvBound,
                             safetyMargin: number(obj["safety_margin"]) ?? 1)
    }

    private static func layer(_ value: Any, path lp: String) throws -> TunedLayer {
        guard let lo = value as? [String: Any] else { throw TuningError.missingField(lp) }
        guard let name = lo["name"] as? String, !name.isEmpty else { throw TuningError.missingField("\(lp).name") }
        guard let hs = lo["heads"] as? [Any], !hs.isEmpty else { throw TuningError.missingField("\(lp).heads") }
        var heads: [TunedHead] = []
        for (hi, h) in hs.enumerated() {
            let hp = "\(lp).heads[\(hi)]"
            guard let ho = h as? [String: Any] else { throw TuningError.missingField(hp) }
            func required(_ key: String, nullIsInfinity: Bool = false) throws -> Double {
                if nullIsInfinity, ho[key] is NSNull { return .infinity }
                guard let x = number(ho[key]) else { throw TuningError.missingField("\(hp).\(key)") }
                return x
            }
            func optional(_ key: String) throws -> Double? {
                guard ho[key] != nil, !(ho[key] is NSNull) else { return nil }
                return try required(key)
            }
            let theta = try required("theta")
            let tau = try optional("tau"), topk = try optional("topk")
            if tau == nil && topk == nil { throw TuningError.missingField("\(hp).tau (or topk)") }
            if tau != nil && topk != nil { throw TuningError.wrongFormat("\(hp) has both tau and topk; keep one") }
            if let tau, !(0...1).contains(tau) { throw TuningError.missingField("\(hp).tau (must be in [0, 1])") }
            if let topk, !(topk > 0 && topk <= 1) { throw TuningError.missingField("\(hp).topk (must be in (0, 1])") }
            let lambda = try required("lambda", nullIsInfinity: true)
            if !(lambda >= 0) { throw TuningError.missingField("\(hp).lambda (must be >= 0 or null)") }
            guard let bq = integer(ho["block_q"]), (1...1024).contains(bq) else { throw TuningError.missingField("\(hp).block_q") }
            guard let bk = integer(ho["block_k"]), (1...1024).contains(bk) else { throw TuningError.missingField("\(hp).block_k") }
            if let first = heads.first, first.blockQ != bq || first.blockK != bk {
                throw TuningError.wrongFormat("\(hp) has blocks \(bq)x\(bk) but head 0 has \(first.blockQ)x\(first.blockK); one layer runs with one block size")
            }
            heads.append(TunedHead(theta: Float(theta), tau: tau.map(Float.init), topk: topk.map(Float.init),
                                   lambda: Float(lambda), blockQ: bq, blockK: bk,
                                   error: number(ho["error"]) ?? .nan, density: number(ho["density"]) ?? .nan,
                                   sparsity: number(ho["sparsity"]) ?? .nan,
                                   dense: ho["dense"] as? Bool ?? false))
        }
        if Set(heads.map { $0.tau == nil }).count > 1 {
            throw TuningError.wrongFormat("\(lp) mixes tau and topk heads; one layer runs in one mode")
        }
        return TunedLayer(name: name, heads: heads, causal: lo["causal"] as? Bool ?? false,
                          attentionSink: lo["attention_sink"] as? Bool ?? false)
    }

    /// A JSON number (not a boolean), finite.
    private static func number(_ v: Any?) -> Double? {
        // JSON booleans arrive as NSNumbers of Objective-C type "c" (on Linux and on Darwin).
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        let x = n.doubleValue
        return x.isFinite ? x : nil
    }

    private static func integer(_ v: Any?) -> Int? {
        guard let x = number(v), x == x.rounded(), abs(x) < 1e9 else { return nil }
        return Int(x)
    }
}
