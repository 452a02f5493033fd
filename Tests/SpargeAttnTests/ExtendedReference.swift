import Foundation
@testable import SpargeAttn

/// Float64 attention with everything the embedding options add (the log-sum-exp of each row,
/// the causal offset: bottom-right `Nk - Nq`, top-left 0, a per-key padding mask, a block map),
/// and the log-sum-exp the sparse kernel computes from its own INT8 tensors.
enum ExtendedReference {
    /// Output `B,H,Nq,D` and log-sum-exp `B,H,Nq` (natural log; -inf and a zero row when the
    /// row sees no key): the library's ``Float64Reference/attentionWithLSE``.
    static func attention(
        q: [Float], k: [Float], v: [Float], shape s: AttentionShape, causalOffset: Int? = nil,
        keyMask: [Bool]? = nil, blockMap: BlockMap? = nil, blockQ: Int = 128, blockK: Int = 64,
        softmaxScale: Float? = nil
    ) throws -> (output: [Double], lse: [Double]) {
        try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: s, causalOffset: causalOffset, keyMask: keyMask,
                                          softmaxScale: softmaxScale, blockMap: blockMap, blockQ: blockQ, blockK: blockK)
    }

    /// The log-sum-exp the sparse kernel computes, in float64 from its own INT8 tensors (CUDA
    /// quantization): scores `scale * deq(q_t) . deq(k'_j)` over the keys `map` and the causal
    /// offset allow, plus `scale * q_t . mean` (K smoothing subtracted the mean). What remains
    /// between this and the kernel is fp32 rounding, not quantization.
    static func dequantizedLSE(
        q: [Float], tensors x: QuantizedTensors, shape s: AttentionShape, causalOffset: Int?, map: BlockMap,
        blockQ: Int, blockK: Int
    ) -> [Double] {
        let d = s.headDim, scale = 1 / Double(d).squareRoot()
        let nq = (s.queryLength + blockQ - 1) / blockQ, nk = (s.keyLength + blockK - 1) / blockK
        var lse = [Double](repeating: -.infinity, count: s.batch * s.heads * s.queryLength)
        var scores = [Double](repeating: 0, count: s.keyLength)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let kvh = h / s.groupSize, qHead = b * s.heads + h, kHead = b * s.kvHeads + kvh
                for t in 0..<s.queryLength {
                    let qRow = (qHead * s.queryLength + t) * d
                    let qs = Double(x.qScale[qHead * nq + t / blockQ])
                    var best = -Double.infinity
                    for j in 0..<s.keyLength {
                        scores[j] = -.infinity
                        if let o = causalOffset, j > t + o { continue }
                        if !map[b, h, t / blockQ, j / blockK] { continue }
                        let kRow = (kHead * s.keyLength + j) * d
                        var dot = 0.0
                        for c in 0..<d { dot += Double(x.qInt8[qRow + c]) * Double(x.kInt8[kRow + c]) }
                        scores[j] = dot * qs * Double(x.kScale[kHead * nk + j / blockK]) * scale
                        best = max(best, scores[j])
                    }
                    if best == -.infinity { continue }
                    var sum = 0.0
                    for j in 0..<s.keyLength where scores[j] != -.infinity { sum += Foundation.exp(scores[j] - best) }
                    var shift = 0.0
                    for c in 0..<d { shift += Double(q[qRow + c]) * Double(x.kMean[kHead * d + c]) }
                    lse[qHead * s.queryLength + t] = best + Foundation.log(sum) + scale * shift
                }
            }
        }
        return lse
    }

    /// Merges two partial attentions over disjoint key sets by their log-sum-exps
    /// (`o = (e^lse1 o1 + e^lse2 o2) / (e^lse1 + e^lse2)`), in float64.
    static func merge(_ o1: [Float], _ lse1: [Float], _ o2: [Float], _ lse2: [Float], d: Int) -> (output: [Double], lse: [Double]) {
        var out = [Double](repeating: 0, count: o1.count), lse = [Double](repeating: 0, count: lse1.count)
        for r in 0..<lse1.count {
            let a = Double(lse1[r]), b = Double(lse2[r])
            let m = max(a, b)
            if m == -.infinity { lse[r] = -.infinity; continue }
            let wa = a == -.infinity ? 0 : Foundation.exp(a - m), wb = b == -.infinity ? 0 : Foundation.exp(b - m)
            lse[r] = m + Foundation.log(wa + wb)
            for c in 0..<d { out[r * d + c] = (wa * Double(o1[r * d + c]) + wb * Double(o2[r * d + c])) / (wa + wb) }
        }
        return (out, lse)
    }

    /// Largest |a - b| over finite pairs; infinite entries must match exactly (else .infinity).
    static func maxLSEError(_ a: [Float], _ b: [Double]) -> Double {
        var worst = 0.0
        for (x, y) in zip(a, b) {
            if y.isInfinite || x.isInfinite {
                if Double(x) != y { return .infinity }
                continue
            }
            worst = max(worst, abs(Double(x) - y))
        }
        return worst
    }

    /// The keys `range` of a `B,Hkv,Nk,D` tensor, as `B,Hkv,range.count,D`.
    static func keys(_ x: [Float], shape s: AttentionShape, _ range: Range<Int>) -> [Float] {
        var r = [Float]()
        r.reserveCapacity(s.batch * s.kvHeads * range.count * s.headDim)
        for bh in 0..<(s.batch * s.kvHeads) {
            let base = bh * s.keyLength * s.headDim
            r += x[(base + range.lowerBound * s.headDim)..<(base + range.upperBound * s.headDim)]
        }
        return r
    }
}
