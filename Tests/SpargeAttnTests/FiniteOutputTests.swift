import Foundation
import Testing
@testable import SpargeAttn
import SpargeWorkloads
import SpargeTestSupport

/// Issue 15, finite in, finite out: q and k scaled by 1e19 gave NaN everywhere, v = 1e38 gave
/// inf; exact attention is representable in fp32 in both cases. Property tests over
/// magnitudes 1e-30...1e30 against float64.
struct FiniteOutputTests {
    static let shape = AttentionShape(batch: 1, heads: 2, kvHeads: 1, queryLength: 200, headDim: 32)

    static func inputs(qk: Float, v vScale: Float, seed: UInt64 = 7) -> (q: [Float], k: [Float], v: [Float]) {
        var rng = VideoLikeWorkload.SplitMix64(seed: seed)
        let s = shape
        let q = (0..<s.queryElements).map { _ in rng.gaussian() * qk }
        let k = (0..<s.keyElements).map { _ in rng.gaussian() * qk }
        let v = (0..<s.keyElements).map { _ in rng.gaussian() * vScale }
        return (q, k, v)
    }

    static func relativeL1(_ x: [Float], _ ref: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for i in x.indices { num += abs(Double(x[i]) - ref[i]); den += abs(ref[i]) }
        return den == 0 ? num : num / den
    }

    static func allFinite(_ x: [Float]) -> Bool { x.allSatisfy(\.isFinite) }

    static var fullMap: BlockMap {
        get throws { try BlockMap.full(batch: 1, heads: shape.heads, queryBlocks: 2, keyBlocks: 4) }
    }

