import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTestSupport

// MARK: - Helpers

/// Builds raw file bytes from a header string: lets tests write malformed headers by hand.
private func rawFile(_ header: String, buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    return rawFile(headerBytes: json, buffer: buffer, declaredLength: declaredLength)
}

private func rawFile(headerBytes: [UInt8], buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    var out: [UInt8] = []
    LittleEndianBytes.append(declaredLength ?? UInt64(headerBytes.count), to: &out)
    return out + headerBytes + buffer
}

/// Parses `bytes` and checks that it throws a `TensorFileError` accepted by `matches`.
private func expectParseError(
    _ bytes: [UInt8],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ matches: (TensorFileError) -> Bool
) {
    do {
        let file = try SafeTensorsFile.parse(bytes)
        Issue.record("expected an error, parsed \(file.tensors.count) tensors", sourceLocation: sourceLocation)
    } catch let error as TensorFileError {
        #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected TensorFileError, got \(error)", sourceLocation: sourceLocation)
    }
}

private func entry(_ dtype: String, _ shape: String, _ begin: String, _ end: String) -> String {
    #"{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":[\#(begin),\#(end)]}"#
}

private func allDTypeFile() throws -> SafeTensorsFile {
    var file = try SafeTensorsFile(metadata: ["case": "round trip", "quote\"\\\n": "ünïcødé \u{1}"])
    try file.insert(Tensor(floats: [1, -2.5, .infinity, -0.0, .leastNonzeroMagnitude, 3.25], shape: [2, 3]), named: "f32")
    try file.insert(Tensor(float16: [1, -2.5, 65504, 0.099975586], shape: [4]), named: "f16")
    try file.insert(Tensor(bfloat16: [1, -2.5, 3.0e38, 0.5], shape: [2, 2]), named: "bf16")
    try file.insert(Tensor(doubles: [1e300, -1.0 / 3.0], shape: [2, 1]), named: "f64")
    try file.insert(Tensor(int8s: [-128, -1, 0, 127], shape: [1, 4]), named: "i8")
    try file.insert(Tensor(uint8s: [0, 1, 255], shape: [3]), named: "u8")
    try file.insert(Tensor(int16s: [-32768, 32767, 7], shape: [3]), named: "i16")
    try file.insert(Tensor(int32s: [.min, .max, 0, -5], shape: [2, 2]), named: "i32")
    try file.insert(Tensor(int64s: [.min, .max, 42], shape: [3, 1, 1]), named: "i64")
    try file.insert(Tensor(bools: [true, false, true, true], shape: [2, 2]), named: "bool")
    try file.insert(Tensor(floats: [7], shape: []), named: "scalar")
    try file.insert(Tensor(floats: [], shape: [0, 5]), named: "empty")
    return file
}

// MARK: - Round trips

@Test func roundTripEveryDType() throws {
    let file = try allDTypeFile()
    let bytes = file.serialized()
    let headerLength = Int(bytes.withUnsafeBytes { LittleEndianBytes.load($0, at: 0, as: UInt64.self) })
    #expect(headerLength % 8 == 0, "header must be padded to a multiple of 8")
    #expect(Set(file.tensors.values.map(\.dtype)) == Set(TensorDType.allCases))

    let back = try SafeTensorsFile.parse(bytes)
    #expect(back.metadata == file.metadata)
    #expect(back.names == file.names)
    for name in file.names {
        #expect(back[name] == file[name], "tensor \(name)")
    }
    // Deterministic: same bytes again, also from Data.
    #expect(back.serialized() == bytes)
    #expect(try SafeTensorsFile.parse(Data(bytes)).serialized() == bytes)
}

