import SpargeSIMD
import Synchronization

/// A growing key/value cache for decoding, with the key side of SpargeAttn kept up to date
/// block by block: INT8 blocks and scales, pooled means and self-similarities are computed once
/// per block of `blockK` keys when the block completes (the trailing partial block is redone
/// on each append, at most `blockK` rows), so a decoding step costs O(new keys) plus the sparse
/// attention itself, not O(all keys).
///
/// K smoothing subtracts a mean of K. A cache cannot re-quantize every block whenever the mean
/// moves, so it fixes the mean once: the mean of the keys of its first ``append(k:v:tokens:)-(AttentionInput,_,_)``
/// (the prefill), or the mean given to ``init(batch:heads:kvHeads:headDim:capacity:maxQueryLength:parameters:keyMean:elementType:threads:)``.
/// Softmax is invariant to the subtracted vector, so any fixed mean is exact attention in real
/// arithmetic; only the INT8 rounding of K depends on it. A recomputation from scratch with the
/// same mean (a new cache given ``keyMean``, filled in one append) gives bit-identical outputs.
///
/// Queries attend causally by default (``defaultParameters``) as the last tokens of the
/// sequence (query `t` of `Nq` sees keys up to `t + length - Nq`); with `parameters.causal ==
/// false` (cross-attention to a fixed memory) every query sees every key. A query shorter than one block is its own, measured, stage-1 block.
///
/// A single decoding query is one stage-1 row, so a poor block ranking is not averaged out:
/// stage 1 scores each full key block by its mean, and a block holding most of a head's
/// attention can rank just below the top-k cut (the trailing partial block is always
/// computed). That step's output for that head is then far from exact attention even though it
/// is exact attention on the reported ``SparseAttentionResult/blockMap``; where every step
/// matters, raise the top-k fraction or use CDF selection, or check or replace short-context
/// steps with ``attendExact(q:output:queries:softmaxScale:lse:attentionMask:)``.
///
/// One call at a time: a cache may move between threads (it is `Sendable`), but a call that
/// finds it busy with another (``append(k:v:tokens:)-(AttentionInput,_,_)``, ``attend(q:output:queries:lse:attentionMask:)``,
/// ``attendExact(q:output:queries:softmaxScale:lse:attentionMask:)``, ``truncate(to:)``, ``copy(capacity:maxQueryLength:threads:)``, ``keyMean``) throws
/// ``SpargeError/concurrentUse(_:)`` before touching the cache.
public final class SpargeKVCache: @unchecked Sendable, CallMemory {
    // @unchecked: the buffers are touched only inside `exclusive.run` (one call at a time);
    // `length` and `firstHeldKey` are atomic so they can be read from any thread (each alone:
    // while a call runs, a reader may see one from before it and the other from after).
    /// Batch entries (`B`).
    public let batch: Int
    /// Query heads (`H`).
    public let heads: Int
    /// Key/value heads (`Hkv`).
    public let kvHeads: Int
    /// Channels per head (`D`).
    public let headDim: Int
    /// Keys the cache can hold.
    public let capacity: Int
    /// Most query tokens of one ``attend(q:output:queries:lse:attentionMask:)`` call.
    public let maxQueryLength: Int
    /// The configuration of every call (validated at creation; `pvNumerics` must be fp32).
    public let parameters: SpargeParameters
    /// Keys appended so far, less those rolled back by ``truncate(to:)``: the sequence's length,
    /// which the causal rule and the window count from. With a ``SpargeParameters/slidingWindow``
    /// the first ``firstHeldKey`` of them may have been discarded (see ``append(k:v:tokens:)-(AttentionInput,_,_)``).
    public var length: Int { held.load(ordering: .acquiring) }
    private let held = Atomic<Int>(0)
    /// The first key the cache still holds: 0, unless a cache with a
    /// ``SpargeParameters/slidingWindow`` discarded keys no call can see any more to make room
    /// (always a multiple of `blockK`). The cache holds keys `firstHeldKey..<length`.
    public var firstHeldKey: Int { discarded.load(ordering: .acquiring) }
    let discarded = Atomic<Int>(0)
    /// Keys held now: ``length`` less ``firstHeldKey``.
    public var heldKeys: Int { Swift.max(0, length - firstHeldKey) }
    let exclusive = ExclusiveUse()
    static let busyMessage: StaticString =
        "this SpargeKVCache is already running another call (append, attend, attendExact, truncate, copy or keyMean); serialize the calls of one sequence, or give each sequence its own cache"

