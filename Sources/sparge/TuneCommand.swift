import Foundation
import SpargeAttn
import SpargeTuning
import SpargeFormats

/// `sparge tune`: per-head calibration of theta, tau (or top-k) and lambda on the q, k, v of
/// one or more files, saved as a tuned-settings JSON file for `sparge run --config`.
struct TuneCommand {
    static let usage = """
        Usage: sparge tune --input IN.safetensors [--input IN2.safetensors ...] [--layer NAME]
          [--l1 0.07] [--pv-l1 0.08] [--metric l1|cosine|rmse] [--mode cdf|top-k|auto]
          [--margin 0.6] [--output tuned.json] [--update] [--threads N]
          [--bq 128] [--bk 64] [--causal] [--attention-sink] [--no-smooth-k] [--smooth-q] [--fixed-point-pv] [--gpu-rounding]
          [--quant cuda|triton] [--theta-grid 0,0.0625,...] [--smoothing 2]
          [--tau-iterations 8] [--lambda-iterations 6] [--min-sparsity 0.1]
          [--token-order raster|hilbert|FILE.npy [--grid HxW|TxHxW] [--prefix K]]

        Tunes theta, tau (or top-k) and lambda per head on the q, k, v (B,H,N,D) of every input
        (calibration samples of one layer: other prompts, steps or passages), following the
        paper: per theta, bisect tau with stage 2 off to the sparsest value whose error stays
        within the bound on every sample, then lambda under the looser stage-2 bound; per head,
        keep the best window of neighbouring thetas (smoothing); heads that cannot be sparse
        within the bound run dense.

          --input PATH        safetensors file with q, k, v; repeat (or comma-separate) for more
          --layer NAME        layer name stored in the file (default "layer")
          --l1 X, --pv-l1 X   error bounds without / with stage 2 (defaults 0.07 / 0.08 for l1
                              and rmse, 0.002 / 0.003 for cosine, i.e. 1 - cosine)
          --metric M          l1 (relative L1, default), cosine (1 - cosine) or rmse (relative)
          --mode M            cdf: tune tau (the paper's), top-k, or auto (default): both,
                              keeping the sparser; with --causal top-k must be sparser by
                              over 0.1 (its fraction transfers poorly to other lengths);
                              twice the time
          --margin X          tune to X times the bounds, for headroom on unseen inputs (0.6)
          --output PATH       settings file to write (default tuned.json)
          --update            add the layer to an existing --output file (replacing its namesake)
          --bq, --bk, --causal, --attention-sink, --no-smooth-k, --smooth-q, --fixed-point-pv,
          --gpu-rounding, --quant
                              the problem being tuned, as in sparge run; use the same with run
                              (--smooth-q and --fixed-point-pv are recorded in the file and
                              applied with it)
          --theta-grid LIST   theta values (default 0, 1/16, ..., 15/16)
          --smoothing N       neighbouring thetas pooled per head (default 2)
          --tau-iterations N, --lambda-iterations N
                              bisection steps (defaults 8 and 6; 0 lambda steps: stage 2 off)
          --min-sparsity X    heads sparser than this stay sparse, others run dense (0.1)
          --threads N         worker threads (default: all CPUs)
        \(TokenOrderOption.help)
                              (tune with the token order you run with: the settings are per
                              head, but the blocks they were tuned on are those of the order)

          \(OutputFormat.help)

        Progress on stderr; the per-head table on stdout (density: selected over allowed blocks,
        sparsity 1 - density; with --json one JSON object: output, layer, samples, heads,
        mean_density, mean_sparsity, worst_error). Exit status 2 on bad input.
        """

    static let flags: Set<String> = ["causal", "attention-sink", "no-smooth-k", "smooth-q", "fixed-point-pv", "gpu-rounding", "update", OutputFormat.flag]
    static let options: Set<String> = TokenOrderOption.names.union([
        "input", "layer", "l1", "pv-l1", "metric", "mode", "margin", "output", "threads", "bq", "bk", "quant",
        "theta-grid", "smoothing", "tau-iterations", "lambda-iterations", "min-sparsity",
    ])

