import Foundation
import Testing
@testable import SpargeAttn
import SpargeFormats
import SpargeTestSupport

/// One vocabulary across the commands: density and sparsity counted over the allowed blocks by
/// `run`, `evaluate` and `mask` alike, `--top-k` (with the old `--topk`), `--json` meaning one
/// JSON object everywhere, and `run --compare` reporting accuracy against exact attention.
struct VocabularyCLITests {
    static func number(_ x: Any?) -> Double? { (x as? NSNumber)?.doubleValue }

    @Test func densityIsTheSameInRunEvaluateAndMask() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        let (q, k, v) = try CLITests.writeInput(to: input)
        let common = ["--input", input.path, "--causal", "--bq", "64", "--bk", "32", "--top-k", "0.5"]
        let run = try CLITests.sparge(["run"] + common + ["--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let r = try CLITests.json(run.stdout)
        let evaluate = try CLITests.sparge(["evaluate"] + common + ["--json"])
        #expect(evaluate.status == 0, "stderr: \(evaluate.stderr)")
        let e = try #require((try CLITests.json(evaluate.stdout)["inputs"] as? [[String: Any]])?.first)
        let mask = try CLITests.sparge(["mask", "--predict", "--text"] + common + ["--json"])
        #expect(mask.status == 0, "stderr: \(mask.stderr)")
        let m = try CLITests.json(mask.stdout)

        var p = SpargeParameters.recommended
        p.causal = true
        p.blockQ = 64
        p.blockK = 32
        let (_, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: CLITests.shape, parameters: p)
        let st = result.statistics
        // Causal: some blocks are masked, so the two densities differ, and every command reports both alike.
        #expect(st.allowedBlocks < st.totalBlocks && st.densityOfAllBlocks < st.density)
        for (name, report) in [("run", r), ("evaluate", e), ("mask", m)] {
            let density = try #require(Self.number(report["density"]), "\(name)")
            #expect(abs(density - st.density) < 1e-12, "\(name): density \(density) vs \(st.density)")
            #expect(abs((Self.number(report["sparsity"]) ?? -1) - (1 - st.density)) < 1e-12, "\(name)")
            #expect(abs((Self.number(report["density_of_all_blocks"]) ?? -1) - st.densityOfAllBlocks) < 1e-12, "\(name)")
        }
        // The CPU counts every stage-2 skip (only a GPU plan told not to leaves some uncounted).
        #expect(st.skippedTilesCounted)
        for (name, report) in [("run", r), ("evaluate", e)] {
            #expect(report["skipped_tiles_counted"] as? Bool == true, "\(name)")
        }
        // The per-head densities too (one batch entry, so mask's equal run's).
        let perHead = try #require(result.densityPerHead)
        for (name, report) in [("run", r), ("mask", m)] {
            let printed = try #require((report["density_per_head"] as? [NSNumber])?.map(\.doubleValue), "\(name)")
            #expect(printed.count == perHead.count && zip(printed, perHead).allSatisfy { abs($0 - $1) < 1e-12 }, "\(name): \(printed) vs \(perHead)")
        }
        // The text reports print the same numbers with their definition.
        let line = String(format: "density %.3f of allowed blocks (%.3f of all), sparsity %.3f", st.density, st.densityOfAllBlocks, st.sparsity)
        let text = try CLITests.sparge(["run"] + common)
        #expect(text.status == 0, "stderr: \(text.stderr)")
        #expect(text.stdout.contains(line), "\(text.stdout)")
        let evalText = try CLITests.sparge(["evaluate"] + common)
        #expect(evalText.stdout.contains(line), "\(evalText.stdout)")
        let maskText = try CLITests.sparge(["mask", "--predict", "--text"] + common)
        #expect(maskText.stdout.contains(String(format: "density %.3f of allowed blocks", st.density)), "\(maskText.stdout)")
        #expect(maskText.stdout.contains(BlockMapText.legend) && maskText.stdout.contains("-"), "\(maskText.stdout)")
    }

    @Test func topKIsSpelledOneWayAndTheOldFlagStillWorks() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try CLITests.writeInput(to: input)
        let new = try CLITests.sparge(["run", "--input", input.path, "--top-k", "0.25", "--json"])
        let old = try CLITests.sparge(["run", "--input", input.path, "--topk", "0.25", "--json"])
        #expect(new.status == 0 && old.status == 0, "stderr: \(new.stderr) \(old.stderr)")
        let a = try CLITests.json(new.stdout), b = try CLITests.json(old.stdout)
        #expect(Self.number(a["density"]) == Self.number(b["density"]))
        let parameters = try #require(a["parameters"] as? [String: Any])
        #expect(parameters["selection"] as? String == "top_k" && Self.number(parameters["top_k"]) == 0.25)
        #expect(parameters["topk"] == nil)
        let text = try CLITests.sparge(["run", "--input", input.path, "--topk", "0.25"])
        #expect(text.stdout.contains("top-k 0.25") && !text.stdout.contains("topk"), "\(text.stdout)")
        let help = try CLITests.sparge(["run", "--help"]).stdout
        #expect(help.contains("--top-k X") && help.contains("--topk, the old spelling"))
        CLITests.expectUsageError(try CLITests.sparge(["run", "--input", input.path, "--topk", "0.5", "--cdfthreshd", "0.9"]),
                                  "--topk and --cdfthreshd")
        #expect(SpargeParameters.recommended.description.contains("top-k 0.5"))
        #expect(BlockSelection.topK(0.5).description == "top-k 0.5")
    }

