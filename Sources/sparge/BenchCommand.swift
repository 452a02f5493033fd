import Foundation
import SpargeAttn
import SpargeFormats
import SpargeWorkloads

/// `sparge bench`: the speed of the dense and sparse paths per shape and input kind, with the
/// sparse time split into stage 1, quantization and kernel, the accuracy against dense, and
/// the share of the machine's measured peak. Medians of several calls after a warm-up.
struct BenchCommand {
    static let usage = """
        Usage: sparge bench [--quick] [--repeat N] [--threads N] [--workloads LIST] [--hilbert] [--decode [--kv-types LIST]] [--masks] [--memory] [--scaling] [--kernels] [--fixed-point-pv] [--json]

        Times exact dense attention and sparse attention (top-k 0.5, the recommended default,
        and top-k 0.25) on the shapes B=1 H=8 N=4096 D=64, B=1 H=4 N=4096 D=128,
        B=1 H=2 N=16384 D=64 and a causal B=1 H=8 N=4096 D=64, for the video-like workload
        at three sparsity levels and Gaussian noise (nothing to skip). Then the INT8 vs fp32
        score micro-kernel, and the sparse path on one thread vs all threads.

          --quick           one shape (B=1 H=8 N=4096 D=64), medium and gaussian inputs
          --repeat N        timed calls per measurement after one warm-up (default 5)
          --threads N       worker threads (default: all CPUs)
          --workloads LIST  comma-separated subset of mild,medium,sharp,gaussian
          --hilbert         tokens in Hilbert-curve order (non-causal shapes; the grid is frames x 16 x 32)
          --decode          only the decode rows: 1 query against 32k and 128k cached keys
                            (H=32, Hkv=8, D=128), sparse (top-k 0.5 and 0.25) vs exact, per token; then a
                            sliding-window layer in a cache of fixed capacity against one holding every key
          --kv-types LIST   with --decode: the caches' element types, comma-separated from float32, float16,
                            bfloat16 (default float32); each row's caches take the same steps, interleaved
          --masks           only the attention-mask rows: causal, prefix-LM and packed documents as an
                            AttentionMask at B=1 H=8 N=4096 D=64, dense and sparse, beside the causal rule
          --scaling         only the thread-scaling row (B=1 H=8 N=4096 D=64, medium input)
          --kernels         only the micro-kernel rows (score and P.V tiles, one thread, every level)
          --fixed-point-pv  the sparse configurations with fixed-point P.V (SpargeParameters.fixedPointPV)
          --memory          only the memory check: sparse attention at H=16 N=32768 D=64,
                            peak resident memory against the size of Q, K, V and O
          --json            one JSON object on stdout instead of the text report
                            (times in seconds, rates in GFLOP/s or GOP/s, under the text's names)

        On the GPU: sparge bench --backend cuda --help (a build with --traits default,CUDA).
        """

    struct Shape { var heads: Int; var n: Int; var d: Int; var causal: Bool }

