import Foundation

/// Literal forms of stage-1 quantities, for teaching and for testing the fast forms.
public enum Stage1Reference {
    /// Mean pairwise cosine similarity of `rows` rows of length `d`: the Gram matrix of the
    /// unit rows summed over all pairs, divided by `rows^2` (<doc:ExactSemantics> section 2, step 2).
    /// The fast path computes the same value as `|sum of unit rows|^2 / rows^2`.
    public static func selfSimilarity(_ x: [Float], rows: Int, d: Int) -> Double {
        var unit = [Double](repeating: 0, count: rows * d)
        for r in 0..<rows {
            var n2 = 0.0
            for c in 0..<d { n2 += Double(x[r * d + c]) * Double(x[r * d + c]) }
            let n = n2.squareRoot()
            for c in 0..<d { unit[r * d + c] = Double(x[r * d + c]) / n }
        }
        var total = 0.0
        for a in 0..<rows {
            for b in 0..<rows {
                var dot = 0.0
                for c in 0..<d { dot += unit[a * d + c] * unit[b * d + c] }
                total += dot
            }
        }
        return total / Double(rows * rows)
    }
}

extension Stage1Reference {
    /// Steps 3-7 of stage 1 written plainly, for reading and for testing the fast
    /// selection: compressed scores, softmax over key blocks, sort and CDF / top-k count,
    /// forced blocks, causal clearing, attention sink. Same fp32 arithmetic as the fast path,
    /// so the maps are identical.
    ///
    /// - Parameters:
    ///   - pooledQ: the pooled query blocks, `nq x headDim`.
    ///   - selfSimilarityQ: the `nq` self-similarities of the query blocks (NaN: never self-similar).
    ///   - pooledK: the pooled key blocks, `nk x headDim`.
    ///   - selfSimilarityK: the `nk` self-similarities of the key blocks.
    ///   - d: the head dimension, the row length of `pooledQ` and `pooledK`.
    ///   - blockQ: tokens per query block (for the causal rule).
    ///   - blockK: tokens per key block (for the causal rule).
    ///   - scale: the softmax scale `s`.
    ///   - theta: the self-similarity threshold.
    ///   - selection: the CDF or top-k rule.
    ///   - head: which per-head value of `selection` applies.
    ///   - causal: clear key blocks wholly in the future of a query block.
    ///   - causalOffset: `Nk - Nq` (query `t` sees keys up to `t + causalOffset`).
    ///   - attentionSink: always keep key block 0 (unless the window masks it).
    ///   - gpuRounding: round the scores, probabilities and the running CDF to fp16 as the GPU code.
    ///   - slidingWindow: with `causal`, the keys each query sees up to its limit
    ///     (``SpargeParameters/slidingWindow``): key blocks before every window of a query block
    ///     score -inf and are cleared after the sink; nil: no window.
    ///   - keyLength: the keys (the last key block may be partial); nil: `nk * blockK`.
    ///   - forbiddenBlocks: `nq x nk`, true for a block in which no pair may attend (all its keys
    ///     padding, or an ``AttentionMask`` forbidding every pair): it scores -inf and is cleared
    ///     last; nil: none.
    /// - Returns: the block map of one head, `nq x nk` bytes (0 or 1).
    public static func selectBlocks(
        pooledQ: [Float], selfSimilarityQ: [Float], pooledK: [Float], selfSimilarityK: [Float], headDim d: Int,
        blockQ: Int, blockK: Int, scale: Float, theta: Float, selection: BlockSelection, head: Int = 0,
        causal: Bool, causalOffset: Int = 0, attentionSink: Bool, gpuRounding: Bool,
        slidingWindow: Int? = nil, keyLength: Int? = nil, forbiddenBlocks: [Bool]? = nil
    ) -> [UInt8] {
        let nq = selfSimilarityQ.count, nk = selfSimilarityK.count
        func half(_ x: Float) -> Float { gpuRounding ? Float(Float16(x)) : x }
        func inWindow(_ i: Int, _ j: Int) -> Bool {
            // (Windows beyond 2^31 keys are no window: capped so the subtraction cannot overflow.)
            guard causal, let window = slidingWindow else { return true }
            let w = Swift.min(Swift.max(window, 1), Int(Int32.max))
            // The block's last key against the window of its first (earliest) query.
            return Swift.min((j + 1) * blockK, keyLength ?? nk * blockK) - 1 >= i * blockQ + causalOffset - w + 1
        }
        func forbidden(_ i: Int, _ j: Int) -> Bool { forbiddenBlocks?[i * nk + j] ?? false }
        func allowed(_ i: Int, _ j: Int) -> Bool {
            !forbidden(i, j) && (!causal || (j * blockK < (i + 1) * blockQ + causalOffset && inWindow(i, j)))
        }
        var map = [UInt8](repeating: 0, count: nq * nk)
        for i in 0..<nq {
            // Step 3: compressed scores (-inf for a dissimilar or future key block).
            var scores = [Float](repeating: -.infinity, count: nk)
            for j in 0..<nk where selfSimilarityK[j] > theta && allowed(i, j) {
                var dot: Float = 0
                for c in 0..<d { dot += pooledQ[i * d + c] * pooledK[j * d + c] }
                scores[j] = half(half(dot) * scale)
            }
            // Step 4: softmax (all zeros when every score is -inf).
            var p = [Float](repeating: 0, count: nk)
            let m = scores.max() ?? -.infinity
            if m != -.infinity {
                var sum: Float = 0
                for j in 0..<nk { p[j] = Foundation.exp(scores[j] - m); sum += p[j] }
                for j in 0..<nk { p[j] = half(p[j] / sum) }
            }
            // Step 5: descending probability, ties to the lower index; then the count.
            let order = (0..<nk).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
            var count = 0
            switch selection {
            case .topK(let k):
                count = Swift.max(1, Int(k[head] * Float(nk)))
            case .cdf(let tau):
                var cumulative: Float = 0
                for (t, j) in order.enumerated() {
                    cumulative = half(cumulative + p[j])
                    if cumulative <= tau[head] { count = t + 1 } else { break }
                }
                count = Swift.max(count, 1)
            }
            for j in order.prefix(count) { map[i * nk + j] = 1 }
            // Step 6: blocks that are not self-similar are always computed.
            for j in 0..<nk where !(selfSimilarityQ[i] > theta) || !(selfSimilarityK[j] > theta) { map[i * nk + j] = 1 }
            // Step 7: causal clearing, then the sink, then the window and the forbidden blocks (which mask the sink too).
            for j in 0..<nk where !allowed(i, j) { map[i * nk + j] = 0 }
            if attentionSink { map[i * nk] = 1 }
            for j in 0..<nk where !inWindow(i, j) || forbidden(i, j) { map[i * nk + j] = 0 }
        }
        return map
    }
}
