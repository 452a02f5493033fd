import Foundation

/// The tuned values of one head.
public struct TunedHead: Sendable, Hashable {
    public var theta: Float
    /// CDF threshold (CDF mode) ...
    public var tau: Float?
    /// ... or top-k fraction (top-k mode).
    public var topk: Float?
    /// Stage-2 threshold; infinity (JSON `null`) turns stage 2 off for the head.
    public var lambda: Float
    public var blockQ: Int
    public var blockK: Int
    /// Worst calibration error with these values.
    public var error: Double
    /// Mean block density on the calibration samples.
    public var density: Double

    public init(theta: Float, tau: Float?, topk: Float?, lambda: Float, blockQ: Int, blockK: Int, error: Double, density: Double) {
        self.theta = theta; self.tau = tau; self.topk = topk; self.lambda = lambda
        self.blockQ = blockQ; self.blockK = blockK; self.error = error; self.density = density
    }
}

/// The tuned heads of one attention layer.
public struct TunedLayer: Sendable, Hashable {
    public var name: String
    public var heads: [TunedHead]
    public init(name: String, heads: [TunedHead]) { self.name = name; self.heads = heads }
}

/// Tuned per-head settings, stored as versioned JSON:
/// `{"format": "sparge-tuned", "version": 1, "layers": [{"name": ..., "heads": [{"theta": ..,
/// "tau" | "topk": .., "lambda": .., "blockQ": .., "blockK": .., "error": .., "density": ..}]}]}`.
public struct TunedSettings: Sendable, Hashable {
    public static let format = "sparge-tuned"
    public static let currentVersion = 1

    public var layers: [TunedLayer]
    /// The metric and bounds the values were tuned for (informative).
    public var metric: String?
    public var bound: Double?
    public var pvBound: Double?

    public init(layers: [TunedLayer], metric: String? = nil, bound: Double? = nil, pvBound: Double? = nil) {
        self.layers = layers; self.metric = metric; self.bound = bound; self.pvBound = pvBound
    }

    /// The layer named `name`, or the only layer when `name` is nil.
    public func layer(_ name: String?) throws -> TunedLayer {
        if let name {
            guard let l = layers.first(where: { $0.name == name }) else { throw TuningError.unknownLayer(name, available: layers.map(\.name)) }
            return l
        }
        guard let first = layers.first else { throw TuningError.missingField("layers") }
        if layers.count > 1 { throw TuningError.unknownLayer("(none given)", available: layers.map(\.name)) }
        return first
    }

    /// `base` with the tuned per-head values of `layer` (nil: the only layer) for `heads` heads.
    public func parameters(layer name: String? = nil, base: SpargeParameters, heads: Int? = nil) throws -> SpargeParameters {
        let l = try layer(name)
        if let heads, heads != l.heads.count { throw TuningError.headCountMismatch(layer: l.name, tuned: l.heads.count, heads: heads) }
        guard let h0 = l.heads.first else { throw TuningError.missingField("heads") }
        var p = base
        p.blockQ = h0.blockQ
        p.blockK = h0.blockK
        if l.heads.contains(where: { $0.blockQ != h0.blockQ || $0.blockK != h0.blockK }) {
            throw TuningError.wrongFormat("layer '\(l.name)': heads with different block sizes cannot run in one call")
        }
        p.simThreshold = PerHead(l.heads.map(\.theta))
        p.pvThreshold = PerHead(l.heads.map(\.lambda))
        if l.heads.allSatisfy({ $0.tau != nil }) {
            p.selection = .cdf(PerHead(l.heads.map { $0.tau! }))
        } else if l.heads.allSatisfy({ $0.topk != nil }) {
            p.selection = .topK(PerHead(l.heads.map { $0.topk! }))
        } else {
            throw TuningError.wrongFormat("layer '\(l.name)': every head needs 'tau' (all) or 'topk' (all)")
        }
        return p
    }

    // MARK: JSON

