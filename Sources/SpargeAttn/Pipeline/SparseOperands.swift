import SpargeSIMD

// Everything stage 2 reads, prepared once per call from the caller's Q, K, V:
// K smoothing (section 1), the stage-1 block summaries (section 2, steps 1-2), the INT8
// blocks and their scales (section 3) in the packed layouts of the score micro-kernel, V
// padded to a multiple of 8 channels when its own rows are not, and with Q smoothing the
// query blocks' means and the fp32 smoothed keys their exact products need.

/// Prepared operands of one call. Buffers are indexed by (batch, head) or (batch, kv head).
final class SparseOperands: @unchecked Sendable {
    let g: SparseGeometry
    let kPacked: RawBuffer<Int16>     // [B*Hkv][nk][packedKeyBlock]
    let kScale: RawBuffer<Float>      // [B*Hkv][nk]
    let kPooled: RawBuffer<Float>     // [B*Hkv][nk][D]
    /// The same pooled keys channel by channel, [B*Hkv][D][``pooledChannelStride``], written
    /// with each key block: stage 1's scores read eight key blocks a vector (a KV cache keeps
    /// it across calls, so a decoding step does not transpose every block again).
    let kPooledByChannel: RawBuffer<Float>
    let kSim: RawBuffer<Float>        // [B*Hkv][nk]
    let kMean: RawBuffer<Float>       // [B*Hkv][D]
    let kChunkSums: RawBuffer<Float>  // [B*Hkv][ceil(Nk / 64)][D]: the K mean's fp32 partial sums
    let qPacked: RawBuffer<Int32>     // [B*H][packedQueryHead]
    let qScale: RawBuffer<Float>      // [B*H][nq]
    let qPooled: RawBuffer<Float>     // [B*H][nq][D]
    let qSim: RawBuffer<Float>        // [B*H][nq]
    let qInt8: RawBuffer<Int8>?       // [B*H][Nq][D] when captured
    let kInt8: RawBuffer<Int8>?       // [B*Hkv][Nk][D] when captured
    /// Q smoothing (``SpargeParameters/smoothQ``): each query block's mean (times the
    /// quantization premultiplier), [B*H][nq][D], and the smoothed keys in fp32, transposed
    /// per key block as the kernels' `rowTimesColumns` reads them, [B*Hkv][nk][D][columnsPad].
    let qMean: RawBuffer<Float>?
    let kSmoothedT: RawBuffer<Float>?
    /// V widened to fp32 with rows padded to `width` floats, when V cannot be read in place
    /// (fp16/bf16 elements, or D not a multiple of 8); allocated on first need, then reused.
    private(set) var vPadded: RawBuffer<Float>?
    /// What the kernel reads for V (set by ``bindValues(_:)``).
    private(set) var values: TensorView
    /// Per (batch, kv head): V is stored divided by it (``OverflowGuard``); read only when
    /// ``valuesScaled``.
    let valueUnits: RawBuffer<Float>
    /// Whether some head of V is stored scaled (rare: |V| near the fp32 limit).
    private(set) var valuesScaled = false
    /// Whether the last ``bindValues(_:numerics:fp8ValueRange:threads:)`` found V finite (its
    /// overflow pass checks it with fp32 P.V; other numerics report true, unchecked).
    private(set) var valuesFinite = true
    /// Fixed-point P.V (``SparseGeometry/fixedPointValues``): V per key block as integers.
    let fixedValues: FixedPointValueBlocks?

    /// Floats between two channels of ``kPooledByChannel`` (the key blocks a head can hold).
    var pooledChannelStride: Int { g.keyBlockStride }

