// The order of the whole algorithm, one phase per parallel loop:
//   1. keys    (batch x kv head):   K mean, K' blocks, summaries, INT8 + packing;
//   2. queries (batch x head):      Q blocks, summaries, INT8 + packing, stage-1 selection;
//   3. kernel  (batch x head x query block): stage 2.
// Each work item writes only its own region, so the result is the same for any thread count.

struct SparsePipeline {
    let shape: AttentionShape
    let parameters: SpargeParameters
    let threads: Int

    func run(
        q: TensorView, k: TensorView, v: TensorView, output: MutableTensorView?,
        blockMap given: BlockMap?, captureQuantized: Bool, computeOutput: Bool,
        captureProbabilities: Bool = false
    ) -> SparseAttentionResult {
        let p = parameters, s = shape, d = s.headDim
        let g = SparseGeometry(shape: s, blockQ: p.blockQ, blockK: p.blockK)
        let ops = SparseOperands(geometry: g, v: v, captureInt8: captureQuantized)
        let workers = Swift.max(1, threads)
        let scratch = (0..<workers).map { _ in
            WorkerScratch(tileRows: g.rowsPad, tileColumns: g.columnsPad, width: g.width,
                          blockRows: Swift.max(g.blockQ, g.blockK), d: d, keyBlocks: g.keyBlocks)
        }
        let scale = p.scale(headDim: d)
        let premultiplier: Float = p.quantization == .triton ? scale * log2e : 1

        let start = monotonicNanos()
        // Phase 1: keys.
        parallelFor(items: s.batch * s.kvHeads, threads: workers) { worker, item in
            ops.prepareKeys(b: item / s.kvHeads, h: item % s.kvHeads, k: k, smoothK: p.smoothK,
                            gpuRounding: p.gpuRounding, partialBlocks: p.partialBlocks, scratch: scratch[worker])
        }
        // Phase 2: queries and stage-1 selection.
        var map = given ?? BlockMap(batch: s.batch, heads: s.heads, queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks)
        let predict = given == nil
        let probabilities = captureProbabilities ? RawBuffer<Float>(count: map.bits.count, zero: 0) : nil
        map.bits.withUnsafeMutableBufferPointer { bits in
            let mapBase = UnsafeSendable(bits.baseAddress!)
            parallelFor(items: s.batch * s.heads, threads: workers) { worker, item in
                let b = item / s.heads, h = item % s.heads
                let w = scratch[worker]
                ops.prepareQueries(b: b, h: h, q: q, premultiplier: premultiplier, gpuRounding: p.gpuRounding,
                                   partialBlocks: p.partialBlocks, scratch: w)
                guard predict else { return }
                let qHead = b * s.heads + h, kHead = b * s.kvHeads + h / s.groupSize
                let (selection, isTopK): (Float, Bool) = {
                    switch p.selection {
                    case .cdf(let t): return (t[h], false)
                    case .topK(let t): return (t[h], true)
                    }
                }()
                let inputs = SelectionInputs(
                    pooledQ: ops.qPooled.pointer + qHead * g.queryBlocks * d,
                    simQ: ops.qSim.pointer + qHead * g.queryBlocks,
                    pooledK: ops.kPooled.pointer + kHead * g.keyBlocks * d,
                    simK: ops.kSim.pointer + kHead * g.keyBlocks,
                    queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks, d: d,
                    blockQ: g.blockQ, blockK: g.blockK, scale: scale, theta: p.simThreshold[h],
                    selection: selection, isTopK: isTopK, causal: p.causal,
                    causalOffset: s.keyLength - s.queryLength,
                    attentionSink: p.attentionSink, gpuRounding: p.gpuRounding,
                    probabilitiesOut: probabilities.map { $0.pointer + qHead * g.queryBlocks * g.keyBlocks })
                let t0 = monotonicNanos()
                selectBlocks(inputs, map: mapBase.value + qHead * g.queryBlocks * g.keyBlocks,
                             probabilities: w.probabilities.pointer, keys: w.keys.pointer)
                w.stage1Nanos &+= monotonicNanos() &- t0
            }
        }
        let prepared = monotonicNanos()
        // Phase 3: stage 2.
        var counts = [TileCounts](repeating: TileCounts(), count: s.batch * s.heads * g.queryBlocks)
        if computeOutput, let output {
            let options = SparseKernelOptions(
                causal: p.causal, causalOffset: s.keyLength - s.queryLength,
                exemptTailBlocks: p.stage2ExemptTailBlocks,
                scoreFactor: p.quantization == .triton ? 1 : scale * log2e,
                tritonKeyPadding: p.tritonKeyPadding)
            let items = s.batch * s.heads * g.queryBlocks
            let chunks = splitFactor(items: items, keyBlocks: g.keyBlocks)
            let partSize = OnlineSoftmax.exportSize(rows: g.rowsPad, width: g.width)
            let partials = chunks > 1 ? RawBuffer<Float>(count: items * chunks * partSize, zero: 0) : nil
            var chunkCounts = [TileCounts](repeating: TileCounts(), count: items * chunks)
            map.bits.withUnsafeBufferPointer { bits in
                chunkCounts.withUnsafeMutableBufferPointer { countBuffer in
                    let mapBase = UnsafeSendable(bits.baseAddress!)
                    let countBase = UnsafeSendable(countBuffer.baseAddress!)
                    parallelFor(items: items * chunks, threads: workers) { worker, work in
                        let item = work / chunks, chunk = work % chunks
                        let i = item % g.queryBlocks, bh = item / g.queryBlocks
                        let b = bh / s.heads, h = bh % s.heads
                        countBase.value[work] = sparseQueryBlock(
                            b: b, h: h, i: i, ops: ops, mapRow: mapBase.value + item * g.keyBlocks,
                            lambda: p.pvThreshold[h], options: options, output: output, scratch: scratch[worker],
                            chunk: chunk, chunks: chunks, partial: partials.map { $0.pointer + work * partSize })
                    }
                }
            }
            if let partials {
                parallelFor(items: items, threads: workers) { worker, item in
                    let i = item % g.queryBlocks, bh = item / g.queryBlocks
                    let b = bh / s.heads, h = bh % s.heads
                    let qStart = i * g.blockQ
                    OnlineSoftmax.merge(
                        partials.pointer + item * chunks * partSize, count: chunks, rows: g.rowsPad, width: g.width,
                        validRows: Swift.min(g.blockQ, s.queryLength - qStart), d: d,
                        into: output, b: b, h: h, first: qStart, temp: scratch[worker].row.pointer)
                }
            }
            for (n, c) in chunkCounts.enumerated() {
                counts[n / chunks].visited += c.visited
                counts[n / chunks].skipped += c.skipped
            }
        }
        let finished = monotonicNanos()
        let timings = SparseTimings(
            preparationSeconds: Double(prepared - start) / 1e9,
            kernelSeconds: Double(finished - prepared) / 1e9,
            stage1CPUSeconds: Double(scratch.reduce(0) { $0 + $1.stage1Nanos }) / 1e9,
            quantizationCPUSeconds: Double(scratch.reduce(0) { $0 + $1.quantizationNanos }) / 1e9)
        return SparseAttentionResult(
            blockMap: map,
            timings: timings,
            statistics: statistics(map: map, counts: counts, g: g),
            quantized: captureQuantized ? quantizedTensors(ops) : nil,
            blockProbabilities: probabilities.map { Array(UnsafeBufferPointer(start: $0.pointer, count: map.bits.count)) })
    }

