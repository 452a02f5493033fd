import SpargeSIMD

// Everything stage 2 reads, prepared once per call from the caller's Q, K, V:
// K smoothing (section 1), the stage-1 block summaries (section 2, steps 1-2), the INT8
// blocks and their scales (section 3) in the packed layouts of the score micro-kernel, and V
// padded to a multiple of 8 channels when its own rows are not.

/// Geometry shared by the preparation and the kernel.
struct SparseGeometry: Sendable {
    let shape: AttentionShape
    let blockQ: Int, blockK: Int
    let queryBlocks: Int, keyBlocks: Int
    let pairs: Int              // int16 pairs per row
    let rowsPad: Int            // blockQ rounded up to 4 (kernel row tile)
    let columnsPad: Int         // blockK rounded up to 16 (kernel column tile)
    let width: Int              // head dim rounded up to 8
    /// Key blocks between consecutive kv heads in the key-side buffers: `keyBlocks`, or a KV
    /// cache's capacity (its buffers keep their layout while it grows).
    let keyBlockStride: Int

    init(shape: AttentionShape, blockQ: Int, blockK: Int, keyBlockStride: Int? = nil) {
        self.shape = shape
        self.blockQ = blockQ
        self.blockK = blockK
        queryBlocks = blockCount(shape.queryLength, blockQ)
        keyBlocks = blockCount(shape.keyLength, blockK)
        pairs = pairCount(shape.headDim)
        rowsPad = roundUp(blockQ, 4)
        columnsPad = roundUp(blockK, 16)
        width = roundUp(shape.headDim, 8)
        self.keyBlockStride = keyBlockStride ?? keyBlocks
    }

    var packedKeyBlock: Int { pairs * columnsPad * 2 }          // Int16 per packed key block
    var packedQueryHead: Int { queryBlocks * rowsPad * pairs }   // Int32 per query head
}

/// Prepared operands of one call. Buffers are indexed by (batch, head) or (batch, kv head).
final class SparseOperands: @unchecked Sendable {
    let g: SparseGeometry
    let kPacked: RawBuffer<Int16>     // [B*Hkv][nk][packedKeyBlock]
    let kScale: RawBuffer<Float>      // [B*Hkv][nk]
    let kPooled: RawBuffer<Float>     // [B*Hkv][nk][D]
    let kSim: RawBuffer<Float>        // [B*Hkv][nk]
    let kMean: RawBuffer<Float>       // [B*Hkv][D]
    let qPacked: RawBuffer<Int32>     // [B*H][packedQueryHead]
    let qScale: RawBuffer<Float>      // [B*H][nq]
    let qPooled: RawBuffer<Float>     // [B*H][nq][D]
    let qSim: RawBuffer<Float>        // [B*H][nq]
    let qInt8: RawBuffer<Int8>?       // [B*H][Nq][D] when captured
    let kInt8: RawBuffer<Int8>?       // [B*Hkv][Nk][D] when captured
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


    init(geometry g: SparseGeometry, captureInt8: Bool) {
        self.g = g
        let s = g.shape, d = s.headDim
        let kvHeads = s.batch * s.kvHeads, qHeads = s.batch * s.heads
        kPacked = RawBuffer(uninitializedCount: kvHeads * g.keyBlockStride * g.packedKeyBlock)  // packColumnPairs zero-fills
        kScale = RawBuffer(count: kvHeads * g.keyBlockStride, zero: 0)
        kPooled = RawBuffer(count: kvHeads * g.keyBlockStride * d, zero: 0)
        kSim = RawBuffer(count: kvHeads * g.keyBlockStride, zero: 0)
        kMean = RawBuffer(count: kvHeads * d, zero: 0)
        valueUnits = RawBuffer(count: kvHeads, zero: 1)
        qPacked = RawBuffer(uninitializedCount: qHeads * g.packedQueryHead)  // zero-filled per block
        qScale = RawBuffer(count: qHeads * g.queryBlocks, zero: 0)
        qPooled = RawBuffer(count: qHeads * g.queryBlocks * d, zero: 0)
        qSim = RawBuffer(count: qHeads * g.queryBlocks, zero: 0)
        qInt8 = captureInt8 ? RawBuffer(uninitializedCount: qHeads * s.queryLength * d) : nil
        kInt8 = captureInt8 ? RawBuffer(uninitializedCount: kvHeads * s.keyLength * d) : nil
        values = TensorView(base: UnsafeRawPointer(kScale.pointer), batchStride: 0, headStride: 0, rowStride: 0)
    }

