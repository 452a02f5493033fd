import SpargeAttn

/// A small, dependency-free PNG writer: 8-bit grayscale or RGB, no interlacing.
///
/// The image data is filtered per row (PNG filter types 0-4, or the usual adaptive choice),
/// then compressed into a zlib stream made of stored or fixed-Huffman deflate blocks with a
/// simple LZ77 matcher. CRC-32 and Adler-32 are computed here too. Block-map pictures are
/// large flat areas and repeated rows, which fixed-Huffman LZ77 compresses well; dynamic
/// Huffman codes would gain little for much more code.
public enum PNGEncoder {
    /// PNG colour types supported (8 bits per sample).
    public enum ColorType: UInt8, Sendable, Hashable, CaseIterable {
        /// One byte per pixel.
        case grayscale = 0
        /// Three bytes per pixel, red, green, blue.
        case rgb = 2

        /// Bytes per pixel.
        public var channels: Int { self == .rgb ? 3 : 1 }
    }

    /// Deflate block types used for the zlib stream.
    public enum Compression: Sendable, Hashable, CaseIterable {
        /// Uncompressed (stored) blocks of at most 65,535 bytes.
        case stored
        /// One block with the fixed Huffman codes of RFC 1951 and LZ77 matches.
        case fixedHuffman
    }

    /// The filter applied to each row before compression (PNG filter method 0).
    public enum RowFilter: Sendable, Hashable, CaseIterable {
        /// Type 0: bytes as they are.
        case none
        /// Type 1: difference to the byte one pixel to the left.
        case sub
        /// Type 2: difference to the byte above.
        case up
        /// Type 3: difference to the mean of left and above.
        case average
        /// Type 4: difference to the Paeth predictor of left, above and upper-left.
        case paeth
        /// Per row, the filter with the smallest sum of absolute (signed) bytes: the
        /// heuristic the PNG specification recommends.
        case adaptive
    }

    /// Encoder settings.
    public struct Options: Sendable, Hashable {
        /// Deflate block type (default fixed Huffman).
        public var compression: Compression
        /// Row filter (default adaptive).
        public var filter: RowFilter
        /// Largest IDAT chunk payload; the zlib stream is split over as many chunks as needed.
        public var idatChunkSize: Int

        /// Settings; the defaults give small files for block-map pictures.
        public init(compression: Compression = .fixedHuffman, filter: RowFilter = .adaptive, idatChunkSize: Int = 1 << 16) {
            self.compression = compression
            self.filter = filter
            self.idatChunkSize = idatChunkSize
        }
    }

    /// The 8-byte PNG signature.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// A complete PNG file.
    /// - Parameters:
    ///   - pixels: `width * height * colorType.channels` bytes, row-major, top row first.
    /// - Throws: ``PNGEncoderError`` for non-positive or oversized dimensions or a wrong pixel count.
    public static func encode(width: Int, height: Int, colorType: ColorType, pixels: [UInt8], options: Options = Options()) throws -> [UInt8] {
        guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw PNGEncoderError.invalidDimensions(width: width, height: height)
        }
        let channels = colorType.channels
        let (rowBytes, o1) = width.multipliedReportingOverflow(by: channels)
        let (total, o2) = rowBytes.multipliedReportingOverflow(by: height)
        guard !o1, !o2, total < Int(Int32.max) else { throw PNGEncoderError.invalidDimensions(width: width, height: height) }
        guard pixels.count == total else {
            throw PNGEncoderError.pixelCountMismatch(width: width, height: height, channels: channels, expected: total, actual: pixels.count)
        }
        guard options.idatChunkSize > 0 else { throw PNGEncoderError.invalidOption("idatChunkSize must be positive") }

        let filtered = filterRows(pixels, rowBytes: rowBytes, height: height, bytesPerPixel: channels, filter: options.filter)
        let stream = zlibCompress(filtered, compression: options.compression)