    /// The issue's reproducers: q, k times 1e19 and 3e18 (NaN before), dense, causal and
    /// sparse with both quantizations.
    @Test(arguments: [Float(1e19), 3e18])
    func hugeScoresStayFinite(scale: Float) throws {
        let (q, k, v) = Self.inputs(qk: scale, v: 1)
        for causal in [false, true] {
            let out = try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape, causal: causal, threads: 2)
            #expect(Self.allFinite(out), "dense causal \(causal): \(out.filter { !$0.isFinite }.count) non-finite")
            let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: Self.shape, causal: causal)
            #expect(Self.relativeL1(out, ref) < 1e-4, "dense causal \(causal) vs float64")
        }
        for p in [SpargeParameters.recommended, .triton, .sage2CDF] {
            var p = p
            p.pvThreshold = PerHead(Float.infinity)
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p, threads: 2)
            #expect(Self.allFinite(out), "sparse \(p.gpuReproduction.quantization): \(out.filter { !$0.isFinite }.count) non-finite")
            // Every output is a convex combination of v rows.
            let vMax = v.map(abs).max()!
            #expect(out.allSatisfy { abs($0) <= vMax * 1.001 })
        }
        var p = SpargeParameters.recommended
        p.causal = true
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p, threads: 2)
        #expect(Self.allFinite(out), "sparse causal with stage 2")
    }

    /// v = 1e38 everywhere: the exact answer is 1e38 (12,480 inf before); v = 3e37 (3,616 inf).
    @Test(arguments: [Float(1e38), 3e37])
    func hugeValuesDoNotOverflow(value: Float) throws {
        let (q, k, _) = Self.inputs(qk: 1, v: 1)
        let v = [Float](repeating: value, count: Self.shape.keyElements)
        let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape, threads: 2)
        #expect(dense.allSatisfy { abs($0 - value) <= value * 1e-5 }, "dense: \(dense.filter { !$0.isFinite }.count) non-finite")
        for p in [SpargeParameters.recommended, .triton] {
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p, threads: 2)
            #expect(out.allSatisfy { abs($0 - value) <= value * 1e-5 }, "sparse \(p.gpuReproduction.quantization): \(out.filter { !$0.isFinite }.count) non-finite")
        }
        // Split-K (a single query tile has its keys split across workers) merges with the units too.
        let one = AttentionShape(batch: 1, heads: 1, queryLength: 8, keyLength: 4096, headDim: 32)
        var rng = VideoLikeWorkload.SplitMix64(seed: 3)
        let q1 = (0..<one.queryElements).map { _ in rng.gaussian() * 1e19 }
        let k1 = (0..<one.keyElements).map { _ in rng.gaussian() * 1e19 }
        let v1 = [Float](repeating: value, count: one.keyElements)
        let o1 = try SpargeAttention.dense(q: q1, k: k1, v: v1, shape: one, threads: 2)
        #expect(o1.allSatisfy { abs($0 - value) <= value * 1e-5 }, "split-K dense")
        let (s1, _) = try SpargeAttention.sparse(q: q1, k: k1, v: v1, shape: one, threads: 2)
        #expect(s1.allSatisfy { abs($0 - value) <= value * 1e-5 }, "split-K sparse")
    }

    /// Huge V that the sparse path widens anyway (bf16 elements; fp32 rows padded from D = 20 to
    /// 24) takes its units from the widened copy, then is widened again divided by them.
    @Test(arguments: [Float(1e38), 3e37])
    func hugeWidenedValuesDoNotOverflow(value: Float) throws {
        let padded = AttentionShape(batch: 1, heads: 2, kvHeads: 1, queryLength: 200, headDim: 20)
        var rng = VideoLikeWorkload.SplitMix64(seed: 5)
        let q = (0..<padded.queryElements).map { _ in rng.gaussian() }, k = (0..<padded.keyElements).map { _ in rng.gaussian() }
        let v = [Float](repeating: value, count: padded.keyElements)
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: padded, threads: 2)
        #expect(out.allSatisfy { abs($0 - value) <= value * 1e-5 }, "fp32 D=20: \(out.filter { !$0.isFinite }.count) non-finite")
        let (q16, k16, _) = Self.inputs(qk: 1, v: 1)
        let half = BFloat16(value)
        let v16 = [BFloat16](repeating: half, count: Self.shape.keyElements)
        var o = [Float](repeating: 0, count: Self.shape.queryElements)
        try q16.withUnsafeBufferPointer { qb in
            try k16.withUnsafeBufferPointer { kb in
                try v16.withUnsafeBufferPointer { vb in
                    try o.withUnsafeMutableBufferPointer { ob in
                        _ = try SpargeAttention.sparse(q: AttentionInput(qb), k: AttentionInput(kb), v: AttentionInput(vb),
                                                       output: AttentionOutput(ob), shape: Self.shape, threads: 2)
                    }
                }
            }
        }
        #expect(o.allSatisfy { abs($0 - half.float) <= half.float * 1e-5 }, "bf16 V: \(o.filter { !$0.isFinite }.count) non-finite")
    }

    /// Products past fp32's range (|q| |k| s up to about 2^262: q and k both near 3e38 or
    /// 1e34): the score unit passes fp32's range and is applied in steps. Exact attention is
    /// then in effect one key a row; dense, split-K and the cache's exact decode match float64,
    /// the sparse paths stay finite and convex.
    @Test(arguments: [Float(3e38), 1e34, 1e25])
    func productsBeyondTheFloatRange(magnitude: Float) throws {
        var (q, k, v) = Self.inputs(qk: 1, v: 1, seed: 11)
        q = q.map { min(max($0 * magnitude / 4, -.greatestFiniteMagnitude), .greatestFiniteMagnitude) }
        k = k.map { min(max($0 * magnitude / 4, -.greatestFiniteMagnitude), .greatestFiniteMagnitude) }
        let vMax = v.map(abs).max()!
        for causal in [false, true] {
            let out = try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape, causal: causal, threads: 2)
            let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: Self.shape, causal: causal)
            #expect(Self.allFinite(out), "dense causal \(causal): \(out.filter { !$0.isFinite }.count) non-finite")
            #expect(Self.relativeL1(out, ref) < 1e-4, "dense causal \(causal): rel L1 \(Self.relativeL1(out, ref))")
            for p in [SpargeParameters.recommended, .triton, .sage2CDF] {
                var p = p
                p.causal = causal
                let (s, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p, threads: 2)
                #expect(s.allSatisfy { $0.isFinite && abs($0) <= vMax * 1.001 }, "sparse \(p.selection) causal \(causal)")
            }
        }
        // Split-K: one query tile's keys on both workers, merged with the stored units.
        let one = AttentionShape(batch: 1, heads: 1, queryLength: 8, keyLength: 4096, headDim: 32)
        var rng = VideoLikeWorkload.SplitMix64(seed: 13)
        let q1 = (0..<one.queryElements).map { _ in max(-3e38, min(3e38, rng.gaussian() * magnitude / 4)) }
        let k1 = (0..<one.keyElements).map { _ in max(-3e38, min(3e38, rng.gaussian() * magnitude / 4)) }
        let v1 = (0..<one.keyElements).map { _ in rng.gaussian() }
        let o1 = try SpargeAttention.dense(q: q1, k: k1, v: v1, shape: one, threads: 2)
        let r1 = try Float64Reference.attention(q: q1, k: k1, v: v1, shape: one)
        #expect(Self.relativeL1(o1, r1) < 1e-4, "split-K dense: rel L1 \(Self.relativeL1(o1, r1))")
        let (s1, _) = try SpargeAttention.sparse(q: q1, k: k1, v: v1, shape: one, threads: 2)
        #expect(Self.allFinite(s1), "split-K sparse")
        // The cache: exact decode against float64, sparse decode finite.
        let n = Self.shape.keyLength, d = Self.shape.headDim, kv = Self.shape.kvHeads
        let cache = try SpargeKVCache(heads: Self.shape.heads, kvHeads: kv, headDim: d, capacity: n)
        try cache.append(k: k, v: v, tokens: n)
        let queries = 2
        let qd = (0..<(Self.shape.heads * queries * d)).map { q[$0] }
        var od = [Float](repeating: 0, count: qd.count)
        try cache.attendExact(q: qd, output: &od, queries: queries)
        let decodeShape = AttentionShape(heads: Self.shape.heads, kvHeads: kv, queryLength: queries, keyLength: n, headDim: d)
        let rd = try Float64Reference.attention(q: qd, k: k, v: v, shape: decodeShape, causal: true)   // the cache's default
        #expect(Self.relativeL1(od, rd) < 1e-4, "exact decode: rel L1 \(Self.relativeL1(od, rd))")
        for count in [1, queries] {
            var os = [Float](repeating: 0, count: Self.shape.heads * count * d)
            let qs = (0..<os.count).map { q[$0] }
            try cache.attend(q: qs, output: &os, queries: count)
            #expect(os.allSatisfy { $0.isFinite && abs($0) <= vMax * 1.001 }, "sparse decode, \(count) queries")
        }
    }

    /// Three corners a differential fuzzer found (session 42): fixed-point P.V of values below
    /// 1e-35 (4095 / max|v| overflowed: zeros), INT8 scales whose product passes fp32 with a
    /// small softmax scale (NaN), Q smoothing of queries near the limit (zero rows).
    @Test func cornersOfTheQuantizedPaths() throws {
        var rng = TestRNG(seed: 4242)
        let small = AttentionShape(heads: 1, queryLength: 64, headDim: 64)
        let q = rng.gaussians(small.queryElements), k = rng.gaussians(small.keyElements)
        for scale: Float in [1e-36, 1e-40] {
            let v = rng.gaussians(small.keyElements).map { $0 * scale }
            var p = SpargeParameters.recommended
            p.selection = .topK(1)
            let (plain, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: small, parameters: p)
            p.fixedPointPV = true
            let (fixed, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: small, parameters: p)
            #expect(Self.relativeL1(fixed, plain.map(Double.init)) < 1e-2, "fixed-point P.V, v x \(scale)")
        }

        let wide = AttentionShape(heads: 1, queryLength: 128, headDim: 64)
        let qw = rng.gaussians(wide.queryElements).map { $0 * 1e30 }, kw = rng.gaussians(wide.keyElements).map { $0 * 1e30 }
        let vw = rng.gaussians(wide.keyElements)
        var p = SpargeParameters.recommended
        p.selection = .topK(1)
        p.softmaxScale = 1e-38
        let (sparse, _) = try SpargeAttention.sparse(q: qw, k: kw, v: vw, shape: wide, parameters: p)
        let ref = try Float64Reference.attention(q: qw, k: kw, v: vw, shape: wide, softmaxScale: 1e-38)
        #expect(Self.allFinite(sparse) && Self.relativeL1(sparse, ref) < 0.05, "q_scale k_scale past fp32: rel L1 \(Self.relativeL1(sparse, ref))")

        let tiny = AttentionShape(heads: 1, queryLength: 4, headDim: 16)
        let qs = (0..<tiny.queryElements).map { _ in rng.gaussian() < 0 ? Float(-2.5e38) : 2.5e38 }
        let ks = rng.gaussians(tiny.keyElements).map { $0 * 1e-38 }, vs = rng.gaussians(tiny.keyElements)
        var smooth = SpargeParameters.recommended
        let (plain, _) = try SpargeAttention.sparse(q: qs, k: ks, v: vs, shape: tiny, parameters: smooth)
        smooth.smoothQ = true
        let (smoothed, _) = try SpargeAttention.sparse(q: qs, k: ks, v: vs, shape: tiny, parameters: smooth)
        // (Keys near 1e-38 quantize to 0 with the authors' scale max/127 + 1e-7, so both are the
        // uniform average; smoothing must not change that into zeros.)
        #expect(Self.allFinite(smoothed) && Self.relativeL1(smoothed, plain.map(Double.init)) < 1e-3, "Q smoothing near the limit")
    }

    /// Dense attention against float64 for q, k and v magnitudes from 1e-30 to 1e30.
    @Test func denseMatchesFloat64AcrossMagnitudes() throws {
        let magnitudes: [Float] = [1e-30, 1e-10, 1, 1e10, 1e19, 1e30]
        for qk in magnitudes {
            for vs in magnitudes {
                let (q, k, v) = Self.inputs(qk: qk, v: vs, seed: UInt64(qk.exponent + 200) &* 31 &+ UInt64(vs.exponent + 200))
                let out = try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape, threads: 2)
                #expect(Self.allFinite(out), "q,k \(qk), v \(vs)")
                let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: Self.shape)
                #expect(Self.relativeL1(out, ref) < 1e-4, "q,k \(qk), v \(vs): rel L1 \(Self.relativeL1(out, ref))")
                // Sparse with every block kept and stage 2 off: finite, and close where scores are moderate
                // (INT8 rounding of huge scores may change which key dominates a row).
                var p = SpargeParameters.recommended
                p.pvThreshold = PerHead(Float.infinity)
                let (s, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p, blockMap: Self.fullMap, threads: 2)
                #expect(Self.allFinite(s), "sparse q,k \(qk), v \(vs)")
                if qk <= 1 { #expect(Self.relativeL1(s, ref) < 0.05, "sparse q,k \(qk), v \(vs): rel L1 \(Self.relativeL1(s, ref))") }
            }
        }
    }
}