    init(geometry g: SparseGeometry, captureInt8: Bool, smoothQ: Bool = false) {
        self.g = g
        let s = g.shape, d = s.headDim
        let kvHeads = s.batch * s.kvHeads, qHeads = s.batch * s.heads
        kPacked = RawBuffer(uninitializedCount: kvHeads * g.keyBlockStride * g.packedKeyBlock)  // packScoreKeys zero-fills
        kScale = RawBuffer(count: kvHeads * g.keyBlockStride, zero: 0)
        kPooled = RawBuffer(count: kvHeads * g.keyBlockStride * d, zero: 0)
        kPooledByChannel = RawBuffer(count: kvHeads * d * g.keyBlockStride, zero: 0)   // pooledChannelStride
        kSim = RawBuffer(count: kvHeads * g.keyBlockStride, zero: 0)
        kMean = RawBuffer(count: kvHeads * d, zero: 0)
        kChunkSums = RawBuffer(uninitializedCount: kvHeads * keyMeanChunks(s.keyLength) * d)
        valueUnits = RawBuffer(count: kvHeads, zero: 1)
        qPacked = RawBuffer(count: qHeads * g.packedQueryHead, zero: 0)  // rows packed per block; words a set never reads stay 0
        qScale = RawBuffer(count: qHeads * g.queryBlocks, zero: 0)
        qPooled = RawBuffer(count: qHeads * g.queryBlocks * d, zero: 0)
        qSim = RawBuffer(count: qHeads * g.queryBlocks, zero: 0)
        qInt8 = captureInt8 ? RawBuffer(uninitializedCount: qHeads * s.queryLength * d) : nil
        kInt8 = captureInt8 ? RawBuffer(uninitializedCount: kvHeads * s.keyLength * d) : nil
        qMean = smoothQ ? RawBuffer(count: qHeads * g.queryBlocks * d, zero: 0) : nil
        kSmoothedT = smoothQ ? RawBuffer(count: kvHeads * g.keyBlockStride * d * g.columnsPad, zero: 0) : nil
        values = TensorView(base: UnsafeRawPointer(kScale.pointer), batchStride: 0, headStride: 0, rowStride: 0)
        fixedValues = g.fixedPointValues ? FixedPointValueBlocks(geometry: g) : nil
    }

    /// Points the kernel at fp32 V rows of `width` floats kept elsewhere (a KV cache), stored
    /// divided by ``valueUnits`` when `scaled` (the cache keeps those units up to date).
    func bindPaddedValues(_ v: TensorView, scaled: Bool) { values = v; valuesScaled = scaled }

    /// Points the kernel at V (see `widenValues`): in place when it can, else widened into
    /// `vPadded`, allocated on first need and then reused.
    func bindValues(_ v: TensorView, numerics: PVNumerics = .fp32, fp8ValueRange: Float = 2.25, threads: Int = 1) {
        let s = g.shape
        if numerics == .fp32 && !valuesReadInPlace(v, headDim: s.headDim, width: g.width, numerics: numerics) {
            // Widened anyway (fp16 / bf16, or rows to pad): one pass over the caller's V, then the
            // units from the fp32 copy (in cache, no second conversion); widened again, divided by
            // them, only when some head needs a unit (rare).
            let buf = vPadded ?? RawBuffer<Float>(count: s.batch * s.kvHeads * s.keyLength * g.width, zero: 0)
            vPadded = buf
            values = widenValues(v, shape: s, width: g.width, into: buf.pointer, threads: threads)
            let scan = OverflowGuard.valueUnits(values, shape: s, into: valueUnits.pointer, threads: threads)
            valuesScaled = scan.scaled
            valuesFinite = scan.finite
            if scan.scaled {
                values = widenValues(v, shape: s, width: g.width, units: UnsafePointer(valueUnits.pointer), into: buf.pointer, threads: threads)
            }
            return
        }
        // fp32 and FP8 P.V keep large V from overflowing (the units are powers of two: FP8's
        // e4m3 values and the result's bits are those of the GPU's arithmetic, which scales by
        // the channel's scale only after P.V); the fp16 emulation's V is already in fp16's range.
        let scan = numerics != .fp16
            ? OverflowGuard.valueUnits(v, shape: s, into: valueUnits.pointer, largestP: numerics == .fp8 ? 0x1p9 : 1, threads: threads)
            : nil
        valuesScaled = scan?.scaled ?? false
        valuesFinite = scan?.finite ?? true
        if valuesReadInPlace(v, headDim: s.headDim, width: g.width, numerics: numerics) && !valuesScaled {
            values = v
        } else {
            let buf = vPadded ?? RawBuffer<Float>(count: s.batch * s.kvHeads * s.keyLength * g.width, zero: 0)
            vPadded = buf
            values = widenValues(v, shape: s, width: g.width, numerics: numerics, fp8ValueRange: fp8ValueRange,
                                 units: valuesScaled ? UnsafePointer(valueUnits.pointer) : nil, into: buf.pointer, threads: threads)
        }
    }

