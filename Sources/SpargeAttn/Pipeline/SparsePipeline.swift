// The order of the whole algorithm:
//   1. keys    (batch x kv head):   K mean; then (x key block): K' blocks, summaries, INT8 + packing;
//   2. queries (batch x head x query block): Q blocks, summaries, INT8 + packing;
//              then (batch x head): stage-1 selection;
//   3. kernel  (batch x head x query block): stage 2.
// 1 and 2 run as the phases of one parallel loop, 3 as another.
// Each work item writes only its own region, so the result is the same for any thread count.

/// Phase timings and tile counts of one call (no arrays: building it does not allocate).
struct SparseRunOutcome {
    var timings: SparseTimings
    var visited: Int
    var skipped: Int
    /// With ``SparsePipeline/detectsNonFinite``: a NaN or infinity may be in the inputs, and
    /// stage 2 did not run (nothing was written).
    var suspectsNonFinite = false
}

struct SparsePipeline {
    let shape: AttentionShape
    let parameters: SpargeParameters
    /// Forces the per-head stage-2 kernel where the grouped decode kernel would apply (tests).
    var perHeadKernel = false
    /// The call's key padding mask (`B x Nk` bytes, 1 = real key), alive during the call.
    var keyValid: UnsafePointer<UInt8>? = nil
    /// The call's attention mask, alive during the call.
    var pairMask: PairMaskView? = nil
    /// Whether the pipeline checks that the inputs are finite on its own passes (see
    /// ``detectsNonFinite(_:tokenOrder:)``) and stops before stage 2 when they may not be.
    var detectsNonFinite = false
    /// Key blocks a KV cache discarded before its first held key (outside every window a call
    /// can have): key block 0 of the call is key block `discardedKeyBlocks` of the sequence.
    /// Top-k counts them, and the attention sink (the sequence's block 0) is among them.
    var discardedKeyBlocks = 0

    /// Whether a sparse call with an output can leave the non-finite policy's check to the
    /// pipeline instead of scanning Q, K and V first (about 4% of a top-k 0.25 call): every
    /// query and key block's mean is computed anyway, and is not finite when the block holds a
    /// NaN or infinity, and V's overflow pass checks V with fp32 P.V. Not with fp16 rounding of
    /// the inputs (its range check must see infinities first) or a token order (the errors
    /// name the caller's element). A finite block whose sum overflows (|x| above about 1e36)
    /// looks the same: that call pays the exact scans and a second preparation. A rejected
    /// call reports the non-finite input after the other argument errors, not before them.
    static func detectsNonFinite(_ p: SpargeParameters, tokenOrder: TokenOrder?) -> Bool {
        let half = HalfRoundedInputs(p)
        return p.nonFinitePolicy == .reject && p.gpuReproduction.pvNumerics == .fp32 && !half.queriesAndKeys && !half.values
            && (tokenOrder?.isIdentity ?? true)
    }

