import SpargeSIMD

/// A growing key/value cache for decoding, with the key side of SpargeAttn kept up to date
/// block by block: INT8 blocks and scales, pooled means and self-similarities are computed once
/// per block of `blockK` keys when the block completes (the trailing partial block is redone
/// on each append, at most `blockK` rows), so a decoding step costs O(new keys) plus the sparse
/// attention itself, not O(all keys).
///
/// K smoothing subtracts a mean of K. A cache cannot re-quantize every block whenever the mean
/// moves, so it fixes the mean once: the mean of the keys of its first ``append(k:v:tokens:)``
/// (the prefill), or the mean given to ``init(batch:heads:kvHeads:headDim:capacity:maxQueryLength:parameters:keyMean:threads:)``.
/// Softmax is invariant to the subtracted vector, so any fixed mean is exact attention in real
/// arithmetic; only the INT8 rounding of K depends on it. A recomputation from scratch with the
/// same mean (a new cache given ``keyMean``, filled in one append) gives bit-identical outputs.
///
/// Queries attend causally by default as the last tokens of the sequence (query `t` of `Nq`
/// sees keys up to `t + length - Nq`); with `parameters.causal == false` every query sees
/// every key. A query shorter than one block is its own, measured, stage-1 block.
/// Not for concurrent use.
public final class SpargeKVCache: @unchecked Sendable {
    public let batch: Int
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Keys the cache can hold.
    public let capacity: Int
    /// Most query tokens of one ``attend(q:output:queries:)`` call.
    public let maxQueryLength: Int
    public let parameters: SpargeParameters
    /// Keys held.
    public private(set) var length = 0

    let storage: SparseStorage
    let keys: RawBuffer<Float>          // [B*Hkv][capacity][D]
    let values: RawBuffer<Float>        // [B*Hkv][capacity][width]
    let capacityBlocks: Int
    let width: Int
    private var meanIsSet: Bool

    /// Creates an empty cache.
    /// - Parameters:
    ///   - batch: the batch size `B`.
    ///   - heads: the query heads `H`.
    ///   - kvHeads: the key/value heads (dividing `heads`); `nil` means `heads`.
    ///   - headDim: the head dimension `D`.
    ///   - capacity: the most keys the cache can hold.
    ///   - maxQueryLength: the most query tokens of one call.
    ///   - parameters: the hyper-parameters and options.
    ///   - keyMean: a fixed K mean (`batch * kvHeads * headDim` values) instead of the
    ///     mean of the first append; ignored without `parameters.smoothK`.
    ///   - threads: worker count; `nil` uses every CPU this process may run on.
    public init(batch: Int = 1, heads: Int, kvHeads: Int? = nil, headDim: Int, capacity: Int, maxQueryLength: Int = 16,
                parameters: SpargeParameters = .recommended, keyMean: [Float]? = nil, threads: Int? = nil) throws {
        let kvh = kvHeads ?? heads
        let maxShape = AttentionShape(batch: batch, heads: heads, kvHeads: kvh, queryLength: Swift.max(1, maxQueryLength),
                                      keyLength: Swift.max(1, capacity), headDim: headDim)
        try maxShape.validate()
        try parameters.validate(for: maxShape)
        if parameters.pvNumerics != .fp32 {
            throw SpargeError.unsupported("pvNumerics \(parameters.pvNumerics) emulates a one-shot GPU call (its FP8 V scale spans all keys); the KV cache computes P.V in fp32")
        }
        if let m = keyMean, m.count != batch * kvh * headDim {
            throw SpargeError.invalidParameter("keyMean has \(m.count) values; give batch * kvHeads * headDim = \(batch * kvh * headDim)")
        }
        self.batch = batch
        self.heads = heads
        self.kvHeads = kvh
        self.headDim = headDim
        self.capacity = capacity
        self.maxQueryLength = maxQueryLength
        self.parameters = parameters
        let g = SparseGeometry(shape: maxShape, blockQ: parameters.blockQ, blockK: parameters.blockK)
        capacityBlocks = g.keyBlocks
        width = g.width
        // Split-K can need the most chunks when a call has a single query block.
        let chunkCapacity = splitFactor(items: batch * heads, keyBlocks: capacityBlocks)
        storage = SparseStorage(shape: maxShape, parameters: parameters, threads: threads ?? defaultThreadCount(),
                                chunkCapacity: chunkCapacity)
        keys = RawBuffer(count: batch * kvh * capacity * headDim, zero: 0)
        values = RawBuffer(count: batch * kvh * capacity * g.width, zero: 0)
        meanIsSet = false
        if let m = keyMean, parameters.smoothK {
            storage.ops.kMean.pointer.update(from: m, count: m.count)
            meanIsSet = true
        }
        if !parameters.smoothK {
            storage.ops.kMean.pointer.update(repeating: 0, count: batch * kvh * headDim)
            meanIsSet = true
        }
    }

