import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats

/// The PNG writer checked by an independent decoder: Python's standard library (`zlib` for
/// inflate and CRC-32, the PNG filters undone by hand) rebuilds every pixel. Also CRC-32 and
/// Adler-32 of known strings, zlib streams of both block types, block-map pictures, and
/// `sparge mask` end to end on a golden file.
struct PNGTests {
    // MARK: Checksums

    @Test func checksumsOfKnownStrings() {
        let digits = Array("123456789".utf8)
        #expect(PNGEncoder.crc32(digits) == 0xCBF4_3926)
        #expect(PNGEncoder.adler32(digits) == 0x091E_01DE)
        #expect(PNGEncoder.crc32([UInt8]()) == 0)
        #expect(PNGEncoder.adler32([UInt8]()) == 1)
        #expect(PNGEncoder.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(PNGEncoder.crc32(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
        // The IEND chunk's CRC, fixed by the format.
        #expect(PNGEncoder.crc32(Array("IEND".utf8)) == 0xAE42_6082)
    }

    /// Long inputs of 0xFF bytes are the worst case for Adler-32's deferred reduction.
    @Test func checksumsMatchPythonZlib() throws {
        var rng = TestRNG(seed: 3)
        let inputs: [[UInt8]] = [
            [], [0], [255], Array(repeating: 0xFF, count: 5552), Array(repeating: 0xFF, count: 5553),
            Array(repeating: 0xFF, count: 200_000), (0..<100_003).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
        ]
        let hexFile = try Self.writeTemporary(inputs.map(InteropPython.hex).joined(separator: " "))
        defer { try? FileManager.default.removeItem(atPath: hexFile) }
        let out = try InteropPython.check("""
            import sys, zlib
            for h in open(sys.argv[1]).read().split(' '):
                b = bytes.fromhex(h)
                print(zlib.crc32(b) & 0xffffffff, zlib.adler32(b) & 0xffffffff)
            """, [hexFile])
        let lines = out.split(separator: "\n")
        #expect(lines.count == inputs.count)
        for (input, line) in zip(inputs, lines) {
            let parts = line.split(separator: " ").compactMap { UInt32($0) }
            #expect(parts == [PNGEncoder.crc32(input), PNGEncoder.adler32(input)], "\(input.count) bytes")
        }
    }

