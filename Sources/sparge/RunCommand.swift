import Foundation
import SpargeAttn
import SpargeFormats

/// `sparge run`: attention of the `q`, `k`, `v` tensors of a safetensors file, with the
/// results written to another file and a report on stdout (text, or with `--json` one JSON
/// object: a stable interface for scripts); `--compare` adds the accuracy against exact
/// attention. Its defaults are those of the recommended GPU entry point.
struct RunCommand {
    static let usage = """
        Usage: sparge run --input IN.safetensors [--output OUT.safetensors]
          [--bq 128] [--bk 64] [--simthreshd1 X] [--cdfthreshd X | --top-k X] [--pvthreshd X|inf]
          [--causal [--sliding-window W]] [--attention-sink] [--no-smooth-k] [--smooth-q] [--fixed-point-pv] [--gpu-rounding]
          [--quant cuda|triton] [--dense] [--mask NAME] [--config tuned.json [--layer NAME]] [--threads N] [--repeat N]
          [--backend cpu|cuda] [--token-order raster|hilbert|FILE.npy [--grid HxW|TxHxW] [--prefix K]]
          [--compare] [--json]

        Reads q (B,H,Nq,D), k and v (B,Hkv,Nk,D; Hkv divides H) in f16, bf16 or f32 from IN and
        runs sparse attention (stage 1 prediction, INT8 Q.K, stage-2 filter). On the CPU, f16 and
        bf16 tensors go to the library as they are (read in place) and the --repeat calls share
        one plan and workspace, as in an inference engine.

          --input PATH        safetensors file holding q, k, v (required)
          --output PATH       write o (f32 B,H,Nq,D), mask (u8 B,H,nq,nk), q_int8, q_scale,
                              k_int8, k_scale, k_mean; with --dense only o
          --bq N, --bk N      query / key block size (default 128, 64)
          --simthreshd1 X     theta, block self-similarity threshold (default -0.1)
          --top-k X           keep floor(X * nk) key blocks per query block, X in (0,1] (default 0.5;
                              --topk, the old spelling, is still accepted)
          --cdfthreshd X      CDF mode instead: keep blocks up to cumulative probability X in [0,1]
          --pvthreshd X|inf   lambda of the stage-2 filter (default 50); inf turns stage 2 off
          --causal            causal attention; with Nq != Nk the queries are the last Nq
                              positions: query t sees keys up to t + Nk - Nq
          --sliding-window W  with --causal, each query sees only the last W keys up to its
                              position, itself included (local attention)
          --attention-sink    always keep key block 0
          --no-smooth-k       do not subtract the mean of K
          --smooth-q          also centre each query block before INT8 and add the mean's exact
                              product with the keys back (SageAttention2's Q smoothing; not in
                              the authors' SpargeAttn kernels, so not for reproducing them)
          --fixed-point-pv    P.V with integer P (13 bits per tile row) and V (12 bits and a sign
                              per key block and channel), exact int32 sums: faster on the CPU
          --gpu-rounding      round to fp16 where the GPU code does (reproduces GPU masks)
          --quant cuda|triton INT8 quantization of Q of the CUDA (default) or Triton path
          --dense             exact dense attention instead (writes o only)
          --mask NAME         use the block map stored under NAME in IN (u8 or bool, B,H,nq,nk)
          --config PATH       apply per-head theta, tau or top-k, and lambda tuned by sparge tune
                              (and its block sizes unless --bq/--bk are given)
          --layer NAME        the layer of --config to use (needed when it holds several)
          --threads N         worker threads (default: all CPUs)
          --repeat N          run the attention N times and report the median time (default 1)
          --backend cpu|cuda  where to run (default cpu); cuda needs a build with
                              --traits default,CUDA, an NVIDIA GPU (compute capability 8.0+),
                              its driver and NVRTC,
                              and computes P.V in fp16 (the CPU reference of it: pvNumerics fp16)
          --no-skip-counts    with --backend cuda: leave the filter's skips above lambda 40 uncounted
                              (they cannot change the output; deciding them costs the Hopper kernel
                              about 4% at head dim 64); the statistics then say "at least"
          --compare           also compute exact attention in float64 (single-threaded,
                              O(Nq*Nk*D)) and report cosine, relative L1 and L2, max abs error
          \(OutputFormat.help)
        \(TokenOrderOption.help)

        theta, top-k, cdfthreshd and pvthreshd take one value or one per head: --simthreshd1 0.3,0.6
        Stdout: a text report; with --json one JSON object: mode, shape, threads, seconds
        (attention only, median), gflops_dense_equivalent, density (selected over allowed blocks:
        those the causal mask leaves), sparsity, density_of_all_blocks, stage2_skipped_fraction,
        sparse calls' timings {preparation_seconds, kernel_seconds (wall), stage1_cpu_seconds,
        quantization_cpu_seconds, value_pass_seconds (wall, part of the preparation)}, each the
        median over the calls, and preparation_seconds_all; with --compare accuracy {cosine,
        relative_l1, relative_l2, rmse, max_abs_error}, and more.
        Exit status 2 on bad arguments, bad files or invalid inputs (message on stderr).
        """