@Test func roundTripThroughDisk() throws {
    let file = try allDTypeFile()
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("safetensors-test-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try file.write(path: path)
    let back = try SafeTensorsFile.read(path: path)
    #expect(back.serialized() == file.serialized())
    #expect(try back.tensor("i64").int64s() == [.min, .max, 42])
}

@Test func writtenHeaderIsSortedAndPacked() throws {
    var file = try SafeTensorsFile()
    try file.insert(Tensor(uint8s: [1, 2, 3], shape: [3]), named: "b")
    try file.insert(Tensor(floats: [1], shape: [1]), named: "a")
    let bytes = file.serialized()
    let n = Int(bytes.withUnsafeBytes { LittleEndianBytes.load($0, at: 0, as: UInt64.self) })
    let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
    let json = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}"#
    #expect(header.hasPrefix(json))
    #expect(header.dropFirst(json.count).allSatisfy { $0 == " " }, "padding must be spaces")
    #expect(n % 8 == 0 && n - json.count < 8)
    #expect(Array(bytes[(8 + n)...]) == [0, 0, 0x80, 0x3F, 1, 2, 3])
}

@Test func typedAccessorsConvert() throws {
    let file = try allDTypeFile()
    #expect(try file.tensor("f32").floats() == [1, -2.5, .infinity, -0.0, .leastNonzeroMagnitude, 3.25])
    #expect(try file.tensor("f16").floats() == [1, -2.5, 65504, Float(Float16(0.099975586))])
    #expect(try file.tensor("bf16").floats() == [1, -2.5, BFloat16(3.0e38).float, 0.5])
    #expect(try file.tensor("f64").floats() == [Float(1e300), Float(-1.0 / 3.0)])
    #expect(try file.tensor("f64").doubles() == [1e300, -1.0 / 3.0])
    #expect(try file.tensor("i8").floats() == [-128, -1, 0, 127])
    #expect(try file.tensor("i8").int8s() == [-128, -1, 0, 127])
    #expect(try file.tensor("i8").int32s() == [-128, -1, 0, 127])
    #expect(try file.tensor("u8").uint8s() == [0, 1, 255])
    #expect(try file.tensor("u8").int64s() == [0, 1, 255])
    #expect(try file.tensor("i16").int16s() == [-32768, 32767, 7])
    #expect(try file.tensor("i32").int32s() == [.min, .max, 0, -5])
    #expect(try file.tensor("i32").floats() == [Float(Int32.min), Float(Int32.max), 0, -5])
    #expect(try file.tensor("bool").bools() == [true, false, true, true])
    #expect(try file.tensor("bool").floats() == [1, 0, 1, 1])
    #expect(try file.tensor("bool").uint8s() == [1, 0, 1, 1])
    #expect(try file.tensor("scalar").elementCount == 1)
    #expect(try file.tensor("empty").elementCount == 0)
    #expect(try file.tensor("empty").floats().isEmpty)

    #expect(throws: TensorFileError.self) { try file.tensor("f32").int8s() }
    #expect(throws: TensorFileError.self) { try file.tensor("i64").int32s() }
    #expect(throws: TensorFileError.self) { try file.tensor("f16").int64s() }
}

@Test func bytesAreLittleEndian() throws {
    #expect(try Tensor(floats: [1], shape: [1]).data == [0x00, 0x00, 0x80, 0x3F])
    #expect(try Tensor(float16: [1], shape: [1]).data == [0x00, 0x3C])
    #expect(try Tensor(bfloat16: [1], shape: [1]).data == [0x80, 0x3F])
    #expect(try Tensor(int32s: [0x0102_0304], shape: [1]).data == [4, 3, 2, 1])
    #expect(try Tensor(int64s: [-2], shape: [1]).data == [0xFE] + Array(repeating: 0xFF, count: 7))
    #expect(try Tensor(doubles: [1], shape: [1]).data == [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
}

@Test func constructorsValidateSizes() throws {
    #expect(throws: TensorFileError.valueCountMismatch(dtype: .float32, shape: [2, 2], expected: 4, actual: 3)) {
        try Tensor(floats: [1, 2, 3], shape: [2, 2])
    }
    #expect(throws: TensorFileError.sizeMismatch(tensor: nil, dtype: .int32, shape: [2], expectedBytes: 8, actualBytes: 7)) {
        try Tensor(dtype: .int32, shape: [2], data: [UInt8](repeating: 0, count: 7))
    }
    #expect(throws: TensorFileError.self) { try Tensor(uint8s: [], shape: [-1]) }
    #expect(throws: TensorFileError.elementCountOverflow(tensor: nil, shape: [1 << 40, 1 << 40])) {
        try Tensor(uint8s: [], shape: [1 << 40, 1 << 40])
    }
    // Element count fits but byte count overflows.
    #expect(throws: TensorFileError.self) { try Tensor(dtype: .int64, shape: [Int.max / 4], data: []) }
    let t = try Tensor(dtype: .uint8, shape: [2, 0], data: [])
    #expect(t.elementCount == 0)
}

