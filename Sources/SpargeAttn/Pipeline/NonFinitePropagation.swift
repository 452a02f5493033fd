// NonFinitePolicy.propagate: NaN goes where exact attention would put it. The kernels' row
// maxima skip NaN scores and INT8 rounds NaN to 0, so without this pass a NaN query could give
// a zero row and a NaN key a finite one.

/// After a call's kernels, under ``NonFinitePolicy/propagate``: every output row whose exact
/// attention reads a NaN or infinity (its query row, or the key or value row of a key it sees
/// under the causal mask, the window, the key padding and the attention mask) is set to NaN,
/// and so is its log-sum-exp. A row that sees no key keeps its zeros. One pass over Q, K and V;
/// the rows are those of `views` (token order, where the call has one: without a causal mask
/// the rule does not depend on it). `firstBadKeys` (per (batch, kv head), a KV cache's record
/// of its appends: the first key whose key or value row is not finite) replaces the scan of K
/// and V (with an attention mask: the scan starts there); `nonFiniteMeans` says which heads' K
/// mean is not finite. Smoothing spreads a NaN through its mean: with `keyMean` (K smoothing) a
/// non-finite key row reaches every row of its kv head that sees a key, with `queryBlock` (Q
/// smoothing, the block size) a non-finite query row reaches every row of its query block.
func markNonFiniteRows(_ views: CallViews, shape s: AttentionShape, causalOffset: Int?, keyValid: UnsafePointer<UInt8>?,
                       keyMean: Bool = false, queryBlock: Int? = nil, firstBadKeys: UnsafePointer<Int>? = nil,
                       nonFiniteMeans: UnsafePointer<Bool>? = nil, window: Int = 0, pairMask: PairMaskView? = nil) {
    guard let output = views.output, s.keyLength > 0 else { return }
    if let pairMask {
        return markNonFinitePairRows(views, output: output, shape: s, causalOffset: causalOffset, window: window,
                                     keyValid: keyValid, pairMask: pairMask, keyMean: keyMean, queryBlock: queryBlock,
                                     firstBadKeys: firstBadKeys, nonFiniteMeans: nonFiniteMeans)
    }
    if let causalOffset, window > 0 {
        return markNonFiniteWindowRows(views, output: output, shape: s, causalOffset: causalOffset, window: window,
                                       keyValid: keyValid, keyMean: keyMean, queryBlock: queryBlock)
    }
    let d = s.headDim, nk = s.keyLength
    func finite(_ view: TensorView, _ b: Int, _ h: Int, _ n: Int) -> Bool { firstNonFinite(view, b, h, n, count: d) == nil }
    for b in 0..<s.batch {
        // The first key that is not padding, and per kv head the first such key with a
        // non-finite key or value row.
        var firstKey = 0
        if let keyValid { while firstKey < nk && keyValid[b * nk + firstKey] == 0 { firstKey += 1 } }
        if firstKey == nk { continue }   // every row sees no key
        for kvh in 0..<s.kvHeads {
            var firstBad = nk
            if let firstBadKeys {
                firstBad = Swift.min(nk, firstBadKeys[b * s.kvHeads + kvh])
                if keyMean && nonFiniteMeans?[b * s.kvHeads + kvh] == true { firstBad = firstKey }   // through the mean
            } else {
                for j in firstKey..<nk where keyValid.map({ $0[b * nk + j] != 0 }) ?? true {
                    if !finite(views.k, b, kvh, j) { firstBad = keyMean ? firstKey : Swift.min(firstBad, j); break }
                    if firstBad == nk && !finite(views.v, b, kvh, j) {
                        firstBad = j
                        if !keyMean { break }   // else a later key row may still reach every row
                    }
                }
            }
            for h in (kvh * s.groupSize)..<((kvh + 1) * s.groupSize) {
                let badQuery = nonFiniteQueryRows(views.q, b: b, h: h, shape: s, queryBlock: queryBlock)
                for t in 0..<s.queryLength {
                    let seen = causalOffset.map { Swift.min(nk, Swift.max(0, t + $0 + 1)) } ?? nk   // keys 0..<seen
                    guard firstKey < seen else { continue }
                    if firstBad < seen || badQuery[t] {
                        storeNaNRow(output, b, h, t, headDim: d)
                    }
                }
            }
        }
    }
}

