// Stage 1, step 5: the blocks of one row in order of probability (descending, ties: lower
// block index first), and how many of them to keep: the CDF rule or the top-k rule.

/// The top-k count: `floor(topk * nk)` as an fp32 product truncated (as torch), at least one.
@inline(__always)
func topKCount(fraction: Float, keyBlocks nk: Int) -> Int {
    Swift.max(1, Int(fraction * Float(nk)))
}

extension SpargeParameters {
    /// Whether step 5 keeps every key block of every row for `keyBlocks` key blocks: top-k with
    /// `floor(fraction * keyBlocks) >= keyBlocks` for every head (a fraction of 1). The block map
    /// is then known without the compressed scores: every block, less the causal future (steps
    /// 6-7 only add blocks, or clear the causal future), plus the attention sink, less the
    /// blocks whose keys are all padding. A backend may skip the pooled blocks, the
    /// self-similarity and the scores then; the CDF rule always needs the probabilities.
    public func selectionKeepsEveryBlock(keyBlocks nk: Int, heads: Int) -> Bool {
        guard case .topK(let fraction) = selection else { return false }
        return (0..<heads).allSatisfy { topKCount(fraction: fraction[$0], keyBlocks: nk) >= nk }
    }
}

/// How many of a row's blocks step 5 keeps.
enum SelectionRule {
    /// The first `count` blocks in probability order (at most all of them). `zerosBefore`
    /// blocks of probability 0 precede the row's blocks (key blocks a KV cache discarded,
    /// outside every window): ties go to the lower index, so they would take the first places
    /// among the zero-probability blocks, and `count` shrinks by them once those are reached.
    case topK(count: Int, zerosBefore: Int = 0)
    /// The longest prefix whose cumulative probability stays at or below `tau` (the running sum
    /// rounded to fp16 with `gpuRounding`), at least one block.
    case cdf(tau: Float, gpuRounding: Bool)
}

/// Step 5: clears `row` and marks the blocks `rule` keeps, taking the blocks of `p` in order of
/// descending probability, lower index first on ties. The order key is `UInt32.max - bitPattern`
/// (probabilities are >= 0, so the bit pattern orders like the value) above the index; the keys
/// (`keys`: `nk` UInt64 of scratch) go into a min-heap and are popped only as far as the rule
/// needs, so a top-k 0.5 row orders half its blocks, not all: the same blocks as sorting all
/// of them and marking a prefix (`Stage1Reference.selectBlocks` does that).
@inline(__always)
func markMostProbable(_ p: UnsafePointer<Float>, count nk: Int, rule: SelectionRule,
                      keys: UnsafeMutablePointer<UInt64>, row: UnsafeMutablePointer<UInt8>) {
    for j in 0..<nk {
        keys[j] = (UInt64(UInt32.max - p[j].bitPattern) << 32) | UInt64(j)
        row[j] = 0
    }
    var n = nk
    var start = n / 2 - 1
    while start >= 0 { siftDownSmallest(keys, start, n); start -= 1 }
    var taken = 0
    var cumulative: Float = 0
    var zerosReached = false
    while n > 0 {
        let block = Int(keys[0] & 0xFFFF_FFFF)
        switch rule {
        case .topK(let count, let zerosBefore):
            if !zerosReached && p[block] == 0 { zerosReached = true }
            if taken >= (zerosReached ? count - zerosBefore : count) { return }
        case .cdf(let tau, let gpuRounding):
            let x = p[block]
            cumulative = gpuRounding ? roundToHalf(cumulative + x) : cumulative + x
            if !(cumulative <= tau) {
                if taken == 0 { row[block] = 1 }   // at least one block
                return
            }
        }
        row[block] = 1
        taken += 1
        n -= 1
        keys[0] = keys[n]
        siftDownSmallest(keys, 0, n)
    }
}

/// Restores the min-heap property below `root` in `a[0..<end]` (no allocation).
@inline(__always)
func siftDownSmallest(_ a: UnsafeMutablePointer<UInt64>, _ root: Int, _ end: Int) {
    var root = root
    while true {
        var child = 2 * root + 1
        if child >= end { return }
        if child + 1 < end && a[child + 1] < a[child] { child += 1 }
        if a[root] <= a[child] { return }
        let t = a[root]; a[root] = a[child]; a[child] = t
        root = child
    }
}
