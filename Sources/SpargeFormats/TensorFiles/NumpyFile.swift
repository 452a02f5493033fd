import Foundation
import SpargeAttn

/// Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) as ``Tensor``s.
///
/// Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length
/// (little-endian `UInt16` in 1.0, `UInt32` in 2.0 and 3.0), then the header: the text of a
/// Python dictionary `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` (latin-1,
/// UTF-8 in 3.0), padded with spaces and a newline. The raw array data follows.
///
/// Supported dtypes, in either byte order: `f2`, `f4`, `f8`, `i1`, `u1`, `b1`, `i2`, `i4`,
/// `i8` (F16, F32, F64, I8, U8, BOOL, I16, I32, I64). Big-endian data is converted to the
/// tensor's little-endian storage, so values are bit-exact either way. C order only.
///
/// Reading validates everything before copying data and throws ``NumpyFileError``; it never
/// traps and never allocates much more than the file size. Writing produces the same bytes
/// as `numpy.lib.format.write_array` for the same array and version.
public enum NumpyFile {
    /// The `.npy` format versions.
    public enum Version: String, Sendable, Hashable, CaseIterable {
        /// 16-bit header length, latin-1 header (what `numpy.save` writes by default).
        case v1_0 = "1.0"
        /// 32-bit header length, latin-1 header.
        case v2_0 = "2.0"
        /// 32-bit header length, UTF-8 header.
        case v3_0 = "3.0"

        /// The major version byte.
        public var major: UInt8 {
            switch self {
            case .v1_0: 1
            case .v2_0: 2
            case .v3_0: 3
            }
        }
    }

    /// Byte order of multi-byte elements in a file.
    public enum ByteOrder: String, Sendable, Hashable, CaseIterable {
        /// `<`: what NumPy writes on every common machine.
        case little
        /// `>`: converted on read and write.
        case big
    }

    /// The parsed header of a `.npy` file.
    public struct Header: Sendable, Hashable {
        /// The format version of the file.
        public var version: Version
        /// The `descr` string as written, for example `'<f4'` or `'|b1'`.
        public var descr: String
        /// The tensor dtype that `descr` maps to.
        public var dtype: TensorDType
        /// Byte order of the stored elements (`.little` for one-byte dtypes).
        public var byteOrder: ByteOrder
        /// Whether the file declares Fortran order (`parse` refuses such files).
        public var fortranOrder: Bool
        /// Dimensions, outermost first; `[]` is a scalar.
        public var shape: [Int]
        /// Offset of the first data byte from the start of the file.
        public var dataOffset: Int
        /// Number of data bytes the shape and dtype need.
        public var dataByteCount: Int
    }

    /// Largest header accepted, so a corrupt length cannot make us allocate gigabytes
    /// (NumPy itself refuses headers over 10,000 bytes unless told otherwise).
    public static let maxHeaderBytes = 1 << 20

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // \x93NUMPY
    /// NumPy aligns the data to 64 bytes (`ARRAY_ALIGN`).
    static let alignment = 64
    /// NumPy leaves room after the header to grow the first axis in place (`GROWTH_AXIS_MAX_DIGITS`).
    static let growthDigits = 21

    // MARK: Reading

    /// Reads and parses a file (memory-mapped where the OS allows).
    /// - Throws: ``NumpyFileError/fileNotFound(path:)``, ``NumpyFileError/readFailed(path:reason:)``
    ///   or any parse error.
    public static func read(path: String) throws -> Tensor {
        let data: Data
        do {
            data = try FileSafety.read(path, limit: .max, limitName: "")
        } catch {
            if error.notFound { throw NumpyFileError.fileNotFound(path: path) }
            throw NumpyFileError.readFailed(path: path, reason: error.reason)
        }
        return try parse(data)
    }

    /// Parses the bytes of a whole file. Bytes after the array are ignored (NumPy does the
    /// same, and several arrays may be saved one after another into one file).
    /// - Throws: ``NumpyFileError``.
    public static func parse(_ bytes: [UInt8]) throws -> Tensor {
        try bytes.withUnsafeBytes { try tensor($0) }
    }

