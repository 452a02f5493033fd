import Foundation
import SpargeAttn
import SpargeFormats
import SpargeTuning

/// `sparge evaluate`: per-head error against exact attention and density of sparse attention
/// on stored inputs, with given or tuned (`--config`) parameters: how settings hold up on
/// inputs they were not tuned on.
struct EvaluateCommand {
    static let usage = """
        Usage: sparge evaluate --input IN.safetensors [--input ...] [--config tuned.json [--layer NAME]]
          [--bq 128] [--bk 64] [--simthreshd1 X] [--cdfthreshd X | --top-k X] [--pvthreshd X|inf]
          [--causal] [--attention-sink] [--no-smooth-k] [--smooth-q] [--fixed-point-pv] [--gpu-rounding] [--quant cuda|triton]
          [--l1 0.08] [--threads N] [--json]
          [--token-order raster|hilbert|FILE.npy [--grid HxW|TxHxW] [--prefix K]]

        Runs sparse attention on the q, k, v of every input and prints, per head, the relative
        L1 error and cosine similarity against exact attention, the block density and sparsity
        (over the allowed blocks: those a causal mask leaves, as sparge run counts them), then
        how many heads keep relative L1 <= --l1 (default 0.08) and <= 1.5 times it. Options as in
        sparge run; --config applies tuned per-head values on top of them.
        With a token order the error is measured in the file's order against exact attention.
          \(OutputFormat.help)

        \(TokenOrderOption.help)
        """

    static let flags: Set<String> = ["causal", "attention-sink", "no-smooth-k", "smooth-q", "fixed-point-pv", "gpu-rounding", OutputFormat.flag]
    static let options: Set<String> = TokenOrderOption.names.union([
        "input", "config", "layer", "bq", "bk", "simthreshd1", "cdfthreshd", "top-k", "pvthreshd", "quant",
        "threads", "l1",
    ])

    var inputs: [String]
    var parameters = SpargeParameters.recommended
    var config: ConfigOption?
    var bound: Double
    var threads: Int?
    var json: Bool
    var tokenOrder: TokenOrderOption?

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: Self.flags, options: Self.options, repeatable: ["input"],
                                          usage: Self.usage) else { return nil }
        inputs = a.strings("input")
        guard !inputs.isEmpty else { throw UsageError("evaluate needs --input IN.safetensors (see sparge evaluate --help)") }
        try a.applyAttentionOptions(to: &parameters)
        config = try ConfigOption(a)
        bound = try a.double("l1", in: 0...1e9) ?? 0.08
        threads = try a.int("threads", in: 1...4096)
        json = a.flag(OutputFormat.flag)
        tokenOrder = try a.tokenOrder()
    }

    struct HeadResult { var l1: Double; var cosine: Double; var density: Double; var sparsity: Double }

    func execute() throws {
        var reports: [JSONValue] = []
        var all: [HeadResult] = []
        for path in inputs {
            let s = try TuningInputs.sample(path: path)
            let p = try config?.apply(to: parameters, heads: s.shape.heads) ?? parameters
            try p.validate(for: s.shape)
            let reference = try SpargeAttention.dense(q: s.q, k: s.k, v: s.v, shape: s.shape, causal: p.causal,
                                                      softmaxScale: p.softmaxScale, threads: threads)
            let order = try tokenOrder?.order(for: s.shape)
            let (out, result) = try SpargeAttention.sparse(q: s.q, k: s.k, v: s.v, shape: s.shape, parameters: p, tokenOrder: order,
                                                           threads: threads)
            let l1 = TuningMetric.l1.headErrors(out, reference: reference, shape: s.shape)
            let cos = TuningMetric.cosine.headErrors(out, reference: reference, shape: s.shape)
            let st = result.statistics
            // A one-shot result owns its map: the per-head densities are there.
            let perHead = result.densityPerHead ?? []
            let heads = (0..<s.shape.heads).map {
                HeadResult(l1: l1[$0], cosine: 1 - cos[$0], density: perHead[$0], sparsity: 1 - perHead[$0])
            }
            all += heads
            let whole = try Accuracy(out, reference: reference)
            if json {
                reports.append(.object([
                    ("input", .string(path)), ("token_order", tokenOrder.map { .string($0.description) } ?? .null),
                ] + st.jsonPairs + [
                    ("l1", .finite(whole.relativeL1)), ("cosine", .finite(whole.cosine)), ("accuracy", whole.json),
                    ("heads", .array(heads.map { .object([("l1", .finite($0.l1)), ("cosine", .finite($0.cosine)),
                                                          ("density", .finite($0.density)), ("sparsity", .finite($0.sparsity))]) })),
                ]))
            } else {
                print("\(path): \(s.shape), \(p.selection), theta \(p.simThreshold), lambda \(p.pvThreshold)\(tokenOrder.map { ", token order \($0.description)" } ?? "")")
                print(TuningInputs.table(["head", "l1", "cosine", "density", "sparsity"], heads.enumerated().map { h, r in
                    [String(h), TuningInputs.format(r.l1), TuningInputs.format(r.cosine, 5), TuningInputs.format(r.density, 3), TuningInputs.format(r.sparsity, 3)]
                }))
                print("all heads: l1 \(TuningInputs.format(whole.relativeL1)), cosine \(TuningInputs.format(whole.cosine, 5)); \(st.densityText)\n")
            }
        }
        let within = all.filter { $0.l1 <= bound }.count, within15 = all.filter { $0.l1 <= 1.5 * bound }.count
        let meanSparsity = all.map(\.sparsity).reduce(0, +) / Double(all.count)
        let worst = all.map(\.l1).max() ?? 0
        if json {
            print(JSONValue.object([
                ("inputs", .array(reports)), ("bound", .finite(bound)), ("heads", .int(all.count)),
                ("heads_within_bound", .int(within)), ("heads_within_1_5_bound", .int(within15)),
                ("mean_sparsity", .finite(meanSparsity)), ("worst_l1", .finite(worst)),
            ]).text)
        } else {
            print("\(within)/\(all.count) heads with l1 <= \(bound), \(within15)/\(all.count) <= \(1.5 * bound); worst l1 \(TuningInputs.format(worst)), mean sparsity \(TuningInputs.format(meanSparsity, 3)) of allowed blocks")
        }
    }
}
