import Foundation
import SpargeAttn
import SpargeFormats

/// `sparge mask`: shows a block map, either one stored in a safetensors file (the GPU code's
/// `mask` tensors, or what `sparge run --output` writes) or one predicted from the file's q
/// and k, as a PNG picture (one panel per head) and/or as text.
struct MaskCommand {
    static let usage = """
        Usage: sparge mask --input IN.safetensors [--name NAME | --predict [options]]
          [--causal [--bq N --bk N]] [--png OUT.png] [--text] [--batch B] [--cell N] [--columns N] [--json]
          [--token-order raster|hilbert|FILE.npy [--grid HxW|TxHxW] [--prefix K]] (with --predict)

        Shows which key blocks each query block computes, one panel per head: selected blocks,
        blocks skipped by stage 1 (or left out of a stored map) and blocks masked by the causal
        rule, each in its own colour (PNG) or character (text).

          --input PATH        safetensors file (required)
          --name NAME         the stored block map NAME (u8 or bool, B,H,nq,nk), for example
                              mask.b128x64_cdf; default 'mask' (what sparge run --output writes)
          --predict           predict the map from q and k in IN (stage 1) instead, with:
            --bq N, --bk N      query / key block size (default 128, 64)
            --simthreshd1 X     theta, block self-similarity threshold (default -0.1)
            --top-k X           keep floor(X * nk) key blocks per query block (default 0.5;
                                --topk, the old spelling, is still accepted)
            --cdfthreshd X      CDF mode instead, cumulative probability X in [0,1]
            --attention-sink    always keep key block 0
            --gpu-rounding      round to fp16 where the GPU code does
            --threads N         worker threads (default: all CPUs)
            --token-order, --grid, --prefix
                                predict in a token order (described below); the map is in it
          --causal            causal attention: its masked blocks are drawn apart (with a stored
                              map, q and k in IN give Nq and Nk, --bq/--bk the block sizes)
          --png PATH          write a PNG: blue blocks are selected, orange ones skipped, grey ones
                              masked; block indices along the axes (query blocks down, key blocks
                              across), under each panel its head and density, a legend below
          --text              print each head's map as text (# selected, . skipped, - masked) and
                              a legend line; maps of at most 128 key blocks
          --batch B           batch entry to show (default 0)
          --cell N            pixels per block in the PNG (default: panels of about 256 pixels)
          --columns N         panels per row in the PNG (default: about a square grid)

        \(TokenOrderOption.help)

        theta, top-k and cdfthreshd take one value or one per head.
          \(OutputFormat.help)

        Density counts the selected blocks over the allowed ones (those not masked), as sparge run.
        Stdout: a summary line (and with --text the maps); with --json one JSON object: source,
        shape, batch, density, density_of_all_blocks, density_per_head, the PNG's path and size
        (and with --text the maps as text_maps).
        Exit status 2 on bad arguments, bad files or invalid inputs (message on stderr).
        """

    static let flags: Set<String> = ["predict", "text", "causal", "attention-sink", "gpu-rounding", OutputFormat.flag]
    static let options: Set<String> = TokenOrderOption.names.union([
        "input", "name", "png", "batch", "cell", "columns", "bq", "bk", "simthreshd1", "cdfthreshd", "top-k", "threads",
    ])
    /// The widest map `--text` prints: one character per key block.
    static let maxTextColumns = 128

    var input: String
    var name: String?
    var predict: Bool
    var parameters = SpargeParameters.recommended
    var threads: Int?
    var png: String?
    var text: Bool
    var json: Bool
    var batch: Int
    var style = BlockMapImage.Style()
    var tokenOrder: TokenOrderOption?

