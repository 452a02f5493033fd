import Foundation
import SpargeAttn
import SpargeFormats
import SpargeWorkloads

/// `sparge demo`: sparse attention under several configurations against exact dense attention
/// on a built-in video-like workload: accuracy, sparsity and speed in one table.
struct DemoCommand {
    static let usage = """
        Usage: sparge demo [--threads N] [--n N] [--d D] [--heads H] [--workload NAME]
                           [--seed S] [--repeat N] [--hilbert] [--json]

        Generates Q, K, V of a video-like token grid (frames of 16 x 32 tokens in raster order,
        attention local in space and time), runs exact dense attention and sparse attention
        under several configurations, and prints density, stage-2 skips, accuracy against
        dense (cosine, relative L1, RMSE) and the median wall time of each call.

          --n N            tokens (default 4096 = 8 frames of 16 x 32)
          --d D            head dimension (default 64)
          --heads H        heads (default 4)
          --workload NAME  mild, medium (default), sharp or gaussian: sharper is sparser
          --seed S         seed of the generator (default 24301)
          --threads N      worker threads (default: all CPUs)
          --repeat N       timed calls per configuration after one warm-up (default 3)
          --hilbert        visit the tokens in Hilbert-curve order of the frames x 16 x 32 grid
          --json           one JSON object on stdout instead of the text report
        """