    private static func number(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }
    private static func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }

    /// Stable, pretty JSON text.
    public var jsonText: String {
        var s = "{\n  \"format\": \(JSONText.quoted(Self.format)),\n  \"version\": \(Self.currentVersion),\n"
        if let metric { s += "  \"metric\": \(JSONText.quoted(metric)),\n" }
        if let bound { s += "  \"bound\": \(Self.number(bound)),\n" }
        if let pvBound { s += "  \"pv_bound\": \(Self.number(pvBound)),\n" }
        s += "  \"layers\": [\n"
        s += layers.map { l in
            var t = "    {\n      \"name\": \(JSONText.quoted(l.name)),\n      \"heads\": [\n"
            t += l.heads.map { h in
                var f = ["\"theta\": \(Self.number(h.theta))"]
                if let tau = h.tau { f.append("\"tau\": \(Self.number(tau))") }
                if let k = h.topk { f.append("\"topk\": \(Self.number(k))") }
                f += ["\"lambda\": \(Self.number(h.lambda))", "\"blockQ\": \(h.blockQ)", "\"blockK\": \(h.blockK)",
                      "\"error\": \(Self.number(h.error))", "\"density\": \(Self.number(h.density))"]
                return "        {" + f.joined(separator: ", ") + "}"
            }.joined(separator: ",\n")
            return t + "\n      ]\n    }"
        }.joined(separator: ",\n")
        return s + "\n  ]\n}\n"
    }

    public func write(path: String) throws {
        try Data(jsonText.utf8).write(to: URL(fileURLWithPath: path))
    }

    public static func read(path: String) throws -> TunedSettings {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TuningError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws -> TunedSettings {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch { throw TuningError.wrongFormat("not valid JSON") }
        guard let obj = root as? [String: Any] else { throw TuningError.wrongFormat("the top level is not an object") }
        guard let format = obj["format"] as? String, format == Self.format else {
            throw TuningError.wrongFormat("'format' is \(obj["format"].map { "\($0)" } ?? "missing"), expected '\(Self.format)'")
        }
        guard let version = (obj["version"] as? NSNumber)?.intValue else { throw TuningError.missingField("version") }
        guard version == currentVersion else { throw TuningError.unsupportedVersion(version) }
        guard let layerList = obj["layers"] as? [Any] else { throw TuningError.missingField("layers") }
        func double(_ o: [String: Any], _ key: String, _ path: String, nullIsInfinity: Bool = false) throws -> Double? {
            guard let v = o[key] else { return nil }
            if v is NSNull, nullIsInfinity { return .infinity }
            guard let n = v as? NSNumber, !(v is Bool) else { throw TuningError.missingField("\(path).\(key)") }
            return n.doubleValue
        }
        func required(_ o: [String: Any], _ key: String, _ path: String, nullIsInfinity: Bool = false) throws -> Double {
            guard let v = try double(o, key, path, nullIsInfinity: nullIsInfinity), !v.isNaN else { throw TuningError.missingField("\(path).\(key)") }
            return v
        }
        var layers: [TunedLayer] = []
        for (li, l) in layerList.enumerated() {
            let lp = "layers[\(li)]"
            guard let lo = l as? [String: Any] else { throw TuningError.missingField(lp) }
            guard let name = lo["name"] as? String else { throw TuningError.missingField("\(lp).name") }
            guard let hs = lo["heads"] as? [Any], !hs.isEmpty else { throw TuningError.missingField("\(lp).heads") }
            var heads: [TunedHead] = []
            for (hi, h) in hs.enumerated() {
                let hp = "\(lp).heads[\(hi)]"
                guard let ho = h as? [String: Any] else { throw TuningError.missingField(hp) }
                let tau = try double(ho, "tau", hp), topk = try double(ho, "topk", hp)
                if (tau == nil) == (topk == nil) { throw TuningError.missingField("\(hp).tau|topk") }
                let bq = try required(ho, "blockQ", hp), bk = try required(ho, "blockK", hp)
                guard bq >= 1, bk >= 1, bq == bq.rounded(), bk == bk.rounded(), bq <= 1024, bk <= 1024 else {
                    throw TuningError.missingField("\(hp).blockQ/blockK")
                }
                heads.append(TunedHead(
                    theta: Float(try required(ho, "theta", hp)), tau: tau.map(Float.init), topk: topk.map(Float.init),
                    lambda: Float(try required(ho, "lambda", hp, nullIsInfinity: true)),
                    blockQ: Int(bq), blockK: Int(bk),
                    error: try double(ho, "error", hp, nullIsInfinity: true) ?? .nan,
                    density: try double(ho, "density", hp) ?? .nan))
            }
            layers.append(TunedLayer(name: name, heads: heads))
        }
        guard !layers.isEmpty else { throw TuningError.missingField("layers") }
        return TunedSettings(layers: layers, metric: obj["metric"] as? String,
                             bound: (obj["bound"] as? NSNumber)?.doubleValue, pvBound: (obj["pv_bound"] as? NSNumber)?.doubleValue)
    }
}