    let storage: SparseStorage
    /// The element type the keys and values are stored in (`elementType` at creation).
    public let elementType: ElementType
    let keys: RawBuffer<UInt8>          // [B*Hkv][capacity][D] of `elementType`
    let values: RawBuffer<UInt8>        // [B*Hkv][capacity][width] of `elementType`
    let capacityBlocks: Int
    let width: Int
    let magnitudes: CacheMagnitudes     // the overflow guard's per-head |k| and |v|
    private var meanIsSet: Bool
    /// The mean was given at creation (or smoothing is off): emptying the cache keeps it.
    private var meanFixedAtCreation: Bool
    /// How many keys the mean was taken from (the append that set it); 0 when given.
    private var meanSourceLength = 0
    /// Per (batch, kv head), the first key with a non-finite key or value row (`Int.max`: none);
    /// kept under ``NonFinitePolicy/propagate`` only.
    private var firstNonFiniteKey: [Int]
    /// Per (batch, kv head): the K mean was taken from a non-finite key row, so on the sparse
    /// path it reaches every row that sees a key (the exact path does not smooth).
    private var nonFiniteMean: [Bool]
    /// Attend calls so far, and the last one's shape: a result reads the map only while they match.
    var calls: UInt64 = 0
    var lastShape: AttentionShape?

    /// The parameters of a cache created without any: ``SpargeParameters/recommended`` with
    /// ``SpargeParameters/causal`` set, since a cache's queries are the newest tokens of a
    /// sequence (chunked prefill, speculative decoding). A single decoding query sees every key
    /// either way.
    public static var defaultParameters: SpargeParameters {
        var p = SpargeParameters.recommended
        p.causal = true
        return p
    }