    /// Runs stage 1 (unless `given` holds a block map), quantization and, with an output,
    /// stage 2, using only `st`'s memory.
    ///
    /// With `keysPrepared` (a KV cache), phase 1 is skipped: the storage already holds the key
    /// side, laid out with `geometry.keyBlockStride`; `geometry` is then the call's (its Nq and
    /// Nk), while the storage's buffers were sized for the largest call.
    func run(q: TensorView, k: TensorView, v: TensorView, output: MutableTensorView?,
             given: UnsafePointer<UInt8>?, storage st: SparseStorage,
             geometry: SparseGeometry? = nil, keysPrepared: Bool = false) -> SparseRunOutcome {
        let p = parameters, s = shape, d = s.headDim, g = geometry ?? st.g
        let ops = st.ops, scratch = st.scratch, workers = st.workers
        let scale = p.scale(headDim: d)
        let premultiplier: Float = p.gpuReproduction.quantization == .triton ? scale * log2e : 1
        for w in scratch { w.stage1Nanos = 0; w.quantizationNanos = 0; w.sawNonFinite = false }
        let mapBase = UnsafeSendable(st.map.pointer)
        if let given { st.map.pointer.update(from: given, count: g.mapCount) }

        let start = monotonicNanos()
        let pairBlocks = pairBlockStates(st)
        pairBlocks?.fill(batch: s.batch, threads: workers)
        if output != nil && !keysPrepared {
            ops.bindValues(v, numerics: p.gpuReproduction.pvNumerics, fp8ValueRange: p.gpuReproduction.fp8ValueRange, threads: workers)
        }
        let valuesBound = monotonicNanos()
        // Phases 1-2 in one dispatch (`parallelPhases`: the workers are woken once, not per step):
        //   0. the K mean's 64-row partial sums, one chunk per item (with fp16 rounding the
        //      whole head is one item of step 1 instead);
        //   1. per (batch, kv head) the K mean from its chunks;
        //   2. the key blocks, then the query blocks, one per item (many cores busy even with few
        //      heads; the keys come right after the pass that read them, while still in cache);
        //   3. stage-1 selection per (batch, head).
        let chunked = !keysPrepared && p.smoothK && !p.gpuReproduction.gpuRounding
        let chunks = keyMeanChunks(s.keyLength)
        let kvItems = keysPrepared ? 0 : s.batch * s.kvHeads
        let keyItems = kvItems * g.keyBlocks
        let predict = given == nil
        let queryRule = Self.queryPartialBlocks(shape: s, parameters: p)
        let selectionItems = predict ? s.batch * s.kvHeads * selectionChunks(g) : 0
        let counts = (chunked ? kvItems * chunks : 0, kvItems, keyItems + s.batch * s.heads * g.queryBlocks, selectionItems)
        parallelPhases(4, items: { $0 == 0 ? counts.0 : $0 == 1 ? counts.1 : $0 == 2 ? counts.2 : counts.3 }, threads: workers) { worker, phase, item in
            let w = scratch[worker]
            switch phase {
            case 0:
                let head = item / chunks
                ops.computeKeyChunkSum(b: head / s.kvHeads, h: head % s.kvHeads, chunk: item % chunks, k: k, tokens: s.keyLength, scratch: w)
            case 1:
                if chunked {
                    ops.finishKeyMean(b: item / s.kvHeads, h: item % s.kvHeads, k: k, tokens: s.keyLength, scratch: w)
                } else {
                    ops.computeKeyMean(b: item / s.kvHeads, h: item % s.kvHeads, k: k, tokens: s.keyLength, smoothK: p.smoothK,
                                       gpuRounding: p.gpuReproduction.gpuRounding, geometry: g, scratch: w)
                }
                if output != nil { ops.prepareFixedPointValues(b: item / s.kvHeads, h: item % s.kvHeads, kernels: w.kernels) }
            case 2 where item < keyItems:
                let head = item / g.keyBlocks, j = item % g.keyBlocks
                ops.prepareKeyBlocks(b: head / s.kvHeads, h: head % s.kvHeads, k: k, blocks: j..<(j + 1),
                                     gpuRounding: p.gpuReproduction.gpuRounding, partialBlocks: p.gpuReproduction.partialBlocks,
                                     geometry: g, scratch: w)
            case 2:
                let head = (item - keyItems) / g.queryBlocks, i = (item - keyItems) % g.queryBlocks
                ops.prepareQueries(b: head / s.heads, h: head % s.heads, blocks: i..<(i + 1), q: q, premultiplier: premultiplier,
                                   gpuRounding: p.gpuReproduction.gpuRounding, partialBlocks: queryRule, geometry: g, scratch: w)
            default:
                let head = item / selectionChunks(g), chunk = item % selectionChunks(g)
                selectBlocks(b: head / s.kvHeads, kvh: head % s.kvHeads, chunk: chunk, geometry: g, scale: scale, storage: st,
                             pairBlocks: pairBlocks, map: mapBase.value, scratch: w)
            }
        }
        let prepared = monotonicNanos()
        if detectsNonFinite && (!ops.valuesFinite || scratch.contains { $0.sawNonFinite }) {
            let t = SparseTimings(preparationSeconds: Double(prepared - start) / 1e9, kernelSeconds: 0,
                                  stage1CPUSeconds: 0, quantizationCPUSeconds: 0, valuePassSeconds: Double(valuesBound - start) / 1e9)
            return SparseRunOutcome(timings: t, visited: 0, skipped: 0, suspectsNonFinite: true)
        }
        // Phase 3: stage 2 (split-K when there are few query blocks), then the merge.
        var visited = 0, skipped = 0
        if let output {
            // Block-only causal masking: stage 1 clears the future blocks, the kernel masks nothing.
            let options = SparseKernelOptions(
                causal: p.causal && p.gpuReproduction.causalMasking == .token, causalOffset: p.causalOffset(for: s),
                window: p.windowKeys,
                exemptTailBlocks: p.gpuReproduction.stage2ExemptTailBlocks,
                scoreFactor: p.gpuReproduction.quantization == .triton ? 1 : scale * log2e,
                tritonKeyPadding: p.gpuReproduction.tritonKeyPadding, numerics: p.gpuReproduction.pvNumerics, keyValid: keyValid,
                sinks: p.sinkLogits.map { SinkSource(logits: $0, queries: q, keyMeans: p.smoothK ? UnsafePointer(ops.kMean.pointer) : nil,
                                                     scale: scale,
                                                     offset: p.gpuReproduction.pvNumerics == .fp8 ? fp8ProbabilityOffset : 0) },
                pairMask: pairBlocks)
            let items = s.batch * s.heads * g.queryBlocks
            let chunks = keysPrepared ? sparseSplitFactor(shape: s, geometry: g, numerics: p.gpuReproduction.pvNumerics) : st.chunks
            let partSize = OnlineSoftmax.exportSize(rows: g.partialRows, width: g.width)
            let countBase = UnsafeSendable(st.counts.pointer)
            let partials = st.partials
            // The grouped kernel shares one packed query group per kv head: no per-head means.
            // Nor does it read fixed-point values.
            let grouped = usesGroupedDecode(g) && !perHeadKernel && !p.smoothQ && !p.fixedPointPV
            let units = st.partialUnits
            if grouped {
                // Decoding with GQA: one work item per (kv head, chunk), K/V read once per group.
                parallelFor(items: s.batch * s.kvHeads * chunks, threads: workers) { worker, work in
                    let bk = work / chunks, chunk = work % chunks
                    groupedDecodeBlock(
                        b: bk / s.kvHeads, kvh: bk % s.kvHeads, ops: ops, geometry: g, map: mapBase.value,
                        lambda: { p.pvThreshold[$0] }, options: options, output: output, scratch: scratch[worker],
                        chunk: chunk, chunks: chunks, partials: chunks > 1 ? partials!.pointer : nil,
                        units: chunks > 1 ? units.map { $0.pointer } : nil, counts: countBase.value)
                }
            } else {
                parallelFor(items: items * chunks, threads: workers) { worker, work in
                    let item = work / chunks, chunk = work % chunks
                    let i = item % g.queryBlocks, bh = item / g.queryBlocks
                    let b = bh / s.heads, h = bh % s.heads
                    countBase.value[work] = sparseQueryBlock(
                        b: b, h: h, i: i, ops: ops, geometry: g, mapRow: mapBase.value + item * g.keyBlocks,
                        lambda: p.pvThreshold[h], options: options, output: output, scratch: scratch[worker],
                        chunk: chunk, chunks: chunks, partial: chunks > 1 ? partials!.pointer + work * partSize : nil,
                        units: chunks > 1 ? units.map { $0.pointer + item * 2 } : nil)
                }
            }
            if chunks > 1, let partials {
                parallelFor(items: items, threads: workers) { worker, item in
                    let i = item % g.queryBlocks, bh = item / g.queryBlocks
                    let qStart = i * g.blockQ
                    let validRows = Swift.min(g.blockQ, s.queryLength - qStart)
                    let sinks = options.sinks?.rows(validRows, first: qStart, b: bh / s.heads, h: bh % s.heads, shape: s,
                                                    scratch: scratch[worker])
                    OnlineSoftmax.merge(
                        partials.pointer + item * chunks * partSize, count: chunks, rows: g.partialRows, width: g.width,
                        validRows: validRows, d: d,
                        units: units.map { UnsafePointer($0.pointer + item * 2) }, sinks: sinks, into: output, b: bh / s.heads, h: bh % s.heads, first: qStart, temp: scratch[worker].row.pointer)
                }
            }
            for n in 0..<(items * chunks) {
                visited += Int(st.counts.pointer[n].visited)
                skipped += Int(st.counts.pointer[n].skipped)
            }
        }
        if let lse = output?.lse, p.smoothK {
            // The kernel's scores are q.(k - mean): shift each row's log-sum-exp back to q.k.
            parallelFor(items: s.batch * s.heads, threads: workers) { worker, item in
                let b = item / s.heads, h = item % s.heads
                addKeyMeanScores(to: lse, q: q, b: b, h: h, mean: ops.kMean.pointer + (b * s.kvHeads + h / s.groupSize) * d,
                                 scale: scale, shape: s, temp: scratch[worker].row.pointer)
            }
        }
        let finished = monotonicNanos()
        var stage1: UInt64 = 0, quantization: UInt64 = 0
        for w in scratch { stage1 &+= w.stage1Nanos; quantization &+= w.quantizationNanos }
        return SparseRunOutcome(
            timings: SparseTimings(
                preparationSeconds: Double(prepared - start) / 1e9, kernelSeconds: Double(finished - prepared) / 1e9,
                stage1CPUSeconds: Double(stage1) / 1e9, quantizationCPUSeconds: Double(quantization) / 1e9,
                valuePassSeconds: Double(valuesBound - start) / 1e9),
            visited: visited, skipped: skipped)
    }

