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
        // Saturating ends: a huge width or height is clipped, not an overflow.
        let (xe, ox) = x.addingReportingOverflow(w), (ye, oy) = y.addingReportingOverflow(h)
        let x1 = min(width, ox ? (w > 0 ? Int.max : Int.min) : xe), y1 = min(height, oy ? (h > 0 ? Int.max : Int.min) : ye)
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

/// A 5x7 pixel font with the digits, the letters and the punctuation the block-map legends need.
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
        "c": rows("00000", "00000", "01110", "10000", "10000", "10001", "01110"),
        "l": rows("01100", "00100", "00100", "00100", "00100", "00100", "01110"),
        "m": rows("00000", "00000", "11010", "10101", "10101", "10001", "10001"),
        "o": rows("00000", "00000", "01110", "10001", "10001", "10001", "01110"),
        "p": rows("00000", "00000", "11110", "10001", "11110", "10000", "10000"),
        "q": rows("00000", "00000", "01101", "10011", "01111", "00001", "00001"),
        "r": rows("00000", "00000", "10110", "11001", "10000", "10000", "10000"),
        "u": rows("00000", "00000", "10001", "10001", "10001", "10011", "01101"),
        "w": rows("00000", "00000", "10001", "10001", "10101", "10101", "01010"),
        ":": rows("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
        ",": rows("00000", "00000", "00000", "00000", "01100", "00100", "01000"),
    ]
}

/// What a block of a picture shows.
public enum BlockState: Sendable, Hashable, CaseIterable {
    /// Selected by the map: computed (unless the stage-2 filter skips the tile, which a map
    /// does not record).
    case selected
    /// Allowed but not selected: skipped by stage 1 (or left out of a given map).
    case skipped
    /// Masked by the causal rule or key padding: never computed, whatever the map says.
    case masked

    /// The word of the legends.
    public var label: String {
        switch self {
        case .selected: "selected"
        case .skipped: "skipped"
        case .masked: "masked"
        }
    }
}

/// Pictures of a `BlockMap`: one panel per head in a grid, each block a square of a few
/// pixels in the colour of its ``BlockState`` (selected, skipped, masked), tick labels with
/// block indices along the top (key blocks, left = 0) and the left side (query blocks, top =
/// 0) of every panel, "head N" and "density 0.xxx" (over the allowed blocks) under it, and
/// one legend under the grid: a swatch per state and "rows: query blocks, columns: key blocks".
public enum BlockMapImage {
    /// Colours and sizes of the picture.
    public struct Style: Sendable, Hashable {
        /// Pixels per block side; `nil` picks one so that a panel is about 256 pixels wide or tall.
        public var cellSize: Int?
        /// Panels per row of the grid; `nil` gives about a square grid.
        public var columns: Int?
        /// Colour of selected blocks (computed).
        public var marked = RGBColor(33, 102, 172)
        /// Colour of allowed blocks that are skipped.
        public var unmarked = RGBColor(250, 215, 160)
        /// Colour of blocks masked by the causal rule or key padding.
        public var masked = RGBColor(205, 205, 205)
        /// The one-pixel frame around each panel, and the tick marks.
        public var border = RGBColor(90, 90, 90)
        /// Colour around and between the panels.
        public var background = RGBColor.white
        /// Colour of the legend text and tick labels.
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

