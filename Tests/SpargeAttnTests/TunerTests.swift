import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeTuning
@testable import SpargeWorkloads

/// The per-head tuner: bounds met on the calibration samples, generalisation to held-out
/// inputs of the same generators, determinism, top-k mode, the dense fallback, and option
/// validation. Small inputs (1024 tokens) keep it fast; nothing is timed.
@Suite struct TunerTests {
    /// A video-like sample (medium sharpness): 4 heads, 1024 tokens (2 frames of 16 x 32).
    /// Each seed draws its own heads, so held-out seeds are harder than other inputs of a layer.
    static func video(seed: UInt64) throws -> CalibrationSample {
        let t = try VideoLikeWorkload(sharpness: 8, heads: 4, frames: 2, seed: seed).generate()
        return CalibrationSample(q: t.q, k: t.k, v: t.v, shape: t.shape)
    }

    /// A RoPE language-model-like sample of one layer (fixed model seed): 4 heads, 1024 tokens.
    static func languageModel(seed: UInt64) throws -> CalibrationSample {
        let t = try LanguageModelLikeWorkload(heads: 4, tokens: 1024, seed: seed).generate()
        return CalibrationSample(q: t.q, k: t.k, v: t.v, shape: t.shape)
    }

    static var causalSink: SpargeParameters {
        var p = SpargeParameters.recommended
        p.causal = true
        p.attentionSink = true
        return p
    }

    /// Per-head relative L1 and sparsity (over the causally allowed blocks) of `p` on `s`.
    static func measure(_ p: SpargeParameters, _ s: CalibrationSample) throws -> (l1: [Double], sparsity: [Double]) {
        let ref = try SpargeAttention.dense(q: s.q, k: s.k, v: s.v, shape: s.shape, causal: p.causal)
        let (out, r) = try SpargeAttention.sparse(q: s.q, k: s.k, v: s.v, shape: s.shape, parameters: p)
        return (TuningMetric.l1.headErrors(out, reference: ref, shape: s.shape),
                try #require(r.densityPerHead).map { 1 - $0 })
    }

    static func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(x.count) }

    /// Per-head errors and sparsities of `p` over `samples`, concatenated.
    static func measure(_ p: SpargeParameters, _ samples: [CalibrationSample]) throws -> (l1: [Double], sparsity: [Double]) {
        let m = try samples.map { try measure(p, $0) }
        return (m.flatMap(\.l1), m.flatMap(\.sparsity))
    }

    /// Tunes on `calibration` with `options`, checks the bound there, and returns the tuned
    /// parameters' held-out errors and sparsities.
    static func tuneAndHoldOut(_ calibration: [CalibrationSample], _ heldOut: [CalibrationSample], base: SpargeParameters,
                               options: TuningOptions) throws -> (l1: [Double], sparsity: [Double]) {
        let settings = try SpargeTuner.tune(samples: calibration, base: base, options: options, layer: "attn")
        let tuned = try settings.parameters(layer: "attn", base: base, heads: calibration[0].shape.heads)
        let limit = options.pvBound * options.safetyMargin + 1e-9
        #expect(try measure(tuned, calibration).l1.allSatisfy { $0 <= limit })
        #expect(settings.layers[0].heads.allSatisfy { $0.error <= limit })
        return try measure(tuned, heldOut)
    }

    /// The issue's acceptance check: >= 95% of held-out heads within the bound, all within 1.5x.
    static func expectBoundKept(_ l1: [Double], bound: Double) {
        let kept: Int = l1.filter { $0 <= bound }.count
        #expect(Double(kept) >= 0.95 * Double(l1.count), "held-out errors \(l1)")
        #expect(l1.allSatisfy { $0 <= 1.5 * bound }, "held-out errors \(l1)")
    }

    @Test func languageModelLikeSettingsGeneraliseAndBeatTopK() throws {
        let calibration = try [1, 2].map { try Self.languageModel(seed: $0) }
        let heldOut = try [11, 12, 13, 14].map { try Self.languageModel(seed: $0) }
        let options = TuningOptions()
        let tuned = try Self.tuneAndHoldOut(calibration, heldOut, base: Self.causalSink, options: options)
        Self.expectBoundKept(tuned.l1, bound: options.pvBound)
        var topK = Self.causalSink
        topK.selection = .topK(0.5)
        let recommended = try Self.measure(topK, heldOut)
        #expect(Self.mean(tuned.sparsity) > Self.mean(recommended.sparsity), "tuned \(tuned.sparsity) vs top-k \(recommended.sparsity)")
        #expect(tuned.l1.filter { $0 <= options.pvBound }.count >= recommended.l1.filter { $0 <= options.pvBound }.count)
    }