    func statistics(map: BlockMap, counts: [TileCounts], g: SparseGeometry) -> SparseStatistics {
        var allowed = 0, markedAllowed = 0, computed = 0
        for i in 0..<g.queryBlocks {
            for j in 0..<g.keyBlocks where !parameters.causal || blockCausallyAllowed(i: i, j: j, blockQ: g.blockQ, blockK: g.blockK, offset: shape.keyLength - shape.queryLength) {
                allowed += 1
            }
        }
        for b in 0..<shape.batch {
            for h in 0..<shape.heads {
                for i in 0..<g.queryBlocks {
                    for j in 0..<g.keyBlocks where map[b, h, i, j] {
                        if !parameters.causal || blockCausallyAllowed(i: i, j: j, blockQ: g.blockQ, blockK: g.blockK, offset: shape.keyLength - shape.queryLength) { markedAllowed += 1 }
                    }
                }
            }
        }
        let visited = counts.reduce(0) { $0 + Int($1.visited) }
        let skipped = counts.reduce(0) { $0 + Int($1.skipped) }
        computed = visited - skipped
        return SparseStatistics(
            density: map.density,
            allowedDensity: allowed == 0 ? 0 : Double(markedAllowed) / Double(allowed * shape.batch * shape.heads),
            densityPerHead: (0..<shape.heads).map { map.density(head: $0) },
            visitedTiles: visited, skippedTiles: skipped,
            computedFraction: Double(computed) / Double(map.bits.count))
    }