        /// The colour of a block in `state`.
        public func color(_ state: BlockState) -> RGBColor {
            switch state {
            case .selected: marked
            case .skipped: unmarked
            case .masked: masked
            }
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

    /// The second line of the picture's legend.
    static let axesLegend = "rows: query blocks, columns: key blocks"

    /// Blocks between tick labels: the smallest of 1, 2, 5, 10, 20, 50, ... whose labels
    /// (`extent` pixels along the axis) stay at least 3 pixels apart.
    static func tickStep(cell: Int, extent: Int) -> Int {
        var step = 1
        let ladder = [1, 2, 5]
        var decade = 1
        while true {
            for m in ladder {
                step = m * decade
                if step * cell >= extent + 3 { return step }
            }
            decade *= 10
        }
    }

    /// Renders batch entry `batch` of `map`; `isMasked(queryBlock, keyBlock)` says which blocks
    /// the causal rule or key padding masks (none without it), drawn in ``Style/masked``.
    /// - Throws: ``PNGEncoderError/invalidOption(_:)`` for a bad style or batch index,
    ///   ``PNGEncoderError/imageTooLarge(width:height:limit:)`` when the picture would exceed ``RGBImage/maxPixels``.
    public static func render(_ map: BlockMap, batch b: Int = 0, style: Style = Style(),
                              isMasked: ((_ queryBlock: Int, _ keyBlock: Int) -> Bool)? = nil) throws -> RGBImage {
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
        // The state of every block of the batch entry, masks first (they win over the map).
        var masked = [Bool](repeating: false, count: nq * nk)
        if let isMasked { for i in 0..<nq { for j in 0..<nk { masked[i * nk + j] = isMasked(i, j) } } }
        let allowed = masked.filter { !$0 }.count
        // Where head h of batch b starts in the map's `B,H,nq,nk` bytes.
        func headStart(_ h: Int) -> Int { (b * map.heads + h) * nq * nk }
        func state(_ h: Int, _ i: Int, _ j: Int) -> BlockState {
            masked[i * nk + j] ? .masked : map.bits[headStart(h) + i * nk + j] != 0 ? .selected : .skipped
        }
        let densities = (0..<heads).map { h -> Double in
            var selected = 0
            let o = headStart(h)
            for t in 0..<(nq * nk) where !masked[t] { selected += Int(map.bits[o + t]) }
            return allowed == 0 ? 0 : Double(selected) / Double(allowed)
        }
        let legends = densities.enumerated().map { legend(head: $0.offset, density: $0.element) }
        let textWidth = legends.flatMap { $0 }.map(PixelFont.width(of:)).max() ?? 0

        // Axes: key-block labels above the frame, query-block labels left of it, each with a
        // two-pixel tick; label steps keep the labels apart.
        let keyStep = tickStep(cell: cell, extent: PixelFont.width(of: String(nk - 1)))
        let queryStep = tickStep(cell: cell, extent: PixelFont.glyphHeight)
        let keyTicks = Array(stride(from: 0, to: nk, by: keyStep)), queryTicks = Array(stride(from: 0, to: nq, by: queryStep))
        let labelWidth = queryTicks.map { PixelFont.width(of: String($0)) }.max() ?? 0
        let left = labelWidth + 3, top = PixelFont.glyphHeight + 3
        let keyLabelsRight = keyTicks.map { 1 + $0 * cell + PixelFont.width(of: String($0)) }.max() ?? 0
        let queryLabelsBottom = queryTicks.map { 1 + $0 * cell + PixelFont.glyphHeight }.max() ?? 0
        let frameBlockWidth = max(mapWidth + 2, keyLabelsRight), frameBlockHeight = max(mapHeight + 2, queryLabelsBottom)
        let lineGap = 2, legendTop = 3
        let legendHeight = legendTop + 2 * PixelFont.glyphHeight + lineGap
        let panelWidth = max(left + frameBlockWidth, textWidth)
        let panelHeight = top + frameBlockHeight + legendHeight

        // The picture's legend: a swatch and a word per state, then the axes line.
        let swatch = PixelFont.glyphHeight, entryGap = 10
        let entries = BlockState.allCases.map { ($0, PixelFont.width(of: $0.label)) }
        let stateLegendWidth = entries.map { swatch + 3 + $0.1 }.reduce(0, +) + entryGap * (entries.count - 1)
        let pictureLegendWidth = max(stateLegendWidth, PixelFont.width(of: axesLegend))
        let pictureLegendHeight = style.gap + 2 * PixelFont.glyphHeight + lineGap

        let gridWidth = try product(columns, panelWidth) + (columns - 1) * style.gap
        let width = max(gridWidth, pictureLegendWidth) + 2 * style.margin
        let height = try product(rows, panelHeight) + (rows - 1) * style.gap + pictureLegendHeight + 2 * style.margin

        var image = try RGBImage(width: width, height: height, fill: style.background)
        for h in 0..<heads {
            let x0 = style.margin + (h % columns) * (panelWidth + style.gap)
            let y0 = style.margin + (h / columns) * (panelHeight + style.gap)
            let fx = x0 + left, fy = y0 + top   // the frame's top-left corner
            image.strokeRect(x: fx, y: fy, width: mapWidth + 2, height: mapHeight + 2, color: style.border)
            for j in keyTicks {
                image.drawText(String(j), x: fx + 1 + j * cell, y: y0, color: style.text)
                image.fillRect(x: fx + 1 + j * cell, y: fy - 2, width: 1, height: 2, color: style.border)
            }
            for i in queryTicks {
                let label = String(i)
                image.drawText(label, x: fx - 3 - PixelFont.width(of: label), y: fy + 1 + i * cell, color: style.text)
                image.fillRect(x: fx - 2, y: fy + 1 + i * cell, width: 2, height: 1, color: style.border)
            }
            for i in 0..<nq {
                // Runs of equal blocks are filled at once: fast for cell size 1 on large maps.
                var j = 0
                while j < nk {
                    let s = state(h, i, j)
                    var end = j + 1
                    while end < nk && state(h, i, end) == s { end += 1 }
                    image.fillRect(x: fx + 1 + j * cell, y: fy + 1 + i * cell, width: (end - j) * cell, height: cell,
                                   color: style.color(s))
                    j = end
                }
            }
            let ty = fy + frameBlockHeight + legendTop
            image.drawText(legends[h][0], x: x0, y: ty, color: style.text)
            image.drawText(legends[h][1], x: x0, y: ty + PixelFont.glyphHeight + lineGap, color: style.text)
        }
        var lx = style.margin
        let ly = height - style.margin - 2 * PixelFont.glyphHeight - lineGap
        for (state, labelWidth) in entries {
            image.fillRect(x: lx, y: ly, width: swatch, height: swatch, color: style.color(state))
            image.strokeRect(x: lx, y: ly, width: swatch, height: swatch, color: style.border)
            image.drawText(state.label, x: lx + swatch + 3, y: ly, color: style.text)
            lx += swatch + 3 + labelWidth + entryGap
        }
        image.drawText(axesLegend, x: style.margin, y: ly + PixelFont.glyphHeight + lineGap, color: style.text)
        return image
    }
}