    var inputs: [String]
    var layer: String
    var output: String
    var update: Bool
    var json = false
    var base = SpargeParameters.recommended
    var options: TuningOptions
    var tokenOrder: TokenOrderOption?

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: Self.flags, options: Self.options, repeatable: ["input"],
                                          usage: Self.usage) else { return nil }
        inputs = a.strings("input")
        guard !inputs.isEmpty else { throw UsageError("tune needs --input IN.safetensors (see sparge tune --help)") }
        layer = a.string("layer") ?? "layer"
        output = a.string("output") ?? "tuned.json"
        update = a.flag("update")
        let metricName = a.string("metric") ?? "l1"
        guard let metric = TuningMetric(rawValue: metricName.lowercased()) else {
            throw UsageError("--metric '\(metricName)' is not l1, cosine or rmse")
        }
        let modeName = a.string("mode") ?? "auto"
        guard let mode = TuningOptions.Mode(name: modeName) else {
            throw UsageError("--mode '\(modeName)' is not cdf, top-k or auto")
        }
        options = TuningOptions(metric: metric, bound: try a.double("l1", in: 0...1e9),
                                pvBound: try a.double("pv-l1", in: 0...1e9), mode: mode)
        options.safetyMargin = try a.double("margin", in: 0...1) ?? options.safetyMargin
        options.smoothingWidth = try a.int("smoothing", in: 1...64) ?? options.smoothingWidth
        options.selectionIterations = try a.int("tau-iterations", in: 1...30) ?? options.selectionIterations
        options.lambdaIterations = try a.int("lambda-iterations", in: 0...30) ?? options.lambdaIterations
        options.minimumSparsity = try a.double("min-sparsity", in: 0...0.999) ?? options.minimumSparsity
        options.threads = try a.int("threads", in: 1...4096)
        if let grid = try a.perHead("theta-grid") { options.thetaGrid = grid.values }
        try options.validate()
        try a.applyAttentionOptions(to: &base)
        json = a.flag(OutputFormat.flag)
        tokenOrder = try a.tokenOrder()
    }

    func execute() throws {
        // Before anything is read or tuned: the output must not be an input, a device or a directory.
        try checkOutput(output, option: "--output", inputs: inputs)
        let existing: TunedSettings? = update && FileManager.default.fileExists(atPath: output)
            ? try TunedSettings.read(path: output) : nil
        // In token order: every error is per head (invariant under reordering rows), only the blocks change.
        let samples = try inputs.map { path in
            let s = try TuningInputs.sample(path: path)
            guard let tokenOrder else { return s }
            let (q, k, v) = try tokenOrder.permuted(s.q, s.k, s.v, shape: s.shape)
            return CalibrationSample(q: q, k: k, v: v, shape: s.shape)
        }
        let err = FileHandle.standardError
        err.write(Data("tune: layer '\(layer)', \(samples.count) sample(s) of \(samples[0].shape), \(options.metric.rawValue) <= \(options.bound) (\(options.pvBound) with stage 2), margin \(options.safetyMargin), \(options.thetaGrid.count) thetas\(tokenOrder.map { ", token order \($0.description)" } ?? "")\n".utf8))
        let tuned = try SpargeTuner.tune(samples: samples, base: base, options: options, layer: layer) { p in
            let pass = p.passes > 1 ? "pass \(p.pass)/\(p.passes) (\(p.mode.rawValue)), " : ""
            let line = "tune: \(pass)theta \(p.theta) (\(p.thetasDone)/\(p.thetaCount)): \(p.headsDone)/\(p.heads) heads done, elapsed \(TuningInputs.duration(p.elapsedSeconds)), ETA \(TuningInputs.duration(p.etaSeconds))\n"
            err.write(Data(line.utf8))
        }
        if base.causal && !base.attentionSink && tuned.layers[0].heads.filter(\.dense).count * 2 > tuned.layers[0].heads.count {
            err.write(Data("tune: note: most heads run dense; causal language models keep much of their attention on the first tokens, try --attention-sink (as the authors' tuned models run)\n".utf8))
        }
        let settings = existing.map { $0.merging(tuned.layers[0]) } ?? tuned
        try settings.write(path: output)
        if json {
            print(Self.jsonReport(tuned.layers[0], output: output, layers: settings.layers.count, samples: samples.count).text)
        } else {
            print(Self.report(tuned.layers[0], settings: tuned, samples: samples.count))
            print("wrote \(output)\(existing != nil ? " (layer '\(layer)' updated, \(settings.layers.count) layers)" : "")")
        }
    }

    /// The `--json` report of a tuned layer: the same keys as the settings file's heads.
    static func jsonReport(_ l: TunedLayer, output: String, layers: Int, samples: Int) -> JSONValue {
        let number = JSONValue.shortest
        let heads: [JSONValue] = l.heads.map { h in
            var f: [(String, JSONValue)] = [("theta", number(h.theta))]
            if let tau = h.tau { f.append(("tau", number(tau))) }
            if let k = h.topK { f.append(("top_k", number(k))) }
            f += [("lambda", number(h.lambda)), ("density", .finite(h.density)), ("sparsity", .finite(h.sparsity)),
                  ("error", .finite(h.error)), ("dense", .bool(h.dense))]
            return .object(f)
        }
        let n = Double(max(1, l.heads.count))
        return .object([
            ("output", .string(output)), ("layer", .string(l.name)), ("layers_in_file", .int(layers)), ("samples", .int(samples)),
            ("heads", .array(heads)),
            ("mean_density", .finite(l.heads.map(\.density).reduce(0, +) / n)),
            ("mean_sparsity", .finite(l.heads.map(\.sparsity).reduce(0, +) / n)),
            ("worst_error", .finite(l.heads.map(\.error).max() ?? 0)),
        ])
    }

    /// The per-head table of a tuned layer.
    static func report(_ l: TunedLayer, settings s: TunedSettings, samples: Int) -> String {
        let metric = s.metric.rawValue
        let selection = l.heads.first?.topK != nil ? "top-k" : "tau"
        let rows = l.heads.enumerated().map { h, x in
            [String(h), x.dense ? "dense" : TuningInputs.format(x.theta), TuningInputs.format(x.tau ?? x.topK ?? 1),
             TuningInputs.format(x.lambda), TuningInputs.format(x.density, 3), TuningInputs.format(x.sparsity, 3),
             TuningInputs.format(x.error)]
        }
        let meanDensity = l.heads.map(\.density).reduce(0, +) / Double(max(1, l.heads.count))
        let meanSparsity = l.heads.map(\.sparsity).reduce(0, +) / Double(max(1, l.heads.count))
        let worst = l.heads.map(\.error).max() ?? 0
        return "layer '\(l.name)': \(l.heads.count) heads, \(samples) sample(s), blocks \(l.heads.first.map { "\($0.blockQ)x\($0.blockK)" } ?? "-"), causal \(l.causal), sink \(l.attentionSink); \(metric) bound \(s.bound) (\(s.pvBound) with stage 2), margin \(s.safetyMargin)\n"
            + TuningInputs.table(["head", "theta", selection, "lambda", "density", "sparsity", "worst \(metric)"], rows)
            + "\nmean density \(TuningInputs.format(meanDensity, 3)) (sparsity \(TuningInputs.format(meanSparsity, 3)) of the allowed blocks), worst \(metric) \(TuningInputs.format(worst)), dense heads \(l.heads.filter(\.dense).count)"
    }
}
