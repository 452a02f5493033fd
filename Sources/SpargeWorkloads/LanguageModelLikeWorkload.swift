import Foundation
import SpargeAttn

/// A deterministic generator of causal attention inputs that look like a RoPE language
/// model's: each head's Q and K are rotary-embedded (`theta_i = base^(-2i/D)`), with
/// positional content in the fast-rotating channel pairs and semantic content in the slow ones,
/// so heads differ by their frequency content as real heads do. Use it with `causal = true`.
///
/// The model, per batch entry (one "text") and head (`s = 1/sqrt(D)`, contrasts in logit units):
/// - the text is a run of segments (48 to 320 tokens) on topics, some of them recurring, so
///   a token's content `u_t` matches earlier tokens of the same topic (long-range retrieval);
/// - token 0 is an attention sink and about one token in 256 is a weaker "heavy hitter": their
///   keys carry a direction that every query has, so they score high everywhere; the sink's
///   value is small, as in real models;
/// - the fast pairs carry a position-only part, identical in Q and K before rotation, whose
///   rotated dot product `sum_i w_i cos((t - t') theta_i)` peaks at the diagonal: the head's
///   weights `w_i` set how local it is;
/// - heads cycle through four kinds: local (sharp positional part), retrieval (content),
///   sink-dominated (broad), and mixed; contrasts are jittered per head;
/// - K carries a large constant offset (removed by K smoothing) and Q and K small noise.
///
/// Generation costs `O(B * H * N * D)`, parallel over heads; the same settings give the same
/// bits for any thread count (own SplitMix64 generator).
///
/// ```swift
/// let inputs = try LanguageModelLikeWorkload(heads: 8, tokens: 2048, seed: 7).generate()
/// var p = SpargeParameters.recommended
/// p.causal = true
/// let (out, result) = try SpargeAttention.sparse(q: inputs.q, k: inputs.k, v: inputs.v,
///                                                shape: inputs.shape, parameters: p)
/// ```
public struct LanguageModelLikeWorkload: Sendable, Hashable, CustomStringConvertible {
    /// The kinds of heads, assigned in turn (head `h` is kind `h % 4`).
    public enum HeadKind: Int, Sendable, Hashable, CaseIterable {
        /// A sharp positional part: attends to nearby tokens.
        case local
        /// Mostly content: attends to earlier tokens of the same topic.
        case retrieval
        /// Broad attention dominated by the sink token.
        case sinkDominated
        /// Positional, content and sink parts in similar measure.
        case mixed
    }

    /// Batch size `B`; each entry is a different text.
    public var batch: Int = 1
    /// Heads `H` (K/V have as many).
    public var heads: Int = 8
    /// Tokens `N` (queries and keys).
    public var tokens: Int = 2048
    /// Head dimension `D` (even: RoPE rotates channel pairs).
    public var headDim: Int = 64
    /// RoPE base.
    public var ropeBase: Float = 10000
    /// Scales every contrast: larger is sharper and sparser.
    public var sharpness: Float = 1
    /// Seed of the text (topics, heavy hitters) and of the noise: another seed is another
    /// input of the same layer.
    public var seed: UInt64 = 0x1A2B
    /// Seed of the heads' projections (their kinds' contrasts, mixing maps, sink and offset
    /// directions): another model seed is another layer.
    public var modelSeed: UInt64 = 0x30D31

    /// A workload of the given sizes; see the properties for each parameter.
    public init(batch: Int = 1, heads: Int = 8, tokens: Int = 2048, headDim: Int = 64, sharpness: Float = 1,
                seed: UInt64 = 0x1A2B, modelSeed: UInt64 = 0x30D31) {
        self.batch = batch; self.heads = heads; self.tokens = tokens; self.headDim = headDim
        self.sharpness = sharpness; self.seed = seed; self.modelSeed = modelSeed
    }

    /// The shape of the generated tensors.
    public var shape: AttentionShape { AttentionShape(batch: batch, heads: heads, queryLength: tokens, headDim: headDim) }

    public var description: String {
        "RoPE language-model-like (causal), sharpness \(sharpness), seed \(seed), model seed \(modelSeed), \(shape)"
    }