        var out = signature
        var ihdr: [UInt8] = []
        appendBigEndian(UInt32(width), to: &ihdr)
        appendBigEndian(UInt32(height), to: &ihdr)
        ihdr += [8, colorType.rawValue, 0, 0, 0]   // bit depth, colour type, deflate, filter method 0, no interlace
        appendChunk("IHDR", ihdr, to: &out)
        var start = 0
        repeat {
            let end = min(stream.count, start + options.idatChunkSize)
            appendChunk("IDAT", stream[start..<end], to: &out)
            start = end
        } while start < stream.count
        appendChunk("IEND", [], to: &out)
        return out
    }

    static func appendChunk(_ type: String, _ data: some Collection<UInt8>, to out: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &out)
        let typeBytes = Array(type.utf8)
        var crc = CRC32()
        crc.update(typeBytes)
        crc.update(data)
        out += typeBytes
        out += data
        appendBigEndian(crc.value, to: &out)
    }

    static func appendBigEndian(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }

    // MARK: Row filters

    /// Each row prefixed with its filter-type byte, as the IDAT stream holds it.
    static func filterRows(_ pixels: [UInt8], rowBytes: Int, height: Int, bytesPerPixel bpp: Int, filter: RowFilter) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (rowBytes + 1) * height)
        let zero = [UInt8](repeating: 0, count: rowBytes)
        var candidate = [UInt8](repeating: 0, count: rowBytes)
        pixels.withUnsafeBufferPointer { px in
            zero.withUnsafeBufferPointer { zero in
                for y in 0..<height {
                    let row = UnsafeBufferPointer(rebasing: px[(y * rowBytes)..<((y + 1) * rowBytes)])
                    let above = y == 0 ? zero : UnsafeBufferPointer(rebasing: px[((y - 1) * rowBytes)..<(y * rowBytes)])
                    let types: [UInt8]
                    switch filter {
                    case .none: types = [0]
                    case .sub: types = [1]
                    case .up: types = [2]
                    case .average: types = [3]
                    case .paeth: types = [4]
                    case .adaptive: types = [0, 1, 2, 3, 4]
                    }
                    var bestCost = Int.max
                    let base = y * (rowBytes + 1)
                    for t in types {
                        apply(t, row: row, above: above, bpp: bpp, into: &candidate)
                        // Sum of bytes read as signed values: small residuals compress best.
                        let cost = types.count == 1 ? 0 : candidate.reduce(0) { $0 + abs(Int(Int8(bitPattern: $1))) }
                        if cost < bestCost {
                            bestCost = cost
                            out[base] = t
                            for i in 0..<rowBytes { out[base + 1 + i] = candidate[i] }
                        }
                    }
                }
            }
        }
        return out
    }

    private static func apply(_ type: UInt8, row: UnsafeBufferPointer<UInt8>, above: UnsafeBufferPointer<UInt8>, bpp: Int, into out: inout [UInt8]) {
        let n = row.count
        switch type {
        case 0:
            for i in 0..<n { out[i] = row[i] }
        case 1:
            for i in 0..<n { out[i] = row[i] &- (i >= bpp ? row[i - bpp] : 0) }
        case 2:
            for i in 0..<n { out[i] = row[i] &- above[i] }
        case 3:
            for i in 0..<n {
                let left = i >= bpp ? Int(row[i - bpp]) : 0
                out[i] = row[i] &- UInt8((left + Int(above[i])) / 2)
            }
        default:
            for i in 0..<n {
                let a = i >= bpp ? row[i - bpp] : 0, b = above[i], c = i >= bpp ? above[i - bpp] : 0
                out[i] = row[i] &- paeth(a, b, c)
            }
        }
    }

    /// The Paeth predictor: whichever of left, above, upper-left is closest to left + above - upper-left.
    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    // MARK: zlib

    /// A zlib stream (RFC 1950): header, deflate data (RFC 1951), Adler-32 of `data`.
    public static func zlibCompress(_ data: [UInt8], compression: Compression = .fixedHuffman) -> [UInt8] {
        var out: [UInt8]
        switch compression {
        case .stored:
            out = [0x78, 0x01]   // deflate, 32K window; FLEVEL 0 (fastest); (0x78 * 256 + 0x01) % 31 == 0
            Deflate.stored(data, into: &out)
        case .fixedHuffman:
            out = [0x78, 0x5E]   // FLEVEL 1 (fast)
            Deflate.fixedHuffman(data, into: &out)
        }
        appendBigEndian(adler32(data), to: &out)
        return out
    }

    /// CRC-32 (ISO-HDLC, as in PNG, zlib and gzip) of `bytes`: `"123456789"` gives `0xCBF43926`.
    public static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }

    /// Adler-32 (RFC 1950) of `bytes`: `"123456789"` gives `0x091E01DE`.
    public static func adler32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var pending = 0
        for byte in bytes {
            a += UInt32(byte)
            b += a
            pending += 1
            // 5552 is the most bytes for which b cannot overflow 32 bits before the reduction.
            if pending == 5552 {
                a %= 65521
                b %= 65521
                pending = 0
            }
        }
        return (b % 65521) << 16 | (a % 65521)
    }
}

