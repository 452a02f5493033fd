import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTestSupport

/// `sparge mask` as a subprocess: pictures of golden maps decode in Python to exactly what the
/// library renders; text output, `--predict` and bad input.
struct MaskCommandTests {
    static let goldenFolder = Golden.compactFolder

    static func sparge(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try CLITests.sparge(arguments)
        return (r.status, r.stdout, r.stderr)
    }

    /// The Gaussian case's CDF map (all blocks kept) and the language model's causal top-k map.
    @Test(.enabled(if: InteropPython.mayRun("zlib"), "needs python3 (its zlib module): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"),
          arguments: [("gauss_1000_d64", "mask.b128x64_cdf"), ("smollm2_l15_2048_d64_causal", "mask.b128x64_topk")])
    func maskCommandOnGoldenFile(file: String, name: String) throws {
        let dir = try InteropPython.temporaryDirectory("mask-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let golden = Self.goldenFolder.appendingPathComponent(file + ".safetensors")
        guard FileManager.default.fileExists(atPath: golden.path) else {
            Issue.record("golden file missing: \(golden.path) (Scripts/make_compact_golden.py writes Tests/Golden)")
            return
        }
        let png = dir.appendingPathComponent("tmp.png")
        let r = try Self.sparge(["mask", "--name", name, "--input", golden.path, "--png", png.path, "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "stdout: \(r.stdout)")

        // The picture is exactly what the library renders for the stored map.
        let t = try SafeTensorsFile.read(path: golden.path).tensor(name)
        let map = try BlockMap(batch: t.shape[0], heads: t.shape[1], queryBlocks: t.shape[2], keyBlocks: t.shape[3], bits: t.uint8s())
        let image = try BlockMapImage.render(map)
        #expect(InteropPython.ints(report["shape"]) == t.shape)
        #expect((report["width"] as? NSNumber)?.intValue == image.width)
        #expect((report["height"] as? NSNumber)?.intValue == image.height)
        let density = try #require((report["density"] as? NSNumber)?.doubleValue)
        #expect(abs(density - map.density) < 1e-12)
        let raw = dir.appendingPathComponent("expected.raw")
        try Data(image.pixels).write(to: raw)
        try PNGCheck.pythonCheck([PNGCheck.Spec(png: png, raw: raw, width: image.width, height: image.height, channels: 3)], in: dir)
    }

    @Test func maskCommandTextPredictAndErrors() throws {
        let dir = try InteropPython.temporaryDirectory("mask-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A small q, k (2 heads, 200 tokens, D 32) and two stored maps, one too wide for text.
        var rng = TestRNG(seed: 12)
        let q = rng.gaussians(2 * 200 * 32), k = rng.gaussians(2 * 200 * 32)
        var bits = [UInt8](repeating: 0, count: 2 * 2 * 3)
        bits[0] = 1; bits[4] = 1; bits[11] = 1
        let wide = [UInt8](repeating: 1, count: 1 * 1 * 2 * 200)
        let input = dir.appendingPathComponent("in.safetensors")
        try SafeTensorsFile(tensors: [
            "q": Tensor(float16: q, shape: [1, 2, 200, 32]), "k": Tensor(float16: k, shape: [1, 2, 200, 32]),
            "mask": Tensor(bools: bits.map { $0 != 0 }, shape: [1, 2, 2, 3]),
            "wide": Tensor(uint8s: wide, shape: [1, 1, 2, 200]),
            "flat": Tensor(uint8s: bits, shape: [12]),
        ]).write(path: input.path)

        let text = try Self.sparge(["mask", "--input", input.path, "--text"])
        #expect(text.status == 0, "stderr: \(text.stderr)")
        #expect(text.stdout.contains("head 0 (density 0.333):\n#..\n.#.\n"), "\(text.stdout)")
        #expect(text.stdout.contains("head 1 (density 0.167):\n...\n..#\n"), "\(text.stdout)")

        // --predict gives the library's map.
        let predicted = try Self.sparge(["mask", "--input", input.path, "--predict", "--bq", "64", "--bk", "32", "--topk", "0.3", "--text"])
        #expect(predicted.status == 0, "stderr: \(predicted.stderr)")
        var p = SpargeParameters()
        p.blockQ = 64
        p.blockK = 32
        p.selection = .topK(0.3)
        let shape = AttentionShape(batch: 1, heads: 2, kvHeads: 2, queryLength: 200, keyLength: 200, headDim: 32)
        let qf = try Tensor(float16: q, shape: [1, 2, 200, 32]).floats(), kf = try Tensor(float16: k, shape: [1, 2, 200, 32]).floats()
        let expected = try #require(try SpargeAttention.predictBlockMap(q: qf, k: kf, shape: shape, parameters: p).blockMap)
        for h in 0..<2 { #expect(predicted.stdout.contains(try expected.render(head: h)), "head \(h)") }
        let png = dir.appendingPathComponent("p.png")
        let withPNG = try Self.sparge(["mask", "--input", input.path, "--predict", "--png", png.path, "--cell", "3", "--columns", "1"])
        #expect(withPNG.status == 0, "stderr: \(withPNG.stderr)")
        #expect(FileManager.default.fileExists(atPath: png.path))

        // Errors: one line on stderr, exit status 2.
        let failures: [([String], String)] = [
            (["mask", "--input", input.path], "nothing to do"),
            (["mask", "--input", input.path, "--name", "wide", "--text"], "at most 128"),
            (["mask", "--input", input.path, "--name", "nope", "--text"], "maps in the file: mask, wide"),
            (["mask", "--input", input.path, "--name", "flat", "--text"], "4 positive dimensions"),
            (["mask", "--input", input.path, "--name", "q", "--text"], "U8 or BOOL"),
            (["mask", "--input", input.path, "--topk", "0.5", "--text"], "only applies with --predict"),
            (["mask", "--input", input.path, "--predict", "--name", "mask", "--text"], "exclude each other"),
            (["mask", "--input", input.path, "--text", "--batch", "1"], "out of range"),
            (["mask", "--input", input.path, "--png", dir.appendingPathComponent("no/dir/x.png").path], "does not exist"),
            (["mask", "--input", dir.appendingPathComponent("missing.safetensors").path, "--text"], "No file"),
            (["mask", "--text"], "needs --input"),
        ]
        for (args, message) in failures {
            let r = try Self.sparge(args)
            #expect(r.status == 2, "\(args): status \(r.status), stderr \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args)")
            #expect(r.stderr.hasPrefix("sparge: error: ") && r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        let help = try Self.sparge(["help", "mask"])
        #expect(help.status == 0 && help.stdout.contains("sparge mask --input"))
    }
}
