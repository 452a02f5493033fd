import Foundation
import Testing
import SpargeAttn
import SpargeFormats
import SpargeTestSupport

/// What tools ask of the library instead of re-deriving it: the parameters' settings and
/// description, their shape-independent validation, block counts, accumulated accuracy, and
/// the one JSON writer.
struct ParameterRenderingTests {
    @Test func settingsNameEveryFieldOnce() {
        var p = SpargeParameters.recommended
        p.selection = .cdf([0.9, 0.5])
        p.softmaxScale = 0.125
        let names = p.settings.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.prefix(6) == ["bq", "bk", "selection", "cdfthreshd", "simthreshd1", "pvthreshd"])
        #expect(names.contains("softmax_scale") && !SpargeParameters().settings.map(\.name).contains("softmax_scale"))
        #expect(p.settings.first { $0.name == "cdfthreshd" }?.value.description == "0.9,0.5")
        #expect(p.settings.filter(\.reproducesGPU).map(\.name).contains("pv_numerics"))
    }

    @Test func descriptionShowsTheKnobsAndWhatDiffersFromTheDefaults() {
        #expect(SpargeParameters.recommended.description == "bq 128, bk 64, top-k 0.5, simthreshd1 -0.1, pvthreshd 50.0")
        var p = SpargeParameters.recommended
        p.pvThreshold = PerHead(.infinity)
        p.causal = true
        p.smoothK = false
        p.gpuReproduction.pvNumerics = .fp16
        #expect(p.description == "bq 128, bk 64, top-k 0.5, simthreshd1 -0.1, pvthreshd inf, causal, smooth_k off, pv_numerics fp16")
    }

    @Test func validateWithoutAShapeChecksRangesAndListLengths() throws {
        try SpargeParameters.recommended.validate()
        var p = SpargeParameters.recommended
        p.simThreshold = [0.1, 0.2, 0.3]
        try p.validate()   // three heads are possible
        p.pvThreshold = [1, 2]
        #expect(throws: SpargeError.self) { try p.validate() }   // two lists of different lengths
        var q = SpargeParameters.recommended
        q.selection = .topK(1.5)
        #expect(throws: SpargeError.self) { try q.validate() }
        q = .recommended
        q.blockQ = 0
        #expect(throws: SpargeError.self) { try q.validate() }
    }

    @Test func blockCountsForParameters() {
        let s = AttentionShape(heads: 1, queryLength: 1000, keyLength: 130, headDim: 64)
        var p = SpargeParameters.recommended
        #expect(s.blockCounts(for: p) == (8, 3))
        (p.blockQ, p.blockK) = (64, 128)
        #expect(s.blockCounts(for: p) == (16, 2))
    }

    @Test func accumulatedAccuracyEqualsTheWholeTensorsOne() throws {
        var rng = TestRNG(seed: 13)
        let x = (0..<1000).map { _ in Float(rng.uniform() * 2 - 1) }
        let y = x.map { $0 + Float(rng.uniform() * 0.02 - 0.01) }
        var first = AccuracyAccumulator(), second = AccuracyAccumulator()
        for i in 0..<500 { first.add(x[i], y[i]) }
        for i in 500..<1000 { second.add(x[i], y[i]) }
        var all = first
        all.merge(second)
        let whole = try Accuracy(x, reference: y)
        #expect(all.count == 1000 && all.nonFiniteCount == 0)
        #expect(abs(all.accuracy.cosine - whole.cosine) < 1e-12 && abs(all.accuracy.relativeL1 - whole.relativeL1) < 1e-12)
        #expect(all.accuracy.maxAbsoluteError == whole.maxAbsoluteError)
        var bad = AccuracyAccumulator()
        bad.add(.nan, 1)
        #expect(bad.nonFiniteCount == 1 && bad.accuracy.cosine.isNaN && bad.accuracy.relativeL1 == .infinity)
        #expect(AccuracyAccumulator().accuracy.cosine == 1)
    }

    @Test func jsonValueCompactAndPretty() {
        let v = JSONValue.object([
            ("a", .int(1)), ("b", .number(0.5)), ("c", .number(2)), ("d", .finite(.infinity)), ("e", .shortest(0.1)),
            ("list", .array([.object([("x", .bool(true)), ("y", .string("q\""))])])), ("empty", .array([])),
        ])
        #expect(v.text == #"{"a":1,"b":0.5,"c":2,"d":null,"e":0.1,"list":[{"x":true,"y":"q\""}],"empty":[]}"#)
        #expect(v.prettyText(inlineDepth: 2) == """
            {
              "a": 1,
              "b": 0.5,
              "c": 2,
              "d": null,
              "e": 0.1,
              "list": [
                {"x": true, "y": "q\\""}
              ],
              "empty": []
            }

            """)
    }
}