    var tokens = 4096
    var headDim = 64
    var heads = 4
    var workloadName = "medium"
    var seed: UInt64 = 0x5EED
    var threads: Int?
    var repeats = 3
    var hilbert = false
    var json = false

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: ["hilbert", OutputFormat.flag], options: ["threads", "n", "d", "heads", "workload", "seed", "repeat"],
                                          usage: Self.usage) else { return nil }
        hilbert = a.flag("hilbert")
        json = a.flag(OutputFormat.flag)
        tokens = try a.int("n", in: 1...1_048_576) ?? tokens
        headDim = try a.int("d", in: 1...256) ?? headDim
        heads = try a.int("heads", in: 1...1024) ?? heads
        threads = try a.int("threads", in: 1...4096)
        repeats = try a.int("repeat", in: 1...100) ?? repeats
        // q, k, v, the exact output, a sparse output and the INT8 copies: about 8 Float arrays.
        try MemoryLimit.check([heads, tokens, headDim, 4, 8], what: "demo's tensors", options: "--n, --d or --heads")
        if let s = a.string("seed") {
            guard let x = UInt64(s) else { throw UsageError("--seed '\(s)' is not a non-negative integer") }
            seed = x
        }
        if let w = a.string("workload") {
            guard Self.workload(named: w) != nil else {
                throw UsageError("--workload '\(w)' is not one of mild, medium, sharp, gaussian")
            }
            workloadName = w
        }
    }

    /// Q, K and V of `t` permuted into the Hilbert order of the workload's grid.
    static func hilbertOrdered(_ t: VideoLikeWorkload.Tensors, workload: VideoLikeWorkload) throws -> VideoLikeWorkload.Tensors {
        let order = try TokenOrder.hilbert(workload)
        var r = t
        r.q = try order.permuted(t.q, rowWidth: t.shape.headDim)
        r.k = try order.permuted(t.k, rowWidth: t.shape.headDim)
        r.v = try order.permuted(t.v, rowWidth: t.shape.headDim)
        return r
    }

    static func workload(named name: String) -> VideoLikeWorkload? {
        switch name.lowercased() {
        case "mild": return .mild
        case "medium": return .medium
        case "sharp": return .sharp
        case "gaussian": return .gaussian
        default: return nil
        }
    }

    /// One row of the table.
    struct Configuration {
        var name: String
        var parameters: SpargeParameters
        var fullMap = false
    }

    static var configurations: [Configuration] {
        var topk25 = SpargeParameters.recommended
        topk25.selection = .topK(0.25)
        var lambda8 = SpargeParameters.recommended
        lambda8.pvThreshold = 8
        var cdf90 = SpargeParameters.recommended
        cdf90.selection = .cdf(0.9)
        cdf90.simThreshold = 0.3
        return [
            Configuration(name: "recommended top-k 0.5", parameters: .recommended),
            Configuration(name: "top-k 0.25", parameters: topk25),
            Configuration(name: "top-k 0.5, lambda 8", parameters: lambda8),
            Configuration(name: "sage2-cdf 0.98/th 0.6", parameters: .sage2CDF),
            Configuration(name: "cdf 0.9/th 0.3", parameters: cdf90),
            Configuration(name: "triton 0.96/th 0.3", parameters: .triton),
            Configuration(name: "int8 only (full map)", parameters: .recommended, fullMap: true),
        ]
    }

    /// Text goes to stdout as it is measured; with `--json` only the one JSON object at the end.
    func say(_ line: String) { if !json { print(line) } }

    func execute() throws {
        var workload = Self.workload(named: workloadName)!
        workload.tokens = tokens
        workload.heads = heads
        workload.headDim = headDim
        workload.seed = seed
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount

        say("sparge demo: build \(BuildInfo.detail), \(BuildInfo.configuration); \(threadCount) threads")
        var inputs: VideoLikeWorkload.Tensors!
        let genSeconds = try Timing.seconds { inputs = try workload.generate(threads: threadCount) }
        if hilbert {
            // Attention is equivariant under a common permutation of Q, K and V, so the whole
            // table can run on permuted tokens (dense included) without unpermuting outputs.
            inputs = try Self.hilbertOrdered(inputs, workload: workload)
            say("tokens in Hilbert-curve order (\(workload.frames)x\(workload.height)x\(workload.width) grid)")
        }
        let shape = inputs.shape
        say("workload: \(workload) [\(workloadName)], generated in \(Self.ms(genSeconds)) ms")
        say("timing: median of \(repeats) calls after one warm-up, wall clock\n")

        // Exact baseline.
        var reference = [Float]()
        let denseSeconds = try Timing.median(of: repeats) {
            reference = try SpargeAttention.dense(q: inputs.q, k: inputs.k, v: inputs.v, shape: shape, threads: threadCount)
        }
        let gflops = shape.denseFlops(causal: false) / denseSeconds / 1e9

        let header = [("configuration", -24), ("density", 7), ("sparsity", 8), ("s2 skip", 7), ("cosine", 8),
                      ("rel L1", 8), ("RMSE", 9), ("sparse ms", 9), ("dense ms", 9), ("speedup", 7)]
        say(header.map { Self.pad($0.0, $0.1) }.joined(separator: "  "))
        say(header.map { String(repeating: "-", count: abs($0.1)) }.joined(separator: "  "))
        var rows: [JSONValue] = []

        var recommendedMap: BlockMap? = nil
        for c in Self.configurations {
            let (nq, nk) = shape.blockCounts(for: c.parameters)
            let map = try c.fullMap ? BlockMap.full(batch: shape.batch, heads: shape.heads, queryBlocks: nq, keyBlocks: nk) : nil
            var output = [Float]()
            var result: SparseAttentionResult!
            let seconds = try Timing.median(of: repeats) {
                let r = try SpargeAttention.sparse(q: inputs.q, k: inputs.k, v: inputs.v, shape: shape,
                                                   parameters: c.parameters, blockMap: map, threads: threadCount)
                output = r.output
                result = r.result
            }
            if recommendedMap == nil { recommendedMap = result.blockMap }
            let acc = try Accuracy(output, reference: reference)
            let st = result.statistics
            let row: [(String, Int)] = [
                (c.name, -24),
                (String(format: "%.3f", st.density), 7),
                (String(format: "%.1f%%", 100 * st.sparsity), 8),
                (String(format: "%.3f", st.stage2SkippedFraction), 7),
                (String(format: "%.5f", acc.cosine), 8),
                (String(format: "%.4f", acc.relativeL1), 8),
                (String(format: "%.2e", acc.rmse), 9),
                (Self.ms(seconds), 9),
                (Self.ms(denseSeconds), 9),
                (String(format: "%.2fx", denseSeconds / seconds), 7),
            ]
            say(row.map { Self.pad($0.0, $0.1) }.joined(separator: "  "))
            rows.append(.object([("configuration", .string(c.name)), ("parameters", JSONValue.parameters(c.parameters)),
                                 ("full_map", .bool(c.fullMap))] + st.jsonPairs
                                + [("accuracy", acc.json), ("sparse_seconds", .finite(seconds)), ("speedup", .finite(denseSeconds / seconds))]))
        }
        if json {
            let doc = JSONValue.buildPairs(command: "demo") + [
                ("threads", .int(threadCount)), ("repeat", .int(repeats)),
                ("workload", .object([("name", .string(workloadName)), ("seed", .int(Int(truncatingIfNeeded: seed))),
                                      ("hilbert", .bool(hilbert))])),
                ("shape", .shape(shape)), ("dense_seconds", .finite(denseSeconds)), ("dense_gflops", .finite(gflops)),
                ("rows", .array(rows)),
            ]
            print(JSONValue.object(doc).text)
            return
        }
        print(String(format: "\ndense: %.1f GFLOP/s (%.2f GFLOP per call)", gflops, shape.denseFlops(causal: false) / 1e9))
        print("density = selected blocks / allowed blocks (1 - sparsity; every block is allowed here: not causal);")
        print("s2 skip = selected tiles skipped by the stage-2 filter;")
        print("cosine, rel L1 = sum|o-d|/sum|d|, RMSE against exact dense attention (fp32).")

        if let m = recommendedMap {
            let rows = Swift.min(m.queryBlocks, 32), cols = Swift.min(m.keyBlocks, 96)
            let cropped = rows < m.queryBlocks || cols < m.keyBlocks
            let note = cropped ? ", top-left \(rows)x\(cols) shown" : ""
            let p = SpargeParameters.recommended
            print("\nblock map, head 0, recommended (density \(String(format: "%.3f", m.density(head: 0))) of allowed blocks, all allowed; "
                + "\(m.queryBlocks) query blocks x \(m.keyBlocks) key blocks of \(p.blockQ)x\(p.blockK) tokens\(note)):")
            print(try Self.crop(m, rows: rows, columns: cols).render(head: 0), terminator: "")
        }
    }

    /// The top-left `rows x columns` blocks of head 0 (batch 0), so large maps stay readable.
    static func crop(_ m: BlockMap, rows: Int, columns: Int) throws -> BlockMap {
        var bits = [UInt8]()
        bits.reserveCapacity(rows * columns)
        for i in 0..<rows { for j in 0..<columns { bits.append(m[0, 0, i, j] ? 1 : 0) } }
        return try BlockMap(batch: 1, heads: 1, queryBlocks: rows, keyBlocks: columns, bits: bits)
    }

    static func ms(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1000) }

    /// Left-aligned for negative widths, right-aligned otherwise.
    static func pad(_ s: String, _ width: Int) -> String {
        let w = abs(width)
        if s.count >= w { return s }
        let fill = String(repeating: " ", count: w - s.count)
        return width < 0 ? s + fill : fill + s
    }
}