    static func writeTemporary(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("png-test-\(UUID().uuidString).txt")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    // MARK: zlib streams

    @Test func zlibStreamsInflateWithPython() throws {
        let dir = try InteropPython.temporaryDirectory("zlib")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = TestRNG(seed: 9)
        let inputs: [(String, [UInt8])] = [
            ("empty", []),
            ("one", [42]),
            ("two", [1, 2]),
            ("all-bytes", (0..<256).map { UInt8($0) } + (0..<256).map { UInt8(255 - $0) }),
            ("random", (0..<70_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
            ("zeros", [UInt8](repeating: 0, count: 140_000)),   // longest matches, several stored blocks
            ("runs", (0..<50_000).map { UInt8(($0 / 1000) % 7) }),
            ("text", Array(String(repeating: "attention is all you need, sparsely. ", count: 800).utf8)),
            ("far-repeat", { let r = (0..<30_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }; return r + r + r }()),
            ("small-alphabet", (0..<60_000).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }),
        ]
        var names: [String] = []
        for (name, data) in inputs {
            for mode in PNGEncoder.Compression.allCases {
                let stream = PNGEncoder.zlibCompress(data, compression: mode)
                if mode == .fixedHuffman && (name == "zeros" || name == "text") {
                    #expect(stream.count < data.count / 50, "\(name): \(stream.count) bytes from \(data.count)")
                }
                if mode == .stored { #expect(stream.count == data.count + 6 + 5 * max(1, (data.count + 65_534) / 65_535)) }
                let file = "\(name).\(mode == .stored ? "stored" : "fixed")"
                try Data(stream).write(to: dir.appendingPathComponent(file + ".z"))
                try Data(data).write(to: dir.appendingPathComponent(file + ".raw"))
                names.append(file)
            }
        }
        let out = try InteropPython.check("""
            import os, sys, zlib
            d = sys.argv[1]
            for name in sys.argv[2:]:
                z = open(os.path.join(d, name + '.z'), 'rb').read()
                raw = open(os.path.join(d, name + '.raw'), 'rb').read()
                d_obj = zlib.decompressobj()
                got = d_obj.decompress(z)
                ok = got == raw and d_obj.eof and not d_obj.unused_data
                print(name, 'ok' if ok else 'MISMATCH %d %d' % (len(got), len(raw)))
            """, [dir.path] + names)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == names.count)
        for line in lines { #expect(line.hasSuffix(" ok"), "\(line)") }
    }

    // MARK: PNG files

    /// Python (standard library only) checks signature, chunk order, every chunk's CRC and the
    /// IHDR fields, inflates the concatenated IDAT data, undoes each row's filter and compares
    /// every pixel with the raw bytes. Prints a JSON report.
    static let pngChecker = """
        import json, struct, sys, zlib
        def paeth(a, b, c):
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            if pa <= pb and pa <= pc: return a
            return b if pb <= pc else c
        def check(path, raw_path, width, height, channels):
            data = open(path, 'rb').read()
            if data[:8] != b'\\x89PNG\\r\\n\\x1a\\n': return 'bad signature'
            pos, chunks = 8, []
            while pos < len(data):
                if pos + 12 > len(data): return 'truncated chunk'
                n, = struct.unpack('>I', data[pos:pos + 4])
                kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
                crc, = struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])
                if zlib.crc32(kind + body) & 0xffffffff != crc: return 'bad CRC in ' + kind.decode()
                chunks.append((kind, body))
                pos += 12 + n
            kinds = [k for k, _ in chunks]
            if kinds[0] != b'IHDR' or kinds[-1] != b'IEND' or chunks[-1][1] != b'': return 'chunk order %s' % kinds
            idat = [i for i, k in enumerate(kinds) if k == b'IDAT']
            if not idat or idat != list(range(idat[0], idat[-1] + 1)): return 'IDAT chunks not consecutive'
            w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
            if (w, h, depth, ctype, comp, filt, inter) != (width, height, 8, 2 if channels == 3 else 0, 0, 0, 0):
                return 'IHDR %s' % ((w, h, depth, ctype, comp, filt, inter),)
            dec = zlib.decompress(b''.join(chunks[i][1] for i in idat))
            stride = w * channels
            if len(dec) != h * (stride + 1): return 'inflated %d bytes, expected %d' % (len(dec), h * (stride + 1))
            out, prev, used = bytearray(), bytearray(stride), set()
            for y in range(h):
                ft = dec[y * (stride + 1)]
                used.add(ft)
                line = bytearray(dec[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
                for i in range(stride):
                    a = line[i - channels] if i >= channels else 0
                    b = prev[i]
                    c = prev[i - channels] if i >= channels else 0
                    if ft == 0: p = 0
                    elif ft == 1: p = a
                    elif ft == 2: p = b
                    elif ft == 3: p = (a + b) // 2
                    elif ft == 4: p = paeth(a, b, c)
                    else: return 'filter type %d' % ft
                    line[i] = (line[i] + p) & 0xff
                out += line
                prev = line
            if raw_path and bytes(out) != open(raw_path, 'rb').read(): return 'pixels differ'
            return sorted(used)
        results = {}
        for spec in json.load(open(sys.argv[1])):
            r = check(spec['png'], spec.get('raw'), spec['width'], spec['height'], spec['channels'])
            results[spec['png']] = r
        print(json.dumps(results))
        """

    struct Spec {
        var png: URL
        var raw: URL?
        var width: Int
        var height: Int
        var channels: Int
    }

    /// Runs the checker on `specs`; returns the filter types found per file (or records the error).
    @discardableResult
    static func pythonCheck(_ specs: [Spec], in dir: URL) throws -> [String: [Int]] {
        let list: [[String: Any]] = specs.map {
            var d: [String: Any] = ["png": $0.png.path, "width": $0.width, "height": $0.height, "channels": $0.channels]
            if let raw = $0.raw { d["raw"] = raw.path }
            return d
        }
        let manifest = dir.appendingPathComponent("specs.json")
        try JSONSerialization.data(withJSONObject: list).write(to: manifest)
        let out = try InteropPython.check(pngChecker, [manifest.path])
        let results = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "python printed: \(out)")
        var filters: [String: [Int]] = [:]
        for spec in specs {
            if let used = InteropPython.ints(results[spec.png.path]) {
                filters[spec.png.lastPathComponent] = used
            } else {
                Issue.record("\(spec.png.lastPathComponent): \(String(describing: results[spec.png.path]))")
            }
        }
        return filters
    }

    @Test func pngPixelsDecodeExactlyInPython() throws {
        let dir = try InteropPython.temporaryDirectory("png")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = TestRNG(seed: 17)
        let images: [(String, Int, Int, PNGEncoder.ColorType, [UInt8])] = [
            ("gray1x1", 1, 1, .grayscale, [200]),
            ("rgb3x2", 3, 2, .rgb, [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 128, 128, 128, 255, 255, 255]),
            ("random-rgb", 37, 23, .rgb, (0..<(37 * 23 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
            ("random-gray", 41, 19, .grayscale, (0..<(41 * 19)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
            ("gradient", 120, 80, .rgb, (0..<(120 * 80)).flatMap { i -> [UInt8] in
                let x = i % 120, y = i / 120
                return [UInt8(x * 2), UInt8(y * 3), UInt8((x + y) % 256)]
            }),
            ("tall", 1, 300, .grayscale, (0..<300).map { UInt8($0 % 256) }),
            ("wide", 700, 1, .rgb, (0..<2100).map { UInt8(($0 * 7) % 256) }),
        ]
        var specs: [Spec] = []
        for (name, w, h, type, pixels) in images {
            for filter in PNGEncoder.RowFilter.allCases {
                for compression in PNGEncoder.Compression.allCases {
                    // Small IDAT chunks on some files, so the checker must concatenate them.
                    let options = PNGEncoder.Options(compression: compression, filter: filter, idatChunkSize: name == "gradient" ? 97 : 1 << 16)
                    let png = try PNGEncoder.encode(width: w, height: h, colorType: type, pixels: pixels, options: options)
                    let base = "\(name)-\(filter)-\(compression)"
                    let pngURL = dir.appendingPathComponent(base + ".png"), rawURL = dir.appendingPathComponent(base + ".raw")
                    try Data(png).write(to: pngURL)
                    try Data(pixels).write(to: rawURL)
                    specs.append(Spec(png: pngURL, raw: rawURL, width: w, height: h, channels: type.channels))
                }
            }
        }
        let filters = try Self.pythonCheck(specs, in: dir)
        #expect(filters.count == specs.count)
        // Fixed filters use their own type on every row; adaptive picks several on varied images.
        #expect(filters["gradient-paeth-fixedHuffman.png"] == [4])
        #expect(filters["random-rgb-sub-stored.png"] == [1])
        #expect((filters["gradient-adaptive-fixedHuffman.png"]?.count ?? 0) >= 2)
    }

    @Test func invalidImagesThrow() {
        #expect(throws: PNGEncoderError.invalidDimensions(width: 0, height: 1)) {
            try PNGEncoder.encode(width: 0, height: 1, colorType: .rgb, pixels: [])
        }
        #expect(throws: PNGEncoderError.pixelCountMismatch(width: 2, height: 2, channels: 3, expected: 12, actual: 11)) {
            try PNGEncoder.encode(width: 2, height: 2, colorType: .rgb, pixels: [UInt8](repeating: 0, count: 11))
        }
        #expect(throws: PNGEncoderError.self) {
            try PNGEncoder.encode(width: Int.max, height: Int.max, colorType: .grayscale, pixels: [])
        }
        #expect(throws: PNGEncoderError.self) {
            try PNGEncoder.encode(width: 1, height: 1, colorType: .grayscale, pixels: [0], options: .init(idatChunkSize: 0))
        }
        #expect(throws: PNGEncoderError.imageTooLarge(width: 100_000, height: 100_000, limit: RGBImage.maxPixels)) {
            try RGBImage(width: 100_000, height: 100_000)
        }
    }

    // MARK: Block-map pictures

    @Test func blockMapImageLayoutAndColors() throws {
        var map = BlockMap(batch: 2, heads: 3, queryBlocks: 4, keyBlocks: 5)
        map[1, 0, 0, 0] = true
        map[1, 0, 3, 4] = true
        map[1, 2, 1, 2] = true
        for j in 0..<5 { map[1, 1, 2, j] = true }
        var style = BlockMapImage.Style(cellSize: 4, columns: 2)
        style.margin = 5
        style.gap = 7
        let image = try BlockMapImage.render(map, batch: 1, style: style)
        // The legend ("density 0.250" is 13 glyphs: 77 pixels) is wider than a 5 x 4 + 2 panel.
        let panelWidth = 77, panelHeight = 4 * 4 + 2 + 3 + 7 + 2 + 7
        #expect(image.width == 2 * panelWidth + 7 + 2 * 5)
        #expect(image.height == 2 * panelHeight + 7 + 2 * 5)
        func cell(_ h: Int, _ i: Int, _ j: Int) -> RGBColor {
            let x0 = 5 + (h % 2) * (panelWidth + 7), y0 = 5 + (h / 2) * (panelHeight + 7)
            return image[x0 + 1 + j * 4 + 2, y0 + 1 + i * 4 + 1]
        }
        for h in 0..<3 {
            for i in 0..<4 {
                for j in 0..<5 {
                    #expect(cell(h, i, j) == (map[1, h, i, j] ? style.marked : style.unmarked), "head \(h) block \(i),\(j)")
                }
            }
        }
        // Frame, background, and some text pixels under each panel.
        #expect(image[5, 5] == style.border)
        #expect(image[5 + 5 * 4 + 1, 5 + 4 * 4 + 1] == style.border)
        #expect(image[0, 0] == style.background)
        #expect(image[image.width - 1, image.height - 1] == style.background)
        for h in 0..<3 {
            let x0 = 5 + (h % 2) * (panelWidth + 7), y0 = 5 + (h / 2) * (panelHeight + 7) + 4 * 4 + 2 + 3
            var inked = 0
            for y in y0..<(y0 + 16) { for x in x0..<(x0 + panelWidth) where image[x, y] == style.text { inked += 1 } }
            #expect(inked > 40, "head \(h): \(inked) text pixels")
        }
        #expect(BlockMapImage.legend(head: 2, density: 0.05) == ["head 2", "density 0.050"])
        for ch in "head density 0123456789." { #expect(PixelFont.glyphs[ch] != nil, "glyph \(ch)") }
        #expect(throws: PNGEncoderError.self) { try BlockMapImage.render(map, batch: 2) }
        #expect(throws: PNGEncoderError.self) { try BlockMapImage.render(map, style: .init(cellSize: 0)) }
    }

    @Test func blockMapPNGDecodesInPython() throws {
        let dir = try InteropPython.temporaryDirectory("mask-png")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = TestRNG(seed: 4)
        let map = try BlockMap(batch: 1, heads: 5, queryBlocks: 23, keyBlocks: 41,
                               bits: (0..<(5 * 23 * 41)).map { _ in rng.uniform() < 0.3 ? 1 : 0 })
        let image = try BlockMapImage.render(map)
        let png = try image.pngData()
        let url = dir.appendingPathComponent("map.png"), raw = dir.appendingPathComponent("map.raw")
        try Data(png).write(to: url)
        try Data(image.pixels).write(to: raw)
        try Self.pythonCheck([Spec(png: url, raw: raw, width: image.width, height: image.height, channels: 3)], in: dir)
        #expect(png.count < image.pixels.count / 10, "flat pictures compress well: \(png.count) bytes")
    }

    // MARK: sparge mask

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let goldenFolder = Golden.compactFolder

    /// The built `sparge`, found the way CLITests does: next to the test binary, else in `.build/<config>/`.
    static func spargeExecutable() throws -> URL {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(Bundle.main.bundleURL)
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        #if DEBUG
        let configs = ["debug", "release"]
        #else
        let configs = ["release", "debug"]
        #endif
        for c in configs { dirs.append(repositoryRoot.appendingPathComponent(".build").appendingPathComponent(c)) }
        for dir in dirs {
            let url = dir.appendingPathComponent("sparge")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw InteropPython.Failure(description: "sparge executable not found in \(dirs.map(\.path)); build the package first (swift build)")
    }

    static func sparge(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = try spargeExecutable()
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // stderr is at most one line, so reading stdout to the end first cannot deadlock.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// The Gaussian case's CDF map (all blocks kept) and the language model's causal top-k map.
    @Test(arguments: [("gauss_1000_d64", "mask.b128x64_cdf"), ("smollm2_l15_2048_d64_causal", "mask.b128x64_topk")])
    func maskCommandOnGoldenFile(file: String, name: String) throws {
        let dir = try InteropPython.temporaryDirectory("mask-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let golden = Self.goldenFolder.appendingPathComponent(file + ".safetensors")
        guard FileManager.default.fileExists(atPath: golden.path) else {
            Issue.record("golden file missing: \(golden.path) (Scripts/make_compact_golden.py writes Tests/Golden)")
            return
        }
        let png = dir.appendingPathComponent("tmp.png")
        let r = try Self.sparge(["mask", "--name", name, "--input", golden.path, "--png", png.path])
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
        try Self.pythonCheck([Spec(png: png, raw: raw, width: image.width, height: image.height, channels: 3)], in: dir)
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
        let expected = try SpargeAttention.predictBlockMap(q: qf, k: kf, shape: shape, parameters: p).blockMap
        for h in 0..<2 { #expect(predicted.stdout.contains(expected.render(head: h)), "head \(h)") }
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
