import Foundation
import SpargeAttn

/// An 8-bit RGB colour.
public struct RGBColor: Sendable, Hashable {
    /// Red intensity, 0...255.
    public var red: UInt8
    /// Green intensity, 0...255.
    public var green: UInt8
    /// Blue intensity, 0...255.
    public var blue: UInt8

    /// A colour from its three intensities.
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// (255, 255, 255).
    public static let white = RGBColor(255, 255, 255)
    /// (0, 0, 0).
    public static let black = RGBColor(0, 0, 0)
}

/// A raster of 8-bit RGB pixels, row-major, top row first.
public struct RGBImage: Sendable, Hashable {
    /// Largest image accepted (64 Mpixel, 192 MB), so a huge map fails clearly instead of
    /// exhausting memory.
    public static let maxPixels = 1 << 26

    /// Columns of pixels.
    public let width: Int
    /// Rows of pixels.
    public let height: Int
    /// `width * height * 3` bytes: red, green, blue per pixel.
    public private(set) var pixels: [UInt8]

    /// An image filled with one colour.
    /// - Throws: ``PNGEncoderError/invalidDimensions(width:height:)`` or ``PNGEncoderError/imageTooLarge(width:height:limit:)``.
    public init(width: Int, height: Int, fill: RGBColor = .white) throws {
        guard width > 0, height > 0 else { throw PNGEncoderError.invalidDimensions(width: width, height: height) }
        let (count, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, count <= Self.maxPixels else {
            throw PNGEncoderError.imageTooLarge(width: width, height: height, limit: Self.maxPixels)
        }
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: 3 * count)
        fillRect(x: 0, y: 0, width: width, height: height, color: fill)
    }

    /// The pixel at column `x`, row `y` (both must be in range).
    public subscript(x: Int, y: Int) -> RGBColor {
        get {
            let o = 3 * (y * width + x)
            return RGBColor(pixels[o], pixels[o + 1], pixels[o + 2])
        }
        set {
            let o = 3 * (y * width + x)
            pixels[o] = newValue.red
            pixels[o + 1] = newValue.green
            pixels[o + 2] = newValue.blue
        }
    }

    /// Fills a rectangle, clipped to the image (parts outside are ignored).
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: RGBColor) {
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        let (r, g, b) = (color.red, color.green, color.blue)
        pixels.withUnsafeMutableBufferPointer { p in
            for row in y0..<y1 {
                var o = 3 * (row * width + x0)
                for _ in x0..<x1 {
                    p[o] = r; p[o + 1] = g; p[o + 2] = b
                    o += 3
                }
            }
        }
    }

    /// Draws a one-pixel rectangle outline, clipped to the image.
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, color: RGBColor) {
        fillRect(x: x, y: y, width: w, height: 1, color: color)
        fillRect(x: x, y: y + h - 1, width: w, height: 1, color: color)
        fillRect(x: x, y: y, width: 1, height: h, color: color)
        fillRect(x: x + w - 1, y: y, width: 1, height: h, color: color)
    }

    /// Draws `text` in the built-in 5x7 pixel font with its top-left corner at (x, y).
    /// Characters without a glyph are drawn as hollow boxes.
    public mutating func drawText(_ text: String, x: Int, y: Int, color: RGBColor) {
        var cx = x
        for ch in text {
            let rows = PixelFont.glyph(ch)
            for (dy, bits) in rows.enumerated() {
                for dx in 0..<PixelFont.glyphWidth where bits & (0x10 >> UInt8(dx)) != 0 {
                    fillRect(x: cx + dx, y: y + dy, width: 1, height: 1, color: color)
                }
            }
            cx += PixelFont.advance
        }
    }

    /// The image as a PNG file (see ``PNGEncoder``).
    public func pngData(options: PNGEncoder.Options = PNGEncoder.Options()) throws -> [UInt8] {
        try PNGEncoder.encode(width: width, height: height, colorType: .rgb, pixels: pixels, options: options)
    }
}

/// A 5x7 pixel font with the digits and the few letters the block-map legend needs.
enum PixelFont {
    static let glyphWidth = 5
    static let glyphHeight = 7
    /// Glyph width plus one column of spacing.
    static let advance = 6