    var quick = false
    var repeats = 5
    var threads: Int?
    var workloads = ["mild", "medium", "sharp", "gaussian"]
    var memoryOnly = false
    var scalingOnly = false
    var hilbert = false
    var decodeOnly = false
    var masksOnly = false
    var kernelsOnly = false
    var fixedPointPV = false
    var json = false
    var kvTypes: [ElementType] = [.float32]

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: ["quick", "memory", "scaling", "hilbert", "decode", "masks", "kernels", "fixed-point-pv", OutputFormat.flag], options: ["repeat", "threads", "workloads", "kv-types"],
                                          usage: Self.usage) else { return nil }
        quick = a.flag("quick")
        memoryOnly = a.flag("memory")
        scalingOnly = a.flag("scaling")
        hilbert = a.flag("hilbert")
        decodeOnly = a.flag("decode")
        masksOnly = a.flag("masks")
        kernelsOnly = a.flag("kernels")
        fixedPointPV = a.flag("fixed-point-pv")
        json = a.flag(OutputFormat.flag)
        repeats = try a.int("repeat", in: 1...1000) ?? repeats
        threads = try a.int("threads", in: 1...4096)
        if let list = a.string("kv-types") {
            kvTypes = try list.split(separator: ",").map { name in
                guard let t = ElementType(rawValue: String(name)) else {
                    throw UsageError("--kv-types: '\(name)' is not one of float32, float16, bfloat16")
                }
                return t
            }
            if kvTypes.isEmpty { throw UsageError("--kv-types is empty; give a comma-separated list of float32, float16, bfloat16") }
            if !decodeOnly { throw UsageError("--kv-types applies to --decode only") }
        }
        if let w = a.string("workloads") {
            let names = w.split(separator: ",").map(String.init)
            if names.isEmpty { throw UsageError("--workloads is empty; give a comma-separated subset of mild, medium, sharp, gaussian") }
            for n in names where DemoCommand.workload(named: n) == nil {
                throw UsageError("--workloads: '\(n)' is not one of mild, medium, sharp, gaussian")
            }
            workloads = names
        } else if quick {
            workloads = ["medium", "gaussian"]
        }
    }

    /// Text lines go to stdout as they are measured; with `--json` nothing is printed until
    /// the one JSON object at the end.
    func say(_ line: String) { if !json { print(line) } }

    /// What every JSON report starts with: the build, the machine and the timing rule.
    func jsonHeader(threads: Int) -> [(String, JSONValue)] {
        JSONValue.buildPairs(command: "bench") + [
            ("machine", .string(ResidentMemory.cpuModel())), ("cpus", .int(ProcessInfo.processInfo.activeProcessorCount)),
            ("threads", .int(threads)), ("repeat", .int(repeats)),
        ]
    }

    func execute() throws {
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        var doc = jsonHeader(threads: threadCount)
        if memoryOnly {
            doc.append(("memory", try memoryCheck(threads: threadCount)))
        } else if kernelsOnly {
            say("sparge bench --kernels: build \(BuildInfo.detail), \(BuildInfo.configuration); machine: \(ResidentMemory.cpuModel())")
            doc.append(("score_micro_kernel", .array(kernelComparison())))
        } else if decodeOnly {
            doc.append(("decode", try decodeRows(threads: threadCount)))
            doc.append(("window_decode", try windowDecodeRows(threads: threadCount)))
        } else if masksOnly {
            doc.append(("masks", try maskRows(threads: threadCount)))
        } else {
            try measure(threads: threadCount, into: &doc)
        }
        if json { print(JSONValue.object(doc).text) }
    }

    /// The main table, the micro-kernel rows and the thread scaling (text as it goes, JSON into `doc`).
    func measure(threads threadCount: Int, into doc: inout [(String, JSONValue)]) throws {
        let peak1 = MachinePeak.measure(threads: 1)
        let peakAll = threadCount == 1 ? peak1 : MachinePeak.measure(threads: threadCount)
        doc.append(("fma_peak_gflops", .object([("one_thread", .finite(peak1)), ("all_threads", .finite(peakAll))])))
        say("sparge bench: build \(BuildInfo.detail), \(BuildInfo.configuration); \(threadCount) threads")
        say("machine: \(ResidentMemory.cpuModel()), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        say(String(format: "measured fp32 multiply-add peak (this build): %.1f GFLOP/s on 1 thread, %.1f on %d", peak1, peakAll, threadCount))
        say("timing: median of \(repeats) calls after one warm-up, into a reused output buffer; sparse = stage 1 + quantization + kernel through a plan, wall clock\n")
        var rows: [JSONValue] = []

        var shapes = scalingOnly ? [] : [Shape(heads: 8, n: 4096, d: 64, causal: false)]
        if !quick && !scalingOnly {
            shapes += [Shape(heads: 4, n: 4096, d: 128, causal: false), Shape(heads: 2, n: 16384, d: 64, causal: false),
                       Shape(heads: 8, n: 4096, d: 64, causal: true)]
        }
        let header: [(String, Int)] = [
            ("shape", -24), ("input", -8), ("dense GF/s", 10), ("config", -10), ("sparse ms", 9), ("stage1", 7),
            ("quant", 7), ("kernel", 7), ("prep %", 7), ("1-shot ms", 8), ("density", 7), ("s2 skip", 7), ("cosine", 7), ("rel L1", 7),
            ("speedup", 7), ("eff GF/s", 8), ("% peak", 6),
        ]
        say(header.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
        say(header.map { String(repeating: "-", count: abs($0.1)) }.joined(separator: " "))
        var scalingInput: (VideoLikeWorkload.Tensors, SpargeParameters)? = nil
        for s in shapes {
            for name in workloads {
                var w = DemoCommand.workload(named: name)!
                w.heads = s.heads
                w.tokens = s.n
                w.headDim = s.d
                var t = try w.generate(threads: threadCount)
                // Equivariance: dense and sparse both run on the permuted tokens.
                if hilbert && !s.causal { t = try DemoCommand.hilbertOrdered(t, workload: w) }
                let shape = t.shape
                let flops = shape.denseFlops(causal: s.causal)
                let configs: [(String, SpargeParameters)] = [("top-k 0.5", 0.5), ("top-k 0.25", 0.25)].map { label, topk in
                    var p = SpargeParameters.recommended
                    p.selection = .topK(PerHead(Float(topk)))
                    p.causal = s.causal
                    p.fixedPointPV = fixedPointPV
                    return (label + (fixedPointPV ? " fxp" : ""), p)
                }
                if scalingInput == nil { scalingInput = (t, configs[0].1) }
                // Warm-up, outputs and statistics.
                let reference = try SpargeAttention.dense(q: t.q, k: t.k, v: t.v, shape: shape, causal: s.causal, threads: threadCount)
                var outputs: [([Float], SparseAttentionResult)] = []
                for (_, p) in configs {
                    outputs.append(try SpargeAttention.sparse(q: t.q, k: t.k, v: t.v, shape: shape, parameters: p, threads: threadCount))
                }
                // Timed rounds: dense then every configuration, so each speedup is a median of
                // ratios measured moments apart (the host's load drifts on a shared machine).
                // Sparse calls go through a plan and its workspace, as an engine's do (no
                // allocation per call); the one-shot call (fresh storage each time, so its first
                // touches fault pages in) is timed beside it.
                var scratchOut = [Float](repeating: 0, count: shape.queryElements)
                let plans = try configs.map { try SpargePlan(shape: shape, parameters: $0.1, threads: threadCount) }
                let workspaces = plans.map { $0.makeWorkspace() }
                var denseTimes: [Double] = []
                var sparseTimes = [[Double]](repeating: [], count: configs.count)
                var oneShotTimes = [[Double]](repeating: [], count: configs.count)
                var phaseTimes = [[SparseTimings]](repeating: [], count: configs.count)
                for _ in 0..<repeats {
                    denseTimes.append(try Timing.seconds {
                        try Self.dense(t, causal: s.causal, threads: threadCount, into: &scratchOut)
                    })
                    for (c, (_, p)) in configs.enumerated() {
                        var timings: SparseTimings? = nil
                        sparseTimes[c].append(try Timing.seconds {
                            timings = try plans[c].run(q: t.q, k: t.k, v: t.v, output: &scratchOut, workspace: workspaces[c]).timings
                        })
                        phaseTimes[c].append(timings!)
                        oneShotTimes[c].append(try Timing.seconds {
                            _ = try Self.sparse(t, p, threads: threadCount, into: &scratchOut)
                        })
                    }
                }
                let dense = Timing.median(denseTimes)
                for (c, (label, _)) in configs.enumerated() {
                    let sparse = Timing.median(sparseTimes[c])
                    let speedup = Timing.median(zip(denseTimes, sparseTimes[c]).map { $0 / $1 })
                    let tm = Self.medianTimings(phaseTimes[c])
                    let preparation = Timing.median(zip(denseTimes, phaseTimes[c]).map { ($1.preparationSeconds - $1.valuePassSeconds) / $0 })
                    let (out, res) = outputs[c]
                    let acc = try Accuracy(out, reference: reference)
                    let effective = flops / sparse / 1e9
                    let row: [(String, Int)] = [
                        ("B=1 H=\(s.heads) N=\(s.n) D=\(s.d)\(s.causal ? " c" : "")", -24), (name, -8),
                        (String(format: "%.1f", flops / dense / 1e9), 10), (label, -10),
                        (String(format: "%.1f", sparse * 1e3), 9),
                        (String(format: "%.1f", tm.stage1Seconds * 1e3), 7),
                        (String(format: "%.1f", tm.quantizationSeconds * 1e3), 7),
                        (String(format: "%.1f", tm.kernelSeconds * 1e3), 7),
                        (String(format: "%.2f%%", 100 * preparation), 7),
                        (String(format: "%.1f", Timing.median(oneShotTimes[c]) * 1e3), 8),
                        (String(format: "%.3f", res.statistics.density), 7),
                        (String(format: "%.3f", res.statistics.stage2SkippedFraction), 7),
                        (String(format: "%.4f", acc.cosine), 7),
                        (String(format: "%.4f", acc.relativeL1), 7),
                        (String(format: "%.2fx", speedup), 7),
                        (String(format: "%.1f", effective), 8),
                        (String(format: "%.0f%%", 100 * effective / peakAll), 6),
                    ]
                    say(row.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
                    rows.append(.object([
                        ("shape", .shape(shape)), ("causal", .bool(s.causal)), ("input", .string(name)), ("config", .string(label)),
                        ("dense_seconds", .finite(dense)), ("dense_gflops", .finite(flops / dense / 1e9)),
                        ("sparse_seconds", .finite(sparse)), ("stage1_seconds", .finite(tm.stage1Seconds)),
                        ("quantization_seconds", .finite(tm.quantizationSeconds)), ("kernel_seconds", .finite(tm.kernelSeconds)),
                        ("preparation_share_of_dense", .finite(preparation)),
                        ("value_pass_seconds", .finite(Timing.median(phaseTimes[c].map(\.valuePassSeconds)))),
                        ("one_shot_seconds", .finite(Timing.median(oneShotTimes[c]))),
                    ] + res.statistics.jsonPairs + [
                        ("accuracy", acc.json), ("speedup", .finite(speedup)), ("effective_gflops", .finite(effective)),
                        ("peak_share", .finite(effective / peakAll)),
                    ]))
                }
            }
        }
        doc.append(("rows", .array(rows)))
        say("""

            dense GF/s: exact fp32 attention (4*N^2*D*H flops, halved when causal 'c'); sparse ms: the whole
            sparse call through a plan and workspace; stage1/quant/kernel: its phases (ms, wall; V's overflow
            pass before stage 1 is in the sparse time, not in these); prep %: stage 1 + quantization over
            the dense call's time (median of the rounds' ratios); 1-shot ms:
            the same call through SpargeAttention.sparse (storage allocated per call); density: selected / allowed blocks;
            s2 skip: visited tiles skipped by stage 2 (lambda 50); cosine, rel L1 against dense;
            eff GF/s: dense-equivalent flops / sparse time; % peak: eff GF/s / measured peak of all threads.
            """)
        if !scalingOnly { doc.append(("score_micro_kernel", .array(kernelComparison()))) }
        if scalingOnly {
            var w = VideoLikeWorkload.medium
            w.heads = 8
            w.tokens = 4096
            scalingInput = (try w.generate(threads: threadCount), .recommended)
        }
        if let (t, p) = scalingInput, threadCount > 1 {
            // Interleaved (1 thread, all threads) pairs, so that a change in the host's load
            // hits both sides alike; on a shared machine the CPUs are not always all ours, so
            // the FMA loop's own scaling is measured in the same pairs.
            var sparse1: [Double] = [], sparseN: [Double] = [], dense1: [Double] = [], denseN: [Double] = []
            var host1: [Double] = [], hostN: [Double] = []
            var kernel1: [SparseTimings] = [], kernelN: [SparseTimings] = []
            var plan1: [Double] = [], planN: [Double] = [], planKernel1: [Double] = [], planKernelN: [Double] = []
            var scratchOut = [Float](repeating: 0, count: t.shape.queryElements)
            _ = try Self.sparse(t, p, threads: threadCount, into: &scratchOut)
            // The allocation-free form an inference engine uses: a plan and its workspace per
            // thread count, made once (the one-shot API allocates and first-touches its buffers
            // in every call).
            let plans = try [1, threadCount].map { try SpargePlan(shape: t.shape, parameters: p, threads: $0) }
            let workspaces = plans.map { $0.makeWorkspace() }
            func planCall(_ n: Int) throws -> SparseAttentionResult {
                try t.q.withUnsafeBufferPointer { q in try t.k.withUnsafeBufferPointer { k in try t.v.withUnsafeBufferPointer { v in
                    try scratchOut.withUnsafeMutableBufferPointer { o in
                        try plans[n].run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), output: AttentionOutput(o),
                                         workspace: workspaces[n])
                    } } } }
            }
            _ = try planCall(0)
            _ = try planCall(1)
            for _ in 0..<repeats {
                plan1.append(try Timing.seconds { planKernel1.append(try planCall(0).timings.kernelSeconds) })
                planN.append(try Timing.seconds { planKernelN.append(try planCall(1).timings.kernelSeconds) })
                sparse1.append(try Timing.seconds { kernel1.append(try Self.sparse(t, p, threads: 1, into: &scratchOut).timings) })
                sparseN.append(try Timing.seconds { kernelN.append(try Self.sparse(t, p, threads: threadCount, into: &scratchOut).timings) })
                dense1.append(try Timing.seconds { try Self.dense(t, causal: false, threads: 1, into: &scratchOut) })
                denseN.append(try Timing.seconds { try Self.dense(t, causal: false, threads: threadCount, into: &scratchOut) })
                host1.append(MachinePeak.measure(threads: 1, steps: 3_000_000))
                hostN.append(MachinePeak.measure(threads: threadCount, steps: 3_000_000))
            }
            let ratio = { (a: [Double], b: [Double]) in Timing.median(zip(a, b).map { $0 / $1 }) }
            doc.append(("thread_scaling", .object([
                ("shape", .shape(t.shape)), ("config", .string("top-k 0.5")),
                ("sparse_seconds", .object([("one_thread", .finite(Timing.median(sparse1))), ("all_threads", .finite(Timing.median(sparseN)))])),
                ("sparse_speedup", .finite(ratio(sparse1, sparseN))), ("dense_speedup", .finite(ratio(dense1, denseN))),
                ("host_fma_speedup", .finite(ratio(hostN, host1))),
                ("preparation_seconds", .object([("one_thread", .finite(Timing.median(kernel1.map(\.preparationSeconds)))),
                                                 ("all_threads", .finite(Timing.median(kernelN.map(\.preparationSeconds))))])),
                ("kernel_seconds", .object([("one_thread", .finite(Timing.median(kernel1.map(\.kernelSeconds)))),
                                            ("all_threads", .finite(Timing.median(kernelN.map(\.kernelSeconds))))])),
                ("plan_seconds", .object([("one_thread", .finite(Timing.median(plan1))), ("all_threads", .finite(Timing.median(planN)))])),
            ])))
            say(String(format: "\nthread scaling (%@, top-k 0.5, median of %d interleaved pairs): sparse %.1f ms on 1 thread, %.1f ms on %d: %.2fx; "
                         + "dense %.2fx; the host's FMA loop %.2fx at the same time",
                         t.shape.description, repeats, Timing.median(sparse1) * 1e3, Timing.median(sparseN) * 1e3, threadCount,
                         ratio(sparse1, sparseN), ratio(dense1, denseN), ratio(hostN, host1)))
            say(String(format: "  sparse phases, 1 thread / %d: stage 1 + quantization %.1f / %.1f ms, kernel %.1f / %.1f ms (%.2fx), other %.1f / %.1f ms",
                         threadCount,
                         Timing.median(kernel1.map(\.preparationSeconds)) * 1e3, Timing.median(kernelN.map(\.preparationSeconds)) * 1e3,
                         Timing.median(kernel1.map(\.kernelSeconds)) * 1e3, Timing.median(kernelN.map(\.kernelSeconds)) * 1e3,
                         ratio(kernel1.map(\.kernelSeconds), kernelN.map(\.kernelSeconds)),
                         Timing.median(zip(sparse1, kernel1).map { $0 - $1.preparationSeconds - $1.kernelSeconds }) * 1e3,
                         Timing.median(zip(sparseN, kernelN).map { $0 - $1.preparationSeconds - $1.kernelSeconds }) * 1e3))
            say(String(format: "  sparse through a plan and workspace (no allocation per call): %.1f ms on 1 thread, %.1f ms on %d: %.2fx (kernel phase %.2fx)",
                         Timing.median(plan1) * 1e3, Timing.median(planN) * 1e3, threadCount, ratio(plan1, planN),
                         ratio(planKernel1, planKernelN)))
        }
    }

    /// Decoding one token against a long cache: the cache's sparse attend (plus the append of
    /// the token's key and value) against its exact decode path.
    func decodeRows(threads: Int) throws -> JSONValue {
        var rows: [JSONValue] = []
        say("decode: B=1 H=32 Hkv=8 D=128, one query per step, causal; build \(BuildInfo.detail); \(threads) threads")
        say("median of \(repeats) steps after a warm-up; keys and values uniform in [-1, 1]\n")
        let header: [(String, Int)] = [("keys", 7), ("top-k", 5), ("kv type", 8), ("prefill s", 9), ("append ms", 9), ("sparse ms", 9),
                                       ("prep ms", 7), ("stage 1", 7), ("exact ms", 8), ("speedup", 7), ("density", 7), ("cosine", 7)]
        say(header.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
        say(header.map { String(repeating: "-", count: abs($0.1)) }.joined(separator: " "))
        for (n, topk) in [(32768, Float(0.5)), (131072, 0.5), (32768, 0.25), (131072, 0.25)] {
            let heads = 32, kvHeads = 8, d = 128
            var draws = DecodeUniforms()
            func uniforms(_ count: Int) -> [Float] { draws.next(count) }
            var p = SpargeParameters.recommended
            p.causal = true
            p.selection = .topK(PerHead(topk))
            // One cache per element type, given the same keys, values and queries; their steps interleave.
            let k = uniforms(kvHeads * n * d), v = uniforms(kvHeads * n * d)
            var caches: [SpargeKVCache] = [], prefills: [Double] = []
            for type in kvTypes {
                let cache = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n + repeats + 2, maxQueryLength: 1,
                                              parameters: p, elementType: type, threads: threads)
                prefills.append(try Timing.seconds {
                    try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
                        try cache.append(k: AttentionInput(kp), v: AttentionInput(vp), tokens: n) } }
                })
                caches.append(cache)
            }
            let types = caches.count
            var appendTimes = [[Double]](repeating: [], count: types), sparseTimes = appendTimes, exactTimes = appendTimes, ratios = appendTimes
            var preparationTimes = appendTimes, stage1Times = appendTimes
            var sparseOut = [[Float]](repeating: [Float](repeating: 0, count: heads * d), count: types), exactOut = sparseOut
            var summary = [SparseAttentionResult?](repeating: nil, count: types)
            for step in 0...repeats {
                let q = uniforms(heads * d), kt = uniforms(kvHeads * d), vt = uniforms(kvHeads * d)
                for (i, cache) in caches.enumerated() {
                    let a = try Timing.seconds {
                        try kt.withUnsafeBufferPointer { kp in try vt.withUnsafeBufferPointer { vp in
                            try cache.append(k: AttentionInput(kp), v: AttentionInput(vp), tokens: 1) } }
                    }
                    let sp = try Timing.seconds {
                        try q.withUnsafeBufferPointer { qp in try sparseOut[i].withUnsafeMutableBufferPointer { op in
                            summary[i] = try cache.attend(q: AttentionInput(qp), output: AttentionOutput(op), queries: 1) } }
                    }
                    let ex = try Timing.seconds {
                        try q.withUnsafeBufferPointer { qp in try exactOut[i].withUnsafeMutableBufferPointer { op in
                            try cache.attendExact(q: AttentionInput(qp), output: AttentionOutput(op), queries: 1) } }
                    }
                    if step == 0 { continue }  // warm-up
                    appendTimes[i].append(a); sparseTimes[i].append(sp); exactTimes[i].append(ex); ratios[i].append(ex / (sp + a))
                    if let timings = summary[i]?.timings {
                        preparationTimes[i].append(timings.preparationSeconds); stage1Times[i].append(timings.stage1CPUSeconds)
                    }
                }
            }
            for i in 0..<types {
                let acc = try Accuracy(sparseOut[i], reference: exactOut[i])
                let density = summary[i]?.statistics.density ?? 0
                let row: [(String, Int)] = [
                    ("\(n / 1024)k", 7), (String(format: "%.2f", topk), 5), (kvTypes[i].rawValue, 8), (String(format: "%.2f", prefills[i]), 9),
                    (String(format: "%.3f", Timing.median(appendTimes[i]) * 1e3), 9),
                    (String(format: "%.2f", Timing.median(sparseTimes[i]) * 1e3), 9),
                    (String(format: "%.2f", Timing.median(preparationTimes[i]) * 1e3), 7),
                    (String(format: "%.2f", Timing.median(stage1Times[i]) * 1e3), 7),
                    (String(format: "%.2f", Timing.median(exactTimes[i]) * 1e3), 8),
                    (String(format: "%.2fx", Timing.median(ratios[i])), 7),
                    (String(format: "%.3f", density), 7),
                    (String(format: "%.4f", acc.cosine), 7),
                ]
                say(row.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
                rows.append(.object([
                    ("keys", .int(n)), ("top_k", .shortest(topk)), ("kv_type", .string(kvTypes[i].rawValue)), ("heads", .int(heads)),
                    ("kv_heads", .int(kvHeads)), ("head_dim", .int(d)),
                    ("prefill_seconds", .finite(prefills[i])), ("append_seconds", .finite(Timing.median(appendTimes[i]))),
                    ("sparse_seconds", .finite(Timing.median(sparseTimes[i]))), ("exact_seconds", .finite(Timing.median(exactTimes[i]))),
                    ("preparation_seconds", .finite(Timing.median(preparationTimes[i]))),
                    ("stage1_cpu_seconds", .finite(Timing.median(stage1Times[i]))),
                    ("speedup", .finite(Timing.median(ratios[i]))), ("density", .finite(density)),
                    ("cosine", .finite(acc.cosine)),
                ]))
            }
        }
        say("""

            prefill s: appending the whole cache once (key side for every block); append ms: one token's
            key and value; sparse ms: stage 1 + INT8 kernel for one query; prep ms: its preparation (stage 1 and
            the query's quantization, wall); stage 1: stage 1's CPU time summed over the threads; exact ms: the exact fp32 decode;
            kv type: the element type the cache stores keys and values in (16-bit: half the bytes read);
            speedup: exact / (append + sparse); cosine: sparse against exact output of the last step.
            The 4 query heads of a kv group share each K/V block read, so the blocks read are the union of
            their selections (for independent picks at top-k 0.5: 1 - 0.5^4 = 94% in expectation; at 0.25: 68%).
            Uniform random data has flat attention, hence the low cosine: these rows measure speed.
            """)
        return .array(rows)
    }

    /// INT8 vs fp32 score tile on the same 128 x 64 x D=64 tile, one thread, at every kernel
    /// level this machine runs.
    func kernelComparison() -> [JSONValue] {
        say("")
        var entries: [JSONValue] = []
        for level in SpargeCPU.supportedLevels {
            guard let t = try? SpargeCPU.scoreTileThroughput(level: level, repeats: repeats) else { continue }
            let pv = (try? SpargeCPU.probabilityValueThroughput(level: level, repeats: repeats)) ?? (fp32: 0, fixedPoint: 0)
            entries.append(.object([("level", .string(level.rawValue)), ("fp32_gflops", .finite(t.fp32)), ("int8_gops", .finite(t.int8)),
                                    ("pv_fp32_gflops", .finite(pv.fp32)), ("pv_fixed_point_gops", .finite(pv.fixedPoint))]))
            say(String(format: "micro-kernels, 128x64 tile, D=64, 1 thread, %@: score fp32 %.1f GFLOP/s, INT8 %.1f GOP/s (%.2fx); P.V fp32 %.1f GFLOP/s, fixed point %.1f GOP/s (%.2fx)",
                         level.rawValue, t.fp32, t.int8, t.int8 / t.fp32, pv.fp32, pv.fixedPoint, pv.fixedPoint / pv.fp32))
        }
        return entries
    }

    /// Sparse attention at H=16, N=32768, D=64 and the process's peak resident memory.
    func memoryCheck(threads: Int) throws -> JSONValue {
        let t = try Self.mediumInput(heads: 16, tokens: 32768, headDim: 64, threads: threads)
        var out = [Float](repeating: 0, count: t.shape.queryElements)
        let ioBytes = 4 * (t.q.count + t.k.count + t.v.count + out.count)
        let before = ResidentMemory.peakBytes() ?? 0
        let seconds = try Timing.seconds {
            try t.q.withUnsafeBufferPointer { q in
                try t.k.withUnsafeBufferPointer { k in
                    try t.v.withUnsafeBufferPointer { v in
                        try out.withUnsafeMutableBufferPointer { o in
                            _ = try SpargeAttention.sparse(q: q, k: k, v: v, output: o, shape: t.shape, parameters: .recommended, threads: threads)
                        }
                    }
                }
            }
        }
        let after = ResidentMemory.peakBytes() ?? 0
        say(String(format: "memory: %@, sparse top-k 0.5 in %.2f s; Q+K+V+O = %.0f MiB; peak resident %.0f MiB (%.2fx) (before the call: %.0f MiB)",
                   t.shape.description, seconds, Double(ioBytes) / 1048576, Double(after) / 1048576,
                   Double(after) / Double(ioBytes), Double(before) / 1048576))
        return .object([("shape", .shape(t.shape)), ("seconds", .finite(seconds)), ("io_bytes", .int(ioBytes)),
                        ("peak_resident_bytes", .int(Int(after))), ("peak_resident_before_bytes", .int(Int(before)))])
    }

    /// The medium video-like input at B=1 and the given sizes.
    static func mediumInput(heads: Int, tokens: Int, headDim: Int, threads: Int) throws -> VideoLikeWorkload.Tensors {
        var w = VideoLikeWorkload.medium
        w.heads = heads
        w.tokens = tokens
        w.headDim = headDim
        return try w.generate(threads: threads)
    }

    /// Sparse attention into a caller-owned output that is reused across calls, as an
    /// inference engine does (a fresh array per call would add first-touch page faults).
    static func sparse(_ t: VideoLikeWorkload.Tensors, _ p: SpargeParameters, threads: Int, into out: inout [Float]) throws -> SparseAttentionResult {
        try t.q.withUnsafeBufferPointer { q in
            try t.k.withUnsafeBufferPointer { k in
                try t.v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try SpargeAttention.sparse(q: q, k: k, v: v, output: o, shape: t.shape, parameters: p, threads: threads)
                    }
                }
            }
        }
    }

    /// Exact attention into a reused caller-owned output.
    static func dense(_ t: VideoLikeWorkload.Tensors, causal: Bool, threads: Int, into out: inout [Float]) throws {
        try t.q.withUnsafeBufferPointer { q in
            try t.k.withUnsafeBufferPointer { k in
                try t.v.withUnsafeBufferPointer { v in
                    try out.withUnsafeMutableBufferPointer { o in
                        try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: t.shape, causal: causal, threads: threads)
                    }
                }
            }
        }
    }

    static func medianTimings(_ t: [SparseTimings]) -> SparseTimings {
        let sorted = t.sorted { $0.preparationSeconds + $0.kernelSeconds < $1.preparationSeconds + $1.kernelSeconds }
        return sorted.isEmpty ? t[0] : sorted[sorted.count / 2]
    }
}

/// The decode tables' keys, values and queries: uniform in [-1, 1) from a 64-bit LCG, the same
/// stream in every run (each table row starts a new one).
struct DecodeUniforms {
    private var state: UInt64 = 0x9E37_79B9

    mutating func next(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }
}