/// Which query rows of (b, h) hold a NaN or infinity, each row read once; with Q smoothing
/// (`queryBlock`, the block size) a row's whole block counts, through its mean.
private func nonFiniteQueryRows(_ q: TensorView, b: Int, h: Int, shape s: AttentionShape, queryBlock: Int?) -> [Bool] {
    var bad = (0..<s.queryLength).map { firstNonFinite(q, b, h, $0, count: s.headDim) != nil }
    if let queryBlock {
        for start in stride(from: 0, to: s.queryLength, by: queryBlock) {
            let block = start..<Swift.min(s.queryLength, start + queryBlock)
            if bad[block].contains(true) { for t in block { bad[t] = true } }
        }
    }
    return bad
}

/// ``markNonFiniteRows(_:shape:causalOffset:keyValid:keyMean:queryBlock:firstBadKeys:window:pairMask:)``
/// under a sliding window: row `t` sees keys `lo..<hi` (`hi = t + offset + 1`, `lo = hi -
/// window` before clipping to the keys), so a non-finite key matters only inside that range; counts of
/// non-finite and of real keys before each key answer every row in O(1).
private func markNonFiniteWindowRows(_ views: CallViews, output: MutableTensorView, shape s: AttentionShape, causalOffset: Int,
                                     window: Int, keyValid: UnsafePointer<UInt8>?, keyMean: Bool, queryBlock: Int?) {
    let nk = s.keyLength
    var keys = KeyRowScan(keyLength: nk)
    var realBefore = [Int](repeating: 0, count: nk + 1), badBefore = [Int](repeating: 0, count: nk + 1)
    for b in 0..<s.batch {
        for kvh in 0..<s.kvHeads {
            keys.scan(views, b: b, kvh: kvh, shape: s, keyValid: keyValid)
            for j in 0..<nk {
                realBefore[j + 1] = realBefore[j] + (keys.real[j] ? 1 : 0)
                badBefore[j + 1] = badBefore[j] + (keys.bad[j] ? 1 : 0)
            }
            for h in (kvh * s.groupSize)..<((kvh + 1) * s.groupSize) {
                let badQuery = nonFiniteQueryRows(views.q, b: b, h: h, shape: s, queryBlock: queryBlock)
                for t in 0..<s.queryLength {
                    let hi = Swift.min(nk, Swift.max(0, t + causalOffset + 1)), lo = Swift.min(hi, Swift.max(0, t + causalOffset + 1 - window))
                    guard realBefore[hi] > realBefore[lo] else { continue }   // sees no key: keeps its zeros
                    if badQuery[t] || badBefore[hi] > badBefore[lo] || (keyMean && keys.anyBadKeyRow) {
                        storeNaNRow(output, b, h, t, headDim: s.headDim)
                    }
                }
            }
        }
    }
}

/// ``markNonFiniteRows(_:shape:causalOffset:keyValid:keyMean:queryBlock:firstBadKeys:window:pairMask:)``
/// with an attention mask: row `t` sees key `j` when the mask, the causal limit, the window and
/// the padding all allow it, so each row tests its own keys (O(Nq Nk) per batch entry and kv
/// head, shared by the heads of the group; only under the propagate policy). With a KV cache's
/// record (`firstBadKeys`, `nonFiniteMeans`) the keys before a head's first non-finite one are
/// known to be finite, and the record, not the held keys, says whether the K mean is.
private func markNonFinitePairRows(_ views: CallViews, output: MutableTensorView, shape s: AttentionShape, causalOffset: Int?,
                                   window: Int, keyValid: UnsafePointer<UInt8>?, pairMask: PairMaskView, keyMean: Bool,
                                   queryBlock: Int?, firstBadKeys: UnsafePointer<Int>?, nonFiniteMeans: UnsafePointer<Bool>?) {
    let nk = s.keyLength
    var keys = KeyRowScan(keyLength: nk)
    for b in 0..<s.batch {
        for kvh in 0..<s.kvHeads {
            let head = b * s.kvHeads + kvh
            keys.scan(views, b: b, kvh: kvh, shape: s, keyValid: keyValid, from: firstBadKeys.map { Swift.min(nk, $0[head]) } ?? 0)
            if let nonFiniteMeans { keys.anyBadKeyRow = keyMean && nonFiniteMeans[head] }
            let heads = (kvh * s.groupSize)..<((kvh + 1) * s.groupSize)
            let badQueries = heads.map { nonFiniteQueryRows(views.q, b: b, h: $0, shape: s, queryBlock: queryBlock) }
            for t in 0..<s.queryLength {
                var lo = 0, hi = nk
                if let o = causalOffset {
                    hi = Swift.min(nk, Swift.max(0, t + o + 1))
                    if window > 0 { lo = Swift.min(hi, Swift.max(0, t + o + 1 - window)) }
                }
                let allowed = pairMask.row(b, t)
                var sees = false, seesBad = false
                for j in lo..<hi where allowed[j] != 0 && keys.real[j] {
                    sees = true
                    if keys.bad[j] { seesBad = true; break }
                }
                guard sees else { continue }   // sees no key: keeps its zeros
                for (n, h) in heads.enumerated() where badQueries[n][t] || seesBad || (keyMean && keys.anyBadKeyRow) {
                    storeNaNRow(output, b, h, t, headDim: s.headDim)
                }
            }
        }
    }
}