@Test func fileAPIErrors() throws {
    let file = try allDTypeFile()
    do {
        _ = try file.tensor("nope")
        Issue.record("expected tensorNotFound")
    } catch let error as TensorFileError {
        guard case let .tensorNotFound(name, available) = error else {
            Issue.record("wrong error \(error)")
            return
        }
        #expect(name == "nope")
        #expect(available == file.names)
        #expect(error.description.contains("nope") && error.description.contains("f32"))
    }
    #expect(file["nope"] == nil)
    #expect(throws: TensorFileError.reservedName("__metadata__")) {
        var copy = file
        try copy.insert(Tensor(uint8s: [1], shape: [1]), named: "__metadata__")
    }
    #expect(throws: TensorFileError.self) {
        try SafeTensorsFile(tensors: ["__metadata__": Tensor(uint8s: [1], shape: [1])])
    }
    #expect(throws: TensorFileError.fileNotFound(path: "/nonexistent/x.safetensors")) {
        try SafeTensorsFile.read(path: "/nonexistent/x.safetensors")
    }
    #expect(throws: TensorFileError.self) { try file.write(path: "/nonexistent-dir/x.safetensors") }
}

// MARK: - BFloat16 and Float16

@Test func bfloat16Rounding() {
    func bf(_ bits: UInt32) -> UInt16 { BFloat16(Float(bitPattern: bits)).bitPattern }
    #expect(BFloat16(1.0).bitPattern == 0x3F80)
    #expect(BFloat16(-2.0).bitPattern == 0xC000)
    #expect(bf(0x3F80_7FFF) == 0x3F80)  // below half: down
    #expect(bf(0x3F80_8000) == 0x3F80)  // tie, even LSB: stays
    #expect(bf(0x3F81_8000) == 0x3F82)  // tie, odd LSB: up to even
    #expect(bf(0x3F80_8001) == 0x3F81)  // above half: up
    #expect(bf(0xBF81_8000) == 0xBF82)  // negative tie
    #expect(bf(0x3FFF_FFFF) == 0x4000)  // carry into exponent
    #expect(BFloat16(Float.greatestFiniteMagnitude).bitPattern == 0x7F80)  // rounds up to +inf
    #expect(BFloat16(-Float.greatestFiniteMagnitude).bitPattern == 0xFF80)
    #expect(BFloat16(Float.infinity).bitPattern == 0x7F80)
    #expect(BFloat16(-Float.infinity).bitPattern == 0xFF80)
    #expect(BFloat16(-0.0).bitPattern == 0x8000)
    #expect(bf(0x0001_8000) == 0x0002)  // subnormal tie to even
    #expect(BFloat16(Float.nan).float.isNaN)
    #expect(BFloat16(Float.signalingNaN).float.isNaN)
    #expect(BFloat16(Float.signalingNaN).bitPattern & 0x0040 != 0, "NaN must become quiet")
    #expect(bf(0x7F80_0001) & 0x7FFF == 0x7FC0, "low-payload NaN must not truncate to infinity")
    #expect(bf(0xFFC0_0000) == 0xFFC0, "NaN sign kept")
    #expect(BFloat16(bitPattern: 0x4049).float == Float(bitPattern: 0x4049_0000))
    #expect(BFloat16(bitPattern: 0x7F80) == BFloat16(.infinity))
    // Every finite BF16 round-trips through Float exactly.
    for bits in stride(from: 0, through: 0xFFFF, by: 1) {
        let value = BFloat16(bitPattern: UInt16(bits))
        if !value.float.isNaN {
            #expect(BFloat16(value.float) == value)
        }
    }
}