    @Test func videoLikeSettingsGeneraliseAndBeatTopK() throws {
        // Medium sharpness: top-k 0.5 misses the bound on the broad heads; the tuned settings
        // keep it and are more accurate on average and at worst.
        let calibration = try [1, 2, 3].map { try Self.video(seed: $0) }
        let heldOut = try [11, 12, 13, 14].map { try Self.video(seed: $0) }
        let options = TuningOptions()
        let tuned = try Self.tuneAndHoldOut(calibration, heldOut, base: .recommended, options: options)
        Self.expectBoundKept(tuned.l1, bound: options.pvBound)
        var topK = SpargeParameters.recommended
        topK.selection = .topK(0.5)
        let recommended = try Self.measure(topK, heldOut)
        #expect(Self.mean(tuned.l1) < Self.mean(recommended.l1) && tuned.l1.max()! < recommended.l1.max()!,
                "tuned \(tuned.l1) vs top-k \(recommended.l1)")
        // Sharp: top-k 0.5 is accurate; the tuned settings are much sparser within the bound.
        let sharp = { (seed: UInt64) throws -> CalibrationSample in
            let t = try VideoLikeWorkload(sharpness: 16, heads: 4, frames: 2, seed: seed).generate()
            return CalibrationSample(q: t.q, k: t.k, v: t.v, shape: t.shape)
        }
        let sharpHeldOut = try [11, 12].map(sharp)
        let sharpTuned = try Self.tuneAndHoldOut(try [1, 2].map(sharp), sharpHeldOut, base: .recommended, options: options)
        Self.expectBoundKept(sharpTuned.l1, bound: options.pvBound)
        #expect(Self.mean(sharpTuned.sparsity) > Self.mean(try Self.measure(topK, sharpHeldOut).sparsity) + 0.1)
    }

    /// A coarse, quick configuration for the tests that check mechanics rather than quality.
    static func quickOptions(_ mode: TuningOptions.Mode) -> TuningOptions {
        var o = TuningOptions(mode: mode)
        o.thetaGrid = [0, 0.25, 0.5, 0.75]
        o.selectionIterations = 5
        o.lambdaIterations = 3
        return o
    }

    @Test(arguments: [TuningOptions.Mode.cdf, .topK])
    func deterministicAndThreadIndependent(mode: TuningOptions.Mode) throws {
        let samples = [try Self.video(seed: 5)]
        var one = Self.quickOptions(mode)
        one.threads = 1
        var two = Self.quickOptions(mode)
        two.threads = 2
        let a = try SpargeTuner.tune(samples: samples, options: one)
        let b = try SpargeTuner.tune(samples: samples, options: two)
        let c = try SpargeTuner.tune(samples: samples, options: two)
        #expect(a == b && b == c)
        #expect(a.jsonText == c.jsonText)
        let heads = a.layers[0].heads
        #expect(heads.allSatisfy { mode == .cdf ? ($0.tau != nil && $0.topK == nil) : ($0.topK != nil && $0.tau == nil) })
        #expect(heads.contains { !$0.dense && $0.sparsity > 0.1 }, "\(heads)")
    }

    @Test func autoModeKeepsTheSparserMode() throws {
        let samples = [try Self.languageModel(seed: 4)]
        let cdf = try SpargeTuner.tune(samples: samples, base: Self.causalSink, options: Self.quickOptions(.cdf))
        let topk = try SpargeTuner.tune(samples: samples, base: Self.causalSink, options: Self.quickOptions(.topK))
        let auto = try SpargeTuner.tune(samples: samples, base: Self.causalSink, options: Self.quickOptions(.auto))
        let mean = { (s: TunedSettings) in s.layers[0].heads.reduce(0) { $0 + $1.sparsity } / 4 }
        #expect(auto == (mean(topk) > mean(cdf) + 0.1 ? topk : cdf))
    }

    @Test func tuningUsesTheBaseProblem() throws {
        let s = try SpargeTuner.tune(samples: [try Self.languageModel(seed: 6)], base: Self.causalSink,
                                     options: Self.quickOptions(.cdf), layer: "lm")
        let l = try s.layer("lm")
        #expect(l.causal && l.attentionSink)
        #expect(l.heads.allSatisfy { $0.blockQ == 128 && $0.blockK == 64 })
        // The recorded errors are those of the causal problem with the sink.
        let p = try s.parameters(base: Self.causalSink, heads: 4)
        let (l1, _) = try Self.measure(p, try Self.languageModel(seed: 6))
        for (h, head) in l.heads.enumerated() { #expect(abs(head.error - l1[h]) < 1e-12) }
    }

    @Test func unreachableBoundFallsBackToDense() throws {
        var o = TuningOptions(bound: 1e-9, pvBound: 2e-9, mode: .cdf)
        o.thetaGrid = [0.3]
        o.selectionIterations = 2
        o.lambdaIterations = 1
        let s = try SpargeTuner.tune(samples: [try Self.video(seed: 3)], options: o)
        for h in s.layers[0].heads {
            #expect(h.dense && h.density == 1 && h.tau == 1 && h.lambda == .infinity && h.theta == SpargeTuner.denseTheta)
            #expect(h.error < 0.02, "dense fallback error \(h.error) (INT8 quantization only)")
        }
    }

    @Test func smoothingPrefersWindowsAndTakesTheirConservativeValues() {
        func c(_ theta: Float, _ sel: Float, _ lambda: Float, _ density: Double) -> TuningCandidate {
            TuningCandidate(theta: theta, selection: sel, measured: Measurement(error: 0.05, density: density, allowedDensity: density))
        }
        // Sparsest at an isolated theta (index 1); the window (3, 4) is next best.
        let column: [TuningCandidate?] = [nil, c(0.1, 0.5, 5, 0.1), nil, c(0.3, 0.8, 9, 0.4), c(0.4, 0.7, 12, 0.3)]
        guard case .window(let combined, let members) = SpargeTuner.choose(column: column, width: 2) else {
            Issue.record("expected a window"); return
        }
        #expect(members.count == 2 && combined.theta == 0.4 && combined.selection == 0.8)
        #expect(SpargeTuner.choose(column: [nil, c(0.1, 0.5, 5, 0.1), nil], width: 2) == .single(c(0.1, 0.5, 5, 0.1)))
        #expect(SpargeTuner.choose(column: [nil, nil], width: 2) == .dense)
        #expect(SpargeTuner.choose(column: [c(0, 0.5, 5, 0.2)], width: 2) == .window(c(0, 0.5, 5, 0.2), members: [c(0, 0.5, 5, 0.2)]))
    }

    @Test func badOptionsAndSamplesThrow() throws {
        let s = try Self.video(seed: 1)
        func expectInvalid(_ change: (inout TuningOptions) -> Void) {
            var o = TuningOptions()
            change(&o)
            #expect(throws: TuningError.self) { try SpargeTuner.tune(samples: [s], options: o) }
        }
        expectInvalid { $0.pvBound = 0.05 }
        expectInvalid { $0.bound = 0 }
        expectInvalid { $0.thetaGrid = [] }
        expectInvalid { $0.thetaGrid = [0.5, 0.1] }
        expectInvalid { $0.safetyMargin = 1.5 }
        expectInvalid { $0.selectionIterations = 0 }
        expectInvalid { $0.stage2Budget = 0 }
        #expect(throws: TuningError.self) { try SpargeTuner.tune(samples: []) }
        var short = s
        short.v.removeLast()
        #expect(throws: TuningError.self) { try SpargeTuner.tune(samples: [short]) }
        let t = try VideoLikeWorkload(heads: 2, frames: 2, seed: 1).generate()
        let other = CalibrationSample(q: t.q, k: t.k, v: t.v, shape: t.shape)
        #expect(throws: TuningError.self) { try SpargeTuner.tune(samples: [s, other]) }
        var bad = SpargeParameters.recommended
        bad.blockQ = 0
        #expect(throws: SpargeError.self) { try SpargeTuner.tune(samples: [s], base: bad) }
    }

    @Test func metricsMeasureWhatTheySay() {
        let shape = AttentionShape(heads: 2, queryLength: 2, headDim: 2)
        let ref: [Float] = [1, 1, 1, 1, 2, 0, 0, 2]
        let out: [Float] = [1, 1, 1, 1.5, 2, 0, 0, -2]
        let l1 = TuningMetric.l1.headErrors(out, reference: ref, shape: shape)
        #expect(abs(l1[0] - 0.125) < 1e-12 && abs(l1[1] - 1) < 1e-12)
        let cos = TuningMetric.cosine.headErrors(out, reference: ref, shape: shape)
        #expect(abs(cos[0] - (1 - 4.5 / (5.25.squareRoot() * 2))) < 1e-12 && abs(cos[1] - 1) < 1e-12)
        let rmse = TuningMetric.rmse.headErrors(out, reference: ref, shape: shape)
        #expect(abs(rmse[0] - 0.25) < 1e-12 && abs(rmse[1] - 2.0.squareRoot()) < 1e-12)
    }
}