    /// Points the kernel at fp32 V rows of `width` floats kept elsewhere (a KV cache).
    func bindPaddedValues(_ v: TensorView) { values = v; valuesScaled = false }

    /// Points the kernel at V: in place when it is fp32 with D a multiple of 8 and the P.V
    /// numerics are fp32, else converted into `vPadded` (serially: O(N*D), small next to the
    /// attention): widened and padded, rounded to fp16 for ``PVNumerics/fp16``, or quantized to
    /// FP8 e4m3 per (batch, kv head, channel) (`v_scale = max|V| / fp8ValueRange`) and stored
    /// dequantized (`V8 * v_scale`) for
    /// ``PVNumerics/fp8``.
    func bindValues(_ v: TensorView, numerics: PVNumerics = .fp32, fp8ValueRange: Float = 2.25) {
        let s = g.shape, d = s.headDim
        // fp32 P.V keeps large V from overflowing; the fp16 / FP8 emulations round V as the GPU does.
        valuesScaled = numerics == .fp32 && OverflowGuard.valueUnits(v, shape: s, into: valueUnits.pointer)
        if v.isFloat32 && d % 8 == 0 && numerics == .fp32 && !valuesScaled {
            values = v
            return
        }
        let buf = vPadded ?? RawBuffer<Float>(count: s.batch * s.kvHeads * s.keyLength * g.width, zero: 0)
        vPadded = buf
        for b in 0..<s.batch {
            for h in 0..<s.kvHeads {
                let head = buf.pointer + (b * s.kvHeads + h) * s.keyLength * g.width
                for n in 0..<s.keyLength { v.load(b, h, n, into: head + n * g.width, count: d) }
                if valuesScaled, valueUnits.pointer[b * s.kvHeads + h] != 1 {
                    let unit = valueUnits.pointer[b * s.kvHeads + h]
                    for n in 0..<s.keyLength { for c in 0..<d { head[n * g.width + c] /= unit } }
                }
                switch numerics {
                case .fp32:
                    break
                case .fp16:
                    for n in 0..<s.keyLength { for c in 0..<d { head[n * g.width + c] = roundToHalf(head[n * g.width + c]) } }
                case .fp8:
                    for c in 0..<d {
                        var amax: Float = 0
                        for n in 0..<s.keyLength { amax = Swift.max(amax, Swift.abs(head[n * g.width + c])) }
                        let scale = amax / fp8ValueRange
                        guard scale > 0 else { continue }
                        for n in 0..<s.keyLength { head[n * g.width + c] = roundToE4M3(head[n * g.width + c] / scale) * scale }
                    }
                }
            }
        }
        values = TensorView(base: UnsafeRawPointer(buf.pointer), batchStride: s.kvHeads * s.keyLength * g.width,
                            headStride: s.keyLength * g.width, rowStride: g.width)
    }

