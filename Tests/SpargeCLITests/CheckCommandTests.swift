import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTestSupport

/// `sparge check` as a subprocess: the official Triton outputs of the golden cases pass,
/// corrupted copies fail naming the corrupted head, `--json` parses, `.npy` and NHD inputs
/// work, and bad input exits 2 with one line on stderr.
struct CheckCommandTests {
    typealias Outcome = CLITests.Outcome

    static func check(_ args: [String]) throws -> Outcome {
        try CLITests.sparge(["check"] + args)
    }

    /// Arguments checking `triton.o` of `file` (a golden case or a corrupted copy).
    static func tritonArgs(_ file: String, causal: Bool, output: String = "triton.o") -> [String] {
        ["--q", file + ":q", "--k", file + ":k", "--v", file + ":v", "--gpu-output", file + ":" + output,
         "--gpu-mask", file + ":mask.triton", "--preset", "triton"] + (causal ? ["--causal"] : [])
    }

    /// The file of a golden case id (`compact/<name>` or `full/<name>`).
    static func goldenPath(_ id: String) -> String { Golden.path(id) }

    /// A golden case that has the Triton output (the head-dim-32 case has none).
    static func hasTritonOutput(_ name: String) -> Bool {
        guard let f = try? SafeTensorsFile.read(path: goldenPath(name)) else { return false }
        return f["triton.o"] != nil
    }

    /// A copy of a golden case's q, k, v, mask.triton and triton.o, with triton.o changed.
    static func corruptedCopy(_ name: String, in dir: URL, change: (inout [Float], AttentionShape) -> Void) throws -> (path: String, causal: Bool) {
        let c = try Golden.load(name)
        var o = try c.file.tensor("triton.o").floats()
        change(&o, c.shape)
        var out = try SafeTensorsFile()
        for n in ["q", "k", "v", "mask.triton"] { try out.insert(try c.file.tensor(n), named: n) }
        try out.insert(try Tensor(floats: o, shape: [c.shape.batch, c.shape.heads, c.shape.queryLength, c.shape.headDim]), named: "triton.o")
        let path = dir.appendingPathComponent("\(c.shape.heads)-heads-corrupt.safetensors").path
        try out.write(path: path)
        return (path, c.causal)
    }