/// A query near the fp32 limit against small keys: the scores are ordinary, but Q times the
/// softmax scale is not representable. Dense attention keeps such a query in a power-of-two
/// unit and still matches float64.
struct LargeQuerySmallKeyTests {
    @Test func denseQueryNearTheLimitAgainstSmallKeys() throws {
        let tiny = AttentionShape(heads: 1, queryLength: 1, keyLength: 3, headDim: 1)
        let out = try SpargeAttention.dense(q: [3e38], k: [1e-30, 2e-30, 0], v: [1, 2, 3], shape: tiny)
        let ref = try Float64Reference.attention(q: [3e38], k: [1e-30, 2e-30, 0], v: [1, 2, 3], shape: tiny)
        #expect(out.allSatisfy { $0.isFinite } && abs(Double(out[0]) - ref[0]) < 1e-5, "\(out) against \(ref)")
        // Several query and key tiles, a scale above 1, GQA, causal.
        var rng = TestRNG(seed: 404)
        let shape = AttentionShape(heads: 2, kvHeads: 1, queryLength: 150, keyLength: 170, headDim: 16)
        let q = rng.gaussians(shape.queryElements).map { $0 * 1e37 }
        let k = rng.gaussians(shape.keyElements).map { $0 * 1e-36 }
        let v = rng.gaussians(shape.keyElements)
        for causal in [false, true] {
            let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: causal, softmaxScale: 4, threads: 2)
            let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: causal, softmaxScale: 4)
            #expect(dense.allSatisfy { $0.isFinite }, "causal \(causal)")
            #expect(FiniteOutputTests.relativeL1(dense, exact) < 1e-4, "causal \(causal): rel L1 \(FiniteOutputTests.relativeL1(dense, exact))")
        }
    }
}