    /// `--sliding-window W` reaches the library (the same output as the call with the window)
    /// and the float64 comparison (windowed too); without `--causal` it is refused.
    @Test func runTakesASlidingWindow() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        let (q, k, v) = try CLITests.writeInput(to: input)
        let r = try CLITests.sparge(["run", "--input", input.path, "--causal", "--sliding-window", "37", "--compare", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let accuracy = try #require(try CLITests.json(r.stdout)["accuracy"] as? [String: Any])
        var p = SpargeParameters.recommended
        p.causal = true
        p.slidingWindow = 37
        let (o, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: CLITests.shape, parameters: p)
        let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: CLITests.shape, causal: true, slidingWindow: 37)
        let expected = try Accuracy(o, reference: exact)
        let cosine = try #require(Self.number(accuracy["cosine"]))
        #expect(abs(cosine - expected.cosine) <= 1e-12, "cosine \(cosine) vs \(expected.cosine)")
        #expect(expected.cosine > 0.99)
        #expect(try CLITests.sparge(["run", "--input", input.path, "--sliding-window", "37"]).status == 2)
    }

    @Test func runCompareReportsAccuracyAgainstExactAttention() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        let (q, k, v) = try CLITests.writeInput(to: input)
        let r = try CLITests.sparge(["run", "--input", input.path, "--causal", "--compare", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let accuracy = try #require(try CLITests.json(r.stdout)["accuracy"] as? [String: Any])
        var p = SpargeParameters.recommended
        p.causal = true
        let (o, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: CLITests.shape, parameters: p)
        let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: CLITests.shape, causal: true)
        let expected = try Accuracy(o, reference: exact)
        let fields: [(String, Double)] = [
            ("cosine", expected.cosine), ("relative_l1", expected.relativeL1), ("relative_l2", expected.relativeL2),
            ("rmse", expected.rmse), ("max_abs_error", expected.maxAbsoluteError),
        ]
        for (key, value) in fields {
            let got = try #require(Self.number(accuracy[key]), "accuracy.\(key)")
            #expect(abs(got - value) <= 1e-12 * max(1, abs(value)), "\(key): \(got) vs \(value)")
        }
        #expect(expected.cosine > 0.99)
        // Without --compare there is no accuracy; in text it is one line.
        #expect(try CLITests.json(CLITests.sparge(["run", "--input", input.path, "--json"]).stdout)["accuracy"] == nil)
        let text = try CLITests.sparge(["run", "--input", input.path, "--causal", "--compare"])
        #expect(text.stdout.contains("accuracy vs exact (float64): " + String(format: "cosine %.5f, rel L1 %.4f", expected.cosine, expected.relativeL1)),
                "\(text.stdout)")
        // Dense attention compares too (fp32 against float64).
        let dense = try CLITests.sparge(["run", "--input", input.path, "--dense", "--compare", "--json"])
        let denseCosine = try #require(Self.number((try CLITests.json(dense.stdout)["accuracy"] as? [String: Any])?["cosine"]))
        #expect(denseCosine > 0.99999)
    }
}
