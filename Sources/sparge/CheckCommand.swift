import Foundation
import SpargeAttn
import SpargeFormats

/// `sparge check`: verifies a GPU attention output against this library, for CI.
///
/// Recomputes the GPU entry point's result on the CPU (the preset's parameters, block sizes
/// and numerics: the "faithful" result) and exact dense attention, compares the GPU output
/// with both per head, compares the GPU's block map with the CPU's when one is given, and
/// decides PASS / FAIL from the per-head accuracy against the faithful result.
/// Exit status 0 pass, 1 fail, 2 bad input.
struct CheckCommand {
    static let usage = """
        Usage: sparge check --q Q --k K --v V --gpu-output O [--gpu-mask M]
          [--preset sage2-topk|sage2-cdf|triton|block-sparse] [--arch sm80|sm89|sm90]
          [--layout HND|NHD] [--bq N] [--bk N] [--simthreshd1 X] [--cdfthreshd X | --top-k X]
          [--pvthreshd X|inf] [--causal] [--attention-sink] [--no-smooth-k] [--quant cuda|triton]
          [--tolerance COS,L1] [--json] [--threads N]

        Checks the output O of a GPU SpargeAttn call on the inputs Q, K, V against the CPU.
        Each tensor is FILE.npy, FILE.safetensors:NAME, or a safetensors file with one tensor.

          --q, --k, --v       q (B,H,Nq,D), k and v (B,Hkv,Nk,D), f16, bf16 or f32 (required)
          --gpu-output O      the GPU's output (B,H,Nq,D), f16, bf16 or f32 (required)
          --gpu-mask M        the GPU's block map (u8 or bool, B,H,nq,nk): required by
                              block-sparse (it is then the map used); otherwise compared with
                              the CPU's predicted map (agreement and densities)
          --preset P          the GPU entry point (default sage2-topk):
                                sage2-topk   spas_sage2_attn_meansim_topk_cuda (top-k 0.5, theta -0.1, lambda 50)
                                sage2-cdf    spas_sage2_attn_meansim_cuda (CDF 0.98, theta 0.6, lambda 50)
                                triton       spas_sage_attn_meansim, Triton (CDF 0.96, theta 0.3, no stage 2)
                                block-sparse block_sparse_sage2_attn_cuda (the caller's map, lambda 50)
          --arch A            GPU generation of the CUDA presets (default sm90): sm80 blocks
                              128x64 and fp16 P.V; sm89 128x64 and FP8 V; sm90 64x128 and FP8 V
          --layout HND|NHD    layout of q, k, v and O (default HND = B,H,N,D; NHD = B,N,H,D)
          --bq ... --quant    override the preset's values (as in sparge run); theta, top-k,
                              cdfthreshd and pvthreshd take one value or one per head
          --causal            causal attention (the GPU call's is_causal)
          --tolerance COS,L1  pass when every head's cosine >= COS and relative L1 <= L1
                              against the faithful CPU result (default 0.9995,0.005)
          --json              one JSON object on stdout instead of the text report
          --threads N         worker threads (default: all CPUs)

        Rows that see no key (causal, every kept block in their future) are left out: the
        kernels return different values there by design (ExactSemantics.md section 4).
        Exit status: 0 PASS, 1 FAIL, 2 bad arguments or files (one line on stderr).
        """

    static let flags: Set<String> = ["causal", "attention-sink", "no-smooth-k", "json"]
    static let options: Set<String> = [
        "q", "k", "v", "gpu-output", "gpu-mask", "preset", "arch", "layout", "bq", "bk", "simthreshd1",
        "cdfthreshd", "top-k", "pvthreshd", "quant", "tolerance", "threads",
    ]

    /// Defaults of `--tolerance`: the golden Triton outputs are within cosine 0.999999 and
    /// relative L1 0.0004 of the faithful result per head (the fp32-P.V emulation: 0.002);
    /// a head scaled by 1.01 has relative L1 0.01 and must fail.
    static let defaultCosine = 0.9995
    static let defaultL1 = 0.005

    var qSpec: String, kSpec: String, vSpec: String, outputSpec: String
    var maskSpec: String?
    var preset: GPUPreset
    var arch: GPUArch
    var nhd: Bool
    var parameters: SpargeParameters
    var minCosine = defaultCosine
    var maxL1 = defaultL1
    var json: Bool
    var threads: Int?

