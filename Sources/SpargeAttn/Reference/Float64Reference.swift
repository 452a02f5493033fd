import Foundation

/// Plain float64 attention, written for clarity, not speed: the yardstick of the tests and the
/// reading companion of the fast kernels (<doc:ExactSemantics> section 4 without quantization or the
/// stage-2 filter). O(Nq * Nk * D) time, O(Nk) memory per row.
public enum Float64Reference {
    /// Exact attention in float64 of `B,H,Nq,D` / `B,Hkv,Nk,D` inputs, optionally restricted to
    /// the marked blocks of `blockMap` (blocks `blockQ x blockK`). With `causal`, query `i`
    /// sees keys `j <= i + (Nk - Nq)`, and with `slidingWindow` only the last `slidingWindow` of
    /// them (``SpargeParameters/slidingWindow``). A row that sees no key is 0. Throws
    /// ``SpargeError`` when a buffer, the map or the scale does not fit the shape.
    public static func attention(
        q: [Float], k: [Float], v: [Float], shape s: AttentionShape, causal: Bool = false, slidingWindow: Int? = nil,
        sinkLogits: PerHead? = nil, softmaxScale: Float? = nil, blockMap: BlockMap? = nil, blockQ: Int = 128, blockK: Int = 64
    ) throws -> [Double] {
        try attentionWithLSE(q: q, k: k, v: v, shape: s, causalOffset: causal ? s.keyLength - s.queryLength : nil,
                             slidingWindow: slidingWindow, sinkLogits: sinkLogits, softmaxScale: softmaxScale, blockMap: blockMap,
                             blockQ: blockQ, blockK: blockK).output
    }