/// The Triton quantization multiplies Q by s * log2(e) before its INT8 rounding: a query near
/// the fp32 limit keeps a power-of-two unit there and still picks the right key.
struct TritonLargeQueryTests {
    @Test func tritonQueryNearTheLimit() throws {
        let s = AttentionShape(heads: 1, queryLength: 1, keyLength: 3, headDim: 1)
        let q: [Float] = [3e38], k: [Float] = [1, 2, 0], v: [Float] = [1, 5, 3]
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: .triton)
        let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: s)
        #expect(out.allSatisfy { $0.isFinite } && abs(Double(out[0]) - exact[0]) < 1e-3, "\(out) against \(exact)")
        // Whole blocks of such queries (a scale of 4: q * s * log2(e) passes the limit from 6e37).
        var rng = TestRNG(seed: 515)
        let shape = AttentionShape(heads: 2, queryLength: 130, keyLength: 140, headDim: 32)
        let qs = rng.gaussians(shape.queryElements).map { $0 * 5e37 }
        var p = SpargeParameters.triton
        p.softmaxScale = 4
        let (o2, _) = try SpargeAttention.sparse(q: qs, k: rng.gaussians(shape.keyElements), v: rng.gaussians(shape.keyElements),
                                                 shape: shape, parameters: p)
        #expect(o2.allSatisfy { $0.isFinite })
    }
}