    /// Parses the arguments; `nil` when `--help` was printed.
    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: Self.flags, options: Self.options,
                                          usage: Self.usage) else { return nil }
        func required(_ name: String) throws -> String {
            guard let s = a.string(name) else { throw UsageError("check needs --\(name) (see sparge check --help)") }
            return s
        }
        qSpec = try required("q"); kSpec = try required("k"); vSpec = try required("v")
        outputSpec = try required("gpu-output")
        maskSpec = a.string("gpu-mask")
        let presetName = a.string("preset") ?? GPUPreset.sage2TopK.rawValue
        guard let preset = GPUPreset(rawValue: presetName.lowercased()) else {
            throw UsageError("--preset '\(presetName)' is not one of \(GPUPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.preset = preset
        let archName = a.string("arch") ?? GPUArch.sm90.rawValue
        guard let arch = GPUArch(rawValue: archName.lowercased()) else {
            throw UsageError("--arch '\(archName)' is not one of \(GPUArch.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.arch = arch
        switch (a.string("layout") ?? "HND").uppercased() {
        case "HND": nhd = false
        case "NHD": nhd = true
        case let other: throw UsageError("--layout '\(other)' is not HND or NHD")
        }
        if preset == .blockSparse && maskSpec == nil {
            throw UsageError("--preset block-sparse needs --gpu-mask (the block map the GPU call was given)")
        }
        json = a.flag("json")
        threads = try a.int("threads", in: 1...4096)
        if let t = a.string("tolerance") {
            let parts = t.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let c = parts[0], let l = parts[1], c.isFinite, l.isFinite, c <= 1, l >= 0 else {
                throw UsageError("--tolerance '\(t)' is not COS,L1 (e.g. 0.9995,0.005; COS <= 1, L1 >= 0)")
            }
            (minCosine, maxL1) = (c, l)
        }

        // The preset first, then the explicit options.
        var p = SpargeParameters.preset(preset, arch: arch)
        try a.applyAttentionOptions(to: &p)
        parameters = p
    }

    // MARK: Reading

    /// A float tensor as stored (`B,H,N,D`, or `B,N,H,D` with `--layout NHD`).
    private func floatTensor(_ source: inout TensorSource, _ spec: String, _ what: String) throws -> Tensor {
        let t = try source.read(spec, for: what)
        guard t.dtype.isFloatingPoint else {
            throw UsageError("\(what) '\(spec)' is \(t.dtype); it must be F16, BF16 or F32")
        }
        guard t.shape.count == 4 else {
            throw UsageError("\(what) '\(spec)' has shape \(t.shape); it must have 4 dimensions \(nhd ? "B,N,H,D" : "B,H,N,D")")
        }
        return t
    }

    /// Where the rows of a `heads x tokens` tensor of this check live: the library's HND or NHD layout.
    private func layout(heads: Int, tokens: Int, headDim: Int) -> TensorLayout {
        nhd ? .nhd(heads: heads, tokens: tokens, headDim: headDim) : .hnd(heads: heads, tokens: tokens, headDim: headDim)
    }

    // MARK: Running

    /// Runs the check and prints the report; returns whether it passed.
    func execute() throws -> Bool {
        var source = TensorSource()
        let qt = try floatTensor(&source, qSpec, "--q"), kt = try floatTensor(&source, kSpec, "--k")
        let vt = try floatTensor(&source, vSpec, "--v"), ot = try floatTensor(&source, outputSpec, "--gpu-output")
        let shape = try RunCommand.shape(q: qt, k: kt, v: vt, nhd: nhd)
        guard ot.shape == qt.shape else {
            throw UsageError("--gpu-output has shape \(RunCommand.hndDimensions(ot.shape, nhd: nhd)) but q is \(RunCommand.hndDimensions(qt.shape, nhd: nhd)); they must be equal")
        }
        try parameters.validate(for: shape)
        let q = try RunCommand.floats(qt, "q"), k = try RunCommand.floats(kt, "k"), v = try RunCommand.floats(vt, "v")
        let gpu = try ot.floats()   // non-finite GPU values are a failure, not bad input
        let (bq, bk) = (parameters.blockQ, parameters.blockK)
        let (nq, nk) = shape.blockCounts(for: parameters)
        let gpuMap = try maskSpec.map {
            try RunCommand.blockMap(try source.read($0, for: "--gpu-mask"), label: "--gpu-mask '\($0)'", shapeLabel: "--gpu-mask",
                                    shape: shape,
                                    parameters: parameters, advice: "pass the --arch or --bq/--bk of the GPU call")
        }
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let given = preset == .blockSparse ? gpuMap : nil
        // The tensors are read in their own layout; the outputs are written in the same one.
        let qLayout = layout(heads: shape.heads, tokens: shape.queryLength, headDim: shape.headDim)
        let kvLayout = layout(heads: shape.kvHeads, tokens: shape.keyLength, headDim: shape.headDim)
        var faithful = [Float](repeating: 0, count: shape.queryElements), dense = faithful
        let result = try q.withUnsafeBufferPointer { q in
            try k.withUnsafeBufferPointer { k in
                try v.withUnsafeBufferPointer { v in
                    let q = AttentionInput(q, layout: qLayout), k = AttentionInput(k, layout: kvLayout), v = AttentionInput(v, layout: kvLayout)
                    let result = try faithful.withUnsafeMutableBufferPointer {
                        try SpargeAttention.sparse(q: q, k: k, v: v, output: AttentionOutput($0, layout: qLayout), shape: shape,
                                                   parameters: parameters, blockMap: given, threads: threadCount)
                    }
                    try dense.withUnsafeMutableBufferPointer {
                        try SpargeAttention.dense(q: q, k: k, v: v, output: AttentionOutput($0, layout: qLayout), shape: shape,
                                                  causal: parameters.causal, softmaxScale: parameters.softmaxScale, threads: threadCount)
                    }
                    return result
                }
            }
        }
        let cpuMap = try result.ownedBlockMap()

        // Rows that see no key under the CPU's map (or the GPU's) are left out.
        func seesKey(_ map: BlockMap, _ b: Int, _ h: Int, _ n: Int) -> Bool {
            let i = n / bq
            for j in 0..<nk where map[b, h, i, j] {
                if parameters.gpuReproduction.causalMasking == .blockOnly || j * bk <= n { return true }
            }
            return false
        }
        let s = shape, d = s.headDim
        var perHead = [(faithful: AccuracyAccumulator, dense: AccuracyAccumulator)](repeating: (AccuracyAccumulator(), AccuracyAccumulator()), count: s.heads)
        var all = (faithful: AccuracyAccumulator(), dense: AccuracyAccumulator())
        var leftOut = 0
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                for n in 0..<s.queryLength {
                    if parameters.causal {
                        let cpuSees = seesKey(cpuMap, b, h, n)
                        let gpuSees = gpuMap.map { seesKey($0, b, h, n) } ?? true
                        if !(cpuSees && gpuSees) { leftOut += 1; continue }
                    }
                    let base = b * qLayout.batchStride + h * qLayout.headStride + n * qLayout.tokenStride
                    for c in base..<(base + d) {
                        perHead[h].faithful.add(gpu[c], faithful[c])
                        perHead[h].dense.add(gpu[c], dense[c])
                    }
                }
            }
        }
        for h in 0..<s.heads {
            all.faithful.merge(perHead[h].faithful)
            all.dense.merge(perHead[h].dense)
        }

        // Mask agreement.
        var maskStats: [MaskStats] = []
        if let g = gpuMap {
            maskStats = (0..<s.heads).map { h in
                var m = MaskStats()
                for b in 0..<s.batch { for i in 0..<nq { for j in 0..<nk { m.add(g[b, h, i, j], cpuMap[b, h, i, j]) } } }
                return m
            }
        }
        let overallMask = maskStats.reduce(into: MaskStats()) { $0.merge($1) }

        // Verdict.
        func passes(_ e: AccuracyAccumulator) -> Bool { e.accuracy.cosine >= minCosine && e.accuracy.relativeL1 <= maxL1 }
        let failing = (0..<s.heads).filter { !passes(perHead[$0].faithful) }
        let verdict: String
        if failing.isEmpty {
            verdict = "PASS"
        } else {
            let detail = failing.prefix(8).map { h -> String in
                let e = perHead[h].faithful.accuracy
                return "head \(h) (cosine \(Self.fmt(e.cosine, 6)), rel L1 \(Self.fmt(e.relativeL1, 5)))"
            }.joined(separator: ", ")
            verdict = "FAIL: \(failing.count) of \(s.heads) heads outside cosine >= \(minCosine), rel L1 <= \(maxL1): "
                + detail + (failing.count > 8 ? ", ..." : "")
        }

        let compared = s.batch * s.heads * s.queryLength - leftOut
        if json {
            print(report(shape: s, perHead: perHead, all: all, maskStats: maskStats, overallMask: overallMask,
                         gpuMap: gpuMap, cpuMap: cpuMap, compared: compared, leftOut: leftOut,
                         failing: failing, verdict: verdict, passes: passes).text)
        } else {
            var lines: [String] = []
            lines.append("sparge check: preset \(preset.rawValue)\(preset == .triton ? "" : " (\(arch.rawValue))"), "
                + "B=\(s.batch) H=\(s.heads) Hkv=\(s.kvHeads) Nq=\(s.queryLength) Nk=\(s.keyLength) D=\(d), "
                + "\(preset == .blockSparse ? "given map; " : "")\(parameters)")
            lines.append("rows compared: \(compared) of \(s.batch * s.heads * s.queryLength)"
                + (leftOut > 0 ? " (\(leftOut) rows that see no key left out)" : ""))
            lines.append("")
            func pad(_ t: String, _ n: Int) -> String { t.padding(toLength: n, withPad: " ", startingAt: 0) }
            let group = pad("cosine", 8) + "  " + pad("rel L1", 7) + "  " + pad("RMSE", 9) + "  " + pad("max abs", 9)
            lines.append(pad("", 7) + pad("GPU vs faithful CPU (\(preset.rawValue))", 40) + "   GPU vs exact dense")
            lines.append(pad("head", 5) + "  " + group + "   " + group)
            func row(_ label: String, _ f: AccuracyAccumulator, _ e: AccuracyAccumulator, _ mark: String) -> String {
                let (f, e) = (f.accuracy, e.accuracy)
                let l = label.padding(toLength: 5, withPad: " ", startingAt: 0)
                return "\(l)  \(Self.fmt(f.cosine, 6))  \(Self.fmt(f.relativeL1, 5))  \(Self.sci(f.rmse))  \(Self.sci(f.maxAbsoluteError))   "
                    + "\(Self.fmt(e.cosine, 6))  \(Self.fmt(e.relativeL1, 5))  \(Self.sci(e.rmse))  \(Self.sci(e.maxAbsoluteError))\(mark)"
            }
            for h in 0..<s.heads {
                lines.append(row(String(h), perHead[h].faithful, perHead[h].dense, failing.contains(h) ? "  <- FAIL" : ""))
            }
            lines.append(row("all", all.faithful, all.dense, ""))
            if !maskStats.isEmpty {
                lines.append("")
                lines.append("block map (GPU vs CPU prediction\(preset == .blockSparse ? "; block-sparse: the GPU map is used" : "")):")
                lines.append("head   agreement  GPU density  CPU density  only GPU  only CPU")
                for (h, m) in maskStats.enumerated() { lines.append(m.line(String(h))) }
                lines.append(overallMask.line("all"))
            }
            lines.append("")
            lines.append("tolerance: every head cosine >= \(minCosine) and rel L1 <= \(maxL1) against the faithful CPU result")
            lines.append(verdict)
            print(lines.map { String($0.reversed().drop(while: { $0 == " " }).reversed()) }.joined(separator: "\n"))
        }
        return failing.isEmpty
    }

    static func fmt(_ x: Double, _ digits: Int) -> String {
        x.isFinite ? String(format: "%.\(digits)f", x) : "nan"
    }

    static func sci(_ x: Double) -> String {
        x.isFinite ? String(format: "%.3e", x) : "nan      "
    }

    // MARK: JSON

    private func report(shape s: AttentionShape, perHead: [(faithful: AccuracyAccumulator, dense: AccuracyAccumulator)],
                        all: (faithful: AccuracyAccumulator, dense: AccuracyAccumulator), maskStats: [MaskStats], overallMask: MaskStats,
                        gpuMap: BlockMap?, cpuMap: BlockMap, compared: Int, leftOut: Int, failing: [Int],
                        verdict: String, passes: (AccuracyAccumulator) -> Bool) -> JSONValue {
        var heads: [JSONValue] = []
        for h in 0..<s.heads {
            var pairs: [(String, JSONValue)] = [
                ("head", .int(h)), ("pass", .bool(passes(perHead[h].faithful))),
                ("vs_faithful", perHead[h].faithful.json), ("vs_dense", perHead[h].dense.json),
            ]
            if !maskStats.isEmpty { pairs.append(("mask", maskStats[h].json)) }
            heads.append(.object(pairs))
        }
        var pairs: [(String, JSONValue)] = [
            ("command", .string("check")),
            ("verdict", .string(failing.isEmpty ? "PASS" : "FAIL")),
            ("message", .string(verdict)),
            ("failing_heads", .array(failing.map { .int($0) })),
            ("preset", .string(preset.rawValue)), ("arch", .string(arch.rawValue)),
            ("layout", .string(nhd ? "NHD" : "HND")),
            ("shape", .shape(s)),
            ("parameters", .parameters(parameters)),
            ("tolerance", .object([("cosine", .number(minCosine)), ("relative_l1", .number(maxL1))])),
            ("rows_compared", .int(compared)), ("rows_left_out", .int(leftOut)),
            ("cpu_density", .finite(cpuMap.density)),
            ("overall", .object([("vs_faithful", all.faithful.json), ("vs_dense", all.dense.json)])),
        ]
        if gpuMap != nil { pairs.append(("mask", overallMask.json)) }
        pairs.append(("heads", .array(heads)))
        pairs += [("q", .string(qSpec)), ("k", .string(kSpec)), ("v", .string(vSpec)), ("gpu_output", .string(outputSpec))]
        if let maskSpec { pairs.append(("gpu_mask", .string(maskSpec))) }
        return .object(pairs)
    }
}

