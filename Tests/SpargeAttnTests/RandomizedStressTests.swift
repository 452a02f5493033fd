import Foundation
import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Random combinations of what the other tests take one at a time: shapes (ragged, below a
/// block, GQA, Nq != Nk), block sizes, causal alignments, sliding windows, key padding,
/// attention masks, selection rules, smoothing, kernel levels; for the KV cache also element
/// types, chunked appends and fixed-capacity windows that discard. Each case is checked against
/// float64: the sparse output on its own block map (cosine), its log-sum-exp, the exact cache
/// path to fp32 rounding. `SPARGE_STRESS_CASES=N` (and `SPARGE_STRESS_SEED`) runs more.
struct RandomizedStressTests {
    static let cases = ProcessInfo.processInfo.environment["SPARGE_STRESS_CASES"].flatMap(Int.init) ?? 60
    static let seed = ProcessInfo.processInfo.environment["SPARGE_STRESS_SEED"].flatMap(UInt64.init) ?? 1

    @Test func oneShotCallsAgainstFloat64() throws {
        for i in 0..<Self.cases {
            var rng = TestRNG(seed: Self.seed &* 7919 &+ UInt64(i))
            func pick(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }
            let batch = pick(1...2), kvHeads = pick(1...3), group = pick(1...3)
            let d = [1, 3, 8, 16, 17, 32, 48, 64, 80, 96, 100, 128, 160, 256][pick(0...13)]
            let nq = pick(1...300), nk = pick(1...420), causal = pick(0...2) > 0
            let blocks = [(128, 64), (64, 128), (64, 32), (32, 64)][pick(0...3)]
            var p = SpargeParameters()
            p.blockQ = blocks.0
            p.blockK = blocks.1
            p.causal = causal
            p.causalAlignment = pick(0...1) == 0 ? .bottomRight : .topLeft
            let fraction = Float(pick(1...10)) / 10
            p.selection = pick(0...1) == 0 ? .topK(PerHead(fraction)) : .cdf(PerHead(max(0.3, fraction)))
            let similarity = Float(pick(-10...9)) / 10
            p.simThreshold = PerHead(similarity)
            p.pvThreshold = PerHead(Float.infinity)
            p.smoothQ = pick(0...1) == 0
            p.smoothK = pick(0...3) > 0
            if causal && pick(0...2) == 0 { p.slidingWindow = pick(1...300) }
            let shape = AttentionShape(batch: batch, heads: kvHeads * group, kvHeads: kvHeads, queryLength: nq, keyLength: nk, headDim: d)
            let offset: Int? = causal ? (p.causalAlignment == .bottomRight ? nk - nq : 0) : nil
            let scale = Float(pick(1...4))
            let q = rng.gaussians(shape.queryElements, scale: scale), k = rng.gaussians(shape.keyElements, scale: scale)
            let v = rng.gaussians(shape.keyElements)
            var padding: KeyPaddingMask? = nil, keyMask: [Bool]? = nil
            if pick(0...3) == 0 {
                let lengths = (0..<batch).map { _ in pick(max(1, nk / 2)...nk) }
                padding = try KeyPaddingMask(validLengths: lengths, keyLength: nk)
                keyMask = (0..<batch).flatMap { b in (0..<nk).map { $0 < lengths[b] } }
            }
            var mask: AttentionMask? = nil
            if pick(0...3) == 0 {
                let period = pick(2...50)
                mask = try AttentionMask(queryLength: nq, keyLength: nk) { _, t, j in t / period == j / period || j % 3 == 0 }
            }
            let level = SpargeCPU.supportedLevels[pick(0...(SpargeCPU.supportedLevels.count - 1))]
            let label = "case \(i) seed \(Self.seed): \(shape) causal \(causal) \(p.causalAlignment) window \(String(describing: p.slidingWindow)) blocks \(blocks) \(p.selection) padding \(padding != nil) mask \(mask != nil) \(level)"
            var out = [Float](repeating: 0, count: shape.queryElements)
            let result = try SpargeCPU.withLevel(level) {
                try SpargeAttention.sparse(q: q, k: k, v: v, output: &out, shape: shape, parameters: p, captureLSE: true,
                                           keyPadding: padding, attentionMask: mask)
            }
            let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: shape, causalOffset: offset,
                                                            slidingWindow: p.slidingWindow, keyMask: keyMask, attentionMask: mask,
                                                            blockMap: result.blockMap, blockQ: blocks.0, blockK: blocks.1)
            let finite = out.allSatisfy { $0.isFinite }
            #expect(finite, "non-finite output, \(label)")
            let cosine = try Accuracy(out, reference: ref.output).cosine, seesNothing = ref.output.allSatisfy { $0 == 0 }
            #expect(seesNothing || cosine >= 0.995, "cosine \(cosine), \(label)")
            // INT8 scores move the log-sum-exp by about the quantization step of the scores.
            if let lse = result.lse, scale == 1 {
                let wrong = zip(lse, ref.lse).filter { a, b in
                    (Double(a).isInfinite || b.isInfinite) ? Double(a) != b : abs(Double(a) - b) > 0.1 * max(1, abs(b))
                }
                #expect(wrong.isEmpty, "log-sum-exp off in \(wrong.count) rows, \(label)")
            }
        }
    }

    @Test func kvCacheCallsAgainstFloat64() throws {
        for i in 0..<Self.cases {
            var rng = TestRNG(seed: Self.seed &* 104_729 &+ UInt64(i))
            func pick(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }
            let batch = pick(1...2), kvHeads = pick(1...2), group = pick(1...3), heads = kvHeads * group
            let d = [1, 4, 16, 24, 32, 64, 72, 128][pick(0...7)], maxQueries = pick(1...20)
            let type: ElementType = [.float32, .float16, .bfloat16][pick(0...2)]
            var p = SpargeKVCache.defaultParameters
            let blocks = [(128, 64), (64, 128), (64, 32)][pick(0...2)]
            p.blockQ = blocks.0
            p.blockK = blocks.1
            let fraction = Float(pick(2...10)) / 10
            p.selection = pick(0...1) == 0 ? .topK(PerHead(fraction)) : .cdf(PerHead(fraction))
            p.pvThreshold = PerHead(Float.infinity)
            p.smoothK = pick(0...3) > 0
            let window = pick(0...2) == 0 ? pick(1...200) : 0
            if window > 0 { p.slidingWindow = window }
            let total = pick(1...700)
            let capacity = window > 0 && pick(0...1) == 0 ? min(total, window + maxQueries + blocks.1 - 2 + 60) : total
            let cache = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: capacity,
                                          maxQueryLength: maxQueries, parameters: p, elementType: type)
            // Values the cache's type holds exactly, so float64 sees what the cache stores.
            func stored(_ x: Float) -> Float { type == .float16 ? Float(Float16(x)) : type == .bfloat16 ? BFloat16(x).float : x }
            let k = rng.gaussians(batch * kvHeads * total * d, scale: 1.5).map(stored)
            let v = rng.gaussians(batch * kvHeads * total * d).map(stored)
            func rows(_ x: [Float], _ r: Range<Int>) -> [Float] { KVCacheTests.rows(x, heads: batch * kvHeads, n: total, d: d, r) }
            var length = 0
            while length < total {
                let chunk = min(total - length, capacity < total ? 60 : total, pick(0...3) == 0 ? pick(1...200) : pick(1...8))
                try cache.append(k: rows(k, length..<(length + chunk)), v: rows(v, length..<(length + chunk)), tokens: chunk)
                length += chunk
                guard pick(0...2) == 0 else { continue }
                let queries = pick(1...min(maxQueries, length)), first = cache.firstHeldKey, held = length - first
                let label = "case \(i) seed \(Self.seed): B\(batch) H\(heads) Hkv\(kvHeads) D\(d) \(type) blocks \(blocks) \(p.selection) window \(window) capacity \(capacity) length \(length) first \(first) queries \(queries)"
                let q = rng.gaussians(batch * heads * queries * d, scale: 1.5)
                var mask: AttentionMask? = nil
                if pick(0...3) == 0 {
                    let period = pick(2...30)
                    mask = try AttentionMask(queryLength: queries, keyLength: held) { _, t, j in (j / period) % 2 == 0 || j == held - queries + t }
                }
                let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: held, headDim: d)
                let heldK = rows(k, first..<length), heldV = rows(v, first..<length)
                let ref = try Float64Reference.attentionWithLSE(q: q, k: heldK, v: heldV, shape: shape, causalOffset: held - queries,
                                                                slidingWindow: window > 0 ? window : nil, attentionMask: mask)
                var exact = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: batch * heads * queries)
                try cache.attendExact(q: q, output: &exact, queries: queries, lse: &lse, attentionMask: mask)
                let exactError = try Accuracy(exact, reference: ref.output).relativeL2, seesNothing = ref.output.allSatisfy { $0 == 0 }
                #expect(seesNothing || exactError <= 2e-5, "exact relative L2 \(exactError), \(label)")
                let wrong = zip(lse, ref.lse).filter { a, b in
                    (Double(a).isInfinite || b.isInfinite) ? Double(a) != b : abs(Double(a) - b) > 1e-4 * max(1, abs(b))
                }
                #expect(wrong.isEmpty, "exact log-sum-exp off in \(wrong.count) rows, \(label)")
                var sparse = [Float](repeating: 0, count: q.count)
                let result = try cache.attend(q: q, output: &sparse, queries: queries, attentionMask: mask)
                let onMap = try Float64Reference.attentionWithLSE(q: q, k: heldK, v: heldV, shape: shape, causalOffset: held - queries,
                                                                  slidingWindow: window > 0 ? window : nil, attentionMask: mask,
                                                                  blockMap: result.blockMap, blockQ: blocks.0, blockK: blocks.1)
                let finite = sparse.allSatisfy { $0.isFinite }
                #expect(finite, "non-finite sparse output, \(label)")
                let cosine = try Accuracy(sparse, reference: onMap.output).cosine, mapSeesNothing = onMap.output.allSatisfy { $0 == 0 }
                #expect(mapSeesNothing || cosine >= 0.995, "sparse cosine \(cosine), \(label)")
            }
        }
    }
}