/// Keys near the fp32 limit under K smoothing: a channel whose fp32 sums overflow, or whose
/// mean is so large that k - mean would, is smoothed by 0 instead (the softmax is the same).
struct LargeKeyMeanTests {
    static func sparseWithLSE(q: [Float], k: [Float], v: [Float], shape: AttentionShape) throws -> (out: [Float], lse: [Float]) {
        var out = [Float](repeating: 0, count: shape.queryElements), lse = [Float](repeating: 0, count: shape.batch * shape.heads * shape.queryLength)
        try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
            try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                _ = try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(o),
                                               shape: shape, lse: l)
            } }
        } } }
        return (out, lse)
    }

    @Test func keysNearTheLimitKeepAFiniteOutput() throws {
        // k - mean overflowed: 3.4e38 - (-3.4e38 ... mean 8.5e37).
        let s4 = AttentionShape(heads: 1, queryLength: 1, keyLength: 4, headDim: 1)
        let k4: [Float] = [3.4e38, -3.4e38, 3.4e38, 1]
        let a = try Self.sparseWithLSE(q: [1], k: k4, v: [1, 2, 3, 4], shape: s4)
        let exactA = try Float64Reference.attentionWithLSE(q: [1], k: k4, v: [1, 2, 3, 4], shape: s4)
        #expect(a.out.allSatisfy { $0.isFinite } && abs(Double(a.out[0]) - exactA.output[0]) < 1e-3 * abs(exactA.output[0]), "\(a.out) against \(exactA.output)")
        #expect(a.lse.allSatisfy { $0.isFinite }, "\(a.lse)")
        // The 16 keys' fp32 sum passes the limit.
        let s16 = AttentionShape(heads: 1, queryLength: 1, keyLength: 16, headDim: 1)
        let k16: [Float] = (0..<16).map { 4e37 + Float($0 % 3) * 4e34 }
        let v16 = (0..<16).map(Float.init)
        let b = try Self.sparseWithLSE(q: [0.01], k: k16, v: v16, shape: s16)
        let exactB = try Float64Reference.attentionWithLSE(q: [0.01], k: k16, v: v16, shape: s16)
        #expect(b.out.allSatisfy { $0.isFinite } && b.lse.allSatisfy { $0.isFinite }, "\(b.out) \(b.lse)")
        #expect(abs(Double(b.lse[0]) - exactB.lse[0]) <= 1e-3 * abs(exactB.lse[0]), "lse \(b.lse) against \(exactB.lse)")
        // The KV cache's sparse attend computes the same mean.
        let cache = try SpargeKVCache(heads: 1, headDim: 1, capacity: 16)
        try KVCacheTests.append(cache, k16, v16, tokens: 16)
        let c = try KVCacheTests.attend(cache, [0.01], queries: 1)
        #expect(c.allSatisfy { $0.isFinite } && abs(Double(c[0]) - exactB.output[0]) < 0.05 * abs(exactB.output[0]) + 0.05, "\(c) against \(exactB.output)")
    }
}

/// The KV cache's decode paths (exact, per-head and grouped sparse) under the same guard:
/// q, k near 1e19 and values near the fp32 limit, with a second append raising the value unit
/// of rows already stored.
struct KVCacheFiniteOutputTests {
    static let heads = 4, kvHeads = 2, d = 32, prefill = 2000, later = 1100