    /// Parses the arguments; `nil` when `--help` was printed.
    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: Self.flags, options: Self.options,
                                          usage: Self.usage) else { return nil }
        guard let input = a.string("input") else { throw UsageError("mask needs --input IN.safetensors (see sparge mask --help)") }
        self.input = input
        name = a.string("name")
        predict = a.flag("predict")
        png = a.string("png")
        text = a.flag("text")
        json = a.flag(OutputFormat.flag)
        batch = try a.int("batch", in: 0...1_000_000) ?? 0
        style.cellSize = try a.int("cell", in: 1...256)
        style.columns = try a.int("columns", in: 1...4096)
        guard png != nil || text else { throw UsageError("mask has nothing to do: give --png OUT.png and/or --text") }
        if predict && name != nil { throw UsageError("--name and --predict exclude each other: show a stored map or predict one") }

        let predictionOptions = ["simthreshd1", "cdfthreshd", "top-k", "threads", "token-order", "grid", "prefix"].filter(a.has)
            + ["attention-sink", "gpu-rounding"].filter(a.flag)
        if !predict, let first = predictionOptions.first {
            throw UsageError("--\(first) only applies with --predict")
        }
        try a.applyAttentionOptions(to: &parameters)
        threads = try a.int("threads", in: 1...4096)
        tokenOrder = try a.tokenOrder()
    }

    func execute() throws {
        if let png {
            // Fail before reading a large file or predicting when the picture cannot be written.
            try checkOutput(png, option: "--png", inputs: [input])
        }
        let file = try SafeTensorsFile.read(path: input)
        let (map, source, shape) = predict ? try predicted(file) : try stored(file)
        guard batch < map.batch else {
            throw UsageError("--batch \(batch) is out of range: the map has batch size \(map.batch)")
        }
        if text && map.keyBlocks > Self.maxTextColumns {
            throw UsageError("the map has \(map.keyBlocks) key blocks; --text prints at most \(Self.maxTextColumns) columns, use --png instead")
        }
        // Blocks the causal rule masks (the shape is known whenever --causal is given).
        let parameters = self.parameters
        let isMasked: ((Int, Int) -> Bool)? = parameters.causal ? shape.map { s in
            { i, j in !parameters.causallyAllows(queryBlock: i, keyBlock: j, shape: s) }
        } : nil

        var pngSize: (Int, Int)? = nil
        if let png {
            let image = try BlockMapImage.render(map, batch: batch, style: style, isMasked: isMasked)
            let bytes = try image.pngData()
            do {
                try FileSafety.writeAtomically(bytes, to: png)
            } catch {
                throw UsageError("cannot write --png '\(png)': \(error.reason)")
            }
            pngSize = (image.width, image.height)
        }

        let counts = (0..<map.heads).map { Self.counts(map, batch: batch, head: $0, isMasked: isMasked) }
        let perHead = counts.map { $0.allowed == 0 ? 0 : Double($0.selected) / Double($0.allowed) }
        let selected = counts.map(\.selected).reduce(0, +), allowed = counts.map(\.allowed).reduce(0, +)
        let density = allowed == 0 ? 0 : Double(selected) / Double(allowed)
        let ofAll = Double(selected) / Double(map.heads * map.queryBlocks * map.keyBlocks)
        let maps = try text ? (0..<map.heads).map { try BlockMapText.render(map, batch: batch, head: $0, isMasked: isMasked) } : []
        if json {
            var pairs: [(String, JSONValue)] = [
                ("source", .string(source)), ("input", .string(input)),
                ("shape", .array([map.batch, map.heads, map.queryBlocks, map.keyBlocks].map { .int($0) })),
                ("batch", .int(batch)), ("density", .finite(density)), ("sparsity", .finite(1 - density)),
                ("density_of_all_blocks", .finite(ofAll)), ("masked_blocks_known", .bool(isMasked != nil)),
                ("density_per_head", .array(perHead.map { .finite($0) })),
            ]
            if let png, let size = pngSize {
                pairs += [("png", .string(png)), ("width", .int(size.0)), ("height", .int(size.1))]
            }
            if text { pairs.append(("text_maps", .array(maps.map { .string($0) }))) }
            print(JSONValue.object(pairs).text)
        } else {
            print("\(source): batch \(batch) of \(map.batch), \(map.heads) heads, \(map.queryBlocks) query x \(map.keyBlocks) key blocks, "
                + "density \(Self.fixed(density)) of allowed blocks (\(Self.fixed(ofAll)) of all)"
                + (isMasked == nil ? "; no masked blocks shown (give --causal for a causal map)" : ""))
            if text {
                print(BlockMapText.legend)
                for h in 0..<map.heads {
                    print("head \(h) (density \(Self.fixed(perHead[h]))):")
                    print(maps[h], terminator: "")
                }
            }
            if let png, let size = pngSize { print("wrote \(png) (\(size.0) x \(size.1) pixels)") }
        }
    }

    // MARK: Maps

    /// The stored map `--name` (default `mask`), u8 or bool with 4 dimensions.
    /// With `--causal` the attention shape comes from the file's q and k (it places the diagonal).
    func stored(_ file: SafeTensorsFile) throws -> (BlockMap, String, AttentionShape?) {
        let key = name ?? "mask"
        guard let t = file[key] else {
            let candidates = file.names.filter { file[$0].map { ($0.dtype == .uint8 || $0.dtype == .bool) && $0.shape.count == 4 } ?? false }
            let hint = candidates.isEmpty ? "the file holds no u8/bool 4-d tensors; use --predict to predict a map from q and k"
                : "maps in the file: \(candidates.prefix(12).joined(separator: ", "))"
            throw UsageError("no tensor '\(key)' in \(input) (\(hint))")
        }
        guard t.dtype == .uint8 || t.dtype == .bool else {
            throw UsageError("'\(key)' is \(t.dtype); a block map must be U8 or BOOL")
        }
        guard t.shape.count == 4, t.shape.allSatisfy({ $0 > 0 }) else {
            throw UsageError("'\(key)' has shape \(t.shape); a block map has 4 positive dimensions B,H,nq,nk")
        }
        let map = try BlockMap(batch: t.shape[0], heads: t.shape[1], queryBlocks: t.shape[2], keyBlocks: t.shape[3], bits: t.uint8s())
        guard parameters.causal else { return (map, key, nil) }
        guard let qt = file["q"], let kt = file["k"] else {
            throw UsageError("--causal with a stored map needs q and k in \(input) (their lengths place the causal diagonal)")
        }
        let shape = try RunCommand.shape(q: qt, k: kt, v: kt)
        do {
            try map.validate(for: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
        } catch {
            throw UsageError("'\(key)' does not fit q and k with blocks \(parameters.blockQ)x\(parameters.blockK): \(error); pass the --bq/--bk it was made with")
        }
        return (map, key, shape)
    }

    /// Stage 1's map for the file's q and k.
    func predicted(_ file: SafeTensorsFile) throws -> (BlockMap, String, AttentionShape?) {
        let qt = try file.tensor("q"), kt = try file.tensor("k")
        // v is not needed: k stands in for it in the shape checks.
        let shape = try RunCommand.shape(q: qt, k: kt, v: kt)
        try parameters.validate(for: shape)
        let nk = shape.blockCounts(for: parameters).keyBlocks
        if text && nk > Self.maxTextColumns {
            throw UsageError("the map would have \(nk) key blocks; --text prints at most \(Self.maxTextColumns) columns, use --png or a larger --bk")
        }
        let q = try RunCommand.floats(qt, "q"), k = try RunCommand.floats(kt, "k")
        let order = try tokenOrder?.order(for: shape)
        let result = try SpargeAttention.predictBlockMap(q: q, k: k, shape: shape, parameters: parameters, tokenOrder: order,
                                                         threads: threads)
        return (try result.ownedBlockMap(), "predicted (\(parameters)\(tokenOrder.map { ", token order \($0.description)" } ?? ""))", shape)
    }

    /// Selected and allowed blocks of one head of batch entry `b` (masked blocks are not allowed).
    static func counts(_ map: BlockMap, batch b: Int, head h: Int,
                       isMasked: ((Int, Int) -> Bool)?) -> (selected: Int, allowed: Int) {
        var selected = 0, allowed = 0
        for i in 0..<map.queryBlocks {
            for j in 0..<map.keyBlocks where isMasked?(i, j) != true {
                allowed += 1
                if map[b, h, i, j] { selected += 1 }
            }
        }
        return (selected, allowed)
    }

    static func fixed(_ x: Double) -> String { String(format: "%.3f", x) }
}