extension AccuracyAccumulator {
    /// The metrics with the counts behind them.
    var json: JSONValue {
        let a = accuracy
        return .object([("cosine", .finite(a.cosine)), ("relative_l1", .finite(a.relativeL1)), ("rmse", .finite(a.rmse)),
                        ("max_abs", .finite(a.maxAbsoluteError)), ("elements", .int(count)), ("non_finite", .int(nonFiniteCount))])
    }
}

/// Agreement of two block maps: counts of blocks kept by both, by one only, by neither.
struct MaskStats {
    var both = 0, onlyGPU = 0, onlyCPU = 0, neither = 0

    mutating func add(_ gpu: Bool, _ cpu: Bool) {
        switch (gpu, cpu) {
        case (true, true): both += 1
        case (true, false): onlyGPU += 1
        case (false, true): onlyCPU += 1
        case (false, false): neither += 1
        }
    }

    mutating func merge(_ o: MaskStats) {
        both += o.both; onlyGPU += o.onlyGPU; onlyCPU += o.onlyCPU; neither += o.neither
    }

    var total: Int { both + onlyGPU + onlyCPU + neither }
    var agreement: Double { total == 0 ? 1 : Double(both + neither) / Double(total) }
    var gpuDensity: Double { total == 0 ? 0 : Double(both + onlyGPU) / Double(total) }
    var cpuDensity: Double { total == 0 ? 0 : Double(both + onlyCPU) / Double(total) }

    func line(_ label: String) -> String {
        label.padding(toLength: 5, withPad: " ", startingAt: 0)
            + "  \(CheckCommand.fmt(agreement, 6))   \(CheckCommand.fmt(gpuDensity, 6))     \(CheckCommand.fmt(cpuDensity, 6))"
            + "     \(String(onlyGPU).leftPad(8))  \(String(onlyCPU).leftPad(8))"
    }

    var json: JSONValue {
        .object([("agreement", .finite(agreement)), ("gpu_density", .finite(gpuDensity)), ("cpu_density", .finite(cpuDensity)),
                 ("only_gpu", .int(onlyGPU)), ("only_cpu", .int(onlyCPU)), ("blocks", .int(total))])
    }
}

private extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