    func quantizedTensors(_ ops: SparseOperands) -> QuantizedTensors {
        let s = shape, g = ops.g
        func array<T>(_ b: RawBuffer<T>?, _ n: Int) -> [T] { b.map { Array(UnsafeBufferPointer(start: $0.pointer, count: n)) } ?? [] }
        return QuantizedTensors(
            qInt8: array(ops.qInt8, s.batch * s.heads * s.queryLength * s.headDim),
            qScale: array(ops.qScale, s.batch * s.heads * g.queryBlocks),
            kInt8: array(ops.kInt8, s.batch * s.kvHeads * s.keyLength * s.headDim),
            kScale: array(ops.kScale, s.batch * s.kvHeads * g.keyBlocks),
            kMean: array(ops.kMean, s.batch * s.kvHeads * s.headDim))
    }
}

/// How many key ranges each query block is split into (split-K). A function of the shape
/// alone, never of the thread count, so outputs stay identical for any number of threads:
/// with fewer than `minimumItems` query blocks in the whole call, each one's keys are split
/// so that there are at least that many work items for the cores.
func splitFactor(items: Int, keyBlocks: Int, minimumItems: Int = 16) -> Int {
    if items >= minimumItems { return 1 }
    return Swift.max(1, Swift.min(keyBlocks, (minimumItems + items - 1) / items))
}

/// Exact attention over views (the body of ``SpargeAttention/dense``).
func denseAttention(
    q: TensorView, k: TensorView, v: TensorView, output: MutableTensorView,
    shape s: AttentionShape, causal: Bool, scale: Float, threads: Int
) {
    let ops = DenseOperands(shape: s, v: v)
    let workers = Swift.max(1, threads)
    let width = roundUp(s.headDim, 8)
    let scratch = (0..<workers).map { _ in
        WorkerScratch(tileRows: DenseTiling.queryRows, tileColumns: DenseTiling.keyColumns, width: width,
                      blockRows: DenseTiling.queryRows, d: s.headDim, keyBlocks: 1)
    }
    parallelFor(items: s.batch * s.kvHeads, threads: workers) { worker, item in
        ops.prepareKeys(b: item / s.kvHeads, h: item % s.kvHeads, k: k, scratch: scratch[worker])
    }
    let tiles = blockCount(s.queryLength, DenseTiling.queryRows)
    let items = s.batch * s.heads * tiles
    let chunks = splitFactor(items: items, keyBlocks: ops.keyTiles)
    let partSize = OnlineSoftmax.exportSize(rows: DenseTiling.queryRows, width: width)
    let partials = chunks > 1 ? RawBuffer<Float>(count: items * chunks * partSize, zero: 0) : nil
    parallelFor(items: items * chunks, threads: workers) { worker, work in
        let item = work / chunks, chunk = work % chunks
        let i = item % tiles, bh = item / tiles
        denseQueryTile(b: bh / s.heads, h: bh % s.heads, i: i, ops: ops, q: q, scale: scale, causal: causal,
                       causalOffset: s.keyLength - s.queryLength, output: output, scratch: scratch[worker],
                       chunk: chunk, chunks: chunks, partial: partials.map { $0.pointer + work * partSize })
    }
    if let partials {
        parallelFor(items: items, threads: workers) { worker, item in
            let i = item % tiles, bh = item / tiles
            let qStart = i * DenseTiling.queryRows
            OnlineSoftmax.merge(
                partials.pointer + item * chunks * partSize, count: chunks, rows: DenseTiling.queryRows, width: width,
                validRows: Swift.min(DenseTiling.queryRows, s.queryLength - qStart), d: s.headDim,
                into: output, b: bh / s.heads, h: bh % s.heads, first: qStart, temp: scratch[worker].row.pointer)
        }
    }
}