    /// Seven rows of five bits each, the leftmost pixel in bit 4.
    static func glyph(_ ch: Character) -> [UInt8] {
        glyphs[ch] ?? [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F]
    }

    /// Width in pixels of `text` drawn with `drawText`.
    static func width(of text: String) -> Int {
        text.isEmpty ? 0 : text.count * advance - 1
    }

    private static func rows(_ r: String...) -> [UInt8] {
        r.map { UInt8($0, radix: 2)! }
    }

    static let glyphs: [Character: [UInt8]] = [
        " ": [0, 0, 0, 0, 0, 0, 0],
        "0": rows("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
        "1": rows("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
        "2": rows("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
        "3": rows("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
        "4": rows("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
        "5": rows("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
        "6": rows("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
        "7": rows("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
        "8": rows("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
        "9": rows("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
        ".": rows("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
        "-": rows("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
        "a": rows("00000", "00000", "01110", "00001", "01111", "10001", "01111"),
        "b": rows("10000", "10000", "10110", "11001", "10001", "10001", "11110"),
        "d": rows("00001", "00001", "01101", "10011", "10001", "10001", "01111"),
        "e": rows("00000", "00000", "01110", "10001", "11111", "10000", "01110"),
        "h": rows("10000", "10000", "10110", "11001", "10001", "10001", "10001"),
        "i": rows("00100", "00000", "01100", "00100", "00100", "00100", "01110"),
        "k": rows("10000", "10000", "10010", "10100", "11000", "10100", "10010"),
        "n": rows("00000", "00000", "10110", "11001", "10001", "10001", "10001"),
        "s": rows("00000", "00000", "01110", "10000", "01110", "00001", "11110"),
        "t": rows("01000", "01000", "11100", "01000", "01000", "01001", "00110"),
        "x": rows("00000", "00000", "10001", "01010", "00100", "01010", "10001"),
        "y": rows("00000", "00000", "10001", "10001", "01111", "00001", "01110"),
    ]
}

/// Pictures of a `BlockMap`: one panel per head in a grid, each block a square of a few
/// pixels, with "head N" and "density 0.xxx" written under every panel.
///
/// Rows of a panel are query blocks (top = block 0), columns key blocks (left = block 0),
/// like `BlockMap.render(batch:head:)`.
public enum BlockMapImage {
    /// Colours and sizes of the picture.
    public struct Style: Sendable, Hashable {
        /// Pixels per block side; `nil` picks one so that a panel is about 256 pixels wide or tall.
        public var cellSize: Int?
        /// Panels per row of the grid; `nil` gives about a square grid.
        public var columns: Int?
        /// Colour of blocks that are computed.
        public var marked = RGBColor(33, 102, 172)
        /// Colour of blocks that are skipped.
        public var unmarked = RGBColor(236, 236, 236)
        /// The one-pixel frame around each panel.
        public var border = RGBColor(90, 90, 90)
        /// Colour around and between the panels.
        public var background = RGBColor.white
        /// Colour of the legend text.
        public var text = RGBColor(20, 20, 20)
        /// Space around the whole picture, in pixels.
        public var margin = 6
        /// Space between panels, in pixels.
        public var gap = 10

        /// The default colours, with an optional cell size and column count.
        public init(cellSize: Int? = nil, columns: Int? = nil) {
            self.cellSize = cellSize
            self.columns = columns
        }
    }

    /// The cell size `Style.cellSize == nil` picks: panels of about 256 pixels, 1 to 16 pixels per block.
    public static func automaticCellSize(queryBlocks: Int, keyBlocks: Int) -> Int {
        min(16, max(1, 256 / max(1, queryBlocks, keyBlocks)))
    }

    /// The legend lines under the panel of head `h`.
    static func legend(head h: Int, density: Double) -> [String] {
        ["head \(h)", "density " + String(format: "%.3f", density)]
    }

    /// Renders batch entry `batch` of `map`.
    /// - Throws: ``PNGEncoderError/invalidOption(_:)`` for a bad style or batch index,
    ///   ``PNGEncoderError/imageTooLarge(width:height:limit:)`` when the picture would exceed ``RGBImage/maxPixels``.
    public static func render(_ map: BlockMap, batch b: Int = 0, style: Style = Style()) throws -> RGBImage {
        guard (0..<map.batch).contains(b) else {
            throw PNGEncoderError.invalidOption("batch \(b) is out of range; the map has batch size \(map.batch)")
        }
        let nq = map.queryBlocks, nk = map.keyBlocks, heads = map.heads
        guard nq > 0, nk > 0, heads > 0 else {
            throw PNGEncoderError.invalidOption("the map \(map.batch)x\(heads)x\(nq)x\(nk) is empty")
        }
        let cell = style.cellSize ?? automaticCellSize(queryBlocks: nq, keyBlocks: nk)
        guard (1...256).contains(cell) else { throw PNGEncoderError.invalidOption("cell size \(cell) is not in 1...256") }
        let columns = min(heads, style.columns ?? Int(Double(heads).squareRoot().rounded(.up)))
        guard columns >= 1 else { throw PNGEncoderError.invalidOption("columns must be at least 1") }
        guard style.margin >= 0, style.gap >= 0 else { throw PNGEncoderError.invalidOption("margin and gap must be non-negative") }
        let rows = (heads + columns - 1) / columns

        // Every size is checked for overflow before anything is allocated: maps come from files.
        func product(_ a: Int, _ b: Int) throws -> Int {
            let (p, o) = a.multipliedReportingOverflow(by: b)
            if o || p > 1 << 40 { throw PNGEncoderError.imageTooLarge(width: Int.max, height: Int.max, limit: RGBImage.maxPixels) }
            return p
        }
        let mapWidth = try product(nk, cell), mapHeight = try product(nq, cell)
        // Where head h of batch b starts in the map's `B,H,nq,nk` bytes.
        func headStart(_ h: Int) -> Int { (b * map.heads + h) * nq * nk }
        let densities = (0..<heads).map { h -> Double in
            var marked = 0
            let o = headStart(h)
            for t in 0..<(nq * nk) { marked += Int(map.bits[o + t]) }
            return Double(marked) / Double(nq * nk)
        }
        let legends = densities.enumerated().map { legend(head: $0.offset, density: $0.element) }
        let textWidth = legends.flatMap { $0 }.map(PixelFont.width(of:)).max() ?? 0
        let lineGap = 2, legendTop = 3
        let legendHeight = legendTop + 2 * PixelFont.glyphHeight + lineGap
        let panelWidth = max(mapWidth + 2, textWidth)
        let panelHeight = mapHeight + 2 + legendHeight
        let width = try product(columns, panelWidth) + (columns - 1) * style.gap + 2 * style.margin
        let height = try product(rows, panelHeight) + (rows - 1) * style.gap + 2 * style.margin

        var image = try RGBImage(width: width, height: height, fill: style.background)
        for h in 0..<heads {
            let x0 = style.margin + (h % columns) * (panelWidth + style.gap)
            let y0 = style.margin + (h / columns) * (panelHeight + style.gap)
            image.strokeRect(x: x0, y: y0, width: mapWidth + 2, height: mapHeight + 2, color: style.border)
            let base = headStart(h)
            for i in 0..<nq {
                // Runs of equal blocks are filled at once: fast for cell size 1 on large maps.
                var j = 0
                while j < nk {
                    let on = map.bits[base + i * nk + j] != 0
                    var end = j + 1
                    while end < nk && (map.bits[base + i * nk + end] != 0) == on { end += 1 }
                    image.fillRect(x: x0 + 1 + j * cell, y: y0 + 1 + i * cell, width: (end - j) * cell, height: cell,
                                   color: on ? style.marked : style.unmarked)
                    j = end
                }
            }
            let ty = y0 + mapHeight + 2 + legendTop
            image.drawText(legends[h][0], x: x0, y: ty, color: style.text)
            image.drawText(legends[h][1], x: x0, y: ty + PixelFont.glyphHeight + lineGap, color: style.text)
        }
        return image
    }
}