@Test func float16Conversions() {
    let values: [Float] = [0, -0.0, 1, -1, 0.1, 1.0 / 3.0, 65504, 65519, 65520, 1e6, -1e6, 6e-8, 1e-9, .infinity, .nan]
    let halves = HalfConversion.float16s(from: values)
    let back = HalfConversion.floats(fromFloat16: halves)
    #expect(back[0] == 0 && back[1] == 0 && back[1].sign == .minus)
    #expect(back[2] == 1 && back[3] == -1)
    #expect(back[4] == Float(bitPattern: 0x3DCC_C000))  // fp16 0x2E66
    #expect(halves[4].bitPattern == 0x2E66)
    #expect(halves[5].bitPattern == 0x3555)
    #expect(back[6] == 65504)
    #expect(back[7] == 65504)  // below the halfway point to 65536
    #expect(back[8] == .infinity)  // tie rounds to even = infinity
    #expect(back[9] == .infinity && back[10] == -.infinity)
    #expect(halves[11].bitPattern == 0x0001)  // smallest subnormal
    #expect(back[12] == 0)
    #expect(back[13] == .infinity && back[14].isNaN)

    // Byte-level helpers agree with typed ones.
    let bytes = HalfConversion.float16Bytes(from: values)
    let decoded = bytes.withUnsafeBytes { HalfConversion.floats(fromFloat16Bytes: $0) }
    #expect(decoded.count == values.count)
    for i in 0..<values.count where !values[i].isNaN {
        #expect(decoded[i] == back[i])
    }
    let bfBytes = HalfConversion.bfloat16Bytes(from: values)
    let bfDecoded = bfBytes.withUnsafeBytes { HalfConversion.floats(fromBFloat16Bytes: $0) }
    let bfTyped = HalfConversion.floats(fromBFloat16: HalfConversion.bfloat16s(from: values))
    for i in 0..<values.count where !values[i].isNaN {
        #expect(bfDecoded[i] == bfTyped[i])
        #expect(bfTyped[i] == BFloat16(values[i]).float)
    }
}

// MARK: - Malformed input

@Test func truncatedFilesThrow() throws {
    expectParseError([]) { if case .fileTooShort(0) = $0 { true } else { false } }
    expectParseError([1, 0, 0, 0, 0, 0, 0]) { if case .fileTooShort(7) = $0 { true } else { false } }
    // Every strict prefix of a valid file must throw (never trap).
    let bytes = try allDTypeFile().serialized()
    for length in 0..<bytes.count {
        #expect(throws: TensorFileError.self, "prefix \(length)") { try SafeTensorsFile.parse(Array(bytes[..<length])) }
    }
}

@Test func headerLengthChecks() {
    expectParseError(rawFile("{}", declaredLength: 100_000_001)) {
        if case .headerTooLarge(100_000_001, _) = $0 { true } else { false }
    }
    expectParseError(rawFile("{}", declaredLength: .max)) { if case .headerTooLarge = $0 { true } else { false } }
    expectParseError(rawFile("{}", declaredLength: 3)) {
        if case .headerExceedsFile(3, 2) = $0 { true } else { false }
    }
    expectParseError(rawFile("")) { if case .invalidJSON = $0 { true } else { false } }
}

