import Testing
@testable import SpargeAttn
import SpargeTestSupport
import Foundation

/// Fixed-point P.V (`SpargeParameters.fixedPointPV`): the same attention as fp32 P.V up to a
/// 13-bit rounding of P and a 12-bit rounding of V, on every shape; deterministic; refused where it cannot run.
struct FixedPointPVTests {
    /// (Nq, Nk, D, heads, kvHeads, causal, bq, bk): ragged, N below a block, D 1...256, GQA,
    /// Nq != Nk, key blocks of 512 (more keys than one int32 sum may take).
    static let cases: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool, bq: Int, bk: Int)] = [
        (1, 1, 1, 1, 1, false, 128, 64), (5, 70, 3, 2, 1, true, 128, 64), (200, 200, 64, 4, 2, true, 128, 64),
        (130, 77, 80, 2, 2, false, 64, 128), (300, 300, 128, 2, 1, true, 64, 128), (70, 257, 256, 1, 1, false, 128, 64),
        (129, 600, 24, 3, 3, true, 128, 64), (100, 1100, 40, 2, 1, false, 64, 512), (33, 900, 7, 2, 2, true, 32, 512),
    ]

    /// Full map, stage 2 off: against float64 attention, within a small margin of the fp32 P.V
    /// result on the same INT8 scores (V with outliers in some channels).
    @Test(arguments: 0..<cases.count)
    func matchesFloat64(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(2300 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
        var v = rng.gaussians(shape.keyElements)
        for i in stride(from: 0, to: v.count, by: 97) { v[i] *= 20 }  // outliers in some channels
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.pvThreshold = PerHead(Float.infinity)
        let map = try BlockMap.full(batch: 2, heads: c.h, queryBlocks: blockCount(c.nq, c.bq), keyBlocks: blockCount(c.nk, c.bk))
        let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: c.causal ? c.nk - c.nq : nil)
        let (plain, plainResult) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: map, captureLSE: true)
        p.fixedPointPV = true
        let (fixed, r) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, blockMap: map, captureLSE: true)
        let errPlain = try Accuracy(plain, reference: ref.output).relativeL1
        let errFixed = try Accuracy(fixed, reference: ref.output).relativeL1
        #expect(errFixed <= errPlain + 2e-3, "\(shape): \(errFixed) vs \(errPlain) with fp32 P.V")
        #expect(try Accuracy(fixed, reference: plain.map(Double.init)).relativeL1 <= 2e-3, "\(shape) against fp32 P.V")
        #expect(fixed.allSatisfy { $0.isFinite })
        // The denominators come from the unquantized P: the log-sum-exp is fp32 P.V's, bit for bit.
        #expect(try #require(r.lse).map(\.bitPattern) == (try #require(plainResult.lse)).map(\.bitPattern), "\(shape) LSE")
    }

    /// Top-k selection with stage 2: the block map is that of fp32 P.V; one thread and five,
    /// and the plan, give the same bits; every kernel level stays close to the baseline.
    @Test(arguments: [2, 4, 6])
    func deterministicAcrossThreadsPlansAndLevels(index: Int) throws {
        let c = Self.cases[index]
        var rng = TestRNG(seed: UInt64(2400 + index))
        let shape = AttentionShape(batch: 1, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
        let v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.blockQ = c.bq
        p.blockK = c.bk
        p.causal = c.causal
        p.selection = .topK(0.5)
        p.pvThreshold = 12
        let (_, plain) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        p.fixedPointPV = true
        let (_, r1) = try expectDeterministicSparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(r1.blockMap == plain.blockMap)
        let baseline = try SpargeCPU.withLevel(.baseline) { try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p).output }
        for level in SpargeCPU.supportedLevels {
            let out = try SpargeCPU.withLevel(level) { try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p).output }
            #expect(try Accuracy(out, reference: baseline.map(Double.init)).relativeL1 <= 1e-3, "\(level)")
        }
    }

    /// Decoding shapes with GQA, where the grouped decode kernel (which reads fp32 V) would run.
    @Test func decodingShapes() throws {
        var rng = TestRNG(seed: 2500)
        for nq in [1, 3] {
            let shape = AttentionShape(batch: 1, heads: 8, kvHeads: 2, queryLength: nq, keyLength: 700, headDim: 64)
            let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
            var p = SpargeParameters()
            p.causal = true
            p.selection = .topK(1)
            p.pvThreshold = PerHead(Float.infinity)
            p.fixedPointPV = true
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            let ref = try ExtendedReference.attention(q: q, k: k, v: v, shape: shape, causalOffset: 700 - nq)
            #expect(try Accuracy(out, reference: ref.output).relativeL1 <= 0.02, "Nq \(nq)")
        }
    }

    /// Huge values (V near the fp32 limit, scores far beyond it) stay finite and close to fp32 P.V.
    @Test func hugeInputsStayFinite() throws {
        var rng = TestRNG(seed: 2600)
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 150, keyLength: 150, headDim: 32)
        let q = rng.gaussians(shape.queryElements).map { $0 * 1e19 }, k = rng.gaussians(shape.keyElements).map { $0 * 1e19 }
        let v = rng.gaussians(shape.keyElements).map { $0 * 1e37 }
        var p = SpargeParameters()
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        p.fixedPointPV = true
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(out.allSatisfy { $0.isFinite })
        p.fixedPointPV = false
        let (plain, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
        #expect(try Accuracy(out, reference: plain.map(Double.init)).cosine >= 0.9999)
    }

    /// With `nonFinitePolicy = .propagate`, an infinite or NaN value makes the outputs it
    /// reaches non-finite, as fp32 P.V does, instead of finite garbage.
    @Test func nonFiniteValuesPropagate() throws {
        var rng = TestRNG(seed: 2700)
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 200, keyLength: 200, headDim: 16)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.selection = .topK(1)
        p.pvThreshold = PerHead(Float.infinity)
        p.nonFinitePolicy = .propagate
        for bad in [Float.infinity, .nan] {
            var v = rng.gaussians(shape.keyElements)
            v[70 * 16 + 3] = bad  // head 0, key 70, channel 3
            let (plain, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            var fixedParameters = p
            fixedParameters.fixedPointPV = true
            let (fixed, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: fixedParameters)
            #expect(fixed.map(\.isFinite) == plain.map(\.isFinite), "\(bad)")
            #expect(fixed.contains { !$0.isFinite })
        }
    }

    /// Where it cannot run it says so: the KV cache, and with a GPU P.V emulation.
    @Test func refusals() throws {
        var p = SpargeParameters()
        p.fixedPointPV = true
        #expect {
            _ = try SpargeKVCache(heads: 2, headDim: 16, capacity: 64, parameters: p)
        } throws: { error in
            guard case SpargeError.unsupported(let message) = error else { return false }
            return message.contains("fixedPointPV")
        }
        p.gpuReproduction.pvNumerics = .fp8
        let shape = AttentionShape(batch: 1, heads: 1, queryLength: 8, keyLength: 8, headDim: 8)
        let x = [Float](repeating: 0.1, count: 64)
        #expect {
            _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: shape, parameters: p)
        } throws: { error in
            guard case SpargeError.invalidParameter(let message) = error else { return false }
            return message.contains("fixedPointPV") && message.contains("pvNumerics")
        }
    }
}