    /// Creates an empty cache.
    /// - Parameters:
    ///   - batch: the batch size `B`.
    ///   - heads: the query heads `H`.
    ///   - kvHeads: the key/value heads (dividing `heads`); `nil` means `heads`.
    ///   - headDim: the head dimension `D`.
    ///   - capacity: the most keys the cache can hold (at once, with a sliding window: see
    ///     ``append(k:v:tokens:)-(AttentionInput,_,_)``).
    ///   - maxQueryLength: the most query tokens of one call.
    ///   - parameters: the hyper-parameters and options; the default is
    ///     ``defaultParameters`` (causal).
    ///   - keyMean: a fixed K mean (`batch * kvHeads * headDim` values) instead of the
    ///     mean of the first append; ignored without `parameters.smoothK`.
    ///   - elementType: how the keys and values are stored. `.float16` or `.bfloat16` halve
    ///     the cache's largest buffers and the bytes a decoding step reads; appended values are
    ///     rounded to it (to nearest even; exact when they come in that type already), and
    ///     every call then computes, bit for bit, what an fp32 cache given the rounded values
    ///     would (but for values near fp32's limit in a bf16 cache, whose overflow guard divides
    ///     the stored V by a power of two and rounds what falls below 2^-126 again). An append
    ///     holding a value the type cannot hold (beyond fp16's 65504) throws; not with
    ///     `gpuRounding`.
    ///   - threads: worker count, 1...1024 (up to the CPU count where that is larger); `nil` uses every CPU this process may run on.
    public init(batch: Int = 1, heads: Int, kvHeads: Int? = nil, headDim: Int, capacity: Int, maxQueryLength: Int = 16,
                parameters: SpargeParameters = SpargeKVCache.defaultParameters, keyMean: [Float]? = nil,
                elementType: ElementType = .float32, threads: Int? = nil) throws {
        let kvh = kvHeads ?? heads
        if capacity < 1 { throw SpargeError.invalidShape("capacity is \(capacity); a cache holds at least one key") }
        if maxQueryLength < 1 { throw SpargeError.invalidShape("maxQueryLength is \(maxQueryLength); a call attends at least one query") }
        let maxShape = AttentionShape(batch: batch, heads: heads, kvHeads: kvh, queryLength: maxQueryLength,
                                      keyLength: capacity, headDim: headDim)
        try maxShape.validate()
        try parameters.validate(for: maxShape)
        if parameters.gpuReproduction.pvNumerics != .fp32 {
            throw SpargeError.unsupported("pvNumerics \(parameters.gpuReproduction.pvNumerics) emulates a one-shot GPU call (its FP8 V scale spans all keys); the KV cache computes P.V in fp32")
        }
        if elementType != .float32 && parameters.gpuReproduction.gpuRounding {
            throw SpargeError.unsupported("gpuRounding reproduces the GPU kernel's fp16 rounding of fp32 inputs, and its range checks read the values before a 16-bit cache would round them again; use elementType .float32 with gpuRounding")
        }
        if parameters.smoothQ {
            throw SpargeError.unsupported("smoothQ needs every key in fp32 beside the INT8 ones, which the KV cache does not keep; set smoothQ to false for the cache (one-shot calls and plans support it)")
        }
        if parameters.fixedPointPV {
            throw SpargeError.unsupported("fixedPointPV keeps V as integers per key block, which the KV cache does not; set fixedPointPV to false for the cache (one-shot calls and plans support it)")
        }
        if parameters.causal && parameters.causalAlignment != .bottomRight {
            throw SpargeError.unsupported("a KV cache's queries are the last tokens of the sequence, so its causal mask is bottom-right; set causalAlignment to .bottomRight (or use SpargeAttention/SpargePlan for top-left)")
        }
        if parameters.slidingWindow != nil && parameters.nonFinitePolicy == .propagate {
            throw SpargeError.unsupported("a KV cache records only the first non-finite key of each head, which a sliding window may have left behind; use nonFinitePolicy .reject with slidingWindow (one-shot calls and plans support both)")
        }
        if let m = keyMean, m.count != batch * kvh * headDim {
            throw SpargeError.invalidParameter("keyMean has \(m.count) values; give batch * kvHeads * headDim = \(batch * kvh * headDim)")
        }
        if let m = keyMean, let i = m.firstIndex(where: { !$0.isFinite }) {
            throw SpargeError.nonFiniteInput(name: "keyMean", index: i, value: m[i])
        }
        self.batch = batch
        self.heads = heads
        self.kvHeads = kvh
        self.headDim = headDim
        self.capacity = capacity
        self.maxQueryLength = maxQueryLength
        self.parameters = parameters
        self.elementType = elementType
        let g = SparseGeometry(shape: maxShape, blockQ: parameters.blockQ, blockK: parameters.blockK)
        capacityBlocks = g.keyBlocks
        width = g.width
        storage = SparseStorage(shape: maxShape, parameters: parameters, threads: try resolvedThreadCount(threads),
                                chunkStates: SparseStorage.cachedChunkStates(maxShape: maxShape, parameters: parameters))
        keys = RawBuffer(count: batch * kvh * capacity * headDim * elementType.size, zero: 0)
        values = RawBuffer(count: batch * kvh * capacity * g.width * elementType.size, zero: 0)
        magnitudes = CacheMagnitudes(heads: batch * kvh)
        meanIsSet = false
        firstNonFiniteKey = [Int](repeating: .max, count: batch * kvh)
        nonFiniteMean = [Bool](repeating: false, count: batch * kvh)
        if let m = keyMean, parameters.smoothK {
            storage.ops.kMean.pointer.update(from: m, count: m.count)
            meanIsSet = true
        }
        if !parameters.smoothK {
            storage.ops.kMean.pointer.update(repeating: 0, count: batch * kvh * headDim)
            meanIsSet = true
        }
        meanFixedAtCreation = meanIsSet
    }

    /// The K mean used for smoothing (`batch * kvHeads * headDim`), once fixed.
    /// Throws ``SpargeError/concurrentUse(_:)`` while another call runs.
    public var keyMean: [Float] {
        get throws {
            try exclusive.run(Self.busyMessage) {
                Array(UnsafeBufferPointer(start: storage.ops.kMean.pointer, count: batch * kvHeads * headDim))
            }
        }
    }

    /// The cache's memory as the pipeline reads it.
    var buffers: CacheBuffers {
        CacheBuffers(
            storage: storage,
            keys: TensorView(base: UnsafeRawPointer(keys.pointer), type: elementType, batchStride: kvHeads * capacity * headDim,
                             headStride: capacity * headDim, rowStride: headDim),
            values: TensorView(base: UnsafeRawPointer(values.pointer), type: elementType, batchStride: kvHeads * capacity * width,
                               headStride: capacity * width, rowStride: width),
            capacityBlocks: capacityBlocks, magnitudes: magnitudes)
    }