    /// Throws `SpargeError.invalidShape(_:)` or `SpargeError.invalidParameter(_:)` for
    /// unusable settings.
    public func validate() throws {
        try shape.validate()
        if headDim < 8 || headDim % 4 != 0 {
            throw SpargeError.invalidShape("headDim is \(headDim); the language-model-like workload needs a multiple of 4, at least 8 (RoPE pairs, split into positional and content halves)")
        }
        guard ropeBase.isFinite, ropeBase > 1 else { throw SpargeError.invalidParameter("ropeBase is \(ropeBase); it must be a finite number > 1") }
        guard sharpness.isFinite, sharpness >= 0 else { throw SpargeError.invalidParameter("sharpness is \(sharpness); it must be a finite number >= 0") }
    }

    /// Generates Q, K and V (`B,H,N,D` fp32).
    public func generate(threads: Int? = nil) throws -> VideoLikeWorkload.Tensors {
        try validate()
        let n = tokens, d = headDim, count = shape.queryElements
        let texts = (0..<batch).map { Text(tokens: n, content: d / 2, seed: seed, index: $0) }
        var q = [Float](repeating: 0, count: count), k = q, v = q
        q.withUnsafeMutableBufferPointer { qb in
            k.withUnsafeMutableBufferPointer { kb in
                v.withUnsafeMutableBufferPointer { vb in
                    let out = (qb.baseAddress!, kb.baseAddress!, vb.baseAddress!)
                    fillInParallel(items: batch * heads, threads: threads) { item in
                        let (qp, kp, vp) = out
                        let o = item * n * d
                        fillHead(head: item % heads, text: texts[item / heads], item: item, q: qp + o, k: kp + o, v: vp + o)
                    }
                }
            }
        }
        return VideoLikeWorkload.Tensors(q: q, k: k, v: v, shape: shape)
    }

    /// The token contents of one text: unit vectors in the `content`-dimensional semantic space.
    private struct Text {
        var content: [Float]     // tokens x dims
        var heavy: [Bool]        // sink and heavy hitters
        var dims: Int

        init(tokens: Int, content dims: Int, seed: UInt64, index: Int) {
            var rng = VideoLikeWorkload.SplitMix64(seed: seed ^ 0x7E47, stream: UInt64(index))
            self.dims = dims
            var topics: [[Float]] = []
            var topicOf = [Int](repeating: 0, count: tokens)
            var t = 0
            while t < tokens {
                let length = 48 + Int(rng.uniform() * 273)
                let topic: Int
                if !topics.isEmpty && rng.uniform() < 0.3 {
                    topic = Int(rng.uniform() * Double(topics.count))
                } else {
                    topics.append((0..<dims).map { _ in rng.gaussian() })
                    topic = topics.count - 1
                }
                for i in t..<Swift.min(tokens, t + length) { topicOf[i] = topic }
                t += length
            }
            content = [Float](repeating: 0, count: tokens * dims)
            for i in 0..<tokens {
                var x = (0..<dims).map { topics[topicOf[i]][$0] + 0.7 * rng.gaussian() }
                let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
                x = x.map { $0 / Swift.max(norm, 1e-6) }
                for c in 0..<dims { content[i * dims + c] = x[c] }
            }
            heavy = (0..<tokens).map { $0 == 0 || rng.uniform() < 1.0 / 256 }
        }
    }

