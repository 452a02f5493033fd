import Foundation

// Stage 1, steps 3-7 (ExactSemantics.md section 2): compressed scores, softmax, CDF / top-k
// selection, forced rows and columns, causal clearing, attention sink. One query block row
// of the block map at a time; no allocation (the caller passes the scratch buffers).

/// Inputs of the selection for one head.
struct SelectionInputs {
    var pooledQ: UnsafePointer<Float>   // nq x d
    var simQ: UnsafePointer<Float>      // nq (NaN: not self-similar)
    var pooledK: UnsafePointer<Float>   // nk x d
    var simK: UnsafePointer<Float>      // nk
    var queryBlocks: Int
    var keyBlocks: Int
    var d: Int
    var blockQ: Int
    var blockK: Int
    var scale: Float
    var theta: Float
    var selection: Float                // tau or topk
    var isTopK: Bool
    var causal: Bool
    /// Nk - Nq (see ``blockCausallyAllowed(i:j:blockQ:blockK:offset:)``).
    var causalOffset: Int = 0
    var attentionSink: Bool
    var gpuRounding: Bool
    /// When set, receives `P_hat` (nq x nk) for inspection.
    var probabilitiesOut: UnsafeMutablePointer<Float>? = nil
}

/// Key block `j` is allowed for query block `i` under the block-causal rule of the GPU code
/// (`j < (i + 1) * bq / bk`, evaluated exactly), generalised to `Nq != Nk` with the
/// FlashAttention / KV-cache convention that query `t` sees keys up to `t + offset`,
/// `offset = Nk - Nq`: the block's last query sees keys below `(i + 1) * bq + offset`.
@inline(__always)
func blockCausallyAllowed(i: Int, j: Int, blockQ: Int, blockK: Int, offset: Int = 0) -> Bool {
    j * blockK < (i + 1) * blockQ + offset
}

/// Writes the block-map rows of one head into `map` (`nq * nk` bytes).
/// `probabilities` holds `nk` floats and `keys` `nk` UInt64 of scratch.
func selectBlocks(
    _ s: SelectionInputs, map: UnsafeMutablePointer<UInt8>,
    probabilities: UnsafeMutablePointer<Float>, keys: UnsafeMutablePointer<UInt64>
) {
    let nk = s.keyBlocks, d = s.d
    let topKCount = Swift.max(1, Int(s.selection * Float(nk)))  // fp32 product, truncated, as torch
    for i in 0..<s.queryBlocks {
        let row = map + i * nk
        let pq = s.pooledQ + i * d
        // Step 3: compressed scores.
        var rowMax = -Float.infinity
        for j in 0..<nk {
            var score: Float
            let selfSimilarK = s.simK[j] > s.theta
            if !selfSimilarK || (s.causal && !blockCausallyAllowed(i: i, j: j, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset)) {
                score = -.infinity
            } else {
                let pk = s.pooledK + j * d
                var dot: Float = 0
                for c in 0..<d { dot += pq[c] * pk[c] }
                if s.gpuRounding {
                    score = roundToHalf(roundToHalf(dot) * s.scale)
                } else {
                    score = dot * s.scale
                }
            }
            probabilities[j] = score
            rowMax = Swift.max(rowMax, score)
        }
        // Step 4: softmax (a row with every score -inf gets all zeros; every column it could
        // use is then forced below, so the choice made from it does not matter).
        if rowMax == -.infinity {
            for j in 0..<nk { probabilities[j] = 0 }
        } else {
            var sum: Float = 0
            for j in 0..<nk {
                let e = Foundation.exp(probabilities[j] - rowMax)
                probabilities[j] = e
                sum += e
            }
            for j in 0..<nk {
                let p = probabilities[j] / sum
                probabilities[j] = s.gpuRounding ? roundToHalf(p) : p
            }
        }
        if let out = s.probabilitiesOut { (out + i * nk).update(from: probabilities, count: nk) }
        // Step 5: sort descending (ties: lower block index first), cumulative sum, count.
        for j in 0..<nk {
            keys[j] = (UInt64(UInt32.max - probabilities[j].bitPattern) << 32) | UInt64(j)
        }
        heapSort(keys, count: nk)
        var count: Int
        if s.isTopK {
            count = topKCount
        } else {
            count = 0
            var cumulative: Float = 0
            for t in 0..<nk {
                let p = probabilities[Int(keys[t] & 0xFFFF_FFFF)]
                cumulative = s.gpuRounding ? roundToHalf(cumulative + p) : cumulative + p
                if cumulative <= s.selection { count = t + 1 } else { break }
            }
            count = Swift.max(count, 1)
        }
        for j in 0..<nk { row[j] = 0 }
        for t in 0..<Swift.min(count, nk) { row[Int(keys[t] & 0xFFFF_FFFF)] = 1 }
        // Step 6: blocks that are not self-similar cannot be represented by their mean.
        let selfSimilarQ = s.simQ[i] > s.theta
        for j in 0..<nk where !selfSimilarQ || !(s.simK[j] > s.theta) { row[j] = 1 }
        // Step 7: causal clearing, then the attention sink.
        if s.causal {
            for j in 0..<nk where !blockCausallyAllowed(i: i, j: j, blockQ: s.blockQ, blockK: s.blockK, offset: s.causalOffset) { row[j] = 0 }
        }
        if s.attentionSink { row[0] = 1 }
    }
}

/// In-place ascending heap sort (no allocation; the keys are distinct, so stability is moot).
func heapSort(_ a: UnsafeMutablePointer<UInt64>, count n: Int) {
    func siftDown(_ start: Int, _ end: Int) {
        var root = start
        while true {
            var child = 2 * root + 1
            if child >= end { return }
            if child + 1 < end && a[child] < a[child + 1] { child += 1 }
            if a[root] >= a[child] { return }
            a.swapAt(root, child)
            root = child
        }
    }
    if n < 2 { return }
    var start = n / 2 - 1
    while start >= 0 { siftDown(start, n); start -= 1 }
    var end = n - 1
    while end > 0 {
        a.swapAt(0, end)
        siftDown(0, end)
        end -= 1
    }
}

extension UnsafeMutablePointer where Pointee == UInt64 {
    @inline(__always)
    func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]; self[i] = self[j]; self[j] = t
    }
}