    /// Stage 1's work items per (batch, kv head): the group's query blocks split into
    /// `min(queryBlocks, groupSize)` ranges, so there are as many items as (batch, head) pairs
    /// when the query is long, and one per kv group when decoding (whose heads then share each
    /// read of the pooled-key table: at 128k cached keys it is 1 MB per kv head, and reading
    /// it once per query head made stage 1 bound by memory).
    func selectionChunks(_ g: SparseGeometry) -> Int { Swift.min(g.queryBlocks, shape.groupSize) }

    /// Stage 1's selection for (batch b, kv head kvh), query-block range `chunk` of
    /// ``selectionChunks(_:)``, every head of the group, from the prepared summaries into `map`.
    /// One head alone takes its query blocks four at a time through the channel-major score
    /// kernel; a group takes its heads four at a time, query block by query block. Either way
    /// each score has the scalar loop's bits.
    private func selectBlocks(b: Int, kvh: Int, chunk: Int, geometry g: SparseGeometry, scale: Float, storage st: SparseStorage,
                              pairBlocks: PairBlockStates?, map: UnsafeMutablePointer<UInt8>, scratch w: WorkerScratch) {
        let s = shape, d = s.headDim, ops = st.ops, nq = g.queryBlocks, nk = g.keyBlocks, group = s.groupSize
        let kHead = b * s.kvHeads + kvh
        let table = ChannelMajorKeys(base: ops.kPooledByChannel.pointer + kHead * d * ops.pooledChannelStride,
                                     stride: ops.pooledChannelStride, kernels: w.kernels)
        let t0 = monotonicNanos()
        defer { w.stage1Nanos &+= monotonicNanos() &- t0 }
        if group == 1 {
            let h = kvh
            SpargeAttn.selectBlocks(selectionInputs(b: b, h: h, geometry: g, scale: scale, storage: st, pairBlocks: pairBlocks),
                                    map: map + (b * s.heads + h) * nq * nk, probabilities: w.probabilities.pointer,
                                    keys: w.keys.pointer, channelMajor: table)
            return
        }
        let chunks = selectionChunks(g)
        for i in (chunk * nq / chunks)..<((chunk + 1) * nq / chunks) {
            var h0 = 0
            while h0 < group {
                let rows = Swift.min(compressedScoreRows, group - h0)
                // The heads' rows of query block i, one pooled query head apart (the heads share the window).
                let lead = selectionInputs(b: b, h: kvh * group + h0, geometry: g, scale: scale, storage: st, pairBlocks: pairBlocks)
                compressedDots(lead, q: lead.pooledQ + i * d, qStride: nq * d, rows: rows, earliest: i, channelMajor: table,
                               into: w.probabilities.pointer)
                for r in 0..<rows {
                    let h = kvh * group + h0 + r
                    selectRow(selectionInputs(b: b, h: h, geometry: g, scale: scale, storage: st, pairBlocks: pairBlocks),
                              queryBlock: i, dots: w.probabilities.pointer + r * nk,
                              map: map + ((b * s.heads + h) * nq + i) * nk, keys: w.keys.pointer)
                }
                h0 += rows
            }
        }
    }

