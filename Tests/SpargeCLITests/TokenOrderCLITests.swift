import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats

/// `--token-order`, `--grid` and `--prefix` of `sparge run`, `evaluate`, `tune` and `mask`: a
/// ViT-like input (a CLS token and a 5 x 7 grid, N = 36) gives what the library gives with
/// the same ``TokenOrder``, and every missing or contradictory flag is a usage error.
struct TokenOrderCLITests {
    static let shape = AttentionShape(heads: 2, queryLength: 36, headDim: 16)
    static let blocks = ["--bq", "16", "--bk", "8"]

    static var parameters: SpargeParameters {
        var p = SpargeParameters.recommended
        p.blockQ = 16
        p.blockK = 8
        return p
    }

    /// q, k, v (f32, `1,2,36,16`) in `url`; returns them.
    static func writeInput(_ url: URL) throws -> (q: [Float], k: [Float], v: [Float]) {
        let s = shape, dims = [1, s.heads, s.queryLength, s.headDim]
        let q = CLITests.randoms(s.queryElements, seed: 11).map { $0 * 2 }
        let k = CLITests.randoms(s.keyElements, seed: 12).map { $0 * 2 }
        let v = CLITests.randoms(s.keyElements, seed: 13)
        try SafeTensorsFile(tensors: ["q": try Tensor(floats: q, shape: dims), "k": try Tensor(floats: k, shape: dims),
                                      "v": try Tensor(floats: v, shape: dims)]).write(path: url.path)
        return (q, k, v)
    }

    /// `run` with a Hilbert order and with the same order from a .npy permutation: the output
    /// and the map equal the library's call with that order.
    @Test func runWithHilbertOrderAndPermutationFile() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("vit.safetensors"), output = dir.appendingPathComponent("out.safetensors")
        let (q, k, v) = try Self.writeInput(input)
        let order = try TokenOrder.hilbert(height: 5, width: 7, prefix: 1)
        let (expected, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: Self.parameters,
                                                            tokenOrder: order)

        let r = try CLITests.sparge(["run", "--input", input.path, "--output", output.path, "--token-order", "hilbert",
                                     "--grid", "5x7", "--prefix", "1", "--threads", "2"] + Self.blocks)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        // The report names the order (whatever its format).
        #expect(r.stdout.contains("hilbert 5x7 + prefix 1"), "\(r.stdout)")
        let written = try SafeTensorsFile.read(path: output.path)
        #expect(try written.tensor("o").floats().map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(try written.tensor("mask").uint8s() == (try #require(result.blockMap)).bits)

        // The same order as a permutation file of the 35 grid tokens after the CLS token.
        let permutation = dir.appendingPathComponent("perm.npy")
        try NumpyFile.write(try Tensor(int64s: order.permutation.dropFirst().map { Int64($0) - 1 }, shape: [35]), path: permutation.path)
        let fromFile = dir.appendingPathComponent("file.safetensors")
        let f = try CLITests.sparge(["run", "--input", input.path, "--output", fromFile.path, "--token-order", permutation.path,
                                     "--prefix", "1"] + Self.blocks)
        #expect(f.status == 0, "stderr: \(f.stderr)")
        #expect(try SafeTensorsFile.read(path: fromFile.path).tensor("o").floats().map(\.bitPattern) == expected.map(\.bitPattern))

