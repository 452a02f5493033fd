import SpargeSIMD
import SpargeTestSupport
import Testing
@testable import SpargeAttn

/// KV caches that store fp16 or bf16: every call answers bit for bit as an fp32 cache given the
/// rounded values, at every kernel level, and values the type cannot hold are refused.
struct KVCacheElementTypeTests {
    typealias Cache = KVCacheTests

    /// `x` rounded to `type` (to nearest even) and widened back.
    static func rounded(_ x: [Float], to type: ElementType) -> [Float] {
        switch type {
        case .float32: return x
        case .float16: return x.map { Float(Float16($0)) }
        case .bfloat16: return x.map { BFloat16($0).float }
        }
    }

    /// Appends `k` and `v` to `cache` as arrays of `type`'s elements.
    static func appendTyped(_ cache: SpargeKVCache, _ k: [Float], _ v: [Float], tokens: Int, as type: ElementType) throws {
        switch type {
        case .float32: try cache.append(k: k, v: v, tokens: tokens)
        case .float16: try cache.append(k: k.map { Float16($0) }, v: v.map { Float16($0) }, tokens: tokens)
        case .bfloat16: try cache.append(k: k.map { BFloat16($0) }, v: v.map { BFloat16($0) }, tokens: tokens)
        }
    }

    /// Sparse (with LSE) and exact outputs of one call.
    static func answers(_ cache: SpargeKVCache, _ q: [Float], queries: Int) throws -> [[Float]] {
        let count = cache.batch * cache.heads * queries
        var out = [Float](repeating: 0, count: count * cache.headDim), lse = [Float](repeating: 0, count: count)
        try cache.attend(q: q, output: &out, queries: queries, lse: &lse)
        var exact = out, exactLSE = lse
        try q.withUnsafeBufferPointer { qp in
            try exact.withUnsafeMutableBufferPointer { op in
                try exactLSE.withUnsafeMutableBufferPointer { lp in
                    try cache.attendExact(q: AttentionInput(qp), output: AttentionOutput(op), queries: queries, lse: lp)
                }
            }
        }
        return [out, lse, exact, exactLSE]
    }