    /// ``attention(q:k:v:shape:causal:slidingWindow:sinkLogits:softmaxScale:blockMap:blockQ:blockK:)`` with every option
    /// of the embedding API, and the log-sum-exp of each row.
    ///
    /// - Parameters:
    ///   - q: queries `B,H,Nq,D`.
    ///   - k: keys `B,Hkv,Nk,D`.
    ///   - v: values `B,Hkv,Nk,D`.
    ///   - s: the shape.
    ///   - causalOffset: query `i` sees keys `j <= i + causalOffset` (`Nk - Nq` is bottom-right
    ///     alignment, 0 top-left); `nil` is not causal.
    ///   - slidingWindow: with `causalOffset`, query `i` sees only keys `j > i + causalOffset -
    ///     slidingWindow` as well; nil: no window.
    ///   - sinkLogits: learned sink logits (``SpargeParameters/sinkLogits``): `exp(logit)` joins
    ///     each row's denominator and its log-sum-exp; nil: none.
    ///   - keyMask: `B x Nk`, `false` for a padded key (never seen).
    ///   - attentionMask: the pairs that may attend (``AttentionMask``); nil: all.
    ///   - softmaxScale: the score scale; `nil` means `1 / sqrt(D)`.
    ///   - blockMap: when given, only its marked blocks are seen.
    ///   - blockQ: the query block size of `blockMap`.
    ///   - blockK: the key block size of `blockMap`.
    /// - Returns: the output `B,H,Nq,D` and the natural-log log-sum-exp `B,H,Nq` of the scaled
    ///   scores each row sees (-inf, with a zero output row, when it sees no key).
    /// - Throws: ``SpargeError`` when the shape is invalid, a buffer's size is not the shape's
    ///   (dense `B,H,N,D`), `keyMask` is not `B x Nk`, `attentionMask` does not fit the shape, the block map's sizes are not the shape's
    ///   blocks, or the scale is not finite and positive.
    public static func attentionWithLSE(
        q: [Float], k: [Float], v: [Float], shape s: AttentionShape, causalOffset: Int? = nil, slidingWindow: Int? = nil,
        sinkLogits: PerHead? = nil, keyMask: [Bool]? = nil, attentionMask: AttentionMask? = nil, softmaxScale: Float? = nil,
        blockMap: BlockMap? = nil, blockQ: Int = 128, blockK: Int = 64
    ) throws -> (output: [Double], lse: [Double]) {
        try checkInputs(q: q, k: k, v: v, shape: s, keyMask: keyMask, softmaxScale: softmaxScale,
                        blockMap: blockMap, blockQ: blockQ, blockK: blockK)
        try attentionMask?.validate(for: s)
        if let w = slidingWindow, w < 1 || w > Int(Int32.max) || causalOffset == nil {
            throw SpargeError.invalidParameter("slidingWindow \(w) needs a causal offset and 1...\(Int32.max) keys")
        }
        try sinkLogits?.validate(name: "sinkLogits", heads: s.heads, { $0.isFinite }, range: "a finite logit")
        let d = s.headDim
        let scale = Double(softmaxScale ?? 1 / Float(d).squareRoot())
        var out = [Double](repeating: 0, count: s.queryElements)
        var lse = [Double](repeating: -.infinity, count: s.batch * s.heads * s.queryLength)
        var scores = [Double](repeating: 0, count: s.keyLength)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let kvh = h / s.groupSize
                let qBase = (b * s.heads + h) * s.queryLength * d
                let kBase = (b * s.kvHeads + kvh) * s.keyLength * d
                for i in 0..<s.queryLength {
                    var best = -Double.infinity
                    for j in 0..<s.keyLength {
                        var visible = causalOffset.map { j <= i + $0 } ?? true
                        if let w = slidingWindow, let o = causalOffset, j <= i + o - w { visible = false }
                        if let m = keyMask, !m[b * s.keyLength + j] { visible = false }
                        if let m = attentionMask, !m[m.batch == 1 ? 0 : b, i, j] { visible = false }
                        if let m = blockMap, !m[b, h, i / blockQ, j / blockK] { visible = false }
                        if !visible { scores[j] = -.infinity; continue }
                        var dot = 0.0
                        for c in 0..<d { dot += Double(q[qBase + i * d + c]) * Double(k[kBase + j * d + c]) }
                        scores[j] = dot * scale
                        best = max(best, scores[j])
                    }
                    // The sink: one more entry of the denominator, with no value.
                    let sink = sinkLogits.map { Double($0[h]) }
                    if best == -.infinity {
                        if let sink { lse[(b * s.heads + h) * s.queryLength + i] = sink }
                        continue
                    }
                    if let sink { best = max(best, sink) }
                    var sum = sink.map { Foundation.exp($0 - best) } ?? 0
                    for j in 0..<s.keyLength where scores[j] != -.infinity {
                        let e = Foundation.exp(scores[j] - best)
                        sum += e
                        for c in 0..<d { out[qBase + i * d + c] += e * Double(v[kBase + j * d + c]) }
                    }
                    for c in 0..<d { out[qBase + i * d + c] /= sum }
                    lse[(b * s.heads + h) * s.queryLength + i] = best + Foundation.log(sum)
                }
            }
        }
        return (out, lse)
    }

    /// The checks of ``attentionWithLSE(q:k:v:shape:causalOffset:slidingWindow:sinkLogits:keyMask:attentionMask:softmaxScale:blockMap:blockQ:blockK:)``.
    private static func checkInputs(q: [Float], k: [Float], v: [Float], shape s: AttentionShape, keyMask: [Bool]?,
                                    softmaxScale: Float?, blockMap: BlockMap?, blockQ: Int, blockK: Int) throws {
        try s.validate()
        for (name, count, needed, layout) in [("q", q.count, s.queryElements, "B,H,Nq,D"), ("k", k.count, s.keyElements, "B,Hkv,Nk,D"),
                                              ("v", v.count, s.keyElements, "B,Hkv,Nk,D")] where count != needed {
            throw SpargeError.invalidShape("\(name) holds \(count) values but the shape needs \(needed) (\(layout), dense); the reference reads whole arrays")
        }
        if let keyMask, keyMask.count != s.batch * s.keyLength {
            throw SpargeError.invalidShape("keyMask holds \(keyMask.count) flags but the shape needs B x Nk = \(s.batch * s.keyLength)")
        }
        try SpargeParameters.validate(softmaxScale: softmaxScale)
        if let blockMap {
            guard blockQ > 0, blockK > 0 else {
                throw SpargeError.invalidParameter("blockQ \(blockQ) and blockK \(blockK) must be positive")
            }
            try blockMap.validate(for: s, blockQ: blockQ, blockK: blockK)
        }
    }
}
