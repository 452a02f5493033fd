import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
@testable import SpargeWorkloads
import SpargeTestSupport

/// The `sparge` command-line tool, run as a subprocess on small files in a temporary
/// directory: the JSON report, the written tensors, `--mask`, and exit status 2 with a
/// one-line message for every kind of bad input. Also the built-in workload generator.
struct CLITests {
    // MARK: Subprocess helpers

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var crashed: Bool
    }

    /// The built `sparge` (or another executable of this package).
    static func executable(named name: String = "sparge") throws -> URL {
        try BuiltExecutable.url(named: name)
    }

    static func sparge(_ arguments: [String]) throws -> Outcome {
        let p = Process()
        p.executableURL = try executable()
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Our stderr is at most a line, so reading stdout to the end first cannot deadlock.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                       stderr: String(decoding: e, as: UTF8.self), crashed: p.terminationReason != .exit)
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sparge-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func randoms(_ n: Int, seed: UInt64) -> [Float] {
        var rng = VideoLikeWorkload.SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.gaussian() }
    }

    /// Grouped-query attention with ragged blocks: 2 query heads sharing 1 K/V head, N = 200
    /// (2 query blocks of 128 and 4 key blocks of 64, the last of each partial), D = 32.
    static let shape = AttentionShape(batch: 1, heads: 2, kvHeads: 1, queryLength: 200, headDim: 32)

    /// q, k, v stored as f16 (the values the tool sees are the f16-rounded ones, returned).
    static func writeInput(to url: URL, extra: [String: Tensor] = [:]) throws -> (q: [Float], k: [Float], v: [Float]) {
        let s = shape
        let qDims = [s.batch, s.heads, s.queryLength, s.headDim], kDims = [s.batch, s.kvHeads, s.keyLength, s.headDim]
        let q = try Tensor(float16: randoms(s.queryElements, seed: 1), shape: qDims)
        let k = try Tensor(float16: randoms(s.keyElements, seed: 2), shape: kDims)
        let v = try Tensor(float16: randoms(s.keyElements, seed: 3), shape: kDims)
        var file = try SafeTensorsFile(tensors: ["q": q, "k": k, "v": v])
        for (name, t) in extra { try file.insert(t, named: name) }
        try file.write(path: url.path)
        return (try q.floats(), try k.floats(), try v.floats())
    }

    static func json(_ text: String) throws -> [String: Any] {
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1, "stdout should be one line of JSON, got: \(text)")
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [String: Any])
    }

    /// `bench --backend cpu` drops that pair only: a value "cpu" elsewhere reaches its option.
    @Test func benchBackendCPUKeepsOtherArguments() throws {
        let r = try Self.sparge(["bench", "--backend", "cpu", "--workloads", "cpu"])
        Self.expectUsageError(r, "bench --backend cpu --workloads cpu")
        #expect(r.stderr.contains("--workloads: 'cpu' is not one of"), "\(r.stderr)")
    }

    static func expectUsageError(_ r: Outcome, _ context: String) {
        #expect(!r.crashed, "\(context): crashed")
        #expect(r.status == 2, "\(context): exit status \(r.status), stderr \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(context): stdout should be empty, got \(r.stdout)")
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "\(context): stderr should be one line, got \(r.stderr)")
        #expect(r.stderr.hasPrefix("sparge: error: "), "\(context): \(r.stderr)")
    }

    // MARK: run

    @Test func runPrintsJSONAndWritesTensors() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors"), output = dir.appendingPathComponent("out.safetensors")
        let (q, k, v) = try Self.writeInput(to: input)
        let r = try Self.sparge(["run", "--input", input.path, "--output", output.path, "--threads", "1", "--repeat", "3", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try Self.json(r.stdout)
        for key in ["density", "stage2_skipped_fraction", "seconds", "gflops_dense_equivalent", "shape", "threads", "mode"] {
            #expect(report[key] != nil, "missing key \(key) in \(r.stdout)")
        }
        #expect(report["mode"] as? String == "sparse")
        #expect((report["threads"] as? NSNumber)?.intValue == 1)
        let shape = try #require(report["shape"] as? [String: Any])
        #expect((shape["heads"] as? NSNumber)?.intValue == 2)
        #expect((shape["kv_heads"] as? NSNumber)?.intValue == 1)
        #expect((shape["query_length"] as? NSNumber)?.intValue == 200)
        let seconds = try #require((report["seconds"] as? NSNumber)?.doubleValue)
        #expect(seconds > 0)
        #expect(((report["seconds_all"] as? [Any])?.count) == 3)

        let file = try SafeTensorsFile.read(path: output.path)
        let expected: [(String, TensorDType, [Int])] = [
            ("o", .float32, [1, 2, 200, 32]), ("mask", .uint8, [1, 2, 2, 4]),
            ("q_int8", .int8, [1, 2, 200, 32]), ("q_scale", .float32, [1, 2, 2]),
            ("k_int8", .int8, [1, 1, 200, 32]), ("k_scale", .float32, [1, 1, 4]),
        ]
        for (name, dtype, dims) in expected {
            let t = try file.tensor(name)
            #expect(t.dtype == dtype && t.shape == dims, "\(name): \(t.dtype) \(t.shape), expected \(dtype) \(dims)")
        }
        // The tool computes exactly what the library does (results do not depend on threads).
        let (o, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, captureQuantized: true)
        #expect(try file.tensor("o").floats() == o)
        #expect(try file.tensor("mask").uint8s() == (try #require(result.blockMap)).bits)
        #expect(try file.tensor("q_int8").int8s() == result.quantized?.qInt8)
        #expect(try file.tensor("k_scale").floats() == result.quantized?.kScale)
        let density = try #require((report["density"] as? NSNumber)?.doubleValue)
        #expect(abs(density - result.statistics.density) < 1e-12)
    }

    @Test(arguments: [TensorDType.uint8, .bool])
    func maskReproducesGivenMask(dtype: TensorDType) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors"), output = dir.appendingPathComponent("out.safetensors")
        // A pattern prediction would not give: a diagonal plus the last key block.
        var bits = [UInt8](repeating: 0, count: 1 * 2 * 2 * 4)
        for h in 0..<2 { for i in 0..<2 { bits[(h * 2 + i) * 4 + (i + h) % 4] = 1; bits[(h * 2 + i) * 4 + 3] = 1 } }
        let maskTensor = dtype == .bool
            ? try Tensor(bools: bits.map { $0 != 0 }, shape: [1, 2, 2, 4])
            : try Tensor(uint8s: bits, shape: [1, 2, 2, 4])
        let (q, k, v) = try Self.writeInput(to: input, extra: ["given.mask": maskTensor])
        let r = try Self.sparge(["run", "--input", input.path, "--output", output.path, "--mask", "given.mask", "--threads", "1", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try Self.json(r.stdout)
        #expect(report["mode"] as? String == "mask")
        let density = try #require((report["density"] as? NSNumber)?.doubleValue)
        #expect(abs(density - Double(bits.reduce(0) { $0 + Int($1) }) / Double(bits.count)) < 1e-12)
        let file = try SafeTensorsFile.read(path: output.path)
        #expect(try file.tensor("mask").uint8s() == bits)
        let map = try BlockMap(batch: 1, heads: 2, queryBlocks: 2, keyBlocks: 4, bits: bits)
        let (o, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, blockMap: map)
        #expect(try file.tensor("o").floats() == o)
    }

    /// `bench --json`: one JSON object with the main table's rows, the micro-kernel rows and
    /// the thread scaling, under the names the text report uses (no timing is checked).
    @Test func benchPrintsOneJSONObject() throws {
        let r = try Self.sparge(["bench", "--quick", "--repeat", "1", "--workloads", "medium", "--threads", "2", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try Self.json(r.stdout)
        #expect(report["command"] as? String == "bench")
        for key in ["kernel_level", "machine", "threads", "fma_peak_gflops", "score_micro_kernel", "thread_scaling"] {
            #expect(report[key] != nil, "missing key \(key) in \(r.stdout)")
        }
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.map { $0["config"] as? String } == ["top-k 0.5", "top-k 0.25"])
        for row in rows {
            for key in ["dense_seconds", "sparse_seconds", "stage1_seconds", "quantization_seconds", "kernel_seconds",
                        "density", "accuracy", "speedup"] {
                #expect(row[key] != nil, "missing key \(key) in a row of \(r.stdout)")
            }
        }
    }

    /// `demo --json`: one JSON object with every configuration's statistics, accuracy and time.
    @Test func demoPrintsOneJSONObject() throws {
        let r = try Self.sparge(["demo", "--n", "512", "--heads", "1", "--repeat", "1", "--threads", "1", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try Self.json(r.stdout)
        #expect(report["command"] as? String == "demo")
        #expect(report["dense_seconds"] != nil && report["kernel_level"] != nil && report["shape"] != nil)
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.count == 7 && rows.first?["configuration"] as? String == "recommended top-k 0.5")
        for row in rows {
            let accuracy = try #require(row["accuracy"] as? [String: Any])
            #expect((accuracy["cosine"] as? Double).map { $0 > 0.9 } == true, "\(row)")
            #expect(row["density"] != nil && row["sparse_seconds"] != nil && row["speedup"] != nil)
        }
    }

    @Test func denseWritesOnlyTheOutput() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors"), output = dir.appendingPathComponent("out.safetensors")
        let (q, k, v) = try Self.writeInput(to: input)
        let r = try Self.sparge(["run", "--input", input.path, "--output", output.path, "--dense", "--causal", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(try Self.json(r.stdout)["mode"] as? String == "dense")
        let file = try SafeTensorsFile.read(path: output.path)
        #expect(file.names == ["o"])
        let o = try SpargeAttention.dense(q: q, k: k, v: v, shape: Self.shape, causal: true)
        #expect(try file.tensor("o").floats() == o)
    }

    @Test func optionsReachTheLibrary() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors"), output = dir.appendingPathComponent("out.safetensors")
        let (q, k, v) = try Self.writeInput(to: input)
        let r = try Self.sparge([
            "run", "--input", input.path, "--output", output.path, "--bq", "64", "--bk", "32",
            "--simthreshd1", "0.3,-0.5", "--cdfthreshd=0.9", "--pvthreshd", "inf", "--attention-sink",
            "--gpu-rounding", "--quant", "triton", "--no-smooth-k", "--json",
        ])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        var p = SpargeParameters()
        p.blockQ = 64; p.blockK = 32
        p.simThreshold = [0.3, -0.5]
        p.selection = .cdf(0.9)
        p.pvThreshold = PerHead(.infinity)
        p.attentionSink = true; p.gpuReproduction.gpuRounding = true; p.gpuReproduction.quantization = .triton; p.smoothK = false
        let (o, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: Self.shape, parameters: p)
        let file = try SafeTensorsFile.read(path: output.path)
        #expect(try file.tensor("mask").shape == [1, 2, 4, 7])
        #expect(try file.tensor("mask").uint8s() == (try #require(result.blockMap)).bits)
        #expect(try file.tensor("o").floats() == o)
        let report = try Self.json(r.stdout)
        let parameters = try #require(report["parameters"] as? [String: Any])
        #expect(parameters["selection"] as? String == "cdf")
        #expect(parameters["pvthreshd"] is NSNull)
    }

    // MARK: Errors

    @Test func badArgumentsExitWithStatus2() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try Self.writeInput(to: input, extra: ["small.mask": try Tensor(uint8s: [1, 1], shape: [1, 2, 1, 1])])
        let malformed = dir.appendingPathComponent("malformed.safetensors")
        try Data([0x10, 0, 0, 0, 0, 0, 0, 0] + Array("{\"q\": [1, 2".utf8)).write(to: malformed)
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try Data(try Data(contentsOf: input).prefix(200)).write(to: truncated)
        let noQ = dir.appendingPathComponent("noq.safetensors")
        try SafeTensorsFile(tensors: ["k": try Tensor(floats: [0, 0], shape: [1, 1, 1, 2])]).write(path: noQ.path)
        let threeDims = dir.appendingPathComponent("3d.safetensors")
        let t3 = try Tensor(floats: [Float](repeating: 0.5, count: 8), shape: [2, 2, 2])
        try SafeTensorsFile(tensors: ["q": t3, "k": t3, "v": t3]).write(path: threeDims.path)
        let unequal = dir.appendingPathComponent("unequal.safetensors")
        try SafeTensorsFile(tensors: [
            "q": try Tensor(floats: Self.randoms(2 * 16, seed: 4), shape: [1, 1, 2, 16]),
            "k": try Tensor(floats: Self.randoms(3 * 16, seed: 5), shape: [1, 1, 3, 16]),
            "v": try Tensor(floats: Self.randoms(3 * 16, seed: 6), shape: [1, 1, 3, 16]),
        ]).write(path: unequal.path)
        let gqa = dir.appendingPathComponent("gqa.safetensors")
        try SafeTensorsFile(tensors: [
            "q": try Tensor(floats: Self.randoms(3 * 16, seed: 7), shape: [1, 3, 1, 16]),
            "k": try Tensor(floats: Self.randoms(2 * 16, seed: 8), shape: [1, 2, 1, 16]),
            "v": try Tensor(floats: Self.randoms(2 * 16, seed: 9), shape: [1, 2, 1, 16]),
        ]).write(path: gqa.path)
        let nonFinite = dir.appendingPathComponent("nan.safetensors")
        let tn = try Tensor(floats: [1, .nan, 2, 3], shape: [1, 1, 2, 2])
        try SafeTensorsFile(tensors: ["q": tn, "k": tn, "v": tn]).write(path: nonFinite.path)
        let intQ = dir.appendingPathComponent("int.safetensors")
        let ti = try Tensor(int8s: [Int8](repeating: 1, count: 8), shape: [1, 1, 2, 4])
        try SafeTensorsFile(tensors: ["q": ti, "k": ti, "v": ti]).write(path: intQ.path)

        let cases: [(String, [String])] = [
            ("no command", []),
            ("unknown command", ["frobnicate"]),
            ("unknown flag", ["run", "--input", input.path, "--frobnicate"]),
            ("missing --input", ["run"]),
            // The default build has no GPU code: the message says how to get it.
            ("--backend cuda in a build without the trait", ["run", "--input", input.path, "--backend", "cuda"]),
            ("--backend metal", ["run", "--input", input.path, "--backend", "metal"]),
            ("bench --backend cuda in a build without the trait", ["bench", "--backend", "cuda"]),
            ("bench with a bare --backend", ["bench", "--backend"]),
            ("cuda-check in a build without the trait", ["cuda-check", "--random", "0"]),
            ("missing value", ["run", "--input"]),
            ("--topk 2", ["run", "--input", input.path, "--topk", "2"]),
            ("--topk not a number", ["run", "--input", input.path, "--topk", "half"]),
            ("--topk and --cdfthreshd", ["run", "--input", input.path, "--topk", "0.5", "--cdfthreshd", "0.9"]),
            ("--pvthreshd negative", ["run", "--input", input.path, "--pvthreshd", "-1"]),
            ("--quant unknown", ["run", "--input", input.path, "--quant", "fp8"]),
            ("--bq 0", ["run", "--input", input.path, "--bq", "0"]),
            ("--threads 0", ["run", "--input", input.path, "--threads", "0"]),
            ("per-head list of the wrong length", ["run", "--input", input.path, "--simthreshd1", "0.1,0.2,0.3"]),
            ("stray positional", ["run", input.path]),
            ("nonexistent file", ["run", "--input", dir.appendingPathComponent("missing.safetensors").path]),
            ("directory", ["run", "--input", dir.path]),
            ("malformed file", ["run", "--input", malformed.path]),
            ("truncated file", ["run", "--input", truncated.path]),
            ("no q tensor", ["run", "--input", noQ.path]),
            ("3-d tensors", ["run", "--input", threeDims.path]),
            ("integer tensors", ["run", "--input", intQ.path]),
            ("missing mask", ["run", "--input", input.path, "--mask", "nope"]),
            ("mask of the wrong shape", ["run", "--input", input.path, "--mask", "small.mask"]),
            ("mask is not u8", ["run", "--input", input.path, "--mask", "q"]),
            ("block size out of range", ["run", "--input", unequal.path, "--causal", "--bk", "4096"]),
            ("non-finite input", ["run", "--input", nonFinite.path]),
            ("--dense with --mask", ["run", "--input", input.path, "--mask", "q", "--dense"]),
            ("--no-skip-counts on the CPU", ["run", "--input", input.path, "--no-skip-counts"]),
            ("K/V heads that do not divide the query heads", ["run", "--input", gqa.path]),
            ("unwritable output", ["run", "--input", input.path, "--output", dir.appendingPathComponent("no/such/dir/out.safetensors").path]),
            ("demo with bad --n", ["demo", "--n", "0"]),
            ("demo with unknown workload", ["demo", "--workload", "spiky"]),
        ]
        for (name, args) in cases {
            Self.expectUsageError(try Self.sparge(args), name)
        }
    }

    @Test func helpPrintsUsage() throws {
        for args in [["--help"], ["help"], ["run", "--help"], ["demo", "--help"], ["help", "run"], ["generate", "-h"]] {
            let r = try Self.sparge(args)
            #expect(r.status == 0 && r.stdout.contains("Usage") && r.stderr.isEmpty, "\(args): \(r.stderr)")
        }
        #expect(try Self.sparge(["run", "--help"]).stdout.contains("--cdfthreshd"))
    }

    @Test func generateFeedsRun() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("w.safetensors")
        let g = try Self.sparge(["generate", "--output", file.path, "--workload", "sharp", "--n", "1024", "--heads", "2", "--dtype", "f16"])
        #expect(g.status == 0, "stderr: \(g.stderr)")
        let read = try SafeTensorsFile.read(path: file.path)
        #expect(try read.tensor("q").shape == [1, 2, 1024, 64] && read.tensor("q").dtype == .float16)
        let r = try Self.sparge(["run", "--input", file.path, "--cdfthreshd", "0.9", "--simthreshd1", "0.3", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let density = try #require((try Self.json(r.stdout)["density"] as? NSNumber)?.doubleValue)
        #expect(density < 0.8)
    }

    // MARK: Workload generator

    @Test func workloadIsDeterministic() throws {
        var w = VideoLikeWorkload.medium
        w.tokens = 1000   // a partial last frame
        w.heads = 3
        let a = try w.generate(threads: 1), b = try w.generate(threads: 2)
        #expect(a.q == b.q && a.k == b.k && a.v == b.v)
        #expect(a.shape == AttentionShape(heads: 3, queryLength: 1000, headDim: 64))
        #expect(a.q.allSatisfy(\.isFinite) && a.k.allSatisfy(\.isFinite) && a.v.allSatisfy(\.isFinite))
        w.seed &+= 1
        #expect(try w.generate().q != a.q)
        var g = VideoLikeWorkload.gaussian
        g.tokens = 100
        #expect(try g.generate().k == (try g.generate().k))
        var bad = VideoLikeWorkload.medium
        bad.localScale = [1, 2]
        #expect(throws: SpargeError.self) { try bad.generate() }
    }

    @Test func sharperWorkloadsAreSparser() throws {
        var cdf = SpargeParameters.recommended
        cdf.selection = .cdf(0.9)
        cdf.simThreshold = 0.3
        var densities: [Double] = []
        for var w in [VideoLikeWorkload.mild, .medium, .sharp] {
            w.heads = 2
            let t = try w.generate()
            densities.append(try SpargeAttention.predictBlockMap(q: t.q, k: t.k, shape: t.shape, parameters: cdf).statistics.density)
        }
        #expect(densities[0] > densities[1] && densities[1] > densities[2], "\(densities)")
        #expect(densities[2] < 0.5, "sharp at CDF 0.9: \(densities[2])")
    }

    @Test func mediumIsAccurateAtTheRecommendedParameters() throws {
        var w = VideoLikeWorkload.medium
        w.heads = 2
        let t = try w.generate()
        let dense = try SpargeAttention.dense(q: t.q, k: t.k, v: t.v, shape: t.shape)
        let (o, result) = try SpargeAttention.sparse(q: t.q, k: t.k, v: t.v, shape: t.shape)
        var dot = 0.0, oo = 0.0, dd = 0.0
        for i in o.indices { dot += Double(o[i]) * Double(dense[i]); oo += Double(o[i] * o[i]); dd += Double(dense[i] * dense[i]) }
        let cosine = dot / (oo * dd).squareRoot()
        #expect(result.statistics.density <= 0.5)
        #expect(cosine >= 0.99, "cosine \(cosine)")
    }
}