    static func expectBadInput(_ r: Outcome, _ what: String, contains: String? = nil) {
        #expect(r.status == 2, "\(what): exit \(r.status), stderr \(r.stderr)")
        #expect(!r.crashed, "\(what) crashed")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(what): stderr should be one line: \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(what): nothing on stdout")
        if let contains { #expect(r.stderr.contains(contains), "\(what): '\(r.stderr)' lacks '\(contains)'") }
    }

    // MARK: Goldens

    @Test(arguments: goldenCaseNames)
    func goldenTritonOutputPasses(name: String) throws {
        guard Self.hasTritonOutput(name) else { return }
        let c = try Golden.load(name)
        let r = try Self.check(Self.tritonArgs(Self.goldenPath(name), causal: c.causal))
        #expect(r.status == 0, "\(name): exit \(r.status)\n\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasSuffix("PASS\n"), "\(name): \(r.stdout)")
        // The GPU's map is the CPU's prediction, block for block.
        #expect(r.stdout.contains("all    1.000000"), "\(name): mask agreement\n\(r.stdout)")
    }

    @Test func goldenJSONParses() throws {
        let name = "compact/gauss_1000_d64"
        let r = try Self.check(Self.tritonArgs(Self.goldenPath(name), causal: false) + ["--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["verdict"] as? String == "PASS")
        #expect((obj["failing_heads"] as? [Any])?.isEmpty == true)
        let heads = try #require(obj["heads"] as? [[String: Any]])
        #expect(heads.count == 2)
        for h in heads {
            let f = try #require(h["vs_faithful"] as? [String: Any])
            let cos = try #require(f["cosine"] as? Double), l1 = try #require(f["relative_l1"] as? Double)
            #expect(cos >= 0.9999 && l1 <= 0.001, "head \(h["head"] ?? "?"): cosine \(cos), rel L1 \(l1)")
            #expect(h["vs_dense"] is [String: Any] && h["mask"] is [String: Any])
            #expect((h["mask"] as? [String: Any])?["agreement"] as? Double == 1)
        }
        let tol = try #require(obj["tolerance"] as? [String: Any])
        #expect(tol["cosine"] as? Double == 0.9995 && tol["relative_l1"] as? Double == 0.005)
    }

    @Test func causalRowsThatSeeNoKeyAreLeftOut() throws {
        let name = "compact/smollm2_l15_2048_d64_causal"
        let c = try Golden.load(name)
        let r = try Self.check(Self.tritonArgs(Self.goldenPath(name), causal: true) + ["--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let leftOut = try #require(obj["rows_left_out"] as? Int)
        #expect(leftOut > 0, "the causal SmolLM2 case has rows whose kept blocks all lie in the future")
        #expect((obj["rows_compared"] as? Int ?? 0) + leftOut == c.shape.heads * c.shape.queryLength)
    }

    // MARK: Corrupted outputs fail

    @Test func headScaledByOnePercentFails() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, causal) = try Self.corruptedCopy("compact/gauss_1000_d64", in: dir) { o, s in
            let n = s.queryLength * s.headDim, start = 1 * n
            for i in start..<(start + n) { o[i] *= 1.01 }
        }
        let r = try Self.check(Self.tritonArgs(path, causal: causal))
        #expect(r.status == 1, "exit \(r.status)\n\(r.stdout)\(r.stderr)")
        let verdict = try #require(r.stdout.split(separator: "\n").last.map(String.init))
        #expect(verdict.hasPrefix("FAIL: 1 of 2 heads"), "\(verdict)")
        #expect(verdict.contains("head 1 ("), "\(verdict)")
        #expect(!verdict.contains("head 0 ("), "\(verdict)")

        let j = try Self.check(Self.tritonArgs(path, causal: causal) + ["--json"])
        #expect(j.status == 1)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        #expect(obj["verdict"] as? String == "FAIL")
        #expect(obj["failing_heads"] as? [Int] == [1])
    }

    @Test func blockOfZerosFails() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Rows 64..<128 of the causal SmolLM2 head set to 0.
        let (path, causal) = try Self.corruptedCopy("compact/smollm2_l15_2048_d64_causal", in: dir) { o, s in
            let base = 0
            for i in (base + 64 * s.headDim)..<(base + 128 * s.headDim) { o[i] = 0 }
        }
        let r = try Self.check(Self.tritonArgs(path, causal: causal))
        #expect(r.status == 1, "exit \(r.status)\n\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("FAIL: 1 of 1 heads") && r.stdout.contains("head 0 ("), "\(r.stdout)")
    }

    @Test func blockOfRandomValuesFails() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Rows 1024..<1088 of the causal LM head replaced by Gaussian noise.
        let (path, causal) = try Self.corruptedCopy("compact/lm_2048_d128_causal", in: dir) { o, s in
            let noise = CLITests.randoms(64 * s.headDim, seed: 7)
            let start = 1024 * s.headDim
            for i in 0..<noise.count { o[start + i] = noise[i] }
        }
        let r = try Self.check(Self.tritonArgs(path, causal: causal))
        #expect(r.status == 1, "exit \(r.status)\n\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("FAIL: 1 of 1 heads") && r.stdout.contains("head 0 ("), "\(r.stdout)")
    }

    @Test func toleranceOverride() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, causal) = try Self.corruptedCopy("compact/gauss_1000_d64", in: dir) { o, s in
            for i in 0..<(s.queryLength * s.headDim) { o[i] *= 1.01 }
        }
        #expect(try Self.check(Self.tritonArgs(path, causal: causal)).status == 1)
        #expect(try Self.check(Self.tritonArgs(path, causal: causal) + ["--tolerance", "0.999,0.02"]).status == 0)
    }

    // MARK: Other inputs

    /// q, k, v and o as .npy files, HND and NHD.
    @Test func numpyFilesAndNHDLayout() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try Golden.load("compact/gauss_1000_d64")
        var paths: [String: String] = [:], nhdPaths: [String: String] = [:]
        for n in ["q", "k", "v", "triton.o"] {
            let t = try c.file.tensor(n)
            let p = dir.appendingPathComponent("\(n).npy").path
            try NumpyFile.write(t, path: p)
            paths[n] = p
            // B,H,N,D -> B,N,H,D
            let s = t.shape, x = try t.floats()
            var y = [Float](repeating: 0, count: x.count)
            for h in 0..<s[1] { for i in 0..<s[2] { for d in 0..<s[3] { y[(i * s[1] + h) * s[3] + d] = x[(h * s[2] + i) * s[3] + d] } } }
            let pn = dir.appendingPathComponent("\(n)-nhd.npy").path
            try NumpyFile.write(try Tensor(floats: y, shape: [s[0], s[2], s[1], s[3]]), path: pn)
            nhdPaths[n] = pn
        }
        let mask = dir.appendingPathComponent("mask.npy").path
        try NumpyFile.write(try c.file.tensor("mask.triton"), path: mask)
        let r = try Self.check(["--q", paths["q"]!, "--k", paths["k"]!, "--v", paths["v"]!, "--gpu-output", paths["triton.o"]!,
                                "--gpu-mask", mask, "--preset", "triton", "--json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let n = try Self.check(["--q", nhdPaths["q"]!, "--k", nhdPaths["k"]!, "--v", nhdPaths["v"]!,
                                "--gpu-output", nhdPaths["triton.o"]!, "--preset", "triton", "--layout", "NHD", "--json"])
        #expect(n.status == 0, "\(n.stdout)\(n.stderr)")
        // The same tensors in the other layout give the same numbers, head by head.
        func heads(_ text: String) throws -> [NSDictionary] {
            let report = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            return try #require(report["heads"] as? [[String: Any]]).map { NSDictionary(dictionary: ($0["vs_faithful"] as? [String: Any]) ?? [:]) }
        }
        #expect(try heads(n.stdout) == heads(r.stdout))
        // NHD read as HND is the wrong tensor: a failure or a shape error, never a pass.
        let wrong = try Self.check(["--q", nhdPaths["q"]!, "--k", nhdPaths["k"]!, "--v", nhdPaths["v"]!,
                                    "--gpu-output", nhdPaths["triton.o"]!, "--preset", "triton"])
        #expect(wrong.status != 0)
    }

    /// block-sparse: the caller's map is used; the CPU's own output for that map passes.
    @Test func blockSparseUsesTheGivenMap() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try Golden.load("compact/gauss_1000_d64")
        let p = SpargeParameters.preset(.blockSparse, arch: .sm80)
        let maskTensor = try c.file.tensor("mask.b128x64_topk")
        let map = try BlockMap(batch: 1, heads: 2, queryBlocks: 8, keyBlocks: 16, bits: maskTensor.uint8s())
        let (o, _) = try SpargeAttention.sparse(q: c.q, k: c.k, v: c.v, shape: c.shape, parameters: p, blockMap: map)
        var f = try SafeTensorsFile()
        for n in ["q", "k", "v"] { try f.insert(try c.file.tensor(n), named: n) }
        try f.insert(maskTensor, named: "mask")
        try f.insert(try Tensor(float16: o, shape: [1, 2, 1000, 64]), named: "o")
        let path = dir.appendingPathComponent("bs.safetensors").path
        try f.write(path: path)
        let args = ["--q", path + ":q", "--k", path + ":k", "--v", path + ":v", "--gpu-output", path + ":o",
                    "--gpu-mask", path + ":mask", "--preset", "block-sparse", "--arch", "sm80"]
        let r = try Self.check(args)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        // Without the map block-sparse is bad input.
        Self.expectBadInput(try Self.check(Array(args.prefix(8)) + ["--preset", "block-sparse"]), "block-sparse without --gpu-mask",
                            contains: "--gpu-mask")
        // The wrong generation's block sizes (sm90: 64x128) do not fit the map: bad input.
        Self.expectBadInput(try Self.check(Array(args.dropLast(2)) + ["--arch", "sm90"]), "mask of other block sizes",
                            contains: "--gpu-mask has shape")
    }

    @Test func badInputExitsTwo() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = Self.goldenPath("compact/gauss_1000_d64")
        let good = Self.tritonArgs(g, causal: false)
        func with(_ option: String, _ value: String) -> [String] {
            var a = good
            if let i = a.firstIndex(of: option) { a[i + 1] = value } else { a += [option, value] }
            return a
        }
        Self.expectBadInput(try Self.check(with("--q", dir.appendingPathComponent("missing.npy").path)), "missing file", contains: "not found")
        Self.expectBadInput(try Self.check(with("--q", dir.appendingPathComponent("missing.safetensors").path + ":q")), "missing file:name", contains: "not found")
        Self.expectBadInput(try Self.check(with("--q", g + ":nope")), "bad tensor name", contains: "no tensor 'nope'")
        Self.expectBadInput(try Self.check(with("--q", g)), "several tensors without :name", contains: "name one")
        Self.expectBadInput(try Self.check(with("--q", g + ":quant_b128x64.q_scale")), "q of 3 dimensions", contains: "4 dimensions")
        Self.expectBadInput(try Self.check(with("--q", g + ":quant_b128x64.q_int8")), "int8 q", contains: "F16, BF16 or F32")
        Self.expectBadInput(try Self.check(with("--preset", "flash")), "unknown preset", contains: "--preset 'flash'")
        Self.expectBadInput(try Self.check(with("--arch", "sm70")), "unknown arch", contains: "--arch")
        Self.expectBadInput(try Self.check(with("--tolerance", "0.99")), "bad tolerance", contains: "--tolerance")
        Self.expectBadInput(try Self.check(with("--gpu-mask", g + ":mask.b64x128_topk")), "mask shape", contains: "--gpu-mask has shape")
        Self.expectBadInput(try Self.check(with("--gpu-mask", g + ":q")), "float mask", contains: "U8 or BOOL")
        Self.expectBadInput(try Self.check(Array(good.dropFirst(2))), "no --q", contains: "--q")

        // Shape mismatch: o of another case.
        let other = Self.goldenPath("compact/smollm2_l15_2048_d64_causal")
        Self.expectBadInput(try Self.check(with("--gpu-output", other + ":triton.o")), "output shape mismatch", contains: "--gpu-output has shape")
        Self.expectBadInput(try Self.check(with("--k", other + ":k")), "q/k mismatch")

        // A single-tensor safetensors file needs no :name.
        var single = try SafeTensorsFile()
        try single.insert(try SafeTensorsFile.read(path: g).tensor("triton.o"), named: "out")
        let sp = dir.appendingPathComponent("single.safetensors").path
        try single.write(path: sp)
        #expect(try Self.check(with("--gpu-output", sp)).status == 0)
    }
}