    /// The K mean used for smoothing (`batch * kvHeads * headDim`), once fixed.
    public var keyMean: [Float] {
        Array(UnsafeBufferPointer(start: storage.ops.kMean.pointer, count: batch * kvHeads * headDim))
    }

    private var keyView: TensorView {
        TensorView(base: UnsafeRawPointer(keys.pointer), batchStride: kvHeads * capacity * headDim,
                   headStride: capacity * headDim, rowStride: headDim)
    }

    /// Appends `tokens` keys and values (`B,Hkv,tokens,D` tensors, any layout and element type)
    /// and updates the key side of the blocks they touch.
    public func append(k: AttentionInput, v: AttentionInput, tokens: Int) throws {
        if tokens < 1 { throw SpargeError.invalidShape("append needs at least one token, got \(tokens)") }
        if length + tokens > capacity {
            throw SpargeError.invalidShape("the cache holds \(length) of \(capacity) keys; \(tokens) more do not fit: make a larger cache")
        }
        let part = AttentionShape(batch: batch, heads: kvHeads, queryLength: tokens, headDim: headDim)
        let kv = try k.view(name: "k", heads: kvHeads, tokens: tokens, shape: part)
        let vv = try v.view(name: "v", heads: kvHeads, tokens: tokens, shape: part)
        if parameters.nonFinitePolicy == .reject {
            for (name, view) in [("k", kv), ("v", vv)] {
                if let (i, x) = firstNonFiniteElement(view, batch: batch, heads: kvHeads, tokens: tokens, d: headDim, temp: storage.temp.pointer) {
                    throw SpargeError.nonFiniteInput(name: name, index: i, value: x)
                }
            }
        }
        for b in 0..<batch {
            for h in 0..<kvHeads {
                let head = b * kvHeads + h
                for t in 0..<tokens {
                    kv.load(b, h, t, into: keys.pointer + (head * capacity + length + t) * headDim, count: headDim)
                    vv.load(b, h, t, into: values.pointer + (head * capacity + length + t) * width, count: headDim)
                }
            }
        }
        let firstDirty = length / parameters.blockK
        length += tokens
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: length, headDim: headDim)
        let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK, keyBlockStride: capacityBlocks)
        let ops = storage.ops, scratch = storage.scratch, p = parameters, view = keyView
        let setMean = !meanIsSet
        parallelFor(items: batch * kvHeads, threads: storage.workers) { worker, item in
            let b = item / self.kvHeads, h = item % self.kvHeads
            if setMean {
                ops.computeKeyMean(b: b, h: h, k: view, tokens: shape.keyLength, smoothK: true, gpuRounding: p.gpuRounding,
                                   geometry: g, scratch: scratch[worker])
            }
            ops.prepareKeyBlocks(b: b, h: h, k: view, blocks: firstDirty..<g.keyBlocks, gpuRounding: p.gpuRounding,
                                 partialBlocks: p.partialBlocks, geometry: g, scratch: scratch[worker])
        }
        meanIsSet = true
    }

    /// Attention of `queries` new tokens (`q` is `B,H,queries,D`) to the cached keys and values,
    /// into `output` (`B,H,queries,D`).
    @discardableResult
    public func attend(q: AttentionInput, output: AttentionOutput, queries: Int) throws -> SparseCallSummary {
        if length == 0 { throw SpargeError.invalidShape("the cache is empty: append keys and values first") }
        if queries < 1 || queries > maxQueryLength {
            throw SpargeError.invalidShape("\(queries) queries; this cache takes 1...\(maxQueryLength) per call (maxQueryLength)")
        }
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: length, headDim: headDim)
        let qv = try q.view(name: "q", heads: heads, tokens: queries, shape: shape)
        let out = try output.view(shape: shape)
        if parameters.nonFinitePolicy == .reject,
           let (i, x) = firstNonFiniteElement(qv, batch: batch, heads: heads, tokens: queries, d: headDim, temp: storage.temp.pointer) {
            throw SpargeError.nonFiniteInput(name: "q", index: i, value: x)
        }
        let g = SparseGeometry(shape: shape, blockQ: parameters.blockQ, blockK: parameters.blockK, keyBlockStride: capacityBlocks)
        storage.ops.bindPaddedValues(TensorView(base: UnsafeRawPointer(values.pointer), batchStride: kvHeads * capacity * width,
                                                headStride: capacity * width, rowStride: width))
        let pipeline = SparsePipeline(shape: shape, parameters: parameters)
        let outcome = pipeline.run(q: qv, k: keyView, v: keyView, output: out, given: nil, storage: storage,
                                   geometry: g, keysPrepared: true)
        let (density, allowed) = pipeline.densities(map: storage.map.pointer, g: g)
        return SparseCallSummary(density: density, allowedDensity: allowed, visitedTiles: outcome.visited,
                                 skippedTiles: outcome.skipped, timings: outcome.timings)
    }

    /// Exact fp32 attention of `queries` tokens to every visible cached key (the dense decode
    /// path, same causal convention): reads the cached fp32 keys row by row, splits the key
    /// range across the cores and merges by log-sum-exp. For comparison and fallback.
    public func attendExact(q: AttentionInput, output: AttentionOutput, queries: Int, softmaxScale: Float? = nil) throws {
        if length == 0 { throw SpargeError.invalidShape("the cache is empty: append keys and values first") }
        if queries < 1 { throw SpargeError.invalidShape("\(queries) queries; give at least one") }
        let shape = AttentionShape(batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: length, headDim: headDim)
        let qv = try q.view(name: "q", heads: heads, tokens: queries, shape: shape)
        let out = try output.view(shape: shape)
        let chunks = (length + decodeChunkKeys - 1) / decodeChunkKeys
        let group = heads / kvHeads, groupRows = group * queries
        let rows = batch * heads * queries
        let partSize = 2 + width
        // Per row: fp32 query, visible key count, and one state per chunk. Row order within a
        // kv group is (head in group, query), so a group's rows are consecutive.
        let qRows = RawBuffer<Float>(uninitializedCount: rows * headDim)
        let visible = RawBuffer<Int>(uninitializedCount: rows)
        let parts = RawBuffer<Float>(uninitializedCount: rows * chunks * partSize)
        let factor = (softmaxScale ?? 1 / Float(headDim).squareRoot()) * log2e
        let kView = keyView
        let vView = TensorView(base: UnsafeRawPointer(values.pointer), batchStride: kvHeads * capacity * width,
                               headStride: capacity * width, rowStride: width)
        let d = headDim, w = width, n = length, causal = parameters.causal
        for b in 0..<batch {
            for h in 0..<heads {
                for t in 0..<queries {
                    let row = ((b * heads + h) * queries + t)
                    qv.load(b, h, t, into: qRows.pointer + row * d, count: d)
                    visible.pointer[row] = causal ? Swift.min(n, t + n - queries + 1) : n
                }
            }
        }
        let groupScores = RawBuffer<Float>(uninitializedCount: storage.workers * groupRows * decodeTileKeys)
        let groupParts = RawBuffer<Float>(uninitializedCount: storage.workers * groupRows * partSize)
        parallelFor(items: batch * kvHeads * chunks, threads: storage.workers) { worker, item in
            let bk = item / chunks, chunk = item % chunks
            let b = bk / self.kvHeads, kvh = bk % self.kvHeads
            let first = (b * self.heads + kvh * group) * queries   // the group's first row
            let rowsOfGroup = DecodeRows(queries: qRows.pointer + first * d, visible: visible.pointer + first, rows: groupRows)
            let local = groupParts.pointer + worker * groupRows * partSize
            decodeChunk(rowsOfGroup, d: d, width: w, keys: chunk * decodeChunkKeys..<Swift.min(n, (chunk + 1) * decodeChunkKeys),
                        k: kView, v: vView, b: b, kvh: kvh, factor: factor,
                        scores: groupScores.pointer + worker * groupRows * decodeTileKeys, parts: local)
            for r in 0..<groupRows {
                (parts.pointer + ((first + r) * chunks + chunk) * partSize).update(from: local + r * partSize, count: partSize)
            }
        }
        let scratch = storage.scratch
        parallelFor(items: rows, threads: storage.workers) { worker, row in
            let t = row % queries, bh = row / queries
            let temp = scratch[worker].row.pointer
            temp.update(repeating: 0, count: d)
            var m = -Float.infinity
            for c in 0..<chunks { m = Swift.max(m, parts.pointer[(row * chunks + c) * partSize]) }
            if m != -.infinity {
                var l: Float = 0
                for c in 0..<chunks {
                    let part = parts.pointer + (row * chunks + c) * partSize
                    if part[0] == -.infinity { continue }
                    let f = exp2Scalar(part[0] - m)
                    l += part[1] * f
                    for x in 0..<d { temp[x] += part[2 + x] * f }
                }
                for x in 0..<d { temp[x] /= l }
            }
            out.store(bh / self.heads, bh % self.heads, t, from: temp, count: d)
        }
    }
}