    static let flags: Set<String> = ["causal", "attention-sink", "no-smooth-k", "smooth-q", "fixed-point-pv", "gpu-rounding", "dense", "compare", "no-skip-counts", OutputFormat.flag]
    static let options: Set<String> = TokenOrderOption.names.union([
        "input", "output", "bq", "bk", "simthreshd1", "cdfthreshd", "top-k", "pvthreshd", "quant",
        "mask", "threads", "repeat", "config", "layer", "backend", "sliding-window",
    ])

    var input: String
    var output: String?
    var parameters = SpargeParameters.recommended
    var dense: Bool
    var maskName: String?
    var config: ConfigOption?
    var threads: Int?
    var repeats: Int
    var backend: Backend
    var countSkippedTiles: Bool
    var tokenOrder: TokenOrderOption?
    var compare: Bool
    var json: Bool

    /// Parses the arguments; `nil` when `--help` was printed.
    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: Self.flags, options: Self.options,
                                          usage: Self.usage) else { return nil }
        guard let input = a.string("input") else { throw UsageError("run needs --input IN.safetensors (see sparge run --help)") }
        self.input = input
        output = a.string("output")
        dense = a.flag("dense")
        maskName = a.string("mask")
        threads = try a.int("threads", in: 1...4096)
        repeats = try a.int("repeat", in: 1...1_000_000) ?? 1

        backend = try Backend(a.string("backend"))
        countSkippedTiles = !a.flag("no-skip-counts")
        if !countSkippedTiles && backend != .cuda {
            throw UsageError("--no-skip-counts applies to --backend cuda (the CPU path counts every skip at no cost); drop it or add --backend cuda")
        }
        tokenOrder = try a.tokenOrder()
        compare = a.flag("compare")
        json = a.flag(OutputFormat.flag)
        try a.applyAttentionOptions(to: &parameters)
        config = try ConfigOption(a)
        config?.adjustBlocks(&parameters)
        // The GPU kernel's P.V is fp16; its CPU reference is the same numerics.
        if backend == .cuda { parameters.gpuReproduction.pvNumerics = .fp16 }
        if backend == .cuda && dense { throw UsageError("--dense runs on the CPU only; drop --backend cuda (PyTorch's SDPA is the GPU's dense reference)") }
        if dense && maskName != nil { throw UsageError("--dense and --mask exclude each other") }
        // Ranges that the shape does not affect are checked now, before reading a large file.
        try parameters.validate()
    }

    func execute() throws {
        if let output {
            // Fail before the (possibly long) computation when the result cannot be written,
            // or would overwrite the input (q, k, v would be lost).
            try checkOutput(output, option: "--output", inputs: [input] + (config.map { [$0.path] } ?? []))
        }
        let file = try SafeTensorsFile.read(path: input)
        let qt = try file.tensor("q"), kt = try file.tensor("k"), vt = try file.tensor("v")
        let shape = try Self.shape(q: qt, k: kt, v: vt)
        var parameters = self.parameters
        if let config { parameters = try config.apply(to: parameters, heads: shape.heads) }
        try parameters.validate(for: shape)
        var q = try Self.floats(qt, "q"), k = try Self.floats(kt, "k"), v = try Self.floats(vt, "v")
        let order = try tokenOrder?.order(for: shape)
        // The CPU calls take the order; the GPU backend gets tensors permuted here.
        let permuteHere = backend == .cuda ? order : nil
        if let permuteHere {
            (q, k, v) = (try permuteHere.permuted(q, rowWidth: shape.headDim), try permuteHere.permuted(k, rowWidth: shape.headDim),
                         try permuteHere.permuted(v, rowWidth: shape.headDim))
        }
        let (nq, nk) = shape.blockCounts(for: parameters)
        let givenMap = try maskName.map {
            try Self.blockMap(try file.tensor($0), label: "mask '\($0)'", shape: shape, parameters: parameters,
                              advice: "pass the --bq/--bk it was made with")
        }
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount

        // The output buffer is allocated once, outside the timed region: `seconds` is the
        // attention call alone. Repeated CPU sparse calls share one plan and workspace, as an
        // engine's would (no allocation after the first call), unless the quantized tensors are
        // captured for --output (a one-shot call's option).
        var o = [Float](repeating: 0, count: shape.queryElements)
        var result: SparseAttentionResult? = nil
        var samples: [Double] = []
        var phases: [SparseTimings] = []
        let plan = !dense && backend == .cpu && output == nil
            ? try SpargePlan(shape: shape, parameters: parameters, tokenOrder: order, threads: threadCount) : nil
        let workspace = plan?.makeWorkspace()
        try Self.withInputs(qt, kt, vt, floats: q, k, v, native: backend == .cpu) { q, k, v in
            try o.withUnsafeMutableBufferPointer { o in
                for _ in 0..<repeats {
                    samples.append(try Timing.seconds {
                        if dense {
                            try SpargeAttention.dense(q: q, k: k, v: v, output: AttentionOutput(o), shape: shape, tokenOrder: order,
                                                      causal: parameters.causal, slidingWindow: parameters.slidingWindow,
                                                      threads: threadCount)
                        } else if backend == .cuda {
                            result = try CUDABackend.sparse(q: q, k: k, v: v, output: AttentionOutput(o), shape: shape,
                                                            parameters: parameters, blockMap: givenMap, captureQuantized: output != nil,
                                                            countSkippedTiles: countSkippedTiles)
                        } else if let plan, let workspace {
                            result = try plan.run(q: q, k: k, v: v, output: AttentionOutput(o), workspace: workspace, blockMap: givenMap)
                        } else {
                            result = try SpargeAttention.sparse(
                                q: q, k: k, v: v, output: AttentionOutput(o), shape: shape, parameters: parameters, tokenOrder: order,
                                blockMap: givenMap, threads: threadCount, captureQuantized: output != nil)
                        }
                    })
                    if let result { phases.append(result.timings) }
                }
            }
        }
        let seconds = Timing.median(samples)
        // Exact attention in float64 over the same inputs, masks and scale, in the order of q, k,
        // v here (permuted for the GPU: attention without a causal mask commutes with the order).
        let accuracy = try compare ? Accuracy(o, reference: try Float64Reference.attentionWithLSE(
            q: q, k: k, v: v, shape: shape, causalOffset: parameters.causal ? parameters.causalOffset(for: shape) : nil,
            slidingWindow: parameters.slidingWindow, softmaxScale: parameters.softmaxScale).output) : nil
        if let permuteHere { o = try permuteHere.unpermuted(o, rowWidth: shape.headDim) }

        if let output {
            var out = try SafeTensorsFile()
            try out.insert(Tensor(floats: o, shape: [shape.batch, shape.heads, shape.queryLength, shape.headDim]), named: "o")
            if let result, let m = result.blockMap {
                try out.insert(Tensor(uint8s: m.bits, shape: [m.batch, m.heads, m.queryBlocks, m.keyBlocks]), named: "mask")
            }
            if let result {
                if let qz = result.quantized {
                    try out.insert(Tensor(int8s: qz.qInt8, shape: [shape.batch, shape.heads, shape.queryLength, shape.headDim]), named: "q_int8")
                    try out.insert(Tensor(floats: qz.qScale, shape: [shape.batch, shape.heads, nq]), named: "q_scale")
                    try out.insert(Tensor(int8s: qz.kInt8, shape: [shape.batch, shape.kvHeads, shape.keyLength, shape.headDim]), named: "k_int8")
                    try out.insert(Tensor(floats: qz.kScale, shape: [shape.batch, shape.kvHeads, nk]), named: "k_scale")
                    try out.insert(Tensor(floats: qz.kMean, shape: [shape.batch, shape.kvHeads, shape.headDim]), named: "k_mean")
                }
            }
            out.metadata["producer"] = "sparge run"
            out.metadata["parameters"] = JSONValue.parameters(parameters).text
            try out.write(path: output)
        }
        if json {
            print(report(shape: shape, parameters: parameters, threads: threadCount, seconds: seconds, samples: samples,
                         result: result, phases: phases, accuracy: accuracy).text)
        } else {
            print(textReport(shape: shape, parameters: parameters, threads: threadCount, seconds: seconds, result: result,
                             accuracy: accuracy))
        }
    }

    // MARK: Input checks

    /// The attention shape of q, k, v, with a clear error for any inconsistency; `nhd`: the
    /// tensors are `B,N,H,D` (messages still give shapes as `B,H,N,D`).
    static func shape(q: Tensor, k: Tensor, v: Tensor, nhd: Bool = false) throws -> AttentionShape {
        for (name, t) in [("q", q), ("k", k), ("v", v)] {
            guard t.shape.count == 4 else {
                throw UsageError("tensor '\(name)' has shape \(t.shape); it must have 4 dimensions \(nhd ? "B,N,H,D" : "B,H,N,D")")
            }
            guard t.dtype.isFloatingPoint else {
                throw UsageError("tensor '\(name)' is \(t.dtype); q, k, v must be F16, BF16 or F32")
            }
            guard t.shape.allSatisfy({ $0 > 0 }) else {
                throw UsageError("tensor '\(name)' has shape \(t.shape); every dimension must be at least 1")
            }
        }
        let (qs, ks, vs) = (hndDimensions(q.shape, nhd: nhd), hndDimensions(k.shape, nhd: nhd), hndDimensions(v.shape, nhd: nhd))
        guard ks == vs else { throw UsageError("k has shape \(ks) but v has \(vs); they must be equal (B,Hkv,Nk,D)") }
        guard qs[0] == ks[0] else { throw UsageError("q has batch \(qs[0]) but k has \(ks[0]); they must be equal") }
        guard qs[3] == ks[3] else { throw UsageError("q has head dim \(qs[3]) but k has \(ks[3]); they must be equal") }
        guard qs[1] % ks[1] == 0 else {
            throw UsageError("q has \(qs[1]) heads, k and v \(ks[1]); the K/V heads must divide the query heads")
        }
        let shape = AttentionShape(batch: qs[0], heads: qs[1], kvHeads: ks[1], queryLength: qs[2], keyLength: ks[2], headDim: qs[3])
        try shape.validate()
        return shape
    }

    /// The `B,H,N,D` sizes of a 4-D tensor's shape, given as `B,N,H,D` when `nhd`.
    static func hndDimensions(_ s: [Int], nhd: Bool) -> [Int] { nhd ? [s[0], s[2], s[1], s[3]] : s }

    /// q, k, v as the timed calls take them: with `native`, the file's own fp16 or bf16 storage
    /// when all three have that type (read in place, as from an engine holding half-precision
    /// tensors), else the fp32 arrays.
    static func withInputs(_ qt: Tensor, _ kt: Tensor, _ vt: Tensor, floats q: [Float], _ k: [Float], _ v: [Float], native: Bool,
                           _ body: (AttentionInput, AttentionInput, AttentionInput) throws -> Void) throws {
        let type = qt.dtype
        if native && (type == .float16 || type == .bfloat16) && kt.dtype == type && vt.dtype == type {
            func input(_ raw: UnsafeRawBufferPointer, _ count: Int) -> AttentionInput {
                type == .float16
                    ? AttentionInput(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: Float16.self), count: count))
                    : AttentionInput(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: BFloat16.self), count: count))
            }
            try qt.data.withUnsafeBytes { qb in
                try kt.data.withUnsafeBytes { kb in
                    try vt.data.withUnsafeBytes { vb in
                        try body(input(qb, qt.elementCount), input(kb, kt.elementCount), input(vb, vt.elementCount))
                    }
                }
            }
            return
        }
        try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in try body(AttentionInput(q), AttentionInput(k), AttentionInput(v)) }
            }
        }
    }

    static func floats(_ t: Tensor, _ name: String) throws -> [Float] {
        let x = try t.floats()
        // A clearer message than the library's (which reports a flat index).
        if let i = x.firstIndex(where: { !$0.isFinite }) {
            throw UsageError("tensor '\(name)' holds \(x[i]) at flat index \(i); inputs must be finite")
        }
        return x
    }

    /// The block map in tensor `t` (u8 or bool, `B,H,nq,nk` for `shape` under `parameters`'
    /// block sizes); `label` names it in messages (`shapeLabel` in the wrong-shape one, `label`
    /// by default) and `advice` says how to fix a wrong shape.
    static func blockMap(_ t: Tensor, label: String, shapeLabel: String? = nil, shape: AttentionShape,
                         parameters: SpargeParameters, advice: String) throws -> BlockMap {
        guard t.dtype == .uint8 || t.dtype == .bool else {
            throw UsageError("\(label) is \(t.dtype); it must be U8 or BOOL")
        }
        let (nq, nk) = shape.blockCounts(for: parameters)
        let expected = [shape.batch, shape.heads, nq, nk]
        guard t.shape == expected else {
            throw UsageError("\(shapeLabel ?? label) has shape \(t.shape) but B,H,nq,nk for blocks \(parameters.blockQ)x\(parameters.blockK) is \(expected); \(advice)")
        }
        return try BlockMap(batch: shape.batch, heads: shape.heads, queryBlocks: nq, keyBlocks: nk, bits: t.uint8s())
    }

    // MARK: Output

    var mode: String { dense ? "dense" : maskName != nil ? "mask" : "sparse" }

    func report(shape s: AttentionShape, parameters: SpargeParameters, threads: Int, seconds: Double, samples: [Double],
                result: SparseAttentionResult?, phases: [SparseTimings] = [], accuracy: Accuracy?) -> JSONValue {
        let flops = s.denseFlops(causal: parameters.causal)
        var pairs: [(String, JSONValue)] = [
            ("mode", .string(mode)),
            ("shape", .shape(s)),
            ("threads", .int(threads)),
            ("build", .string(BuildInfo.name)),
            ("repeat", .int(repeats)),
            ("seconds", .finite(seconds)),
            ("seconds_all", .array(samples.map { .finite($0) })),
            ("gflops_dense_equivalent", seconds > 0 ? .finite(flops / seconds / 1e9) : .null),
        ]
        if let r = result {
            pairs += r.statistics.jsonPairs
            // The phases of the timed calls, each the median over the calls (wall seconds; CPU
            // seconds summed over threads), and the preparation of every call.
            let all = phases.isEmpty ? [r.timings] : phases
            func median(_ f: (SparseTimings) -> Double) -> JSONValue { .finite(Timing.median(all.map(f))) }
            pairs.append(("timings", .object([
                ("preparation_seconds", median(\.preparationSeconds)), ("kernel_seconds", median(\.kernelSeconds)),
                ("stage1_cpu_seconds", median(\.stage1CPUSeconds)), ("quantization_cpu_seconds", median(\.quantizationCPUSeconds)),
                ("value_pass_seconds", median(\.valuePassSeconds)),
                ("preparation_seconds_all", .array(all.map { .finite($0.preparationSeconds) })),
            ])))
            if let perHead = r.densityPerHead { pairs.append(("density_per_head", .array(perHead.map { .finite($0) }))) }
            if let m = r.blockMap {
                pairs.append(("block_map_shape", .array([m.batch, m.heads, m.queryBlocks, m.keyBlocks].map { .int($0) })))
            }
        } else {
            // Dense attention computes every allowed block and skips nothing.
            pairs += [("density", .number(1)), ("sparsity", .number(0)), ("stage2_skipped_fraction", .number(0))]
        }
        if let accuracy { pairs.append(("accuracy", accuracy.json)) }
        pairs += [("parameters", JSONValue.parameters(parameters)), ("input", .string(input))]
        if let config { pairs.append(("config_layer", .string(config.layer.name))) }
        if let tokenOrder { pairs.append(("token_order", .string(tokenOrder.description))) }
        if let output { pairs.append(("output", .string(output))) }
        return .object(pairs)
    }

    /// The text report: what ran, the time, the density and, with `--compare`, the accuracy.
    func textReport(shape s: AttentionShape, parameters: SpargeParameters, threads: Int, seconds: Double,
                    result: SparseAttentionResult?, accuracy: Accuracy?) -> String {
        let flops = s.denseFlops(causal: parameters.causal)
        var lines = [
            "\(mode) attention of \(input): B=\(s.batch) H=\(s.heads) Hkv=\(s.kvHeads) Nq=\(s.queryLength) Nk=\(s.keyLength) D=\(s.headDim), \(threads) threads",
            (dense ? "exact (dense)" : "settings: \(parameters)") + (tokenOrder.map { "; token order \($0.description)" } ?? ""),
            String(format: "time: %.3f ms (median of %d), %.1f GFLOP/s dense-equivalent", seconds * 1e3, repeats,
                   seconds > 0 ? flops / seconds / 1e9 : 0),
        ]
        if let r = result {
            let st = r.statistics
            lines.append(st.densityText + String(format: "; stage 2 skipped %@%.3f of visited tiles", (st.skippedTilesCounted ? "" : "at least ") as NSString,
                                                 st.stage2SkippedFraction))
            if let perHead = r.densityPerHead {
                lines.append("density per head: " + perHead.map { String(format: "%.3f", $0) }.joined(separator: " "))
            }
        } else {
            lines.append("density 1.000 of allowed blocks, sparsity 0.000 (dense)")
        }
        if let accuracy { lines.append("accuracy vs exact (float64): " + accuracy.text) }
        if let output { lines.append("wrote \(output)") }
        return lines.joined(separator: "\n")
    }
}
