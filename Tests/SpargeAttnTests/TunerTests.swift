import Foundation
import Testing
@testable import SpargeAttn

@Suite struct TunerTests {
    /// A small sharp video-like sample: 2 heads, 1024 tokens (2 frames of 16 x 32).
    static func sample(seed: UInt64, sharpness: Float = 16) throws -> VideoLikeWorkload.Tensors {
        var w = VideoLikeWorkload(sharpness: sharpness, heads: 2, frames: 2, seed: seed)
        w.headDim = 64
        return try w.generate()
    }

    static func tuned(mode: TuningOptions.Mode = .cdf) throws -> (TunedSettings, AttentionShape) {
        let cal = try [1, 2].map { try sample(seed: $0) }
        var options = TuningOptions(mode: mode)
        options.thetaGrid = [-0.1, 0.1, 0.3, 0.5, 0.7, 0.9]
        let s = try SpargeTuner.tune(samples: cal.map { ($0.q, $0.k, $0.v) }, shape: cal[0].shape,
                                     base: .recommended, options: options, layer: "blocks.0.attn")
        return (s, cal[0].shape)
    }

    static func errorsAndDensity(_ p: SpargeParameters, _ t: VideoLikeWorkload.Tensors) throws -> ([Double], Double) {
        let ref = try SpargeAttention.dense(q: t.q, k: t.k, v: t.v, shape: t.shape)
        let (out, r) = try SpargeAttention.sparse(q: t.q, k: t.k, v: t.v, shape: t.shape, parameters: p)
        return (SpargeTuner.headErrors(out, ref, shape: t.shape, metric: .l1), r.statistics.density)
    }

    @Test func tunedSettingsMeetTheBoundAndGeneralise() throws {
        let (settings, shape) = try Self.tuned()
        let p = try settings.parameters(layer: "blocks.0.attn", base: .recommended, heads: shape.heads)
        for seed: UInt64 in [1, 2] {
            let (err, _) = try Self.errorsAndDensity(p, try Self.sample(seed: seed))
            #expect(err.allSatisfy { $0 <= 0.08 + 1e-9 }, "calibration seed \(seed): \(err)")
        }
        var densities: [Double] = []
        for seed: UInt64 in [11, 12] {
            let (err, d) = try Self.errorsAndDensity(p, try Self.sample(seed: seed))
            #expect(err.allSatisfy { $0 <= 1.5 * 0.08 }, "held-out seed \(seed): \(err)")
            densities.append(d)
        }
        #expect(densities.allSatisfy { $0 < 1 }, "\(densities)")
        for h in settings.layers[0].heads { #expect(h.error <= 0.08 && h.density < 1) }
    }

    @Test func topKModeAndRoundTripAndDeterminism() throws {
        let (a, shape) = try Self.tuned(mode: .topK)
        let (b, _) = try Self.tuned(mode: .topK)
        #expect(a.jsonText == b.jsonText)
        let p = try a.parameters(base: .recommended, heads: shape.heads)
        guard case .topK(let k) = p.selection else { Issue.record("not top-k"); return }
        #expect(k.values.count == 2 && k.values.allSatisfy { $0 > 0 && $0 < 1 })
        let path = NSTemporaryDirectory() + "tuned-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try a.write(path: path)
        let back = try TunedSettings.read(path: path)
        #expect(back.jsonText == a.jsonText)
        #expect(try back.parameters(base: .recommended) == p)
        #expect(throws: TuningError.headCountMismatch(layer: "blocks.0.attn", tuned: 2, heads: 4)) {
            try back.parameters(base: .recommended, heads: 4)
        }
        #expect(throws: TuningError.self) { try back.parameters(layer: "nope", base: .recommended) }
    }

    @Test func badFilesThrow() throws {
        func parse(_ s: String) throws -> TunedSettings { try TunedSettings.parse(Data(s.utf8)) }
        let head = #"{"theta": 0.3, "tau": 0.9, "lambda": null, "blockQ": 128, "blockK": 64, "error": 0.01, "density": 0.5}"#
        let ok = try parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"name": "a", "heads": [\#(head)]}]}"#)
        #expect(ok.layers[0].heads[0].lambda == .infinity)
        #expect(throws: TuningError.wrongFormat("not valid JSON")) { try parse("{nope") }
        #expect(throws: TuningError.self) { try parse(#"{"format": "other", "version": 1, "layers": []}"#) }
        #expect(throws: TuningError.unsupportedVersion(2)) { try parse(#"{"format": "sparge-tuned", "version": 2, "layers": []}"#) }
        #expect(throws: TuningError.missingField("layers[0].heads[0].theta")) {
            try parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"name": "a", "heads": [{"tau": 0.9, "lambda": 1, "blockQ": 128, "blockK": 64}]}]}"#)
        }
        #expect(throws: TuningError.missingField("layers[0].name")) {
            try parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"heads": [\#(head)]}]}"#)
        }
        #expect(throws: TuningError.self) { try TunedSettings.read(path: "/nonexistent/tuned.json") }
        #expect(throws: TuningError.self) {
            var o = TuningOptions(); o.pvBound = 0.05
            try SpargeTuner.tune(samples: [([0], [0], [0])], shape: AttentionShape(heads: 1, queryLength: 1, headDim: 1), options: o)
        }
    }

    @Test func unreachableBoundFallsBackToDense() throws {
        let t = try Self.sample(seed: 3)
        var o = TuningOptions(bound: 1e-9, pvBound: 2e-9)
        o.thetaGrid = [0.3]
        o.selectionIterations = 2
        o.lambdaIterations = 1
        let s = try SpargeTuner.tune(samples: [(t.q, t.k, t.v)], shape: t.shape, options: o)
        for h in s.layers[0].heads { #expect(h.density == 1 && h.tau == 1 && h.lambda == .infinity) }
    }
}
