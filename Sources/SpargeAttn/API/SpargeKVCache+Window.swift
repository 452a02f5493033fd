// A sliding-window cache in a fixed capacity: the keys no later call can see are discarded from
// the front, whole key blocks at a time, so that the blocks still held keep their boundaries
// (and their INT8 blocks, scales and summaries their values) and stage 1 sees the same blocks.

extension SpargeKVCache {
    /// The first key a call can still see once the sequence holds `length` keys: a call's
    /// queries are its last tokens (at most `maxQueryLength` of them), and the earliest of them
    /// sees the `W` keys up to itself. 0 without a window.
    func firstVisibleKey(length: Int, queries: Int) -> Int {
        let w = parameters.windowKeys
        return w > 0 ? Swift.max(0, length - queries - w + 1) : 0
    }

    /// Where the held keys would start after discarding the whole key blocks no later call can
    /// see: `firstHeldKey` when there are none (or no window).
    var discardPoint: Int {
        let blockK = parameters.blockK
        return Swift.max(firstHeldKey, firstVisibleKey(length: length, queries: maxQueryLength) / blockK * blockK)
    }

    /// Moves the held keys from `newFirst` (``discardPoint``) on to the front of the buffers,
    /// dropping the key blocks before them, with their blocks' prepared INT8 keys, scales and
    /// summaries (which depend only on the block's keys and the fixed K mean, so the blocks
    /// answer as before). Costs a memmove of the held keys.
    func discardKeys(before newFirst: Int) {
        let first = firstHeldKey, length = self.length, blockK = parameters.blockK
        guard newFirst > first else { return }
        // No window without `.reject` (init): `firstNonFiniteKey` is not kept, nothing to shift.
        let shift = newFirst - first, keep = length - newFirst
        let size = elementType.size
        for head in 0..<(batch * kvHeads) {
            let k = UnsafeMutableRawPointer(keys.pointer + head * capacity * headDim * size)
            k.copyMemory(from: k + shift * headDim * size, byteCount: keep * headDim * size)
            let v = UnsafeMutableRawPointer(values.pointer + head * capacity * width * size)
            v.copyMemory(from: v + shift * width * size, byteCount: keep * width * size)
        }
        discarded.store(newFirst, ordering: .releasing)
        calls &+= 1         // earlier results' maps are laid out from the old first key
        lastShape = nil
        let keptBlocks = (keep + blockK - 1) / blockK
        if !buffers.moveKeyBlocksToFront(from: shift / blockK, count: keptBlocks, heads: batch * kvHeads) {
            let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: keep, headDim: headDim)
            SparsePipeline(shape: shape, parameters: parameters).prepareCachedKeys(buffers, firstDirty: 0, setMean: false)
        }
    }

    /// Throws unless a cut to `newLength` (above 0) keeps every key a later call can see and
    /// leaves the K mean as it is, once keys before `first` are gone.
    func checkCutKeepsTheWindow(_ newLength: Int, first: Int, meanSourceLength: Int) throws {
        let least = first + parameters.windowKeys + maxQueryLength - 1
        if newLength < least {
            throw SpargeError.invalidShape("truncate(to: \(newLength)): this sliding-window cache discarded the keys before \(first), which calls at that length could see; truncate to \(Swift.max(least, meanSourceLength))...\(length), or to 0 to start again")
        }
        if newLength < meanSourceLength {
            throw SpargeError.invalidShape("truncate(to: \(newLength)) cuts into the append that set the K mean (its first \(meanSourceLength) keys), whose discarded keys the mean would be taken from again; truncate to at least \(meanSourceLength), or create the cache with a keyMean")
        }
    }

    /// Throws when the earliest of `queries` queries would see keys the cache discarded
    /// (``attendExact(q:output:queries:softmaxScale:lse:attentionMask:)`` takes any count).
    func checkQueriesSeeOnlyHeldKeys(_ queries: Int) throws {
        let first = firstHeldKey
        if first > 0 && firstVisibleKey(length: length, queries: queries) < first {
            throw SpargeError.invalidShape("\(queries) queries: the earliest would see keys before \(first), which this sliding-window cache discarded; give at most \(length - first - parameters.windowKeys + 1) (maxQueryLength \(maxQueryLength) always fits)")
        }
    }
}