    /// A cache holding `prefill` keys with values times `first`, then `later` with values times `second`.
    static func cache(qk: Float, first: Float, second: Float, causal: Bool, seed: UInt64)
        throws -> (cache: SpargeKVCache, k: [Float], v: [Float]) {
        var rng = TestRNG(seed: seed)
        let n = prefill + later
        let k = rng.gaussians(kvHeads * n * d, scale: qk)
        var v = rng.gaussians(kvHeads * n * d)
        for h in 0..<kvHeads {
            for t in 0..<n { for c in 0..<d { v[(h * n + t) * d + c] *= t < prefill ? first : second } }
        }
        var p = SpargeParameters.recommended
        p.causal = causal
        let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, maxQueryLength: 4, parameters: p)
        try KVCacheTests.append(cache, KVCacheTests.rows(k, heads: kvHeads, n: n, d: d, 0..<prefill),
                                KVCacheTests.rows(v, heads: kvHeads, n: n, d: d, 0..<prefill), tokens: prefill)
        try KVCacheTests.append(cache, KVCacheTests.rows(k, heads: kvHeads, n: n, d: d, prefill..<n),
                                KVCacheTests.rows(v, heads: kvHeads, n: n, d: d, prefill..<n), tokens: later)
        return (cache, k, v)
    }

    static func exact(_ cache: SpargeKVCache, _ q: [Float], queries: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: q.count)
        try q.withUnsafeBufferPointer { qp in try out.withUnsafeMutableBufferPointer { op in
            try cache.attendExact(q: AttentionInput(qp), output: AttentionOutput(op), queries: queries)
        } }
        return out
    }

    /// Exact decode against float64 for scores near the fp32 limit and values near it.
    @Test(arguments: [(Float(1e19), Float(1), Float(1)), (1, 1e30, 3e37), (1e19, 1e36, 5e37), (1e-30, 1e-30, 1e-30)])
    func exactDecodeMatchesFloat64(qk: Float, first: Float, second: Float) throws {
        for causal in [true, false] {
            let (cache, k, v) = try Self.cache(qk: qk, first: first, second: second, causal: causal, seed: 91)
            var rng = TestRNG(seed: 92)
            for queries in [1, 3] {
                let q = rng.gaussians(Self.heads * queries * Self.d, scale: qk)
                let out = try Self.exact(cache, q, queries: queries)
                let label = "q,k \(qk) v \(first)/\(second) causal \(causal) Nq \(queries)"
                #expect(out.allSatisfy { $0.isFinite }, "\(label): \(out.filter { !$0.isFinite }.count) non-finite")
                let shape = AttentionShape(heads: Self.heads, kvHeads: Self.kvHeads, queryLength: queries,
                                           keyLength: Self.prefill + Self.later, headDim: Self.d)
                let ref = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: causal)
                #expect(FiniteOutputTests.relativeL1(out, ref) < 1e-4, "\(label): rel L1 \(FiniteOutputTests.relativeL1(out, ref))")
            }
        }
    }

    /// Sparse decode (grouped for one query, per head for three): finite, a convex combination
    /// of the values, and, with values near the limit, the same as with those values divided
    /// by 2^100 and the output multiplied back (a power of two changes nothing but the range).
    /// V at the largest float: every output is a weighted mean of it, so exactly it; fp32
    /// rounding in O / l times the value unit once made some of them infinite.
    @Test func valuesAtTheLargestFloatStayFinite() throws {
        let big = Float.greatestFiniteMagnitude
        let s = FiniteOutputTests.shape
        var (q, k, _) = FiniteOutputTests.inputs(qk: 1, v: 1)
        q = q.map { $0 * 3 }; k = k.map { $0 * 3 }
        let v = [Float](repeating: big, count: s.keyElements)
        var full = SpargeParameters.recommended; full.selection = .topK(1)
        let outputs: [(String, [Float])] = [
            ("dense", try SpargeAttention.dense(q: q, k: k, v: v, shape: s)),
            ("sparse", try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: full).output),
            ("sparse top-k 0.5", try SpargeAttention.sparse(q: q, k: k, v: v, shape: s).output),
        ]
        for (name, o) in outputs {
            #expect(o.allSatisfy { $0.isFinite && abs($0 - big) <= big * 1e-6 }, "\(name): \(o.filter { !$0.isFinite }.count) not finite")
        }
        let tiny = AttentionShape(heads: 1, queryLength: 1, keyLength: 3, headDim: 1)
        let one: [Float] = try SpargeAttention.dense(q: [0.5], k: [0.3, -1.2, 0.7], v: [big, big, big], shape: tiny)
        #expect(one == [big])
        let cache = try SpargeKVCache(heads: 1, headDim: 1, capacity: 3)
        try cache.append(k: [Float(0.3), -1.2, 0.7], v: [big, big, big], tokens: 3)
        var o: [Float] = [0]
        try cache.attend(q: [Float(0.5)], output: &o, queries: 1)
        #expect(o[0].isFinite && abs(o[0] - big) <= big * 1e-6, "\(o)")
        try cache.attendExact(q: [Float(0.5)], output: &o, queries: 1)
        #expect(o[0].isFinite && abs(o[0] - big) <= big * 1e-6, "\(o)")
    }

    @Test func sparseDecodeStaysFinite() throws {
        var rng = TestRNG(seed: 93)
        for queries in [1, 3] {
            let (big, _, v) = try Self.cache(qk: 1e19, first: 1e36, second: 5e37, causal: true, seed: 94)
            let q = rng.gaussians(Self.heads * queries * Self.d, scale: 1e19)
            let out = try KVCacheTests.attend(big, q, queries: queries)
            let vMax = v.map(abs).max()!
            #expect(out.allSatisfy { $0.isFinite && abs($0) <= vMax * 1.001 }, "Nq \(queries): \(out.filter { !$0.isFinite }.count) non-finite")
            let (moderate, _, _) = try Self.cache(qk: 1, first: 1e30, second: 3e37, causal: true, seed: 95)
            let (small, _, _) = try Self.cache(qk: 1, first: 0x1p-100 * 1e30, second: 0x1p-100 * 3e37, causal: true, seed: 95)
            let q1 = rng.gaussians(Self.heads * queries * Self.d)
            let a = try KVCacheTests.attend(moderate, q1, queries: queries)
            let b = try KVCacheTests.attend(small, q1, queries: queries).map { $0 * 0x1p100 }
            #expect(a.allSatisfy { $0.isFinite }, "Nq \(queries): \(a.filter { !$0.isFinite }.count) non-finite")
            #expect(FiniteOutputTests.relativeL1(a, b.map(Double.init)) < 1e-6, "Nq \(queries)")
        }
    }
}

