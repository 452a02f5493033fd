import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
@testable import SpargeTuning
@testable import SpargeWorkloads

/// `sparge tune`, `sparge evaluate` and `sparge run --config`, end to end on a small
/// language-model-like file (2 heads, 512 tokens).
struct TunerCLITests {
    static func writeInput(_ url: URL, seed: UInt64) throws {
        let t = try LanguageModelLikeWorkload(heads: 2, tokens: 512, seed: seed).generate()
        let dims = [1, 2, 512, 64]
        try SafeTensorsFile(tensors: ["q": try Tensor(floats: t.q, shape: dims), "k": try Tensor(floats: t.k, shape: dims),
                                      "v": try Tensor(floats: t.v, shape: dims)]).write(path: url.path)
    }

    @Test func tuneThenRunAndEvaluate() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.safetensors"), b = dir.appendingPathComponent("b.safetensors")
        let tuned = dir.appendingPathComponent("tuned.json")
        try Self.writeInput(a, seed: 1)
        try Self.writeInput(b, seed: 2)
        let quick = ["--theta-grid", "0,0.25,0.5", "--tau-iterations", "5", "--lambda-iterations", "2"]
        let r = try CLITests.sparge(["tune", "--input", a.path, "--input", b.path, "--causal", "--attention-sink",
                                     "--layer", "l0", "--output", tuned.path] + quick)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("heads done") && r.stderr.contains("ETA") && r.stderr.contains("elapsed"), "\(r.stderr)")
        #expect(r.stdout.contains("layer 'l0': 2 heads, 2 sample(s)") && r.stdout.contains("worst l1"), "\(r.stdout)")
        let settings = try TunedSettings.read(path: tuned.path)
        #expect(settings.layers.map(\.name) == ["l0"] && settings.layers[0].causal && settings.layers[0].attentionSink)

        // The same settings through the library and through `run --config`.
        var base = SpargeParameters.recommended
        base.causal = true
        base.attentionSink = true
        let p = try settings.parameters(base: base, heads: 2)
        let file = try SafeTensorsFile.read(path: a.path)
        let (_, result) = try SpargeAttention.sparse(q: try file.tensor("q").floats(), k: try file.tensor("k").floats(),
                                                     v: try file.tensor("v").floats(), shape: AttentionShape(heads: 2, queryLength: 512, headDim: 64),
                                                     parameters: p)
        let run = try CLITests.sparge(["run", "--input", a.path, "--config", tuned.path, "--causal", "--attention-sink", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let report = try CLITests.json(run.stdout)
        #expect(report["config_layer"] as? String == "l0")
        #expect(abs(((report["density"] as? NSNumber)?.doubleValue ?? -1) - result.statistics.density) < 1e-12)

        let eval = try CLITests.sparge(["evaluate", "--input", b.path, "--config", tuned.path, "--causal", "--attention-sink", "--json"])
        #expect(eval.status == 0, "stderr: \(eval.stderr)")
        let e = try CLITests.json(eval.stdout)
        #expect((e["heads"] as? NSNumber)?.intValue == 2)

        // --update adds a layer; without it the file is replaced.
        let again = try CLITests.sparge(["tune", "--input", b.path, "--causal", "--attention-sink", "--layer", "l1",
                                         "--output", tuned.path, "--update"] + quick)
        #expect(again.status == 0, "stderr: \(again.stderr)")
        #expect(try TunedSettings.read(path: tuned.path).layers.map(\.name) == ["l0", "l1"])
        let named = try CLITests.sparge(["run", "--input", a.path, "--config", tuned.path, "--layer", "l1", "--causal", "--attention-sink"])
        #expect(named.status == 0, "stderr: \(named.stderr)")
        CLITests.expectUsageError(try CLITests.sparge(["run", "--input", a.path, "--config", tuned.path, "--causal"]),
                                  "two layers, none named")
    }

    @Test func badTuneAndConfigArgumentsExitWithStatus2() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.safetensors"), cfg = dir.appendingPathComponent("t.json")
        try Self.writeInput(a, seed: 3)
        let head = #"{"theta": 0.3, "tau": 0.9, "lambda": null, "block_q": 128, "block_k": 64}"#
        try Data(#"{"format": "sparge-tuned", "version": 1, "layers": [{"name": "x", "heads": [\#(head), \#(head), \#(head)]}]}"#.utf8).write(to: cfg)
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"format": "sparge-tuned", "version": 9, "layers": []}"#.utf8).write(to: bad)
        let cases: [([String], String)] = [
            (["tune"], "no input"),
            (["tune", "--input", a.path, "--l1", "0.09", "--pv-l1", "0.08"], "pv-l1 below l1"),
            (["tune", "--input", a.path, "--metric", "psnr"], "unknown metric"),
            (["tune", "--input", a.path, "--mode", "fast"], "unknown mode"),
            (["tune", "--input", a.path, "--margin", "2"], "margin out of range"),
            (["tune", "--input", a.path, "--theta-grid", "0.5,0.1"], "grid not ascending"),
            (["tune", "--input", dir.appendingPathComponent("missing.safetensors").path], "missing input"),
            (["tune", "--input", a.path, "--output", "/nonexistent/dir/t.json"], "unwritable output"),
            (["run", "--input", a.path, "--config", cfg.path], "head count mismatch"),
            (["run", "--input", a.path, "--config", bad.path], "unsupported version"),
            (["run", "--input", a.path, "--config", cfg.path, "--simthreshd1", "0.3"], "config and theta"),
            (["run", "--input", a.path, "--config", cfg.path, "--layer", "y"], "unknown layer"),
            (["run", "--input", a.path, "--config", cfg.path, "--bq", "64"], "block size mismatch"),
            (["run", "--input", a.path, "--layer", "x"], "layer without config"),
            (["evaluate", "--input", a.path, "--config", dir.appendingPathComponent("none.json").path], "missing config"),
        ]
        for (args, context) in cases {
            CLITests.expectUsageError(try CLITests.sparge(args), context)
        }
        let mismatch = try CLITests.sparge(["run", "--input", a.path, "--config", cfg.path])
        #expect(mismatch.stderr.contains("3 heads") && mismatch.stderr.contains("2"), "\(mismatch.stderr)")
    }

    @Test func helpListsTheNewCommands() throws {
        let r = try CLITests.sparge(["--help"])
        #expect(r.stdout.contains("sparge tune") && r.stdout.contains("sparge evaluate"))
        for c in ["tune", "evaluate"] {
            let h = try CLITests.sparge(["help", c])
            #expect(h.status == 0 && h.stdout.contains("Usage: sparge \(c)"))
        }
    }

    @Test func generateWritesTheLanguageModelLikeWorkload() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("lm.safetensors")
        let r = try CLITests.sparge(["generate", "--workload", "lm", "--n", "256", "--heads", "2", "--seed", "9", "--output", out.path])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let t = try LanguageModelLikeWorkload(heads: 2, tokens: 256, seed: 9).generate()
        #expect(try SafeTensorsFile.read(path: out.path).tensor("q").floats() == t.q)
    }
}