@Test func badHeaderThrows() {
    expectParseError(rawFile(headerBytes: [0x7B, 0xFF, 0xFE, 0x7D])) { if case .invalidUTF8Header = $0 { true } else { false } }
    expectParseError(rawFile("{\"a\": ")) { if case .invalidJSON = $0 { true } else { false } }
    expectParseError(rawFile("not json")) { if case .invalidJSON = $0 { true } else { false } }
    expectParseError(rawFile(String(repeating: "[", count: 100_000))) { if case .invalidJSON = $0 { true } else { false } }
    expectParseError(rawFile("[1, 2]")) { if case .headerNotObject = $0 { true } else { false } }
    expectParseError(rawFile(#"{"__metadata__": {"a": 1}}"#)) { if case .invalidMetadata = $0 { true } else { false } }
    expectParseError(rawFile(#"{"__metadata__": [1]}"#)) { if case .invalidMetadata = $0 { true } else { false } }
    expectParseError(rawFile(#"{"t": 5}"#)) { if case .invalidEntry(tensor: "t", _) = $0 { true } else { false } }
    expectParseError(rawFile(#"{"t": {"shape": [1], "data_offsets": [0, 1]}}"#, buffer: [0])) {
        if case .missingField(tensor: "t", field: "dtype") = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": {"dtype": "U8", "data_offsets": [0, 1]}}"#, buffer: [0])) {
        if case .missingField(tensor: "t", field: "shape") = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": {"dtype": "U8", "shape": [1]}}"#, buffer: [0])) {
        if case .missingField(tensor: "t", field: "data_offsets") = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": {"dtype": 3, "shape": [1], "data_offsets": [0, 1]}}"#, buffer: [0])) {
        if case .invalidEntry(tensor: "t", _) = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": {"dtype": "U8", "shape": 1, "data_offsets": [0, 1]}}"#, buffer: [0])) {
        if case .invalidEntry(tensor: "t", _) = $0 { true } else { false }
    }
}

@Test func unknownDTypeThrows() {
    expectParseError(rawFile(#"{"t": \#(entry("F8_E4M3", "[1]", "0", "1"))}"#, buffer: [0])) {
        if case .unknownDType(tensor: "t", dtype: "F8_E4M3") = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": \#(entry("f32", "[1]", "0", "4"))}"#, buffer: [0, 0, 0, 0])) {
        if case .unknownDType = $0 { true } else { false }
    }
}

@Test func badShapesThrow() {
    let buffer = [UInt8](repeating: 0, count: 16)
    for shape in ["[-1]", "[1.5]", "[true]", "[\"2\"]", "[null]", "[1e30]", "[2, [2]]", "[18446744073709551616]"] {
        expectParseError(rawFile(#"{"t": \#(entry("U8", shape, "0", "1"))}"#, buffer: buffer)) {
            if case .invalidShape(tensor: "t", _) = $0 { true } else { false }
        }
    }
    // Huge shape: overflow is detected, nothing is allocated.
    expectParseError(rawFile(#"{"t": \#(entry("U8", "[4294967296, 4294967296]", "0", "1"))}"#, buffer: buffer)) {
        if case .elementCountOverflow(tensor: "t", _) = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": \#(entry("F64", "[9223372036854775807]", "0", "1"))}"#, buffer: buffer)) {
        if case .elementCountOverflow(tensor: "t", _) = $0 { true } else { false }
    }
    // Huge but representable shape: caught by the size check, not by allocating.
    expectParseError(rawFile(#"{"t": \#(entry("U8", "[1000000, 1000000]", "0", "16"))}"#, buffer: buffer)) {
        if case .sizeMismatch(tensor: "t", .uint8, _, 1_000_000_000_000, 16) = $0 { true } else { false }
    }
}

@Test func badOffsetsThrow() {
    let buffer = [UInt8](repeating: 0, count: 8)
    // Out of range.
    expectParseError(rawFile(#"{"t": \#(entry("F32", "[2]", "4", "12"))}"#, buffer: buffer)) {
        if case .invalidOffsets(tensor: "t", _) = $0 { true } else { false }
    }
    // Reversed.
    expectParseError(rawFile(#"{"t": \#(entry("U8", "[0]", "5", "3"))}"#, buffer: buffer)) {
        if case let .invalidOffsets(tensor: "t", reason) = $0 { reason.contains("reversed") } else { false }
    }
    // Negative, non-integral, wrong arity, wrong type.
    for offsets in [("-1", "3"), ("0.5", "4.5"), ("0", "true"), ("\"0\"", "4")] {
        expectParseError(rawFile(#"{"t": \#(entry("U8", "[4]", offsets.0, offsets.1))}"#, buffer: buffer)) {
            if case .invalidOffsets(tensor: "t", _) = $0 { true } else { false }
        }
    }
    expectParseError(rawFile(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0]}}"#, buffer: buffer)) {
        if case .invalidOffsets(tensor: "t", _) = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": {"a": 1}}}"#, buffer: buffer)) {
        if case .invalidOffsets(tensor: "t", _) = $0 { true } else { false }
    }
    // Shape/size mismatch.
    expectParseError(rawFile(#"{"t": \#(entry("F32", "[2]", "0", "4"))}"#, buffer: buffer)) {
        if case .sizeMismatch(tensor: "t", .float32, [2], 8, 4) = $0 { true } else { false }
    }
    expectParseError(rawFile(#"{"t": \#(entry("F16", "[1, 2]", "0", "6"))}"#, buffer: buffer)) {
        if case .sizeMismatch(tensor: "t", .float16, [1, 2], 4, 6) = $0 { true } else { false }
    }
}

@Test func lenientCasesParse() throws {
    // Overlapping and aliased tensors, integral doubles, padding, trailing garbage, unknown extra fields.
    let header = #"{"a": \#(entry("U8", "[4]", "0", "4")), "b": \#(entry("U8", "[2.0, 1e0]", "2.0", "4")), "c": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4], "extra": 1}, "__metadata__": {"k": "v"}}       "#
    let file = try SafeTensorsFile.parse(rawFile(header, buffer: [1, 2, 3, 4, 0xDE, 0xAD]))
    #expect(try file.tensor("a").uint8s() == [1, 2, 3, 4])
    #expect(try file.tensor("b").shape == [2, 1])
    #expect(try file.tensor("b").uint8s() == [3, 4])
    #expect(try file.tensor("c") == file.tensor("a"))
    #expect(file.metadata == ["k": "v"])
    let empty = try SafeTensorsFile.parse(rawFile("{}"))
    #expect(empty.tensors.isEmpty && empty.metadata.isEmpty)
}

@Test func excessiveOverlapIsRejected() {
    // 64 distinct overlapping views of a 64-byte buffer would copy ~2 KB: refused before copying.
    let entries = (0..<64).map { i in #""t\#(i)": \#(entry("U8", "[\(64 - i)]", "\(i)", "64"))"# }
    expectParseError(rawFile("{" + entries.joined(separator: ",") + "}", buffer: [UInt8](repeating: 7, count: 64))) {
        if case .excessiveOverlap = $0 { true } else { false }
    }
}

@Test func corruptedFilesNeverTrap() throws {
    let bytes = try allDTypeFile().serialized()
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: state >> 33)
    }
    for _ in 0..<2000 {
        var corrupted = bytes
        for _ in 0..<(1 + next() % 4) {
            let position = next() % min(corrupted.count, 8 + 600)  // mostly hit the header
            corrupted[position] = UInt8(truncatingIfNeeded: next())
        }
        _ = try? SafeTensorsFile.parse(corrupted)
    }
}

// MARK: - Golden file

/// The compact golden copy of the Gaussian case (both heads of the full case, without `dense.o`).
@Test func readsGoldenFile() throws {
    let path = Golden.path("compact/gauss_1000_d64")
    try #require(FileManager.default.fileExists(atPath: path), "Golden file missing at \(path) (Scripts/make_compact_golden.py writes it)")
    let file = try SafeTensorsFile.read(path: path)

    let q = try file.tensor("q")
    #expect(q.dtype == .float16)
    #expect(q.shape == [1, 2, 1000, 64])
    let qValues = try q.floats()
    #expect(qValues.count == 128_000)
    // Reference values from numpy.frombuffer(..., "<f2").
    #expect(Array(qValues.prefix(4)) == [0.03631591796875, -2.109375, -0.54931640625, -1.267578125])
    #expect(abs(qValues.reduce(0.0) { $0 + Double($1) } - -758.3631520867348) < 1e-6)

    let mask = try file.tensor("mask.b128x64_cdf")
    #expect(mask.dtype == .uint8)
    #expect(mask.shape == [1, 2, 8, 16])
    #expect(try mask.uint8s().reduce(0) { $0 + Int($1) } == 256)

    let k8 = try file.tensor("quant_b128x64.k_int8")
    #expect(k8.dtype == .int8)
    #expect(Array(try k8.int8s().prefix(4)) == [-13, -3, 1, -12])
    #expect(try k8.int64s().reduce(0, +) == 1166)

    #expect(file.metadata["case"] != nil, "__metadata__ must have a \"case\" key")
    #expect(file.tensors.count == 23)
}