    /// Fixed-point P.V: the bound values of (b, kv head h) as integers per key block
    /// (``fixedValues``); after ``bindValues(_:numerics:fp8ValueRange:threads:)``.
    func prepareFixedPointValues(b: Int, h: Int, kernels: any TileKernels.Type) {
        guard let fixedValues else { return }
        let s = g.shape
        for j in 0..<g.keyBlocks {
            let start = j * g.blockK
            let block = fixedValues.mutableBlock((b * s.kvHeads + h) * g.keyBlockStride + j)
            // Rows of `g.width` floats are readable: widened rows are zero-padded to it, and V
            // is read in place only when its rows are exactly that long.
            kernels.quantizeValueBlock(values.row(b, h, start), stride: values.rowStride, keys: Swift.min(g.blockK, s.keyLength - start),
                                       columns: g.width, into: block.values, steps: block.steps)
        }
    }

    /// Section 1: the mean over the first `tokens` keys of (b, kv head h) into `kMean`
    /// (zero without smoothing).
    func computeKeyMean(b: Int, h: Int, k: TensorView, tokens n: Int, smoothK: Bool, gpuRounding: Bool,
                        geometry g: SparseGeometry, scratch w: WorkerScratch) {
        let d = g.shape.headDim
        let mean = kMean.pointer + (b * g.shape.kvHeads + h) * d
        guard smoothK else {
            mean.update(repeating: 0, count: d)
            return
        }
        keySmoothingMean(k, b: b, h: h, tokens: n, d: d, gpuRounding: gpuRounding, into: mean,
                         sums: w.sums.pointer, partial: w.vector.pointer, row: w.row.pointer, kernels: w.kernels)
    }

    /// Section 1 in two parallel steps (the same bits as ``computeKeyMean``, which is one work
    /// item per head: with fewer heads than cores that pass left cores idle): the fp32 sum of
    /// 64-row chunk `chunk` of (b, kv head h)'s keys ...
    func computeKeyChunkSum(b: Int, h: Int, chunk: Int, k: TensorView, tokens n: Int, scratch w: WorkerScratch) {
        let s = g.shape, d = s.headDim
        let partial = kChunkSums.pointer + ((b * s.kvHeads + h) * keyMeanChunks(s.keyLength) + chunk) * d
        keyChunkSum(k, b: b, h: h, chunk: chunk, tokens: n, d: d, into: partial, row: w.row.pointer, kernels: w.kernels)
    }

    /// ... then the mean over the first `tokens` keys of (b, kv head h) from its chunks' sums
    /// (repaired near the fp32 limit, ``repairKeyMean(_:k:b:h:tokens:d:row:)``).
    func finishKeyMean(b: Int, h: Int, k: TensorView, tokens n: Int, scratch w: WorkerScratch) {
        let s = g.shape, d = s.headDim, head = b * s.kvHeads + h
        keyMean(chunkSums: kChunkSums.pointer + head * keyMeanChunks(s.keyLength) * d, tokens: n, d: d,
                sums: w.sums.pointer, into: kMean.pointer + head * d)
        repairKeyMean(kMean.pointer + head * d, k: k, b: b, h: h, tokens: n, d: d, row: w.row.pointer)
    }

    /// Sections 1-3 for key blocks `blocks` of (b, kv head h): K' = K - kMean, summaries,
    /// INT8 and packing (a block past the end of the keys is partial).
    func prepareKeyBlocks(b: Int, h: Int, k: TensorView, blocks: Range<Int>, gpuRounding: Bool,
                          partialBlocks: PartialBlockRule, geometry g: SparseGeometry, scratch w: WorkerScratch) {
        let s = g.shape, d = s.headDim, n = s.keyLength
        let head = b * s.kvHeads + h
        let mean = kMean.pointer + head * d
        let block = w.block.pointer
        for j in blocks {
            let t0 = monotonicNanos()
            let start = j * g.blockK
            let rows = Swift.min(g.blockK, n - start)
            let t = head * g.keyBlockStride + j
            // fp32 keys: the mean subtracted on the pass that sums the block for stage 1.
            var summary: BlockSummary? = nil
            if k.isFloat32 && !gpuRounding {
                summary = summarizeCenteredBlockAndLargest(
                    k.row(b, h, start), rows: rows, stride: k.rowStride, d: d, mean: mean, into: block, blockSize: g.blockK,
                    partialBlocks: partialBlocks, pooled: kPooled.pointer + t * d, scratch: w.vector.pointer, kernels: w.kernels)
            } else {
                for r in 0..<rows {
                    let src = k.floats(b, h, start + r, count: d, temp: w.row.pointer, kernels: w.kernels)
                    smoothKeyRow(src, mean: mean, into: block + r * d, d: d, gpuRounding: gpuRounding)
                }
            }
            let q8 = kInt8.map { $0.pointer + (head * n + start) * d } ?? w.int8Block.pointer
            (kSim.pointer[t], kScale.pointer[t]) = summarizeAndQuantize(
                block, rows: rows, blockSize: g.blockK, premultiplier: 1, gpuRounding: gpuRounding,
                partialBlocks: partialBlocks, pooled: kPooled.pointer + t * d, int8: q8, since: t0, scratch: w, summary: summary)
            let pooled = kPooled.pointer + t * d, cs = pooledChannelStride
            let column = kPooledByChannel.pointer + head * d * cs + j
            for c in 0..<d { column[c * cs] = pooled[c] }
            w.kernels.packScoreKeys(q8, rows: rows, d: d, stride: d, columns: g.columnsPad, into: kPacked.pointer + t * g.packedKeyBlock)
            if let kSmoothedT { transposeBlock(block, rows: rows, d: d, columns: g.columnsPad, into: kSmoothedT.pointer + t * d * g.columnsPad) }
            w.quantizationNanos &+= monotonicNanos() &- w.lastMark
        }
    }