/// The faithful GPU emulations cannot hold what fp16 cannot: fp16 P.V with |v| beyond 65504
/// (and `gpuRounding` with such q or k) throws a typed error before any output is written.
struct HalfRangeTests {
    @Test func fp16EmulationRejectsValuesBeyondHalfRange() throws {
        let s = FiniteOutputTests.shape
        let (q, k, v) = FiniteOutputTests.inputs(qk: 1, v: 1)
        var big = v
        big[77] = 70000
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp16
        #expect(throws: SpargeError.beyondHalfRange(name: "v", index: 77, value: 70000, reason: HalfRoundedInputs.reason(name: "v"))) {
            _ = try SpargeAttention.sparse(q: q, k: k, v: big, shape: s, parameters: p)
        }
        // The largest finite fp16 value passes, and so does the same V with fp32 or FP8 P.V.
        big[77] = 65504
        let (edge, _) = try SpargeAttention.sparse(q: q, k: k, v: big, shape: s, parameters: p)
        #expect(edge.allSatisfy { $0.isFinite })
        big[77] = 70000
        for numerics in [PVNumerics.fp32, .fp8] {
            p.gpuReproduction.pvNumerics = numerics
            let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: big, shape: s, parameters: p)
            #expect(out.allSatisfy { $0.isFinite }, "\(numerics)")
        }
        // A plan throws the same, and leaves the output untouched.
        p.gpuReproduction.pvNumerics = .fp16
        let plan = try SpargePlan(shape: s, parameters: p)
        let workspace = plan.makeWorkspace()
        var out = [Float](repeating: 42, count: s.queryElements)
        #expect(throws: SpargeError.self) {
            try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try big.withUnsafeBufferPointer { vp in
                try out.withUnsafeMutableBufferPointer { op in
                    _ = try plan.run(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(op),
                                     workspace: workspace)
                }
            } } }
        }
        #expect(out.allSatisfy { $0 == 42 })
    }

    @Test func gpuRoundingRejectsQueriesAndKeysBeyondHalfRange() throws {
        let s = FiniteOutputTests.shape
        let (q, k, v) = FiniteOutputTests.inputs(qk: 1, v: 1)
        var p = SpargeParameters.recommended
        p.gpuReproduction.gpuRounding = true
        var bigK = k
        bigK[5] = -1e19
        do {
            _ = try SpargeAttention.sparse(q: q, k: bigK, v: v, shape: s, parameters: p)
            Issue.record("expected an error")
        } catch let error as SpargeError {
            guard case .beyondHalfRange(let name, let index, _, _) = error else { Issue.record("\(error)"); return }
            #expect(name == "k" && index == 5)
            #expect(error.description.contains("gpuRounding"))
        }
        p.gpuReproduction.gpuRounding = false
        let (out, _) = try SpargeAttention.sparse(q: q, k: bigK, v: v, shape: s, parameters: p)
        #expect(out.allSatisfy { $0.isFinite })
    }

    /// K within fp16's range whose difference from its mean is not: with `gpuRounding` and
    /// `smoothK` that difference is rounded to fp16 (the GPU kernel's arithmetic), which would
    /// make the key scale infinite and the output NaN. The call throws, naming K's element.
    static func keysFarFromTheirMean() -> [Float] {
        let s = FiniteOutputTests.shape
        var k = FiniteOutputTests.inputs(qk: 1, v: 1).k
        // Channel 3 of kv head 0: token 0 at 60000, the others at -8000 (mean about -7660).
        for t in 0..<s.keyLength { k[t * s.headDim + 3] = t == 0 ? 60000 : -8000 }
        return k
    }

    @Test func gpuRoundingRejectsKeysFarFromTheirMean() throws {
        let s = FiniteOutputTests.shape
        let (q, _, v) = FiniteOutputTests.inputs(qk: 1, v: 1)
        let k = Self.keysFarFromTheirMean()
        var p = SpargeParameters.recommended
        p.gpuReproduction.gpuRounding = true
        do {
            _ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p)
            Issue.record("expected an error")
        } catch let error as SpargeError {
            guard case .beyondHalfRange(let name, let index, let value, _) = error else { Issue.record("\(error)"); return }
            #expect(name == "k - mean" && index == 3 && value > 65520, "\(error)")
            #expect(error.description.contains("smoothK"))
        }
        // Without the smoothing the same keys pass and give a finite output.
        p.smoothK = false
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p)
        #expect(out.allSatisfy { $0.isFinite })
        // Keys as large whose difference from the mean fits pass with smoothing too.
        p.smoothK = true
        var near = k
        for t in 0..<s.keyLength { near[t * s.headDim + 3] = t == 0 ? 60000 : 30000 }
        let (edge, _) = try SpargeAttention.sparse(q: q, k: near, v: v, shape: s, parameters: p)
        #expect(edge.allSatisfy { $0.isFinite })
    }

    /// A KV cache checks an append against the mean it will use: the one these keys set, or
    /// the one already fixed. A rejected append leaves the cache as it was.
    @Test func kvCacheRejectsKeysFarFromTheirMean() throws {
        let s = FiniteOutputTests.shape
        let v = FiniteOutputTests.inputs(qk: 1, v: 1).v
        let far = Self.keysFarFromTheirMean()
        var p = SpargeParameters.recommended
        p.gpuReproduction.gpuRounding = true
        let cache = try SpargeKVCache(heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, capacity: 2 * s.keyLength, parameters: p)
        #expect(throws: SpargeError.self) { try KVCacheTests.append(cache, far, v, tokens: s.keyLength) }
        #expect(cache.length == 0)
        // Ordinary keys fix a mean near 0; a later key at 60000 is within range of it ...
        let k = FiniteOutputTests.inputs(qk: 1, v: 1).k
        try KVCacheTests.append(cache, k, v, tokens: s.keyLength)
        var one = [Float](repeating: 0, count: s.headDim), oneV = one
        one[3] = 60000
        try KVCacheTests.append(cache, one, oneV, tokens: 1)
        // ... and a cache whose fixed mean is -8000 in that channel rejects it.
        var mean = [Float](repeating: 0, count: s.kvHeads * s.headDim)
        mean[3] = -8000
        let fixed = try SpargeKVCache(heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, capacity: 4, parameters: p, keyMean: mean)
        #expect(throws: SpargeError.self) { try KVCacheTests.append(fixed, one, oneV, tokens: 1) }
        #expect(fixed.length == 0)
        one[3] = 50000
        oneV[0] = 1
        try KVCacheTests.append(fixed, one, oneV, tokens: 1)
        #expect(fixed.length == 1)
    }
}