    /// Stage 1's inputs for (batch b, head h): its pooled blocks and summaries, its settings.
    @inline(__always)
    private func selectionInputs(b: Int, h: Int, geometry g: SparseGeometry, scale: Float, storage st: SparseStorage,
                                 pairBlocks: PairBlockStates?) -> SelectionInputs {
        let p = parameters, s = shape, d = s.headDim, ops = st.ops
        let qHead = b * s.heads + h, kHead = b * s.kvHeads + h / s.groupSize
        let (selection, isTopK): (Float, Bool) = {
            switch p.selection {
            case .cdf(let t): return (t[h], false)
            case .topK(let t): return (t[h], true)
            }
        }()
        return SelectionInputs(
            pooledQ: ops.qPooled.pointer + qHead * g.queryBlocks * d,
            simQ: ops.qSim.pointer + qHead * g.queryBlocks,
            pooledK: ops.kPooled.pointer + kHead * g.keyBlockStride * d,
            simK: ops.kSim.pointer + kHead * g.keyBlockStride,
            queryBlocks: g.queryBlocks, keyBlocks: g.keyBlocks, d: d,
            blockQ: g.blockQ, blockK: g.blockK, scale: scale, theta: p.simThreshold[h],
            selection: selection, isTopK: isTopK, causal: p.causal,
            causalOffset: p.causalOffset(for: s), window: p.windowKeys, discardedKeyBlocks: discardedKeyBlocks,
            attentionSink: p.attentionSink && discardedKeyBlocks == 0, gpuRounding: p.gpuReproduction.gpuRounding,
            keyValid: keyValid.map { $0 + b * s.keyLength }, keyLength: s.keyLength,
            pairBlocks: pairBlocks?.rows(b),
            probabilitiesOut: st.probabilities.map { $0.pointer + qHead * g.queryBlocks * g.keyBlocks })
    }