/// Errors of ``PNGEncoder`` and ``RGBImage``.
public enum PNGEncoderError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Width or height is not in 1...2^31-1, or the image is too large to hold in memory.
    case invalidDimensions(width: Int, height: Int)
    /// The pixel buffer does not have `width * height * channels` bytes.
    case pixelCountMismatch(width: Int, height: Int, channels: Int, expected: Int, actual: Int)
    /// An image would exceed the pixel limit.
    case imageTooLarge(width: Int, height: Int, limit: Int)
    /// An encoder option is out of range.
    case invalidOption(String)

    /// A one-sentence explanation, fit for a command-line message.
    public var description: String {
        switch self {
        case let .invalidDimensions(w, h):
            return "image size \(w)x\(h) is invalid; width and height must be positive and the image must fit in memory"
        case let .pixelCountMismatch(w, h, c, expected, actual):
            return "a \(w)x\(h) image with \(c) channel\(c == 1 ? "" : "s") needs \(expected) bytes but \(actual) were given"
        case let .imageTooLarge(w, h, limit):
            return "a \(w)x\(h) image exceeds the limit of \(limit) pixels; use a smaller cell size or fewer heads"
        case let .invalidOption(reason):
            return "invalid PNG option: \(reason)"
        }
    }
}

/// Running CRC-32 with the reflected polynomial 0xEDB88320, table driven.
struct CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    private var state: UInt32 = 0xFFFF_FFFF

    mutating func update(_ bytes: some Sequence<UInt8>) {
        var c = state
        Self.table.withUnsafeBufferPointer { t in
            for byte in bytes { c = t[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        }
        state = c
    }

    var value: UInt32 { state ^ 0xFFFF_FFFF }
}

/// Deflate (RFC 1951) encoders: stored blocks, and one fixed-Huffman block with LZ77.
enum Deflate {
    static func stored(_ data: [UInt8], into out: inout [UInt8]) {
        var start = 0
        repeat {
            let end = min(data.count, start + 65_535)
            let length = UInt16(end - start)
            // BFINAL, BTYPE = 00, then padding to the byte boundary: one byte.
            out.append(end == data.count ? 1 : 0)
            out += [UInt8(truncatingIfNeeded: length), UInt8(length >> 8), UInt8(truncatingIfNeeded: ~length), UInt8(~length >> 8)]
            out += data[start..<end]
            start = end
        } while start < data.count
    }

    // Length symbols 257...285 and distance codes 0...29 (RFC 1951 section 3.2.5).
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// Index into `lengthBase` for each match length 0...258 (entries below 3 unused).
    static let lengthCode: [UInt8] = (0...258).map { length in
        UInt8(max(0, (lengthBase.lastIndex { $0 <= max(3, length) } ?? 0)))
    }

    /// The fixed Huffman code of each literal/length symbol, bit-reversed for LSB-first output.
    static let literalCodes: [(code: UInt32, bits: Int)] = (0..<288).map { symbol in
        let (code, bits): (Int, Int)
        switch symbol {
        case 0...143: (code, bits) = (0x30 + symbol, 8)
        case 144...255: (code, bits) = (0x190 + symbol - 144, 9)
        case 256...279: (code, bits) = (symbol - 256, 7)
        default: (code, bits) = (0xC0 + symbol - 280, 8)
        }
        return (reversed(UInt32(code), bits: bits), bits)
    }

    static func reversed(_ code: UInt32, bits: Int) -> UInt32 {
        var r: UInt32 = 0
        for i in 0..<bits where code & (1 << UInt32(i)) != 0 { r |= 1 << UInt32(bits - 1 - i) }
        return r
    }

    static func distanceCode(_ distance: Int) -> Int {
        var lo = 0, hi = distanceBase.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if distanceBase[mid] <= distance { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    static let windowSize = 32_768
    static let maxMatch = 258
    static let hashBits = 15
    /// Candidates examined per position: enough for flat images, bounded for adversarial ones.
    static let maxChain = 48

    static func fixedHuffman(_ data: [UInt8], into out: inout [UInt8]) {
        var w = BitWriter()
        w.write(1, bits: 1)   // BFINAL
        w.write(1, bits: 2)   // BTYPE = 01, fixed Huffman
        let codes = literalCodes
        func symbol(_ s: Int) { w.write(codes[s].code, bits: codes[s].bits) }

        let n = data.count
        var head = [Int32](repeating: -1, count: 1 << hashBits)
        var previous = [Int32](repeating: -1, count: windowSize)
        data.withUnsafeBufferPointer { d in
            @inline(__always) func hash(_ i: Int) -> Int {
                let v = UInt32(d[i]) << 16 | UInt32(d[i + 1]) << 8 | UInt32(d[i + 2])
                return Int((v &* 2_654_435_761) >> UInt32(32 - hashBits))
            }
            @inline(__always) func insert(_ i: Int) {
                guard i + 2 < n else { return }
                let h = hash(i)
                previous[i & (windowSize - 1)] = head[h]
                head[h] = Int32(i)
            }
            var i = 0
            while i < n {
                var bestLength = 0, bestDistance = 0
                if i + 2 < n {
                    let limit = min(maxMatch, n - i)
                    var candidate = Int(head[hash(i)])
                    var chain = 0
                    while candidate >= 0, i - candidate <= windowSize, chain < maxChain {
                        if d[candidate + bestLength] == d[i + bestLength] || bestLength == 0 {
                            var length = 0
                            while length < limit && d[candidate + length] == d[i + length] { length += 1 }
                            if length > bestLength {
                                bestLength = length
                                bestDistance = i - candidate
                                if length == limit { break }
                            }
                        }
                        let next = Int(previous[candidate & (windowSize - 1)])
                        // Chains only go back in time; a stale slot from an overwritten position ends the walk.
                        if next >= candidate { break }
                        candidate = next
                        chain += 1
                    }
                }
                if bestLength >= 3 {
                    let lc = Int(lengthCode[bestLength])
                    symbol(257 + lc)
                    if lengthExtra[lc] > 0 { w.write(UInt32(bestLength - lengthBase[lc]), bits: lengthExtra[lc]) }
                    let dc = distanceCode(bestDistance)
                    w.write(reversed(UInt32(dc), bits: 5), bits: 5)
                    if distanceExtra[dc] > 0 { w.write(UInt32(bestDistance - distanceBase[dc]), bits: distanceExtra[dc]) }
                    for j in i..<(i + bestLength) { insert(j) }
                    i += bestLength
                } else {
                    symbol(Int(d[i]))
                    insert(i)
                    i += 1
                }
            }
        }
        symbol(256)   // end of block
        w.flush(into: &out)
    }
}

/// Packs bit fields least-significant bit first, as deflate requires.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var count = 0

    mutating func write(_ value: UInt32, bits: Int) {
        buffer |= UInt64(value & ((1 << UInt32(bits)) &- 1)) << UInt64(count)
        count += bits
        while count >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            count -= 8
        }
    }

    /// Appends everything written, the last byte padded with zero bits.
    mutating func flush(into out: inout [UInt8]) {
        if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
        buffer = 0
        count = 0
        out += bytes
        bytes = []
    }
}
