import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTestSupport

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
    @Test(.enabled(if: InteropPython.mayRun("zlib"), "needs python3 (its zlib module): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func checksumsMatchPythonZlib() throws {
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

    @Test(.enabled(if: InteropPython.mayRun("zlib"), "needs python3 (its zlib module): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func zlibStreamsInflateWithPython() throws {
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

    @Test(.enabled(if: InteropPython.mayRun("zlib"), "needs python3 (its zlib module): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func pngPixelsDecodeExactlyInPython() throws {
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
        var specs: [PNGCheck.Spec] = []
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
                    specs.append(PNGCheck.Spec(png: pngURL, raw: rawURL, width: w, height: h, channels: type.channels))
                }
            }
        }
        let filters = try PNGCheck.pythonCheck(specs, in: dir)
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
        var map = try BlockMap(batch: 2, heads: 3, queryBlocks: 4, keyBlocks: 5)
        map[1, 0, 0, 0] = true
        map[1, 0, 3, 4] = true
        map[1, 2, 1, 2] = true
        for j in 0..<5 { map[1, 1, 2, j] = true }
        var style = BlockMapImage.Style(cellSize: 4, columns: 2)
        style.margin = 5
        style.gap = 7
        // Key blocks right of the diagonal are masked (a causal map).
        let masked = { (i: Int, j: Int) in j > i }
        let image = try BlockMapImage.render(map, batch: 1, style: style, isMasked: masked)
        // Axes: key labels every 2 blocks ("4" is 5 pixels wide, 2 cells = 8 >= 5 + 3), query
        // labels every 5 (7 pixels tall); the left gutter is "0" plus 3, the top one 7 + 3.
        #expect(BlockMapImage.tickStep(cell: 4, extent: 5) == 2 && BlockMapImage.tickStep(cell: 4, extent: 7) == 5)
        let left = 5 + 3, top = 7 + 3
        // The legend ("density 0.250" is 13 glyphs: 77 pixels) is wider than the gutter + frame.
        let panelWidth = 77, panelHeight = top + (4 * 4 + 2) + (3 + 7 + 2 + 7)
        // The picture's legend: "rows: query blocks, columns: key blocks" (39 glyphs) is the widest line.
        let legendWidth = 39 * 6 - 1, legendHeight = 7 + 2 * 7 + 2
        #expect(image.width == max(2 * panelWidth + 7, legendWidth) + 2 * 5)
        #expect(image.height == 2 * panelHeight + 7 + legendHeight + 2 * 5)
        #expect(image.width == 243 && image.height == 134)
        func frame(_ h: Int) -> (x: Int, y: Int) {
            (5 + (h % 2) * (panelWidth + 7) + left, 5 + (h / 2) * (panelHeight + 7) + top)
        }
        func cell(_ h: Int, _ i: Int, _ j: Int) -> RGBColor {
            let f = frame(h)
            return image[f.x + 1 + j * 4 + 2, f.y + 1 + i * 4 + 1]
        }
        for h in 0..<3 {
            for i in 0..<4 {
                for j in 0..<5 {
                    let expected = masked(i, j) ? style.masked : map[1, h, i, j] ? style.marked : style.unmarked
                    #expect(cell(h, i, j) == expected, "head \(h) block \(i),\(j)")
                }
            }
        }
        // Three distinct colours at known blocks of head 0: selected, skipped, masked.
        #expect(cell(0, 0, 0) == style.marked && cell(0, 1, 0) == style.unmarked && cell(0, 0, 1) == style.masked)
        #expect(Set([style.marked, style.unmarked, style.masked]).count == 3)
        // Frame, tick marks, background.
        #expect(image[frame(0).x, frame(0).y] == style.border)
        #expect(image[frame(0).x + 5 * 4 + 1, frame(0).y + 4 * 4 + 1] == style.border)
        #expect(image[frame(0).x + 1 + 2 * 4, frame(0).y - 2] == style.border)   // key block 2's tick
        #expect(image[frame(0).x - 2, frame(0).y + 1] == style.border)           // query block 0's tick
        #expect(image[0, 0] == style.background)
        #expect(image[image.width - 1, image.height - 1] == style.background)
        // Tick labels above and left of every frame, and the head/density text under it.
        for h in 0..<3 {
            let f = frame(h)
            var above = 0, beside = 0, under = 0
            for y in (f.y - top)..<(f.y - 3) { for x in f.x..<(f.x + 24) where image[x, y] == style.text { above += 1 } }
            for y in f.y..<(f.y + 8) { for x in (f.x - left)..<(f.x - 3) where image[x, y] == style.text { beside += 1 } }
            let ty = f.y + 4 * 4 + 2 + 3
            for y in ty..<(ty + 16) { for x in (f.x - left)..<(f.x - left + panelWidth) where image[x, y] == style.text { under += 1 } }
            #expect(above > 20 && beside > 5 && under > 40, "head \(h): \(above) \(beside) \(under) text pixels")
        }
        // The legend: one swatch per state (interior in its colour), then text.
        let ly = image.height - 5 - 2 * 7 - 2
        var lx = 5
        for state in BlockState.allCases {
            #expect(image[lx + 3, ly + 3] == style.color(state), "swatch \(state)")
            #expect(image[lx, ly] == style.border)
            lx += 7 + 3 + PixelFont.width(of: state.label) + 10
        }
        var legendInk = 0
        for y in (ly + 9)..<(ly + 16) { for x in 5..<(5 + legendWidth) where image[x, y] == style.text { legendInk += 1 } }
        #expect(legendInk > 100)
        #expect(BlockMapImage.legend(head: 2, density: 0.05) == ["head 2", "density 0.050"])
        for ch in "head density 0123456789. selected skipped masked rows: query blocks, columns: key blocks" {
            #expect(PixelFont.glyphs[ch] != nil, "glyph \(ch)")
        }
        #expect(throws: PNGEncoderError.self) { try BlockMapImage.render(map, batch: 2) }
        #expect(throws: PNGEncoderError.self) { try BlockMapImage.render(map, style: .init(cellSize: 0)) }
    }

    @Test func blockMapTextShowsStatesAndLegend() throws {
        var map = try BlockMap(batch: 1, heads: 1, queryBlocks: 3, keyBlocks: 3)
        map[0, 0, 0, 0] = true
        map[0, 0, 2, 1] = true
        map[0, 0, 0, 2] = true   // masked: drawn as masked whatever the map says
        #expect(try BlockMapText.render(map, head: 0, isMasked: { i, j in j > i }) == "#--\n..-\n.#.\n")
        #expect(try BlockMapText.render(map, head: 0) == "#.#\n...\n.#.\n")
        #expect(try BlockMapText.render(map, head: 0) == map.render(head: 0))
        #expect(throws: SpargeError.self) { try BlockMapText.render(map, head: 1) }
        #expect(throws: SpargeError.self) { try map.render(batch: 1, head: 0) }
        #expect(BlockMapText.legend.contains("# selected") && BlockMapText.legend.contains(". skipped")
                && BlockMapText.legend.contains("- masked"))
    }

    @Test(.enabled(if: InteropPython.mayRun("zlib"), "needs python3 (its zlib module): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func blockMapPNGDecodesInPython() throws {
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
        try PNGCheck.pythonCheck([PNGCheck.Spec(png: url, raw: raw, width: image.width, height: image.height, channels: 3)], in: dir)
        #expect(png.count < image.pixels.count / 10, "flat pictures compress well: \(png.count) bytes")
    }
}