    /// Appends `tokens` keys and values (`B,Hkv,tokens,D` tensors, any layout and element type)
    /// and updates the key side of the blocks they touch.
    ///
    /// With a ``SpargeParameters/slidingWindow`` `W`, a cache whose capacity an append would
    /// exceed first discards the key blocks that no later call can see (those wholly before
    /// `length - maxQueryLength - W + 1`), so that a sliding-window layer decodes for ever in a
    /// fixed capacity: give at least `W + maxQueryLength + blockK - 2` plus the largest append
    /// (the room above that is how many keys are appended between two discards, each a memmove
    /// of the held keys and their prepared blocks). Every later call selects the blocks a cache
    /// that kept every key would, and computes the same output up to rounding where the count
    /// of held key blocks changes how a call splits the keys across the cores, and (only for
    /// values near fp32's limit) the overflow guard's unit, which depends on the capacity
    /// (``firstHeldKey`` says where the held keys start).
    public func append(k: AttentionInput, v: AttentionInput, tokens: Int) throws {
        try exclusive.run(Self.busyMessage) { try appendAlone(k: k, v: v, tokens: tokens) }
    }

    private func appendAlone(k: AttentionInput, v: AttentionInput, tokens: Int) throws {
        if tokens < 1 { throw SpargeError.invalidShape("append needs at least one token, got \(tokens)") }
        // A window lets the cache discard what no later call sees, once the inputs are valid.
        let newFirst = tokens > capacity - heldKeys ? discardPoint : firstHeldKey
        if tokens > capacity - (length - newFirst) {
            throw SpargeError.invalidShape(parameters.windowKeys > 0
                ? "the cache holds \(heldKeys) of \(capacity) keys, and discarding the key blocks that its sliding window of \(parameters.windowKeys) keys and calls of up to \(maxQueryLength) queries no longer see leaves no room for \(tokens) more: append fewer at a time, or make a cache of capacity at least \(parameters.windowKeys + maxQueryLength + parameters.blockK - 2 + tokens)"
                : "the cache holds \(heldKeys) of \(capacity) keys; \(tokens) more do not fit: make a larger cache")
        }
        let (kv, vv) = try CallValidation.cacheAppend(k: k, v: v, batch: batch, kvHeads: kvHeads, tokens: tokens, headDim: headDim,
                                                      policy: parameters.nonFinitePolicy, halfRounded: HalfRoundedInputs(parameters),
                                                      keyMeans: meanIsSet ? UnsafePointer(storage.ops.kMean.pointer) : nil,
                                                      storedAs: elementType, temp: storage.temp.pointer)
        discardKeys(before: newFirst)
        let rows = heldKeys         // buffer rows in use: they start at the first held key
        let stored = buffers, row = storage.temp.pointer, kernels = SpargeCPU.activeKernels
        // Rows of the cache's own type go in as they are (under `.propagate` a 16-bit NaN is
        // narrowed again, so that every NaN is stored as the quiet NaN of its sign).
        let asIs = kv.type == elementType && vv.type == elementType
            && (elementType == .float32 || parameters.nonFinitePolicy == .reject)
        let keys = stored.keys.writable, values = stored.values.writable
        for b in 0..<batch {
            for h in 0..<kvHeads {
                let head = b * kvHeads + h
                for t in 0..<tokens {
                    if asIs {
                        keys.copyRow(0, head, rows + t, from: kv, b, h, t, count: headDim)
                        values.copyRow(0, head, rows + t, from: vv, b, h, t, count: headDim)
                        continue
                    }
                    kv.load(b, h, t, into: row, count: headDim, kernels: kernels)
                    keys.store(0, head, rows + t, from: row, count: headDim, kernels: kernels)
                    vv.load(b, h, t, into: row, count: headDim, kernels: kernels)
                    values.store(0, head, rows + t, from: row, count: headDim, kernels: kernels)
                }
            }
        }
        if parameters.nonFinitePolicy == .propagate {
            recordNonFiniteRows(first: rows, count: tokens, meanFromThese: parameters.smoothK && !meanIsSet)
        }
        buffers.guardAppendedRows(first: rows, count: tokens, capacity: capacity, headDim: headDim)
        let firstDirty = rows / parameters.blockK
        held.store(length + tokens, ordering: .releasing)
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: rows + tokens, headDim: headDim)
        SparsePipeline(shape: shape, parameters: parameters).prepareCachedKeys(buffers, firstDirty: firstDirty, setMean: !meanIsSet)
        if !meanIsSet { meanSourceLength = rows + tokens }   // nothing is discarded before the mean is set
        meanIsSet = true
    }

    /// Drops every key and value from token `newLength` on, as if they had never been appended:
    /// the rollback of speculative decoding (rejected draft tokens) or of a cut conversation.
    /// Complete key blocks are kept as they are and the new trailing partial block is prepared
    /// again (at most `blockK` rows), so the cost does not grow with the cache. Afterwards
    /// the cache answers as one that received the same appends up to `newLength`: the K mean
    /// stays fixed, except when the cut falls inside the append that set it (a prompt and its
    /// draft appended together), where the mean is taken again from the keys kept and every
    /// block is prepared again (O(`newLength`) that once); `truncate(to: 0)` empties the cache
    /// entirely and the next append sets the mean again. A mean given at creation never moves.
    /// Results of earlier calls no longer read their block maps from the cache
    /// (``SparseAttentionResult/blockMap`` is then nil).
    ///
    /// One thing keeps a trace of the dropped tokens: the overflow guard's running maxima of
    /// `|k|` and `|v|` (and V's unit) only grow, so that truncating stays O(`blockK`). They
    /// change a result only where scores or sums near fp32's range (`|q|·|k|·D` beyond 2^100 or
    /// `|v|·capacity` beyond 2^125), and then by a power-of-two change of unit. `truncate(to: 0)`
    /// resets them too: the cache is then as new.
    ///
    /// After a sliding-window cache discarded keys (``firstHeldKey`` above 0), a cut must leave
    /// every key a later call can see: `newLength` at least `firstHeldKey + W + maxQueryLength - 1`,
    /// and not inside the append that set the K mean (give ``init(batch:heads:kvHeads:headDim:capacity:maxQueryLength:parameters:keyMean:elementType:threads:)``
    /// a `keyMean` to be free of that); `truncate(to: 0)` is always allowed.
    ///
    /// Throws ``SpargeError/invalidShape(_:)`` unless `0 <= newLength <= length` and the cut
    /// keeps what it must, and ``SpargeError/concurrentUse(_:)`` while another call runs.
    public func truncate(to newLength: Int) throws {
        try exclusive.run(Self.busyMessage) { try truncateAlone(to: newLength) }
    }

    private func truncateAlone(to newLength: Int) throws {
        let length = self.length
        guard newLength >= 0 && newLength <= length else {
            throw SpargeError.invalidShape("truncate(to: \(newLength)) on a cache holding \(length) keys; give 0...\(length)")
        }
        let first = firstHeldKey
        if newLength > 0 && first > 0 { try checkCutKeepsTheWindow(newLength, first: first, meanSourceLength: meanSourceLength) }
        calls &+= 1         // earlier results' maps describe keys that may be gone
        lastShape = nil
        held.store(newLength, ordering: .releasing)
        for head in firstNonFiniteKey.indices where firstNonFiniteKey[head] >= newLength {
            firstNonFiniteKey[head] = .max
            nonFiniteMean[head] = false
        }
        if newLength == 0 {
            discarded.store(0, ordering: .releasing)
            magnitudes.keys.pointer.update(repeating: 0, count: batch * kvHeads)
            magnitudes.values.pointer.update(repeating: 0, count: batch * kvHeads)
            storage.ops.valueUnits.pointer.update(repeating: 1, count: batch * kvHeads)
            if !meanFixedAtCreation { meanIsSet = false }
            meanSourceLength = 0
            return
        }
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: newLength - first, headDim: headDim)
        if newLength < meanSourceLength {   // (nothing discarded: checked above)
            // Cut into the append that set the mean: take it again from the keys kept, as a cache
            // whose first append held only those would have, and prepare every block again.
            meanSourceLength = newLength
            SparsePipeline(shape: shape, parameters: parameters).prepareCachedKeys(buffers, firstDirty: 0, setMean: true)
            if parameters.nonFinitePolicy == .propagate {
                for head in firstNonFiniteKey.indices { firstNonFiniteKey[head] = .max; nonFiniteMean[head] = false }
                recordNonFiniteRows(first: 0, count: newLength, meanFromThese: true)
            }
            return
        }
        SparsePipeline(shape: shape, parameters: parameters).prepareCachedKeys(buffers, firstDirty: (newLength - first) / parameters.blockK,
                                                                              setMean: false)
    }

    /// A new cache holding this one's keys and values, which then goes its own way: prefix
    /// caching (a prefilled system prompt copied for each request) or beam search. The copy
    /// has the same parameters and K mean (and truncates as this cache would) and answers
    /// every later call bit for bit as this cache would (up to the overflow guard's units,
    /// which differ only for values near fp32's limit; see ``truncate(to:)``); its capacity and
    /// query limit may differ (with a sliding window, a different capacity or query limit
    /// discards at other points, which moves a call's split across the cores: the outputs then
    /// agree to rounding). It costs one append of the ``heldKeys`` (their blocks are prepared
    /// again) and allocates the whole copy; it starts at the same ``firstHeldKey``.
    ///
    /// - Parameters:
    ///   - capacity: the copy's capacity, at least ``heldKeys``; nil: this cache's.
    ///   - maxQueryLength: the copy's most queries per call; nil: this cache's.
    ///   - threads: the copy's workers; nil: this cache's.
    /// - Throws: ``SpargeError/invalidShape(_:)`` for a capacity below ``heldKeys``, and
    ///   ``SpargeError/concurrentUse(_:)`` while another call runs on this cache.
    public func copy(capacity: Int? = nil, maxQueryLength: Int? = nil, threads: Int? = nil) throws -> SpargeKVCache {
        try exclusive.run(Self.busyMessage) {
            let length = heldKeys, first = firstHeldKey, cap = capacity ?? self.capacity
            if cap < length {
                throw SpargeError.invalidShape("a copy of capacity \(cap) cannot hold this cache's \(length) keys; give at least \(length)")
            }
            let queryLimit = maxQueryLength ?? self.maxQueryLength
            if first > 0 && queryLimit > self.maxQueryLength {
                throw SpargeError.invalidShape("this cache discarded the keys before \(first), which calls of more than its maxQueryLength \(self.maxQueryLength) queries could see; give the copy at most \(self.maxQueryLength)")
            }
            // A mean made from non-finite keys (NonFinitePolicy.propagate) is not a valid keyMean:
            // the copy then takes it from the same keys again, which gives the same NaN rows.
            let mean = Array(UnsafeBufferPointer(start: storage.ops.kMean.pointer, count: batch * kvHeads * headDim))
            let fixMean = parameters.smoothK && meanIsSet && mean.allSatisfy { $0.isFinite }
            let copy = try SpargeKVCache(batch: batch, heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: cap,
                                         maxQueryLength: queryLimit, parameters: parameters,
                                         keyMean: fixMean ? mean : nil, elementType: elementType, threads: threads ?? storage.workers)
            guard length > 0 else { return copy }
            // The stored rows: keys as appended, values in their heads' units (1 unless near fp32's limit).
            let kvRows = batch * kvHeads, slots = self.capacity
            let keyLayout = TensorLayout(batchStride: kvHeads * slots * headDim, headStride: slots * headDim, tokenStride: headDim)
            let valueLayout = TensorLayout(batchStride: kvHeads * slots * width, headStride: slots * width, tokenStride: width)
            let k = AttentionInput(base: UnsafeRawPointer(keys.pointer), count: kvRows * slots * headDim, type: elementType, layout: keyLayout)
            let units = UnsafeBufferPointer(start: storage.ops.valueUnits.pointer, count: kvRows)
            if units.allSatisfy({ $0 == 1 }) {
                let v = AttentionInput(base: UnsafeRawPointer(values.pointer), count: kvRows * slots * width, type: elementType,
                                       layout: valueLayout)
                try copy.append(k: k, v: v, tokens: length)
            } else {
                var unscaled = [Float](repeating: 0, count: kvRows * length * headDim)
                let stored = buffers.values
                for head in 0..<kvRows {
                    for t in 0..<length {
                        let row = stored.floats(0, head, t, count: headDim, temp: storage.temp.pointer)
                        for c in 0..<headDim { unscaled[(head * length + t) * headDim + c] = row[c] * units[head] }
                    }
                }
                try unscaled.withUnsafeBufferPointer { try copy.append(k: k, v: AttentionInput($0), tokens: length) }
            }
            // The copy's rows start at this cache's first held key.
            if first > 0 {
                copy.discarded.store(first, ordering: .releasing)
                copy.held.store(first + length, ordering: .releasing)
            }
            // Where the mean came from, so that a later truncation treats it as this cache would.
            copy.meanFixedAtCreation = meanFixedAtCreation
            copy.meanSourceLength = meanSourceLength
            return copy
        }
    }

    /// Attention of `queries` new tokens (`q` is `B,H,queries,D`) to the cached keys and values,
    /// into `output` (`B,H,queries,D`); with `lse` (`B*H*queries` floats) each query row's
    /// log-sum-exp too (natural log). The result is the one-shot call's type; its
    /// ``SparseAttentionResult/blockMap`` is read from the cache on demand, until its next call,
    /// and covers the held keys (its key block `j` is the sequence's block `firstHeldKey / blockK + j`).
    /// With `attentionMask` (``AttentionMask``, `B` or 1 x `queries` x ``heldKeys``, whose key `j`
    /// is the sequence's key `firstHeldKey + j`) only the pairs
    /// it allows are seen, besides the causal rule and the window: the tree of draft tokens of
    /// speculative decoding, for example.
    @discardableResult
    public func attend(q: AttentionInput, output: AttentionOutput, queries: Int,
                       lse: UnsafeMutableBufferPointer<Float>? = nil, attentionMask: AttentionMask? = nil) throws -> SparseAttentionResult {
        try exclusive.run(Self.busyMessage) {
            try attendAlone(q: q, output: output, queries: queries, lse: lse, attentionMask: attentionMask)
        }
    }

    /// Throws unless `mask` fits a call of `shape` on this cache (see ``attend(q:output:queries:lse:attentionMask:)``).
    private func validate(_ mask: AttentionMask?, for shape: AttentionShape) throws {
        guard let mask else { return }
        try mask.validate(for: shape)
    }

    private func attendAlone(q: AttentionInput, output: AttentionOutput, queries: Int,
                             lse: UnsafeMutableBufferPointer<Float>?, attentionMask: AttentionMask?) throws -> SparseAttentionResult {
        if length == 0 { throw SpargeError.invalidShape("the cache is empty: append keys and values first") }
        if queries < 1 || queries > maxQueryLength {
            throw SpargeError.invalidShape("\(queries) queries; this cache takes 1...\(maxQueryLength) per call (maxQueryLength)")
        }
        try checkQueriesSeeOnlyHeldKeys(queries)
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: heldKeys, headDim: headDim)
        var (qv, out) = try CallValidation.cacheQuery(q: q, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                                      halfRounded: HalfRoundedInputs(parameters), temp: storage.temp.pointer)
        out.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: parameters.gpuReproduction.pvNumerics)
        try validate(attentionMask, for: shape)
        calls &+= 1
        lastShape = shape
        let result = withPairMask(attentionMask) { pairMask in
            var pipeline = SparsePipeline(shape: shape, parameters: parameters)
            pipeline.pairMask = pairMask
            pipeline.discardedKeyBlocks = firstHeldKey / parameters.blockK
            return pipeline.attendCached(q: qv, output: out, cache: buffers, memory: self, call: calls)
        }
        withPairMask(attentionMask) { markNonFiniteRows(q: qv, output: out, shape: shape, pairMask: $0) }
        return result
    }

    /// Under ``NonFinitePolicy/propagate``: the first appended key of each (batch, kv head)
    /// whose key or value row holds a NaN or infinity, for ``markNonFiniteRows(q:output:shape:)``,
    /// and whether the K mean is taken from these keys with one of their key rows not finite (the
    /// mean then reaches every row of the sparse path, not of the exact one, so both are kept).
    private func recordNonFiniteRows(first: Int, count: Int, meanFromThese: Bool) {
        let stored = buffers, row = storage.temp.pointer
        for head in 0..<(batch * kvHeads) where firstNonFiniteKey[head] == Int.max {
            for t in first..<(first + count) {
                let keyBad = firstNonFinite(stored.keys.floats(0, head, t, count: headDim, temp: row), count: headDim) != nil
                if firstNonFiniteKey[head] == Int.max
                    && (keyBad || firstNonFinite(stored.values.floats(0, head, t, count: headDim, temp: row), count: headDim) != nil) {
                    firstNonFiniteKey[head] = t
                }
                if keyBad && meanFromThese { nonFiniteMean[head] = true }
                // Done at the first bad row, or, when these keys set the mean, at the first bad key row.
                if firstNonFiniteKey[head] != Int.max && (!meanFromThese || nonFiniteMean[head]) { break }
            }
        }
    }

    /// The rows of an attend call that exact attention makes NaN (``NonFinitePolicy/propagate``).
    /// With an attention mask each row's keys are tested, from the head's first non-finite key
    /// on (heads without one read no key).
    /// `sparse`: the call smooths as the parameters say (the exact path does not, so its mean matters nowhere).
    private func markNonFiniteRows(q: TensorView, output: MutableTensorView, shape: AttentionShape, pairMask: PairMaskView?,
                                   sparse: Bool = true) {
        firstNonFiniteKey.withUnsafeBufferPointer { bad in
            nonFiniteMean.withUnsafeBufferPointer { means in
                parameters.markNonFiniteRows(CallViews(q: q, k: buffers.keys, v: buffers.values, output: output), shape: shape,
                                             keyValid: nil, sparse: sparse, firstBadKeys: bad.baseAddress,
                                             nonFiniteMeans: means.baseAddress, pairMask: pairMask)
            }
        }
    }

    func maps(ofCall call: UInt64) -> (map: BlockMap, densityPerHead: [Double])? {
        try? exclusive.run(Self.busyMessage) {
            guard calls == call, let shape = lastShape else { return nil }
            return try storedMaps(storage, geometry: SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK),
                                  shape: shape)
        }
    }

    /// Exact fp32 attention of `queries` tokens to every visible cached key (the dense decode
    /// path, same causal convention): reads the cached keys and values row by row in place
    /// (16-bit ones widened as the tiles load them) with the run-time kernel set, each row once
    /// for the query heads of its kv group, splits the key range across the cores and merges by
    /// log-sum-exp. For layers kept dense, comparison and fallback. Non-finite
    /// queries follow the cache's `nonFinitePolicy`, as in ``attend(q:output:queries:lse:attentionMask:)``.
    /// With `lse` (`B*H*queries` floats) each query row's log-sum-exp too (natural log, of the
    /// scaled scores). With `attentionMask`, as in ``attend(q:output:queries:lse:attentionMask:)``.
    public func attendExact(q: AttentionInput, output: AttentionOutput, queries: Int, softmaxScale: Float? = nil,
                            lse: UnsafeMutableBufferPointer<Float>? = nil, attentionMask: AttentionMask? = nil) throws {
        try exclusive.run(Self.busyMessage) {
            try attendExactAlone(q: q, output: output, queries: queries, softmaxScale: softmaxScale, lse: lse,
                                 attentionMask: attentionMask)
        }
    }

    private func attendExactAlone(q: AttentionInput, output: AttentionOutput, queries: Int, softmaxScale: Float?,
                                  lse: UnsafeMutableBufferPointer<Float>?, attentionMask: AttentionMask?) throws {
        if length == 0 { throw SpargeError.invalidShape("the cache is empty: append keys and values first") }
        if queries < 1 { throw SpargeError.invalidShape("\(queries) queries; give at least one") }
        try checkQueriesSeeOnlyHeldKeys(queries)
        try SpargeParameters.validate(softmaxScale: softmaxScale)
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: heldKeys, headDim: headDim)
        try shape.validate()
        // The cache's policy, as `attend`: the cached keys and values were checked by append.
        var (qv, out) = try CallValidation.cacheQuery(q: q, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                                      temp: storage.temp.pointer)
        out.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: .fp32)
        try validate(attentionMask, for: shape)
        let factor = (softmaxScale ?? 1 / Float(headDim).squareRoot()) * log2e
        withPairMask(attentionMask) { pairMask in
            exactCachedAttention(q: qv, output: out, shape: shape, causal: parameters.causal, window: parameters.windowKeys,
                                 factor: factor, sinkLogits: parameters.sinkLogits, pairMask: pairMask, cache: buffers)
        }
        withPairMask(attentionMask) { markNonFiniteRows(q: qv, output: out, shape: shape, pairMask: $0, sparse: false) }
    }
}