    /// The attention mask's block states in `st` (computed by ``PairBlockStates/fill(batch:threads:)``
    /// at the start of `run`); nil without a mask.
    func pairBlockStates(_ st: SparseStorage) -> PairBlockStates? {
        pairMask.map { PairBlockStates(view: $0, blockQ: st.g.blockQ, blockK: st.g.blockK, states: st.pairStates.pointer) }
    }

    /// The partial-block rule of the query side: the parameters' rule, except that a query
    /// shorter than one block (decoding) is measured: the GPU code never runs such shapes
    /// (it needs N >= 128), and a single token is its own, perfectly self-similar, block.
    static func queryPartialBlocks(shape: AttentionShape, parameters: SpargeParameters) -> PartialBlockRule {
        shape.queryLength < parameters.blockQ ? .measure : parameters.gpuReproduction.partialBlocks
    }
}

extension SparsePipeline {
    /// A one-shot call: storage of its own, stage 1 unless `blockMap` is given, the result as arrays.
    func callOnce(_ views: CallViews, blockMap: BlockMap?, threads: Int, captureQuantized: Bool,
                  captureProbabilities: Bool = false) throws -> SparseAttentionResult {
        let storage = SparseStorage(shape: shape, parameters: parameters, threads: threads,
                                    captureInt8: captureQuantized, captureProbabilities: captureProbabilities)
        let outcome = try checkedRun(views, storage: storage) { pipeline in
            blockMap.map { m in
                m.bits.withUnsafeBufferPointer {
                    pipeline.run(q: views.q, k: views.k, v: views.v, output: views.output, given: $0.baseAddress, storage: storage)
                }
            } ?? pipeline.run(q: views.q, k: views.k, v: views.v, output: views.output, given: nil, storage: storage)
        }
        return result(outcome, storage: storage, captureQuantized: captureQuantized, wroteLSE: views.output?.lse != nil)
    }