    /// Section 2 + 3 on the query side of (batch b, head h), query blocks `blocks`.
    func prepareQueries(b: Int, h: Int, blocks: Range<Int>, q: TensorView, premultiplier: Float, gpuRounding: Bool,
                        partialBlocks: PartialBlockRule, geometry g: SparseGeometry, scratch w: WorkerScratch) {
        let s = g.shape, d = s.headDim, n = s.queryLength
        let head = b * s.heads + h
        // Contiguous fp32 rows that nothing rewrites are read where they are, not copied.
        let inPlace = q.isFloat32 && q.rowStride == d && !gpuRounding && qMean == nil
        for i in blocks {
            let t0 = monotonicNanos()
            let start = i * g.blockQ
            let rows = Swift.min(g.blockQ, n - start)
            var block = w.block.pointer
            if inPlace {
                block = UnsafeMutablePointer(mutating: q.row(b, h, start))  // only read: no centring here
            } else {
                for r in 0..<rows {
                    let dst = block + r * d
                    q.load(b, h, start + r, into: dst, count: d)
                    if gpuRounding {
                        for c in 0..<d { dst[c] = roundToHalf(dst[c]) }
                    }
                }
            }
            let t = head * g.queryBlocks + i
            let q8 = qInt8.map { $0.pointer + (head * n + start) * d } ?? w.int8Block.pointer
            (qSim.pointer[t], qScale.pointer[t]) = summarizeAndQuantize(
                block, rows: rows, blockSize: g.blockQ, premultiplier: premultiplier, gpuRounding: gpuRounding,
                partialBlocks: partialBlocks, pooled: qPooled.pointer + t * d, int8: q8, since: t0, scratch: w,
                center: qMean.map { $0.pointer + t * d })
            w.kernels.packScoreQueries(q8, rows: rows, d: d, rowStride: g.pairs, rowsPad: g.rowsPad,
                                       into: qPacked.pointer + head * g.packedQueryHead + i * g.rowsPad * g.pairs)
            w.quantizationNanos &+= monotonicNanos() &- w.lastMark
        }
    }