    func prepareKeys(b: Int, h: Int, k: TensorView, smoothK: Bool, gpuRounding: Bool,
                     partialBlocks: PartialBlockRule, geometry g: SparseGeometry, scratch w: WorkerScratch) {
        computeKeyMean(b: b, h: h, k: k, tokens: g.shape.keyLength, smoothK: smoothK, gpuRounding: gpuRounding,
                       geometry: g, scratch: w)
        prepareKeyBlocks(b: b, h: h, k: k, blocks: 0..<g.keyBlocks, gpuRounding: gpuRounding,
                         partialBlocks: partialBlocks, geometry: g, scratch: w)
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
        // Mean over tokens, accumulated in double (the GPU rounds the fp32 mean of fp16
        // values to fp16; accumulation order then does not matter).
        let sums = w.sums.pointer
        sums.update(repeating: 0, count: d)
        if gpuRounding {
            for t in 0..<n {
                let row = k.floats(b, h, t, count: d, temp: w.row.pointer)
                for c in 0..<d { sums[c] += Double(roundToHalf(row[c])) }
            }
        } else {
            // fp32 partial sums of 64 rows (vectorised), flushed into the double sums.
            let partial = w.vector.pointer
            var t = 0
            while t < n {
                let end = Swift.min(n, t + 64)
                partial.update(repeating: 0, count: d)
                for u in t..<end { addRow(k.floats(b, h, u, count: d, temp: w.row.pointer), into: partial, count: d) }
                for c in 0..<d { sums[c] += Double(partial[c]) }
                t = end
            }
        }
        for c in 0..<d {
            let m = Float(sums[c] / Double(n))
            mean[c] = gpuRounding ? roundToHalf(m) : m
        }
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
            for r in 0..<rows {
                let src = k.floats(b, h, start + r, count: d, temp: w.row.pointer)
                let dst = block + r * d
                if gpuRounding {
                    for c in 0..<d { dst[c] = roundToHalf(roundToHalf(src[c]) - mean[c]) }
                } else {
                    subtractRow(src, mean, into: dst, count: d)
                }
            }
            let t = head * g.keyBlockStride + j
            let q8 = kInt8.map { $0.pointer + (head * n + start) * d } ?? w.int8Block.pointer
            (kSim.pointer[t], kScale.pointer[t]) = summarizeAndQuantize(
                block, rows: rows, blockSize: g.blockK, premultiplier: 1, gpuRounding: gpuRounding,
                partialBlocks: partialBlocks, pooled: kPooled.pointer + t * d, int8: q8, since: t0, scratch: w)
            packColumnPairs(q8, rows: rows, d: d, stride: d, columns: g.columnsPad,
                            into: kPacked.pointer + t * g.packedKeyBlock)
            w.quantizationNanos &+= monotonicNanos() &- w.lastMark
        }
    }

    /// Section 2 + 3 on the query side of (batch b, head h).
    func prepareQueries(b: Int, h: Int, q: TensorView, premultiplier: Float, gpuRounding: Bool,
                        partialBlocks: PartialBlockRule, geometry g: SparseGeometry, scratch w: WorkerScratch) {
        let s = g.shape, d = s.headDim, n = s.queryLength
        let head = b * s.heads + h
        let block = w.block.pointer
        for i in 0..<g.queryBlocks {
            let t0 = monotonicNanos()
            let start = i * g.blockQ
            let rows = Swift.min(g.blockQ, n - start)
            for r in 0..<rows {
                let dst = block + r * d
                q.load(b, h, start + r, into: dst, count: d)
                if gpuRounding {
                    for c in 0..<d { dst[c] = roundToHalf(dst[c]) }
                }
            }
            let t = head * g.queryBlocks + i
            let q8 = qInt8.map { $0.pointer + (head * n + start) * d } ?? w.int8Block.pointer
            (qSim.pointer[t], qScale.pointer[t]) = summarizeAndQuantize(
                block, rows: rows, blockSize: g.blockQ, premultiplier: premultiplier, gpuRounding: gpuRounding,
                partialBlocks: partialBlocks, pooled: qPooled.pointer + t * d, int8: q8, since: t0, scratch: w)
            let packed = qPacked.pointer + head * g.packedQueryHead + i * g.rowsPad * g.pairs
            packed.update(repeating: 0, count: g.rowsPad * g.pairs)
            for r in 0..<rows { packRowPairs(q8 + r * d, d: d, into: packed + r * g.pairs) }
            w.quantizationNanos &+= monotonicNanos() &- w.lastMark
        }
    }

    /// Stage-1 summary (section 2, steps 1-2) then INT8 quantization (section 3) of one block
    /// held in `block`; accounts the first to stage 1 and leaves `scratch.lastMark` at the
    /// start of quantization. Returns (self-similarity, scale).
    private func summarizeAndQuantize(
        _ block: UnsafePointer<Float>, rows: Int, blockSize: Int, premultiplier: Float, gpuRounding: Bool,
        partialBlocks: PartialBlockRule, pooled: UnsafeMutablePointer<Float>, int8: UnsafeMutablePointer<Int8>,
        since start: UInt64, scratch w: WorkerScratch
    ) -> (Float, Float) {
        let d = w.headDim
        let sim = summarizeBlock(block, rows: rows, blockSize: blockSize, d: d, gpuRounding: gpuRounding,
                                 partialBlocks: partialBlocks, pooled: pooled, scratch: w.vector.pointer)
        w.lastMark = monotonicNanos()
        w.stage1Nanos &+= w.lastMark &- start
        let scale = quantizeBlock(block, rows: rows, d: d, premultiplier: premultiplier, into: int8)
        return (sim, scale)
    }
}