        // Raster is the file's own order: the plain call.
        let raster = try CLITests.sparge(["run", "--input", input.path, "--token-order", "raster"] + Self.blocks)
        #expect(raster.status == 0, "stderr: \(raster.stderr)")
        #expect(!raster.stdout.contains("hilbert"), "\(raster.stdout)")
    }

    /// `evaluate`, `mask --predict` and `tune` take the same options.
    @Test func evaluateMaskAndTuneTakeTheOrder() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("vit.safetensors")
        let (q, k, v) = try Self.writeInput(input)
        let order = ["--token-order", "hilbert", "--grid", "5x7", "--prefix", "1"]

        let e = try CLITests.sparge(["evaluate", "--input", input.path, "--json"] + order + Self.blocks)
        #expect(e.status == 0, "stderr: \(e.stderr)")
        let report = try CLITests.json(e.stdout)
        let inputs = try #require(report["inputs"] as? [[String: Any]])
        #expect(inputs.first?["token_order"] as? String == "hilbert 5x7 + prefix 1")
        // The error is measured in the file's order: as the library's call with the order gives it.
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: Self.parameters,
                                                  tokenOrder: .hilbert(height: 5, width: 7, prefix: 1))
        let l1 = try Accuracy(out, reference: try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape)).relativeL1
        #expect(abs((inputs.first?["l1"] as? Double ?? 9) - l1) < 1e-6, "\(e.stdout) vs \(l1)")

        let m = try CLITests.sparge(["mask", "--input", input.path, "--predict", "--text"] + order + Self.blocks)
        #expect(m.status == 0, "stderr: \(m.stderr)")
        let predicted = try SpargeAttention.predictBlockMap(q: q, k: k, shape: Self.shape, parameters: Self.parameters,
                                                            tokenOrder: .hilbert(height: 5, width: 7, prefix: 1))
        #expect(m.stdout.contains(try (try #require(predicted.blockMap)).render(head: 0)), "\(m.stdout)")
        #expect(m.stdout.contains("token order hilbert 5x7 + prefix 1"), "\(m.stdout)")

        let tuned = dir.appendingPathComponent("tuned.json")
        let t = try CLITests.sparge(["tune", "--input", input.path, "--output", tuned.path, "--theta-grid", "0",
                                     "--tau-iterations", "2", "--lambda-iterations", "0"] + order + Self.blocks)
        #expect(t.status == 0, "stderr: \(t.stderr)")
        #expect(t.stderr.contains("token order hilbert 5x7 + prefix 1"), "\(t.stderr)")
    }

    /// Missing or contradictory flags: one-line usage errors that say how to fix them.
    @Test func badFlagsAreUsageErrors() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("vit.safetensors")
        _ = try Self.writeInput(input)
        let run = ["run", "--input", input.path]
        let cases: [([String], String)] = [
            (run + ["--token-order", "hilbert", "--grid", "6x6", "--prefix", "1"], "make the grid's product plus --prefix equal N"),
            (run + ["--token-order", "hilbert", "--grid", "5x7"], "(--prefix 1?)"),
            (run + ["--token-order", "hilbert"], "needs --grid"),
            (run + ["--grid", "5x7", "--prefix", "1"], "give --token-order hilbert"),
            (run + ["--token-order", "hilbert", "--grid", "5xa", "--prefix", "1"], "is not HxW or TxHxW"),
            (run + ["--token-order", "hilbert", "--grid", "0x7"], "is not HxW or TxHxW"),
            (run + ["--token-order", "zigzag"], "is not raster, hilbert or a .npy file"),
            (run + ["--token-order", "raster", "--prefix", "1"], "do not apply"),
            (run + ["--token-order", "hilbert", "--grid", "5x7", "--prefix", "1", "--causal"], "drop --causal"),
            (run + ["--token-order", "hilbert", "--grid", "5x7", "--prefix", "-1"], "--prefix"),
            (["mask", "--input", input.path, "--text", "--token-order", "hilbert", "--grid", "5x7", "--prefix", "1"],
             "only applies with --predict"),
            (["evaluate", "--input", input.path, "--token-order", "hilbert", "--grid", "2x3x5"], "(--prefix 6?)"),
        ]
        for (arguments, message) in cases {
            let r = try CLITests.sparge(arguments + Self.blocks)
            CLITests.expectUsageError(r, arguments.joined(separator: " "))
            #expect(r.stderr.contains(message), "\(arguments): \(r.stderr)")
        }
        // A file that is not a permutation.
        let bad = dir.appendingPathComponent("bad.npy")
        try NumpyFile.write(try Tensor(int64s: (0..<35).map { $0 == 3 ? 4 : Int64($0) }, shape: [35]), path: bad.path)
        let r = try CLITests.sparge(run + ["--token-order", bad.path, "--prefix", "1"] + Self.blocks)
        CLITests.expectUsageError(r, "bad permutation")
        #expect(r.stderr.contains("repeats token 4") && r.stderr.contains("3 is missing"), "\(r.stderr)")
    }
}
