import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeTuning

/// The tuned-settings file: round trip, application to ``SpargeParameters``, and a typed error
/// for every kind of bad file.
@Suite struct TunerFileTests {
    static let settings = TunedSettings(
        layers: [
            TunedLayer(name: "blocks.0.attn", heads: [
                TunedHead(theta: 0.25, tau: 0.9, topK: nil, lambda: 12.5, blockQ: 128, blockK: 64, error: 0.05, density: 0.3, sparsity: 0.7),
                TunedHead(theta: SpargeTuner.denseTheta, tau: 1, topK: nil, lambda: .infinity, blockQ: 128, blockK: 64,
                          error: 0.004, density: 1, sparsity: 0, dense: true),
            ], causal: true, attentionSink: true),
            TunedLayer(name: "blocks.1.attn", heads: [
                TunedHead(theta: 0.1, tau: nil, topK: 0.3, lambda: 7, blockQ: 64, blockK: 128, error: 0.06, density: 0.31),
            ]),
        ],
        metric: .l1, bound: 0.07, pvBound: 0.08, safetyMargin: 0.7)

    @Test func roundTripAndApply() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tuned-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.settings.write(path: path)
        let back = try TunedSettings.read(path: path)
        #expect(back == Self.settings)
        #expect(back.jsonText == Self.settings.jsonText)
        #expect(Self.settings.jsonText.contains("\"lambda\": null"))
        // One spelling of top-k: files are written with `top_k`; the old `topk` is still read.
        #expect(Self.settings.jsonText.contains("\"top_k\": 0.3") && !Self.settings.jsonText.contains("\"topk\""))
        let legacy = try Self.parse(Self.file(heads: #"{"theta": 0.1, "topk": 0.5, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        #expect(legacy.layers[0].heads[0].topK == 0.5)

        var base = SpargeParameters.recommended
        base.causal = true
        let p = try back.parameters(layer: "blocks.0.attn", base: base, heads: 2)
        #expect(p.selection == .cdf([0.9, 1]))
        #expect(p.simThreshold == [0.25, SpargeTuner.denseTheta])
        #expect(p.pvThreshold == PerHead([12.5, .infinity]))
        #expect(p.causal && p.blockQ == 128 && p.blockK == 64)
        var other = SpargeParameters.recommended
        other.blockQ = 64
        other.blockK = 128
        let q = try back.parameters(layer: "blocks.1.attn", base: other, heads: 1)
        #expect(q.selection == .topK([0.3]))
        #expect(back.layers[1].blockSizes! == (64, 128))

        let merged = back.merging(TunedLayer(name: "blocks.1.attn", heads: [back.layers[0].heads[0]]))
        #expect(merged.layers.count == 2 && merged.layers[1].heads[0] == back.layers[0].heads[0])
        #expect(back.merging(TunedLayer(name: "new", heads: [])).layers.count == 3)
    }

    @Test func applyingToTheWrongProblemThrows() throws {
        let s = Self.settings
        #expect(throws: TuningError.headCountMismatch(layer: "blocks.0.attn", tuned: 2, heads: 4)) {
            try s.parameters(layer: "blocks.0.attn", base: .recommended, heads: 4)
        }
        #expect(throws: TuningError.blockSizeMismatch(layer: "blocks.1.attn", tuned: "64x128", given: "128x64")) {
            try s.parameters(layer: "blocks.1.attn", base: .recommended)
        }
        #expect(throws: TuningError.unknownLayer("nope", available: ["blocks.0.attn", "blocks.1.attn"])) {
            try s.parameters(layer: "nope", base: .recommended)
        }
        // Several layers: one must be named.
        #expect(throws: TuningError.self) { try s.parameters(base: .recommended) }
        let message = TuningError.headCountMismatch(layer: "a", tuned: 2, heads: 4).description
        #expect(message.contains("2 heads") && message.contains("4"))
    }

    static let head = #"{"theta": 0.3, "tau": 0.9, "lambda": null, "block_q": 128, "block_k": 64, "error": 0.01, "density": 0.5}"#

    static func file(version: String = "1", heads: String = head, extra: String = "") -> String {
        #"{"format": "sparge-tuned", "version": \#(version)\#(extra), "layers": [{"name": "a", "heads": [\#(heads)]}]}"#
    }

    static func parse(_ s: String) throws -> TunedSettings { try TunedSettings.parse(Data(s.utf8)) }

    @Test func minimalFileReads() throws {
        let ok = try Self.parse(Self.file())
        let h = ok.layers[0].heads[0]
        #expect(h.lambda == .infinity && h.tau == 0.9 && !h.dense && h.sparsity.isNaN)
        #expect(ok.metric == .l1 && ok.bound == 0.07)
    }

    @Test func malformedFilesThrowTypedErrors() throws {
        // Malformed JSON says where (issue 15: it said only "not valid JSON").
        #expect(throws: TuningError.wrongFormat("not valid JSON: expected a key (a string) but found 'n' at line 1, column 2")) {
            try Self.parse("{nope")
        }
        #expect(throws: TuningError.wrongFormat("not valid JSON: expected ',' or '}' but found '\"' at line 3, column 3")) {
            try Self.parse("{\"format\": \"sparge-tuned\",\n \"version\": 1\n  \"layers\": []}")
        }
        #expect(throws: TuningError.wrongFormat("the top level is not a JSON object")) { try Self.parse("[1]") }
        #expect(throws: TuningError.self) { try Self.parse(#"{"format": "other", "version": 1, "layers": []}"#) }
        #expect(throws: TuningError.self) { try Self.parse(#"{"version": 1, "layers": []}"#) }
        #expect(throws: TuningError.unsupportedVersion(2)) { try Self.parse(Self.file(version: "2")) }
        #expect(throws: TuningError.missingField("version")) { try Self.parse(Self.file(version: "\"1\"")) }
        #expect(throws: TuningError.missingField("layers")) { try Self.parse(#"{"format": "sparge-tuned", "version": 1, "layers": []}"#) }
        #expect(throws: TuningError.missingField("metric")) { try Self.parse(Self.file(extra: #", "metric": "psnr""#)) }
        #expect(throws: TuningError.missingField("layers[0].name")) {
            try Self.parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"heads": [\#(Self.head)]}]}"#)
        }
        #expect(throws: TuningError.missingField("layers[0].heads")) {
            try Self.parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"name": "a", "heads": []}]}"#)
        }
        #expect(throws: TuningError.missingField("layers[0].heads[0].theta")) {
            try Self.parse(Self.file(heads: #"{"tau": 0.9, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.missingField("layers[0].heads[0].tau (or top_k)")) {
            try Self.parse(Self.file(heads: #"{"theta": 0.1, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.missingField("layers[0].heads[0].block_k")) {
            try Self.parse(Self.file(heads: #"{"theta": 0.1, "tau": 0.5, "lambda": 1, "block_q": 128, "block_k": 0}"#))
        }
        #expect(throws: TuningError.self) {
            try Self.parse(Self.file(heads: #"{"theta": 0.1, "tau": 1.5, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.self) {
            try Self.parse(Self.file(heads: #"{"theta": true, "tau": 0.5, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.self) {   // both tau and topk
            try Self.parse(Self.file(heads: #"{"theta": 0.1, "tau": 0.5, "topk": 0.5, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.self) {   // one layer, two block sizes
            try Self.parse(Self.file(heads: Self.head + "," + #"{"theta": 0.1, "tau": 0.5, "lambda": 1, "block_q": 64, "block_k": 64}"#))
        }
        #expect(throws: TuningError.self) {   // one layer, two modes
            try Self.parse(Self.file(heads: Self.head + "," + #"{"theta": 0.1, "topk": 0.5, "lambda": 1, "block_q": 128, "block_k": 64}"#))
        }
        #expect(throws: TuningError.self) {   // duplicate layer names
            try Self.parse(#"{"format": "sparge-tuned", "version": 1, "layers": [{"name": "a", "heads": [\#(Self.head)]}, {"name": "a", "heads": [\#(Self.head)]}]}"#)
        }
        #expect(throws: TuningError.self) { try TunedSettings.read(path: "/nonexistent/tuned.json") }
    }
}