    /// Stage-1 summary (section 2, steps 1-2) then INT8 quantization (section 3) of one block
    /// held in `block`; accounts the first to stage 1 and leaves `scratch.lastMark` at the
    /// start of quantization. A NaN or infinity in the block makes its mean, `pooled`, not
    /// finite (a sum of finite values overflows only beyond about 1e36): then
    /// `scratch.sawNonFinite` is set, for the pipeline's non-finite check. With `center` (Q
    /// smoothing) the rows' mean is subtracted after the summary and written there times
    /// `premultiplier`. `summary`: the block's, when the pass that wrote it found it already.
    /// Returns (self-similarity, scale).
    private func summarizeAndQuantize(
        _ block: UnsafeMutablePointer<Float>, rows: Int, blockSize: Int, premultiplier: Float, gpuRounding: Bool,
        partialBlocks: PartialBlockRule, pooled: UnsafeMutablePointer<Float>, int8: UnsafeMutablePointer<Int8>,
        since start: UInt64, scratch w: WorkerScratch, center: UnsafeMutablePointer<Float>? = nil, summary: BlockSummary? = nil
    ) -> (Float, Float) {
        let d = w.headDim
        let (sim, largest) = summary ?? summarizeBlockAndLargest(
            block, rows: rows, blockSize: blockSize, d: d, gpuRounding: gpuRounding, partialBlocks: partialBlocks,
            pooled: pooled, scratch: w.vector.pointer, kernels: w.kernels)
        if firstNonFinite(pooled, count: d) != nil { w.sawNonFinite = true }
        w.lastMark = monotonicNanos()
        w.stage1Nanos &+= w.lastMark &- start
        if let center { centerRows(block, rows: rows, d: d, premultiplier: premultiplier, mean: center, sums: w.sums.pointer) }
        // Triton's Q premultiplier (s * log2(e)) on a block near the fp32 limit: quantized by
        // premultiplier / 2^e (the same INT8 values: powers of two scale exactly, and the
        // scale's 1e-7 is far below its ulp there), the scale multiplied back.
        let (factor, back) = premultiplier == 1 ? (premultiplier, 1) : OverflowGuard.split(
            factor: premultiplier, magnitude: largest ?? OverflowGuard.maxMagnitude(block, count: rows * d), limit: 0x1p120)
        // The summary's largest |x| is that of the rows quantized unless centring changed them.
        let scale = if let largest, center == nil {
            w.kernels.quantizeBlock(block, count: rows * d, premultiplier: factor, largest: largest, into: int8)
        } else {
            quantizeBlock(block, rows: rows, d: d, premultiplier: factor, into: int8, kernels: w.kernels)
        }
        return (sim, back == 1 ? scale : scale * back)
    }
}

/// Fixed-point P.V's values: per key block the 12-bit (and a sign) integers in the pair-major
/// layout, [B*Hkv][nk][packedValueBlock], and the per-channel steps, [B*Hkv][nk][width].
struct FixedPointValueBlocks {
    private let levels: RawBuffer<Int16>
    private let steps: RawBuffer<Float>
    private let levelsPerBlock: Int, stepsPerBlock: Int

    init(geometry g: SparseGeometry) {
        let blocks = g.shape.batch * g.shape.kvHeads * g.keyBlockStride
        levelsPerBlock = g.packedValueBlock
        stepsPerBlock = g.width
        levels = RawBuffer(count: blocks * levelsPerBlock, zero: 0)
        steps = RawBuffer(count: blocks * stepsPerBlock, zero: 0)
    }

    /// Block `t` (`kvHead * keyBlockStride + j`), for writing.
    func mutableBlock(_ t: Int) -> (values: UnsafeMutablePointer<Int16>, steps: UnsafeMutablePointer<Float>) {
        (levels.pointer + t * levelsPerBlock, steps.pointer + t * stepsPerBlock)
    }

    /// Block `t` as `OnlineSoftmax.absorb` takes it.
    func block(_ t: Int) -> (values: UnsafePointer<Int16>, steps: UnsafePointer<Float>) {
        let b = mutableBlock(t)
        return (UnsafePointer(b.values), UnsafePointer(b.steps))
    }
}

/// Q smoothing: subtracts the mean of `rows` rows (accumulated in Double, so the same on
/// every kernel level) from each of them and writes it, times `premultiplier`, to `mean`.
func centerRows(_ block: UnsafeMutablePointer<Float>, rows: Int, d: Int, premultiplier: Float,
                mean: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Double>) {
    sums.update(repeating: 0, count: d)
    for r in 0..<rows {
        for c in 0..<d { sums[c] += Double(block[r * d + c]) }
    }
    for c in 0..<d {
        // Near the fp32 limit `q - mean` (or the mean times the premultiplier) could overflow:
        // that channel is not centred, as with K smoothing.
        var largest: Float = 0
        for r in 0..<rows { largest = Swift.max(largest, Swift.abs(block[r * d + c])) }
        var m = OverflowGuard.centringMean(Float(sums[c] / Double(Swift.max(rows, 1))), largest: largest)
        if !(m * premultiplier).isFinite { m = 0 }
        for r in 0..<rows { block[r * d + c] -= m }
        mean[c] = m * premultiplier
    }
}

/// Writes `rows x d` values (row stride `d`) transposed to `d x columns` (row stride
/// `columns`), zeros in the columns past `rows`.
func transposeBlock(_ block: UnsafePointer<Float>, rows: Int, d: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    for c in 0..<d {
        let dst = out + c * columns
        for r in 0..<rows { dst[r] = block[r * d + c] }
        for r in rows..<columns { dst[r] = 0 }
    }
}