/// The keys of one (batch entry, kv head), read once: which are real (not padding) and which
/// real ones have a NaN or infinity in their key or value row.
private struct KeyRowScan {
    var real: [Bool], bad: [Bool]
    /// A real key's K row holds a NaN or infinity: with K smoothing it reaches every row through the mean.
    var anyBadKeyRow = false

    init(keyLength: Int) {
        real = [Bool](repeating: true, count: keyLength)
        bad = [Bool](repeating: false, count: keyLength)
    }

    /// Reads the key and value rows from key `first` on; those before it count as finite.
    mutating func scan(_ views: CallViews, b: Int, kvh: Int, shape s: AttentionShape, keyValid: UnsafePointer<UInt8>?, from first: Int = 0) {
        let d = s.headDim, nk = s.keyLength
        anyBadKeyRow = false
        for j in 0..<nk {
            let isReal = keyValid.map { $0[b * nk + j] != 0 } ?? true
            guard j >= first else { real[j] = isReal; bad[j] = false; continue }
            let kBad = isReal && firstNonFinite(views.k, b, kvh, j, count: d) != nil
            anyBadKeyRow = anyBadKeyRow || kBad
            real[j] = isReal
            bad[j] = kBad || (isReal && firstNonFinite(views.v, b, kvh, j, count: d) != nil)
        }
    }
}

/// Sets output row `t` of (b, h) to NaN, and its log-sum-exp when the call returns one.
private func storeNaNRow(_ output: MutableTensorView, _ b: Int, _ h: Int, _ t: Int, headDim d: Int) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: d) { row in
        row.initialize(repeating: .nan)
        output.store(b, h, t, from: row.baseAddress!, count: d)
    }
    output.lse?.store(b, h, t, m: .nan, l: .nan, unit: .one)
}

extension SpargeParameters {
    /// ``markNonFiniteRows(_:shape:causalOffset:keyValid:)`` when the policy is
    /// ``NonFinitePolicy/propagate`` (with ``NonFinitePolicy/reject`` the inputs are finite).
    /// `sparse`: the call smooths as these parameters say (the dense path does not).
    func markNonFiniteRows(_ views: CallViews, shape: AttentionShape, keyValid: UnsafePointer<UInt8>?, sparse: Bool = true,
                           firstBadKeys: UnsafePointer<Int>? = nil, nonFiniteMeans: UnsafePointer<Bool>? = nil,
                           pairMask: PairMaskView? = nil) {
        guard nonFinitePolicy == .propagate else { return }
        SpargeAttn.markNonFiniteRows(views, shape: shape, causalOffset: causal ? causalOffset(for: shape) : nil, keyValid: keyValid,
                                     keyMean: sparse && smoothK, queryBlock: sparse && smoothQ ? blockQ : nil,
                                     firstBadKeys: firstBadKeys, nonFiniteMeans: nonFiniteMeans, window: windowKeys,
                                     pairMask: pairMask)
    }
}