    /// `run` by this pipeline; when it suspects a non-finite input, the policy's exact scan
    /// (which throws at the first one, in flat order) and, if it finds none (a finite block
    /// whose mean overflowed), `run` again without the check.
    private func checkedRun(_ views: CallViews, storage: SparseStorage,
                            _ run: (SparsePipeline) -> SparseRunOutcome) throws -> SparseRunOutcome {
        let outcome = run(self)
        guard outcome.suspectsNonFinite else { return outcome }
        try CallValidation.requireFiniteInputs(q: views.q, k: views.k, v: views.v, shape: shape, temp: storage.temp.pointer,
                                               threads: storage.workers)
        var unchecked = self
        unchecked.detectsNonFinite = false
        return run(unchecked)
    }

    /// A plan call: the workspace's storage, stage 1 unless `given` holds a map; no allocation.
    /// The result reads the map from `memory` (call number `call`) on demand.
    func callWithWorkspace(_ views: CallViews, given: UnsafePointer<UInt8>?, storage: SparseStorage,
                           memory: any CallMemory, call: UInt64) throws -> SparseAttentionResult {
        let outcome = try checkedRun(views, storage: storage) {
            $0.run(q: views.q, k: views.k, v: views.v, output: views.output, given: given, storage: storage)
        }
        return memoryResult(outcome, storage: storage, geometry: storage.g, memory: memory, call: call,
                            wroteLSE: views.output?.lse != nil)
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

/// The split-K factor of a sparse call of shape `s` (geometry `g`) with P.V numerics
/// `numerics`, a function of the shape alone:
/// - ``splitFactor(items:keyBlocks:minimumItems:)`` over the call's query blocks;
/// - and at least enough ranges for about `decodeItems` work items, each of at least
///   `decodeKeyBlocks` key blocks: a decoding step has one query block per head, and the
///   grouped decode kernel makes one item per (batch, kv head), so without this a model
///   with 8 kv heads would keep 8 cores busy whatever the machine has (the exact path splits
///   its keys in chunks of 2048 for the same reason).
///
/// 1 (no split) with the fp16 and FP8 emulations: they round P = 2^(S - m) at the running
/// max m of the tiles seen so far, which a split restarts per share, while the GPU kernels
/// they reproduce visit a row's blocks in one sequence (FP8: 1-2% of the output).
func sparseSplitFactor(shape s: AttentionShape, geometry g: SparseGeometry, numerics: PVNumerics,
                       decodeItems: Int = 64, decodeKeyBlocks: Int = 16) -> Int {
    guard numerics == .fp32 else { return 1 }
    let items = s.batch * s.heads * g.queryBlocks
    let workItems = usesGroupedDecode(g) ? s.batch * s.kvHeads : items
    let forCores = workItems >= decodeItems ? 1 : Swift.min(g.keyBlocks / decodeKeyBlocks, (decodeItems + workItems - 1) / workItems)
    return Swift.max(splitFactor(items: items, keyBlocks: g.keyBlocks), forCores)
}

/// Adds `scale * q_t . mean` to the log-sum-exp of each query row `t` of (b, h): K smoothing
/// subtracts `mean` from every key, which leaves the softmax unchanged but shifts each row's
/// scores, and so its log-sum-exp, by `q_t . mean` (accumulated in Double).
func addKeyMeanScores(to lse: LSEDestination, q: TensorView, b: Int, h: Int, mean: UnsafePointer<Float>,
                      scale: Float, shape s: AttentionShape, temp: UnsafeMutablePointer<Float>) {
    let row = lse.base + b * lse.batchStride + h * lse.headStride
    for t in 0..<s.queryLength {
        let x = q.floats(b, h, t, count: s.headDim, temp: temp)
        var dot = 0.0
        for c in 0..<s.headDim { dot += Double(x[c]) * Double(mean[c]) }
        row[t] = Float(Double(row[t]) + Double(scale) * dot)
    }
}