    /// Parses the bytes of a whole file, as the `[UInt8]` overload does.
    public static func parse(_ data: Data) throws -> Tensor {
        try data.withUnsafeBytes { try tensor($0) }
    }

    /// Parses and validates only the header (cheap: no data is copied).
    /// - Throws: ``NumpyFileError``. A Fortran-order header is returned, not refused.
    public static func header(of bytes: [UInt8]) throws -> Header {
        try bytes.withUnsafeBytes { try header($0) }
    }

    private static func tensor(_ raw: UnsafeRawBufferPointer) throws -> Tensor {
        let h = try header(raw)
        if h.fortranOrder { throw NumpyFileError.fortranOrder(shape: h.shape) }
        var data = Array(raw[h.dataOffset ..< (h.dataOffset + h.dataByteCount)])
        if h.byteOrder == .big { swapBytes(&data, width: h.dtype.byteSize) }
        return Tensor(validatedDType: h.dtype, shape: h.shape, data: data, elementCount: h.dataByteCount / h.dtype.byteSize)
    }

    static func header(_ raw: UnsafeRawBufferPointer) throws -> Header {
        guard raw.count >= 10 else { throw NumpyFileError.fileTooShort(byteCount: raw.count, needed: 10) }
        guard raw.prefix(6).elementsEqual(magic) else { throw NumpyFileError.badMagic(found: Array(raw.prefix(8))) }
        let major = raw[6], minor = raw[7]
        let version: Version
        switch (major, minor) {
        case (1, 0): version = .v1_0
        case (2, 0): version = .v2_0
        case (3, 0): version = .v3_0
        default: throw NumpyFileError.unsupportedVersion(major: major, minor: minor)
        }
        let prefixLength = version == .v1_0 ? 10 : 12
        guard raw.count >= prefixLength else { throw NumpyFileError.fileTooShort(byteCount: raw.count, needed: prefixLength) }
        let declared: UInt64 = version == .v1_0
            ? UInt64(LittleEndianBytes.load(raw, at: 8, as: UInt16.self))
            : UInt64(LittleEndianBytes.load(raw, at: 8, as: UInt32.self))
        guard declared <= UInt64(maxHeaderBytes) else {
            throw NumpyFileError.headerTooLarge(declared: declared, limit: maxHeaderBytes)
        }
        let headerLength = Int(declared)
        guard headerLength <= raw.count - prefixLength else {
            throw NumpyFileError.headerExceedsFile(declared: declared, available: raw.count - prefixLength)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[prefixLength ..< (prefixLength + headerLength)])
        let text: String
        if version == .v3_0 {
            guard let s = String(validating: headerBytes, as: UTF8.self) else {
                throw NumpyFileError.invalidHeaderEncoding(version: version.rawValue)
            }
            text = s
        } else {
            // Latin-1: every byte is the code point of the same value.
            text = String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))
        }

        let (descr, fortranOrder, shape) = try fields(of: PythonLiteralParser.parse(text))
        let (dtype, byteOrder) = try dtype(of: descr)

        var count = 1
        for dim in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw NumpyFileError.shapeOverflow(shape: shape) }
            count = product
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw NumpyFileError.shapeOverflow(shape: shape) }
        let dataOffset = prefixLength + headerLength
        guard byteCount <= raw.count - dataOffset else {
            throw NumpyFileError.truncatedData(shape: shape, descr: descr, expectedBytes: byteCount, availableBytes: raw.count - dataOffset)
        }
        return Header(version: version, descr: descr, dtype: dtype, byteOrder: byteOrder, fortranOrder: fortranOrder,
                      shape: shape, dataOffset: dataOffset, dataByteCount: byteCount)
    }

    /// The three required fields of the header dictionary.
    private static func fields(of literal: PythonLiteral) throws -> (descr: String, fortranOrder: Bool, shape: [Int]) {
        guard case let .dict(pairs) = literal else {
            throw NumpyFileError.invalidHeader(reason: "the header is \(literal.pythonText.prefix(80)), not a dictionary")
        }
        var values: [String: PythonLiteral] = [:]
        for (key, value) in pairs {
            guard ["descr", "fortran_order", "shape"].contains(key) else { throw NumpyFileError.unexpectedKey(key) }
            values[key] = value
        }
        guard let descrValue = values["descr"] else { throw NumpyFileError.missingKey("descr") }
        guard let fortranValue = values["fortran_order"] else { throw NumpyFileError.missingKey("fortran_order") }
        guard let shapeValue = values["shape"] else { throw NumpyFileError.missingKey("shape") }

        let descr: String
        switch descrValue {
        case let .string(s): descr = s
        case .list, .tuple:
            throw NumpyFileError.unsupportedDType("structured dtype \(descrValue.pythonText.prefix(80))")
        default:
            throw NumpyFileError.invalidHeaderValue(key: "descr", reason: "\(descrValue.pythonText.prefix(80)) is not a string")
        }
        guard case let .bool(fortranOrder) = fortranValue else {
            throw NumpyFileError.invalidHeaderValue(key: "fortran_order", reason: "\(fortranValue.pythonText.prefix(80)) is not True or False")
        }
        guard case let .tuple(dims) = shapeValue else {
            throw NumpyFileError.invalidHeaderValue(key: "shape", reason: "\(shapeValue.pythonText.prefix(80)) is not a tuple of integers")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (axis, dim) in dims.enumerated() {
            guard case let .integer(value, text) = dim else {
                throw NumpyFileError.invalidHeaderValue(key: "shape", reason: "dimension \(axis) is \(dim.pythonText.prefix(40)), not an integer")
            }
            guard let value else {
                throw NumpyFileError.invalidHeaderValue(key: "shape", reason: "dimension \(axis) is \(text.prefix(40)), which does not fit in 64 bits")
            }
            guard value >= 0 else {
                throw NumpyFileError.invalidHeaderValue(key: "shape", reason: "dimension \(axis) is \(value); dimensions must be non-negative")
            }
            shape.append(value)
        }
        return (descr, fortranOrder, shape)
    }

    /// The tensor dtype and byte order of a `descr` such as `'<f4'`, `'>i8'` or `'|b1'`.
    /// `'='`, `'|'` or no prefix on a multi-byte type mean the host order, as in NumPy.
    static func dtype(of descr: String) throws -> (TensorDType, ByteOrder) {
        var code = Substring(descr)
        var order: Character? = nil
        if let first = code.first, "<>|=".contains(first) {
            order = first
            code = code.dropFirst()
        }
        let dtype: TensorDType
        switch code {
        case "f2": dtype = .float16
        case "f4": dtype = .float32
        case "f8": dtype = .float64
        case "i1": dtype = .int8
        case "u1": dtype = .uint8
        case "b1": dtype = .bool
        case "i2": dtype = .int16
        case "i4": dtype = .int32
        case "i8": dtype = .int64
        default: throw NumpyFileError.unsupportedDType(descr)
        }
        let hostIsBig = 1.bigEndian == 1
        let byteOrder: ByteOrder
        switch order {
        case "<": byteOrder = .little
        case ">": byteOrder = .big
        default: byteOrder = hostIsBig ? .big : .little
        }
        return (dtype, dtype.byteSize == 1 ? .little : byteOrder)
    }

    // MARK: Writing

    /// The `descr` NumPy writes for `dtype` (`'<f4'`, `'>i8'`; `'|i1'`, `'|u1'`, `'|b1'` for one-byte types).
    /// - Throws: ``NumpyFileError/dtypeNotRepresentable(_:)`` for BF16.
    public static func descr(for dtype: TensorDType, byteOrder: ByteOrder = .little) throws -> String {
        let code: String
        switch dtype {
        case .float16: code = "f2"
        case .float32: code = "f4"
        case .float64: code = "f8"
        case .int8: code = "i1"
        case .uint8: code = "u1"
        case .bool: code = "b1"
        case .int16: code = "i2"
        case .int32: code = "i4"
        case .int64: code = "i8"
        case .bfloat16: throw NumpyFileError.dtypeNotRepresentable(dtype)
        }
        if dtype.byteSize == 1 { return "|" + code }
        return (byteOrder == .little ? "<" : ">") + code
    }

    /// The bytes of a `.npy` file holding `tensor`, identical to what
    /// `numpy.lib.format.write_array` writes for the same array and version.
    /// - Parameters:
    ///   - version: the format version; `nil` picks 1.0 unless the header needs 2.0 (as NumPy does).
    ///   - byteOrder: byte order of multi-byte elements in the file.
    /// - Throws: ``NumpyFileError/dtypeNotRepresentable(_:)`` for BF16,
    ///   ``NumpyFileError/headerTooLongForVersion(length:version:)`` when 1.0 cannot hold the header.
    public static func serialized(_ tensor: Tensor, version: Version? = nil, byteOrder: ByteOrder = .little) throws -> [UInt8] {
        let descr = try descr(for: tensor.dtype, byteOrder: byteOrder)
        let shapeText: String
        switch tensor.shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(tensor.shape[0]),)"
        default: shapeText = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dictionary = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = tensor.shape.first {
            dictionary += String(repeating: " ", count: max(0, growthDigits - String(first).utf8.count))
        }
        let text = Array(dictionary.utf8)   // ASCII, so latin-1 and UTF-8 agree

        func wrapped(_ version: Version) throws -> [UInt8]? {
            let prefixLength = version == .v1_0 ? 10 : 12
            let unpadded = text.count + 1   // + the final newline
            let padding = alignment - (prefixLength + unpadded) % alignment
            let length = unpadded + padding
            if version == .v1_0 && length > Int(UInt16.max) { return nil }
            var out: [UInt8] = magic + [version.major, 0]
            out.reserveCapacity(prefixLength + length + tensor.byteCount)
            if version == .v1_0 {
                LittleEndianBytes.append(UInt16(length), to: &out)
            } else {
                LittleEndianBytes.append(UInt32(length), to: &out)
            }
            out += text
            out += repeatElement(UInt8(ascii: " "), count: padding)
            out.append(UInt8(ascii: "\n"))
            return out
        }

        var out: [UInt8]
        if let version {
            guard let bytes = try wrapped(version) else {
                throw NumpyFileError.headerTooLongForVersion(length: text.count + 1, version: version.rawValue)
            }
            out = bytes
        } else if let bytes = try wrapped(.v1_0) {
            out = bytes
        } else {
            out = try wrapped(.v2_0)!
        }
        let start = out.count
        out += tensor.data
        if byteOrder == .big && tensor.dtype.byteSize > 1 {
            out.withUnsafeMutableBytes { raw in
                swapBytes(UnsafeMutableRawBufferPointer(rebasing: raw[start...]), width: tensor.dtype.byteSize)
            }
        }
        return out
    }

    /// Writes ``serialized(_:version:byteOrder:)`` atomically (temporary file, then rename),
    /// so a crash never leaves a half-written file at `path`.
    /// - Throws: ``NumpyFileError/writeFailed(path:reason:)`` or a serialization error.
    public static func write(_ tensor: Tensor, path: String, version: Version? = nil, byteOrder: ByteOrder = .little) throws {
        let bytes = try serialized(tensor, version: version, byteOrder: byteOrder)
        do {
            try FileSafety.writeAtomically(bytes, to: path)
        } catch {
            throw NumpyFileError.writeFailed(path: path, reason: error.reason)
        }
    }

    // MARK: Byte order

    /// Reverses the bytes of each `width`-byte element in place.
    static func swapBytes(_ bytes: inout [UInt8], width: Int) {
        bytes.withUnsafeMutableBytes { swapBytes($0, width: width) }
    }

    static func swapBytes(_ raw: UnsafeMutableRawBufferPointer, width: Int) {
        let count = raw.count / width
        switch width {
        case 2:
            for i in 0..<count {
                let v = raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                raw.storeBytes(of: v.byteSwapped, toByteOffset: 2 * i, as: UInt16.self)
            }
        case 4:
            for i in 0..<count {
                let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                raw.storeBytes(of: v.byteSwapped, toByteOffset: 4 * i, as: UInt32.self)
            }
        case 8:
            for i in 0..<count {
                let v = raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                raw.storeBytes(of: v.byteSwapped, toByteOffset: 8 * i, as: UInt64.self)
            }
        default:
            break
        }
    }
}