    /// Bitwise equality of two answers (NaN equal to NaN).
    static func same(_ a: [[Float]], _ b: [[Float]]) -> Bool {
        zip(a, b).allSatisfy { x, y in x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) } }
    }

    /// Prefill and steps of 1-3 tokens, batch 2 with GQA, head dims with and without a vector
    /// tail, a sliding-window cache near its least capacity (it discards, moving 16-bit rows):
    /// the 16-bit cache given fp32 values, the same cache type given values of its own type,
    /// and an fp32 cache given the rounded values answer alike, sparse and exact, with LSE.
    @Test(arguments: [ElementType.float16, .bfloat16], KernelLevelTests.levels)
    func sixteenBitCacheAnswersAsFloat32CacheOfRoundedValues(type: ElementType, level: CPUKernelLevel) throws {
        try SpargeCPU.withLevel(level) {
            var rng = TestRNG(seed: type == .float16 ? 4801 : 4802)
            for (d, window) in [(5, 0), (24, 0), (72, 100), (128, 0)] {
                let batch = 2, heads = 4, kvHeads = 2, maxQ = 3, n = 420
                var p = SpargeKVCache.defaultParameters
                if window > 0 { p.slidingWindow = window }
                let capacity = window > 0 ? window + maxQ + p.blockK - 2 + 200 : n
                func make(_ t: ElementType) throws -> SpargeKVCache {
                    try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: capacity, maxQueryLength: maxQ,
                                      parameters: p, elementType: t)
                }
                let half = try make(type), typed = try make(type), wide = try make(.float32)
                #expect(half.elementType == type && wide.elementType == .float32)
                let rows = batch * kvHeads
                let k = rng.gaussians(rows * n * d, scale: 2), v = rng.gaussians(rows * n * d)
                var length = 0, chunks = [200]
                while chunks.reduce(0, +) < n - 3 { chunks.append(1 + chunks.count % 3) }
                for chunk in chunks {
                    let kc = Cache.rows(k, heads: rows, n: n, d: d, length..<length + chunk)
                    let vc = Cache.rows(v, heads: rows, n: n, d: d, length..<length + chunk)
                    try Cache.append(half, kc, vc, tokens: chunk)
                    try Self.appendTyped(typed, kc, vc, tokens: chunk, as: type)
                    try Cache.append(wide, Self.rounded(kc, to: type), Self.rounded(vc, to: type), tokens: chunk)
                    length += chunk
                    let queries = min(chunk, maxQ)
                    let q = rng.gaussians(batch * heads * queries * d, scale: 1.5)
                    let what = "\(type) \(level) D=\(d) window \(window), \(length) keys, first held \(half.firstHeldKey)"
                    let a = try Self.answers(half, q, queries: queries)
                    #expect(Self.same(a, try Self.answers(wide, q, queries: queries)), "against fp32, \(what)")
                    #expect(Self.same(a, try Self.answers(typed, q, queries: queries)), "typed input, \(what)")
                    #expect(half.firstHeldKey == wide.firstHeldKey, "\(what)")
                }
                if window > 0 { #expect(half.firstHeldKey > 0, "the window cache discarded nothing") }
            }
        }
    }

    /// Copies (to another capacity) and truncations of a 16-bit cache answer as those of an
    /// fp32 cache of the rounded values.
    @Test(arguments: [ElementType.float16, .bfloat16])
    func copyAndTruncateKeepTheType(type: ElementType) throws {
        var rng = TestRNG(seed: 4803)
        let heads = 4, kvHeads = 2, d = 40, n = 300
        let half = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n, elementType: type)
        let wide = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n)
        let k = rng.gaussians(kvHeads * 260 * d), v = rng.gaussians(kvHeads * 260 * d)
        try Cache.append(half, k, v, tokens: 260)
        try Cache.append(wide, Self.rounded(k, to: type), Self.rounded(v, to: type), tokens: 260)
        let halfCopy = try half.copy(capacity: 280), wideCopy = try wide.copy(capacity: 280)
        #expect(halfCopy.elementType == type)
        try half.truncate(to: 190)
        try wide.truncate(to: 190)
        for (a, b, what) in [(half, wide, "truncated"), (halfCopy, wideCopy, "copy")] {
            let q = rng.gaussians(heads * 2 * d)
            #expect(Self.same(try Self.answers(a, q, queries: 2), try Self.answers(b, q, queries: 2)), "\(type) \(what)")
        }
    }

    /// The overflow guard (a bf16 value near fp32's limit raises V's unit above 1, and the rows
    /// stored before are rescaled), its copy, and non-finite rows under `.propagate` answer
    /// as in an fp32 cache of the rounded values.
    @Test func overflowGuardAndPropagationKeepTheBits() throws {
        var rng = TestRNG(seed: 4806)
        let heads = 2, d = 16
        var p = SpargeKVCache.defaultParameters
        p.nonFinitePolicy = .propagate
        let k = rng.gaussians(heads * 140 * d), v = rng.gaussians(heads * 140 * d)
        var late = rng.gaussians(heads * 2 * d)
        late[5] = 1e37   // head 0: |v| * capacity above 2^125
        late[d + 9] = .nan   // head 0, second token: a NaN value row
        for type in [ElementType.bfloat16, .float16] {
            if type == .float16 { late[5] = 60_000 }
            let half = try SpargeKVCache(heads: heads, headDim: d, capacity: 256, parameters: p, elementType: type)
            let wide = try SpargeKVCache(heads: heads, headDim: d, capacity: 256, parameters: p)
            for (kc, vc, n) in [(k, v, 140), (rng.gaussians(heads * 2 * d), late, 2)] {
                try Cache.append(half, kc, vc, tokens: n)
                try Cache.append(wide, Self.rounded(kc, to: type), Self.rounded(vc, to: type), tokens: n)
            }
            #expect(type == .float16 || half.storage.ops.valueUnits.pointer[0] > 1, "the guard rescaled head 0")
            let q = rng.gaussians(heads * d)
            let a = try Self.answers(half, q, queries: 1)
            #expect(Self.same(a, try Self.answers(wide, q, queries: 1)), "\(type)")
            #expect(a[0][0..<d].allSatisfy(\.isNaN) && a[0][d..<(2 * d)].allSatisfy(\.isFinite), "\(type): head 0 NaN, head 1 finite")
            #expect(Self.same(try Self.answers(half.copy(), q, queries: 1), try Self.answers(wide.copy(), q, queries: 1)), "\(type) copy")
        }
    }

    /// A value beyond the type's range throws a typed error naming it, before anything is
    /// written; infinities stay the non-finite policy's; fp16 values fit a bf16 cache as they are.
    @Test func valuesBeyondTheTypeAreRefused() throws {
        let d = 8
        var p = SpargeKVCache.defaultParameters
        p.nonFinitePolicy = .reject
        let fp16 = try SpargeKVCache(heads: 1, headDim: d, capacity: 64, parameters: p, elementType: .float16)
        let bf16 = try SpargeKVCache(heads: 1, headDim: d, capacity: 64, parameters: p, elementType: .bfloat16)
        let k = (0..<(2 * d)).map { Float($0) / 7 }
        try Cache.append(fp16, k, k, tokens: 2)
        var v = k
        v[11] = 70_000
        #expect(throws: SpargeError.beyondStorageRange(name: "v", index: 11, value: 70_000, type: .float16)) {
            try Cache.append(fp16, k, v, tokens: 2)
        }
        #expect(fp16.length == 2)
        v[11] = 65_519   // rounds to 65504
        try Cache.append(fp16, k, v, tokens: 2)
        try Cache.append(bf16, k, k.map { $0 * 70_000 }, tokens: 2)
        var huge = k
        huge[3] = -3.4e38
        #expect(throws: SpargeError.beyondStorageRange(name: "k", index: 3, value: -3.4e38, type: .bfloat16)) {
            try Cache.append(bf16, huge, k, tokens: 2)
        }
        huge[3] = .infinity
        #expect(throws: SpargeError.nonFiniteInput(name: "k", index: 3, value: .infinity)) { try Cache.append(fp16, huge, k, tokens: 2) }
        try bf16.append(k: [Float16](repeating: 65504, count: 2 * d), v: k.map { Float16($0) }, tokens: 2)
        #expect(bf16.length == 4)
        var gpu = SpargeKVCache.defaultParameters
        gpu.gpuReproduction.gpuRounding = true
        #expect(throws: SpargeError.self) { try SpargeKVCache(heads: 1, headDim: d, capacity: 64, parameters: gpu, elementType: .bfloat16) }
        let message = SpargeError.beyondStorageRange(name: "v", index: 11, value: 70_000, type: .float16).description
        #expect(message.contains("65504") && message.contains("elementType"))
    }

    /// The 16-bit P.V kernel of every level: bit for bit its own fp32 kernel over the widened
    /// values (every fp16 bit pattern among them: `sparge selftest`'s probe), and its scalar
    /// twin; the 16-bit key-row score tile likewise (the exact decode path's).
    @Test(arguments: KernelLevelTests.levels)
    func halfValueKernelIsTheFloat32KernelOnWidenedValues(level: CPUKernelLevel) throws {
        #expect(try SpargeCPU.halfValueKernelMatchesWidenedValues(level: level), "\(level)")
        #expect(try SpargeCPU.halfKeyScoreKernelMatchesWidenedKeys(level: level), "\(level) key-row score tile")
        let k = try #require(SpargeCPU.kernels(for: level))
        var rng = TestRNG(seed: 4804)
        for (bfloat16, width) in [(false, 24), (true, 24), (false, 136), (true, 72)] {
            let rows = 8, count = 37, vStride = width + 8
            let p = rng.gaussians(rows * count).map { abs($0) }
            let bits = rng.gaussians(count * vStride, scale: 3).map { bfloat16 ? BFloat16($0).bitPattern : Float16($0).bitPattern }
            let start = rng.gaussians(rows * width)
            var fast = start, twin = start
            k.accumulateProbabilityHalfValue(p: p, pStride: count, rows: rows, count: count, v: bits, vStride: vStride, width: width,
                                             bfloat16: bfloat16, o: &fast, oStride: width)
            ScalarKernels.accumulateProbabilityHalfValue(p: p, pStride: count, rows: rows, count: count, v: bits, vStride: vStride,
                                                         width: width, bfloat16: bfloat16, o: &twin, oStride: width)
            #expect(try KernelLevelTests.relativeL2(fast, twin.map(Double.init)) < 1e-6, "\(level) twin, bf16 \(bfloat16) width \(width)")
        }
    }
}
