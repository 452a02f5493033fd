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

/// The UInt64 of scratch step 5 needs for a row of `nk` key blocks: the order keys, then the
/// top-k rule's four 256-bucket histograms of Int32.
func selectionKeyScratch(keyBlocks nk: Int) -> Int { nk + 512 }

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
/// (probabilities are >= 0, so the bit pattern orders like the value) above the index. Under
/// the CDF rule the keys (`keys`: ``selectionKeyScratch(keyBlocks:)`` UInt64 of scratch) go
/// into a min-heap and are popped only as far as the running sum needs; under the top-k rule
/// ``markTopK(_:count:take:zerosBefore:keys:row:)`` finds the same blocks without ordering
/// them. Either way: the blocks that sorting all of them and marking a prefix gives
/// (`Stage1Reference.selectBlocks` does that).
@inline(__always)
func markMostProbable(_ p: UnsafePointer<Float>, count nk: Int, rule: SelectionRule,
                      keys: UnsafeMutablePointer<UInt64>, row: UnsafeMutablePointer<UInt8>) {
    if case .topK(let count, let zerosBefore) = rule {
        markTopK(p, count: nk, take: count, zerosBefore: zerosBefore, keys: keys, row: row)
        return
    }
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

/// Step 5 under the top-k rule: marks in `row` (cleared first) the blocks that popping the order
/// keys of ``markMostProbable(_:count:rule:keys:row:)`` in ascending order would take, found by a
/// radix selection instead of a heap: byte-wide histograms of the keys' high 32 bits, from the
/// top byte down, find the high half of the last key taken, each pass over only the keys that
/// still share the bytes found (compacted to the front of `keys`); one pass then marks every key
/// below it, and the ties lowest index first. O(nk); a heap pays log(nk) unpredictable branches
/// per block taken (a decoding step at 128k keys spent a quarter of stage 1 there). Four
/// interleaved histograms keep neighbours that fall in one bucket (most of them, in the top
/// byte) from waiting on each other's increments; they live in `keys` after its `nk` keys
/// (``selectionKeyScratch(keyBlocks:)``).
///
/// How many: the first `take` keys, except that once a key of probability 0 is reached the count
/// shrinks by `zerosBefore` (``SelectionRule/topK(count:zerosBefore:)``): with `z` keys before the
/// first zero, `take` if `take <= z`, else `max(z, take - zerosBefore)`, at most `nk`.
@inline(__always)
func markTopK(_ p: UnsafePointer<Float>, count nk: Int, take: Int, zerosBefore: Int,
              keys: UnsafeMutablePointer<UInt64>, row: UnsafeMutablePointer<UInt8>) {
    @inline(__always) func high(_ j: Int) -> UInt32 { UInt32.max - p[j].bitPattern }
    // The smallest full key (high half, then index) among probability-0 blocks.
    var firstZero = UInt64.max
    for j in 0..<nk {
        keys[j] = UInt64(high(j)) << 32 | UInt64(j)
        if p[j] == 0 { firstZero = Swift.min(firstZero, keys[j]) }
        row[j] = 0
    }
    var beforeZero = nk
    if firstZero != .max {
        beforeZero = 0
        for j in 0..<nk { beforeZero += keys[j] < firstZero ? 1 : 0 }
    }
    let taken = Swift.min(nk, take <= beforeZero ? take : Swift.max(beforeZero, take - zerosBefore))
    guard taken > 0 else { return }
    // The high half of the taken-th smallest key, a byte at a time from the top: `remaining` of
    // the `candidates` keys (those sharing the bytes found so far) are still to take.
    var threshold: UInt32 = 0, remaining = taken, candidates = nk
    (keys + nk).withMemoryRebound(to: Int32.self, capacity: 4 * 256) { counts in
        for shift in stride(from: 56, through: 32, by: -8) {
            counts.update(repeating: 0, count: 4 * 256)
            var j = 0
            while j + 4 <= candidates {
                for lane in 0..<4 { counts[lane * 256 + Int(truncatingIfNeeded: keys[j + lane] >> UInt64(shift)) & 0xFF] &+= 1 }
                j += 4
            }
            while j < candidates { counts[Int(truncatingIfNeeded: keys[j] >> UInt64(shift)) & 0xFF] &+= 1; j += 1 }
            var below = 0, byte = 0
            while true {
                let inByte = Int(counts[byte] &+ counts[256 + byte] &+ counts[512 + byte] &+ counts[768 + byte])
                if below + inByte >= remaining { break }
                below += inByte
                byte += 1
            }
            remaining -= below
            threshold |= UInt32(byte) << UInt32(shift - 32)
            // Keep the keys of that byte (their order does not matter: ties are marked by index).
            var kept = 0
            for i in 0..<candidates {
                let key = keys[i]
                keys[kept] = key
                kept += Int(truncatingIfNeeded: key >> UInt64(shift)) & 0xFF == byte ? 1 : 0
            }
            candidates = kept
        }
    }
    // Every key below the threshold, and the first `remaining` (by index) equal to it.
    for j in 0..<nk {
        let key = high(j)
        let tie = key == threshold && remaining > 0
        row[j] = key < threshold || tie ? 1 : 0
        remaining -= tie ? 1 : 0
    }
}