    private func fillHead(head h: Int, text: Text, item: Int, q: UnsafeMutablePointer<Float>,
                          k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        // The head's projections depend on the model seed only; the noise on the input's seed.
        var rng = VideoLikeWorkload.SplitMix64(seed: modelSeed, stream: UInt64(h))
        var noise = VideoLikeWorkload.SplitMix64(seed: seed, stream: UInt64(item) &+ 0x9000)
        let d = headDim, pairs = d / 2, positional = pairs / 2, n = tokens
        let s = 1 / Float(d).squareRoot()
        let kind = HeadKind(rawValue: h % 4)!
        func jitter() -> Float { sharpness * Foundation.exp(0.4 * (Float(rng.uniform()) - 0.5)) }
        // Contrasts (logits) of the positional, content and sink parts.
        let (cPos, cCon, cSink): (Float, Float, Float)
        switch kind {
        case .local: (cPos, cCon, cSink) = (7 * jitter(), 2 * jitter(), 4 * jitter())
        case .retrieval: (cPos, cCon, cSink) = (1.5 * jitter(), 7 * jitter(), 4 * jitter())
        case .sinkDominated: (cPos, cCon, cSink) = (2 * jitter(), 1.5 * jitter(), 8 * jitter())
        case .mixed: (cPos, cCon, cSink) = (4 * jitter(), 4 * jitter(), 5 * jitter())
        }
        // Positional weights over the fast pairs: local heads use all of them (a sharp peak),
        // the others the slower half (a broad one).
        let first = (kind == .local || kind == .mixed) ? 0 : positional / 2
        let weights = (0..<positional).map { i -> Float in i >= first ? 1 + 0.5 * Float(rng.uniform()) : 0 }
        let total = weights.reduce(0, +)
        let positionalAmplitude = weights.map { ($0 / total * cPos / s).squareRoot() }
        // Content space: the slow pairs' 2 * (pairs - positional) channels, mixed from the
        // text's semantic space by a random map, plus the sink direction and K's offset.
        let cdims = 2 * (pairs - positional)
        let mix = (0..<(cdims * text.dims)).map { _ in rng.gaussian() / Float(text.dims).squareRoot() }
        var sink = (0..<cdims).map { _ in rng.gaussian() }
        let sinkNorm = sink.reduce(0) { $0 + $1 * $1 }.squareRoot()
        sink = sink.map { $0 / sinkNorm }
        // K's offset lives in the slow pairs, where rotation keeps it nearly constant.
        let offset = (0..<d).map { c -> Float in c < 2 * positional ? 0 : rng.gaussian() }
        let contentAmplitude = (cCon / s).squareRoot(), sinkAmplitude = (cSink / s).squareRoot()
        // Noise per channel: about 0.3 logits of noise on each score.
        let sigma = 0.3 / (s * ((cPos + cCon + cSink) / s).squareRoot())
        let valueMix = (0..<(d * text.dims)).map { _ in rng.gaussian() / Float(text.dims).squareRoot() }
        let frequencies = (0..<pairs).map { Foundation.pow(ropeBase, -2 * Float($0) / Float(d)) }

        var qr = [Float](repeating: 0, count: d), kr = [Float](repeating: 0, count: d)
        for t in 0..<n {
            let u = t * text.dims
            // Positional pairs: (a_i, 0) in both Q and K before rotation.
            for i in 0..<positional {
                qr[2 * i] = positionalAmplitude[i]; qr[2 * i + 1] = 0
                kr[2 * i] = positionalAmplitude[i]; kr[2 * i + 1] = 0
            }
            // Content channels.
            let heavyWeight: Float = t == 0 ? 1 : (text.heavy[t] ? 0.6 : 0)
            for c in 0..<cdims {
                var x: Float = 0
                for j in 0..<text.dims { x += mix[c * text.dims + j] * text.content[u + j] }
                qr[2 * positional + c] = contentAmplitude * x + sinkAmplitude * sink[c]
                kr[2 * positional + c] = contentAmplitude * x + heavyWeight * sinkAmplitude * sink[c]
            }
            for c in 0..<d {
                qr[c] += sigma * noise.gaussian()
                kr[c] += sigma * noise.gaussian() + 2 * sinkAmplitude * offset[c] / Float(d).squareRoot()
            }
            // RoPE: rotate pair i by t * theta_i.
            for i in 0..<pairs {
                let angle = Float(t) * frequencies[i]
                let cs = Foundation.cos(angle), sn = Foundation.sin(angle)
                let (a, b) = (qr[2 * i], qr[2 * i + 1]), (e, f) = (kr[2 * i], kr[2 * i + 1])
                q[t * d + 2 * i] = a * cs - b * sn; q[t * d + 2 * i + 1] = a * sn + b * cs
                k[t * d + 2 * i] = e * cs - f * sn; k[t * d + 2 * i + 1] = e * sn + f * cs
            }
            let valueScale: Float = t == 0 ? 0.1 : 1
            for c in 0..<d {
                var x: Float = 0
                for j in 0..<text.dims { x += valueMix[c * text.dims + j] * text.content[u + j] }
                v[t * d + c] = valueScale * (1.5 * x + noise.gaussian())
            }
        }
    }
}
