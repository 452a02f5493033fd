import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTestSupport

// MARK: - Test data

/// Tensors of every dtype NumPy can hold, with special values and random bit patterns
/// (NaNs with payloads, subnormals, infinities, extreme integers).
private func sampleTensor(_ dtype: TensorDType, shape: [Int], seed: UInt64) throws -> Tensor {
    let count = shape.reduce(1, *)
    var rng = TestRNG(seed: seed)
    var bytes = [UInt8]()
    for _ in 0..<(count * dtype.byteSize) { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
    // Special values first, so even small shapes cover them.
    let specials: [[UInt8]]
    switch dtype {
    case .float32: specials = [Float.nan, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, 1.5].map { LittleEndianBytes.encode([$0.bitPattern]) }
    case .float64: specials = [Double.nan, -0.0, .infinity, .leastNonzeroMagnitude, -1e300].map { LittleEndianBytes.encode([$0.bitPattern]) }
    case .float16: specials = [0x7E01, 0x8000, 0x7C00, 0x0001, 0xFBFF].map { LittleEndianBytes.encode([UInt16($0)]) }
    case .bool: specials = []
    default: specials = [[UInt8](repeating: 0x80, count: dtype.byteSize), [UInt8](repeating: 0xFF, count: dtype.byteSize)]
    }
    for (i, s) in specials.enumerated() where (i + 1) * dtype.byteSize <= bytes.count {
        bytes.replaceSubrange((i * dtype.byteSize)..<((i + 1) * dtype.byteSize), with: s)
    }
    if dtype == .bool { bytes = bytes.map { $0 & 1 } }
    return try Tensor(dtype: dtype, shape: shape, data: bytes)
}

private let npyDTypes: [TensorDType] = [.float16, .float32, .float64, .int8, .uint8, .bool, .int16, .int32, .int64]
private let sampleShapes: [[Int]] = [[], [0], [5], [2, 3], [2, 1, 3, 2], [1, 0, 3], [17, 33]]

/// Hand-built file bytes: lets tests write malformed headers.
private func rawNpy(_ header: String, version: UInt8 = 1, declaredLength: Int? = nil, data: [UInt8] = [], magic: [UInt8] = NumpyFile.magic) -> [UInt8] {
    let text = Array(header.utf8)
    var out = magic + [version, 0]
    let length = declaredLength ?? text.count
    if version == 1 {
        LittleEndianBytes.append(UInt16(truncatingIfNeeded: length), to: &out)
    } else {
        LittleEndianBytes.append(UInt32(truncatingIfNeeded: length), to: &out)
    }
    return out + text + data
}

private func expectNpyError(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation, _ matches: (NumpyFileError) -> Bool) {
    do {
        let t = try NumpyFile.parse(bytes)
        Issue.record("expected an error, parsed \(t.dtype) \(t.shape)", sourceLocation: sourceLocation)
    } catch let error as NumpyFileError {
        #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected NumpyFileError, got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: - Round trips in Swift

struct NumpyFileTests {
    @Test(arguments: NumpyFile.Version.allCases)
    func roundTripEveryDTypeByteOrderAndShape(version: NumpyFile.Version) throws {
        for (d, dtype) in npyDTypes.enumerated() {
            for order in NumpyFile.ByteOrder.allCases {
                for (s, shape) in sampleShapes.enumerated() {
                    let t = try sampleTensor(dtype, shape: shape, seed: UInt64(100 * d + s))
                    let bytes = try NumpyFile.serialized(t, version: version, byteOrder: order)
                    let header = try NumpyFile.header(of: bytes)
                    #expect(header.version == version)
                    #expect(header.dtype == dtype && header.shape == shape && !header.fortranOrder)
                    #expect(header.byteOrder == (dtype.byteSize == 1 ? .little : order))
                    #expect(header.dataOffset % 64 == 0, "data is 64-byte aligned as NumPy writes it")
                    #expect(bytes.count == header.dataOffset + t.byteCount)
                    let back = try NumpyFile.parse(bytes)
                    #expect(back == t, "\(dtype) \(order) \(shape) v\(version.rawValue)")
                    // The stored bytes really are in the requested order.
                    if order == .big && dtype.byteSize > 1 && t.byteCount > 0 {
                        let stored = Array(bytes[header.dataOffset..<(header.dataOffset + dtype.byteSize)])
                        #expect(stored == Array(t.data[0..<dtype.byteSize].reversed()))
                    }
                }
            }
        }
    }

    @Test func headerTextMatchesNumpyLayout() throws {
        let t = try Tensor(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        let bytes = try NumpyFile.serialized(t)
        #expect(Array(bytes[0..<10]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 118, 0])
        let header = String(decoding: bytes[10..<128], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        #expect(header.hasSuffix(" \n"))
        let scalar = try NumpyFile.serialized(Tensor(int64s: [7], shape: []), byteOrder: .big)
        #expect(String(decoding: scalar[10..<70], as: UTF8.self).hasPrefix("{'descr': '>i8', 'fortran_order': False, 'shape': (), }"))
        let vector = try NumpyFile.serialized(Tensor(bools: [true], shape: [1]), version: .v3_0)
        #expect(vector[6] == 3 && vector[7] == 0)
        #expect(String(decoding: vector[12..<80], as: UTF8.self).hasPrefix("{'descr': '|b1', 'fortran_order': False, 'shape': (1,), }"))
    }

    @Test func writeAndReadFiles() throws {
        let dir = try InteropPython.temporaryDirectory("npy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.npy").path
        let t = try Tensor(doubles: [1, -2, .pi], shape: [3, 1])
        try NumpyFile.write(t, path: path, version: .v2_0, byteOrder: .big)
        #expect(try NumpyFile.read(path: path) == t)
        #expect(throws: NumpyFileError.fileNotFound(path: dir.appendingPathComponent("missing.npy").path)) {
            try NumpyFile.read(path: dir.appendingPathComponent("missing.npy").path)
        }
        #expect(throws: NumpyFileError.readFailed(path: dir.path, reason: "it is a directory, not a regular file; give the path of a file")) { try NumpyFile.read(path: dir.path) }
        let error = #expect(throws: NumpyFileError.self) {
            try NumpyFile.write(t, path: dir.appendingPathComponent("no/such/dir/a.npy").path)
        }
        if case .writeFailed = error {} else { Issue.record("expected writeFailed, got \(String(describing: error))") }
    }

    @Test func bfloat16CannotBeWritten() throws {
        let t = try Tensor(bfloat16: [1, 2], shape: [2])
        #expect(throws: NumpyFileError.dtypeNotRepresentable(.bfloat16)) { try NumpyFile.serialized(t) }
        #expect(NumpyFileError.dtypeNotRepresentable(.bfloat16).description.contains("bfloat16"))
    }

    @Test func versionIsChosenLikeNumpy() throws {
        // A header over 65535 bytes needs format 2.0: NumPy then switches automatically.
        let shape = [Int](repeating: 1, count: 30_000)
        let t = try Tensor(uint8s: [9], shape: shape)
        #expect(throws: NumpyFileError.self) { try NumpyFile.serialized(t, version: .v1_0) }
        let auto = try NumpyFile.serialized(t)
        #expect(auto[6] == 2)
        #expect(try NumpyFile.parse(auto) == t)
        #expect(try NumpyFile.serialized(Tensor(uint8s: [9], shape: [1]))[6] == 1)
    }

    @Test func trailingBytesAreIgnored() throws {
        let t = try Tensor(int32s: [1, 2], shape: [2])
        let bytes = try NumpyFile.serialized(t) + NumpyFile.serialized(Tensor(int8s: [3], shape: [1]))
        #expect(try NumpyFile.parse(bytes) == t)
    }

    @Test func headerVariantsNumpyAccepts() throws {
        let data: [UInt8] = [1, 0, 0, 0, 2, 0, 0, 0]
        let variants = [
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
            "{\"shape\": (2,), \"descr\": \"<i4\", \"fortran_order\": False}",   // any key order and quote style
            "{'descr':'<i4','fortran_order':False,'shape':(2L,)}\n",            // Python 2 long
            "  {'descr': u'<i4', 'fortran_order': False, 'shape': (2, )}   \n",
            "{'descr': '=i4', 'fortran_order': False, 'shape': (2,), }",        // native order
            "{'descr': 'i4', 'fortran_order': False, 'shape': [2], }".replacingOccurrences(of: "[2]", with: "(2,)"),
            "{'descr': '<i4', 'fortran_order': False, 'shape': (+2,), }",
        ]
        for v in variants {
            let t = try NumpyFile.parse(rawNpy(v, data: data))
            #expect(t.dtype == .int32 && t.shape == [2], "\(v)")
            #expect(try t.int32s() == [1, 2], "\(v)")
        }
        // Version 3.0 headers are UTF-8; 1.0 and 2.0 are latin-1 (any byte is a character).
        let t3 = try NumpyFile.parse(rawNpy("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), } ", version: 3, data: [7]))
        #expect(try t3.uint8s() == [7])
        // A (1, 2) shape in Fortran order is refused even though it is laid out like C order.
        expectNpyError(rawNpy("{'descr': '<i4', 'fortran_order': True, 'shape': (1, 2), }", data: data)) {
            $0 == .fortranOrder(shape: [1, 2])
        }
    }

    // MARK: Malformed files

    @Test func malformedFilesGiveTypedErrors() throws {
        let good = try NumpyFile.serialized(Tensor(floats: [1, 2, 3], shape: [3]))
        // Truncated anywhere: never a crash.
        for n in 0..<good.count {
            expectNpyError(Array(good[0..<n])) { _ in true }
        }
        expectNpyError([]) { $0 == .fileTooShort(byteCount: 0, needed: 10) }
        expectNpyError(Array(good[0..<11])) { if case .headerExceedsFile = $0 { true } else { false } }
        expectNpyError(Array(good[0..<(good.count - 1)])) {
            $0 == .truncatedData(shape: [3], descr: "<f4", expectedBytes: 12, availableBytes: 11)
        }
        // Wrong magic.
        var wrong = good
        wrong[1] = UInt8(ascii: "n")
        expectNpyError(wrong) { if case .badMagic = $0 { true } else { false } }
        expectNpyError(Array("PK\u{3}\u{4} an npz is a zip file".utf8)) { if case .badMagic = $0 { true } else { false } }
        // Unknown versions.
        var v4 = good
        v4[6] = 4
        expectNpyError(v4) { $0 == .unsupportedVersion(major: 4, minor: 0) }
        var v11 = good
        v11[7] = 1
        expectNpyError(v11) { $0 == .unsupportedVersion(major: 1, minor: 1) }
        // Header length: past the end, huge (v2: 4 GB), or cutting the dictionary short.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"
        expectNpyError(rawNpy(header, declaredLength: 60_000, data: [0, 0, 0, 0])) { if case .headerExceedsFile = $0 { true } else { false } }
        expectNpyError(rawNpy(header, version: 2, declaredLength: Int(UInt32.max), data: [0, 0, 0, 0])) {
            $0 == .headerTooLarge(declared: UInt64(UInt32.max), limit: NumpyFile.maxHeaderBytes)
        }
        expectNpyError(rawNpy(header, declaredLength: 20, data: [0, 0, 0, 0])) { if case .invalidHeader = $0 { true } else { false } }
        // A header that is too long swallows the data: the data is then truncated.
        expectNpyError(rawNpy(header, declaredLength: header.utf8.count + 2, data: [0x20, 0x20, 0, 0])) {
            if case .truncatedData = $0 { true } else { false }
        }
        // Invalid UTF-8 in a 3.0 header.
        expectNpyError(rawNpy("{'descr': '<f4\u{FF}', 'fortran_order': False, 'shape': (1,), }", version: 3).map { $0 == 0xC3 ? 0xC0 : $0 }) {
            $0 == .invalidHeaderEncoding(version: "3.0")
        }
    }

    @Test func hugeDeclaredShapesFailWithoutAllocating() throws {
        // Each would be terabytes (or overflow): the size check runs before any copy.
        expectNpyError(rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", data: [1, 2, 3])) {
            $0 == .truncatedData(shape: [1_000_000, 1_000_000], descr: "<f8", expectedBytes: 8_000_000_000_000, availableBytes: 3)
        }
        expectNpyError(rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }")) {
            $0 == .shapeOverflow(shape: [4_294_967_296, 4_294_967_296])
        }
        // The element count fits, its size in bytes (x 8) does not.
        expectNpyError(rawNpy("{'descr': '<i8', 'fortran_order': False, 'shape': (1152921504606846976,), }")) {
            $0 == .shapeOverflow(shape: [1_152_921_504_606_846_976])
        }
        expectNpyError(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }")) {
            if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false }
        }
        // A zero dimension makes the product 0 whatever the others: valid, empty.
        let empty = try NumpyFile.parse(rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 9223372036854775807), }"))
        #expect(empty.elementCount == 0 && empty.data.isEmpty)
    }

    @Test func badHeaderTextGivesTypedErrors() throws {
        let cases: [(String, (NumpyFileError) -> Bool)] = [
            ("", { if case .invalidHeader = $0 { true } else { false } }),
            ("   \n", { if case .invalidHeader = $0 { true } else { false } }),
            ("not a dict", { if case .invalidHeader = $0 { true } else { false } }),
            ("('descr', '<f4')", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4' 'fortran_order': False}", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } trailing", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4, 'fortran_order': False, 'shape': (1,), }", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", { if case .invalidHeader = $0 { true } else { false } }),
            ("{descr: '<f4', 'fortran_order': False, 'shape': (1,)}", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (__import__('os'),)}", { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", { $0 == .unexpectedKey("extra") }),
            ("{'fortran_order': False, 'shape': (1,)}", { $0 == .missingKey("descr") }),
            ("{'descr': '<f4', 'shape': (1,)}", { $0 == .missingKey("fortran_order") }),
            ("{'descr': '<f4', 'fortran_order': False}", { $0 == .missingKey("shape") }),
            ("{'descr': 4, 'fortran_order': False, 'shape': (1,)}", { if case .invalidHeaderValue(key: "descr", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", { if case .invalidHeaderValue(key: "fortran_order", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': 1}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1)}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': ('1',)}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (True,)}", { if case .invalidHeaderValue(key: "shape", _) = $0 { true } else { false } }),
            ("{'descr': '<u2', 'fortran_order': False, 'shape': (1,)}", { $0 == .unsupportedDType("<u2") }),
            ("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", { $0 == .unsupportedDType("<c8") }),
            ("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", { $0 == .unsupportedDType("|O") }),
            ("{'descr': '<f16', 'fortran_order': False, 'shape': (1,)}", { $0 == .unsupportedDType("<f16") }),
            ("{'descr': '', 'fortran_order': False, 'shape': (1,)}", { $0 == .unsupportedDType("") }),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", { if case .unsupportedDType = $0 { true } else { false } }),
            ("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", { $0 == .fortranOrder(shape: [2, 2]) }),
            (String(repeating: "(", count: 10_000), { if case .invalidHeader = $0 { true } else { false } }),
            ("{'descr': '<f4\\q', 'fortran_order': False, 'shape': (1,)}", { if case .invalidHeader = $0 { true } else { false } }),
        ]
        for (text, matches) in cases {
            expectNpyError(rawNpy(text, data: [UInt8](repeating: 0, count: 64)), matches)
        }
        // The parser on its own: nested literals, escapes, deep nesting refused.
        #expect(try PythonLiteralParser.parse("{'a': [1, (2, 3), {'b': None}], 'c': 'x\\'y\\u00e9'}") == .dict([
            ("a", .list([.integer(value: 1, text: "1"), .tuple([.integer(value: 2, text: "2"), .integer(value: 3, text: "3")]), .dict([("b", .none)])])),
            ("c", .string("x'y\u{e9}")),
        ]))
        #expect(throws: NumpyFileError.self) { try PythonLiteralParser.parse(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)) }
        #expect(try PythonLiteralParser.parse(String(repeating: "[", count: 20) + String(repeating: "]", count: 20)) != .none)
    }

    @Test func randomCorruptionNeverCrashes() throws {
        var rng = TestRNG(seed: 5)
        let good = try NumpyFile.serialized(Tensor(int16s: [1, -2, 3, 4, 5, 6], shape: [2, 3]), byteOrder: .big)
        for _ in 0..<3_000 {
            var bytes = good
            for _ in 0..<rng.int(1...4) {
                bytes[rng.int(0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
            }
            if let t = try? NumpyFile.parse(bytes) {
                // Whatever parsed is self-consistent.
                #expect(t.data.count == t.elementCount * t.dtype.byteSize)
            }
        }
    }

    // MARK: - Real NumPy

    /// Swift writes every dtype x byte order x version x shape; NumPy loads each file and checks
    /// dtype, shape and data bit for bit, and that its own writer produces identical bytes.
    @Test(.enabled(if: InteropPython.mayRun("numpy"), "needs python3 with NumPy 2.x (python3 -m pip install numpy): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func numpyReadsWhatSwiftWrites() throws {
        let dir = try InteropPython.temporaryDirectory("npy-swift")
        defer { try? FileManager.default.removeItem(at: dir) }
        var manifest: [[String: Any]] = []
        for (d, dtype) in npyDTypes.enumerated() {
            for order in NumpyFile.ByteOrder.allCases {
                for version in NumpyFile.Version.allCases {
                    for (s, shape) in sampleShapes.enumerated() {
                        let t = try sampleTensor(dtype, shape: shape, seed: UInt64(1000 + 100 * d + s))
                        let name = "\(dtype.rawValue)_\(order.rawValue)_v\(version.major)_\(s).npy"
                        try NumpyFile.write(t, path: dir.appendingPathComponent(name).path, version: version, byteOrder: order)
                        manifest.append([
                            "file": name, "descr": try NumpyFile.descr(for: dtype, byteOrder: order), "shape": shape,
                            "version": [Int(version.major), 0], "le_hex": InteropPython.hex(t.data),
                        ])
                    }
                }
            }
        }
        try JSONSerialization.data(withJSONObject: manifest).write(to: dir.appendingPathComponent("manifest.json"))
        let script = """
            import io, json, os, sys
            import numpy as np
            d = sys.argv[1]
            bad = []
            manifest = json.load(open(os.path.join(d, 'manifest.json')))
            for m in manifest:
                path = os.path.join(d, m['file'])
                raw = open(path, 'rb').read()
                with open(path, 'rb') as f:
                    version = np.lib.format.read_magic(f)
                a = np.load(path, allow_pickle=False)
                # byteswap + view keeps every bit (NaN payloads included)
                little = a.byteswap().view(a.dtype.newbyteorder('<')) if a.dtype.byteorder == '>' else a
                if version != tuple(m['version']): bad.append((m['file'], 'version', version))
                if a.dtype.str != m['descr']: bad.append((m['file'], 'descr', a.dtype.str))
                if list(a.shape) != m['shape']: bad.append((m['file'], 'shape', a.shape))
                if np.ascontiguousarray(little).tobytes().hex() != m['le_hex']: bad.append((m['file'], 'data'))
                out = io.BytesIO()
                np.lib.format.write_array(out, a, version=tuple(m['version']))
                if out.getvalue() != raw: bad.append((m['file'], 'bytes differ from numpy.lib.format.write_array'))
            print(json.dumps({'checked': len(manifest), 'numpy': np.__version__, 'bad': [str(b) for b in bad[:20]], 'bad_count': len(bad)}))
            """
        let out = try InteropPython.check(script, [dir.path])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "python printed: \(out)")
        #expect((report["checked"] as? NSNumber)?.intValue == manifest.count)
        #expect((report["bad_count"] as? NSNumber)?.intValue == 0, "NumPy disagrees: \(report["bad"] ?? "")")
    }

    /// NumPy writes every dtype x byte order x version x shape with
    /// `numpy.lib.format.write_array`; Swift reads each bit for bit and re-serializes it to the
    /// identical bytes. Fortran-order and unsupported arrays written by NumPy give typed errors.
    @Test(.enabled(if: InteropPython.mayRun("numpy"), "needs python3 with NumPy 2.x (python3 -m pip install numpy): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
    func swiftReadsWhatNumpyWrites() throws {
        let dir = try InteropPython.temporaryDirectory("npy-numpy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import json, os, sys
            import numpy as np
            d = sys.argv[1]
            rng = np.random.default_rng(2024)
            codes = ['f2', 'f4', 'f8', 'i1', 'u1', 'b1', 'i2', 'i4', 'i8']
            shapes = [(), (0,), (5,), (2, 3), (2, 1, 3, 2), (1, 0, 3), (17, 33)]
            specials = {
                'f2': np.array([np.nan, -0.0, np.inf, -np.inf, 6e-8, 65504], dtype='<f2'),
                'f4': np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, -3.4e38], dtype='<f4'),
                'f8': np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324, 1e308], dtype='<f8'),
            }
            manifest = []
            for code in codes:
                for order in '<>':
                    for version in [(1, 0), (2, 0), (3, 0)]:
                        for s, shape in enumerate(shapes):
                            n = int(np.prod(shape))
                            le = np.dtype('<' + code)
                            if code == 'b1':
                                a = rng.integers(0, 2, n).astype(bool)
                            else:
                                a = np.frombuffer(rng.integers(0, 256, n * le.itemsize, dtype=np.uint8).tobytes(), dtype=le).copy()
                                if code in specials:
                                    k = min(n, len(specials[code]))
                                    a[:k] = specials[code][:k]
                                if code in ('f4', 'f8') and n > 7:
                                    # a NaN with a payload, set through the bits
                                    a.view(np.uint32 if code == 'f4' else np.uint64)[7] = 0x7fc01234 if code == 'f4' else 0x7ff8000000001234
                            le_bytes = a.tobytes()
                            if order == '>' and le.itemsize > 1:
                                a = a.byteswap().view(le.newbyteorder('>'))
                            a = a.reshape(shape)
                            name = f'{code}_{"le" if order == "<" else "be"}_v{version[0]}_{s}.npy'
                            with open(os.path.join(d, name), 'wb') as f:
                                np.lib.format.write_array(f, a, version=version)
                            manifest.append({'file': name, 'descr': a.dtype.str, 'shape': list(shape),
                                             'version': f'{version[0]}.0', 'le_hex': le_bytes.hex()})
            np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
            np.save(os.path.join(d, 'complex.npy'), np.zeros(3, dtype=np.complex64))
            np.save(os.path.join(d, 'u16.npy'), np.zeros(3, dtype=np.uint16))
            np.save(os.path.join(d, 'structured.npy'), np.zeros(2, dtype=[('a', '<f4'), ('b', '<i4')]))
            np.save(os.path.join(d, 'object.npy'), np.array([{'a': 1}, None], dtype=object), allow_pickle=True)
            np.save(os.path.join(d, 'transposed_c.npy'), np.arange(6, dtype='>i8').reshape(2, 3).T.copy())
            json.dump(manifest, open(os.path.join(d, 'manifest.json'), 'w'))
            print(len(manifest))
            """
        let printed = try InteropPython.check(script, [dir.path])
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as? [[String: Any]])
        #expect(manifest.count == Int(printed.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(manifest.count == 9 * 2 * 3 * sampleShapes.count)
        for m in manifest {
            let name = try #require(m["file"] as? String)
            let path = dir.appendingPathComponent(name).path
            let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let t = try NumpyFile.read(path: path)
            let header = try NumpyFile.header(of: raw)
            #expect(header.version.rawValue == m["version"] as? String, "\(name)")
            #expect(header.descr == m["descr"] as? String, "\(name)")
            #expect(t.shape == InteropPython.ints(m["shape"]), "\(name)")
            #expect(InteropPython.hex(t.data) == m["le_hex"] as? String, "\(name): data differs")
            // Same array, same version, same byte order: NumPy's exact bytes.
            let again = try NumpyFile.serialized(t, version: header.version, byteOrder: header.byteOrder)
            let common: Int = min(again.count, raw.count)
            let firstMismatch: Int? = (0..<common).first { again[$0] != raw[$0] }
            let firstDifference: Int? = firstMismatch ?? (again.count == raw.count ? nil : common)
            #expect(firstDifference == nil, "\(name): re-serialized bytes differ from NumPy's at byte \(firstDifference ?? -1)")
        }
        func error(_ name: String) -> NumpyFileError? {
            do {
                _ = try NumpyFile.read(path: dir.appendingPathComponent(name).path)
                return nil
            } catch {
                return error as? NumpyFileError
            }
        }
        #expect(error("fortran.npy") == .fortranOrder(shape: [2, 3]))
        #expect(error("complex.npy") == .unsupportedDType("<c8"))
        #expect(error("u16.npy") == .unsupportedDType("<u2"))
        #expect(error("object.npy") == .unsupportedDType("|O"))
        if case .unsupportedDType = error("structured.npy") {} else { Issue.record("structured dtype: \(String(describing: error("structured.npy")))") }
        let transposed = try NumpyFile.read(path: dir.appendingPathComponent("transposed_c.npy").path)
        #expect(transposed.shape == [3, 2])
        #expect(try transposed.int64s() == [0, 3, 1, 4, 2, 5])
    }
}

// MARK: - The safetensors Python package

/// Cross-check of the safetensors reader and writer against the reference implementation
/// (the `safetensors` Python package, Rust inside). Skipped, with a message, when the package
/// is not installed, unless `SPARGE_REQUIRE_PYTHON=1`: `.ci/run` installs it and sets that.
@Suite(.enabled(if: InteropPython.mayRun("numpy", "safetensors"),
                "needs python3 with NumPy and the 'safetensors' package (python3 -m pip install safetensors numpy): skipped; SPARGE_REQUIRE_PYTHON=1 makes that a failure"))
struct SafeTensorsPackageTests {
    static let dtypes: [TensorDType] = [.float32, .float16, .bfloat16, .float64, .int8, .uint8, .int16, .int32, .int64, .bool]

    @Test func packageReadsWhatSwiftWrites() throws {
        let dir = try InteropPython.temporaryDirectory("st-swift")
        defer { try? FileManager.default.removeItem(at: dir) }
        var file = try SafeTensorsFile(metadata: ["case": "swift → python", "ünï": "cødé \"quoted\"\n"])
        var manifest: [String: [String: Any]] = [:]
        for (d, dtype) in Self.dtypes.enumerated() {
            for (s, shape) in [[], [0], [3], [2, 5], [1, 2, 3]].enumerated() {
                let count = shape.reduce(1, *)
                var rng = TestRNG(seed: UInt64(10 * d + s))
                var bytes = (0..<(count * dtype.byteSize)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if dtype == .bool { bytes = bytes.map { $0 & 1 } }
                let name = "t.\(dtype.rawValue).\(s)"
                try file.insert(Tensor(dtype: dtype, shape: shape, data: bytes), named: name)
                manifest[name] = ["dtype": dtype.rawValue, "shape": shape, "hex": InteropPython.hex(bytes)]
            }
        }
        let path = dir.appendingPathComponent("swift.safetensors")
        try file.write(path: path.path)
        try JSONSerialization.data(withJSONObject: ["tensors": manifest, "metadata": file.metadata]).write(to: dir.appendingPathComponent("manifest.json"))
        let script = """
            import json, os, sys
            import numpy as np
            from safetensors import deserialize, safe_open
            from safetensors.numpy import load_file
            d = sys.argv[1]
            m = json.load(open(os.path.join(d, 'manifest.json')))
            path = os.path.join(d, 'swift.safetensors')
            bad = []
            got = dict(deserialize(open(path, 'rb').read()))
            if set(got) != set(m['tensors']): bad.append(('names', sorted(got)))
            for name, t in m['tensors'].items():
                g = got.get(name)
                if g is None: continue
                if g['dtype'] != t['dtype']: bad.append((name, 'dtype', g['dtype']))
                if list(g['shape']) != t['shape']: bad.append((name, 'shape', g['shape']))
                if bytes(g['data']).hex() != t['hex']: bad.append((name, 'data'))
            with safe_open(path, framework='np') as f:
                if f.metadata() != m['metadata']: bad.append(('metadata', f.metadata()))
                for name, t in m['tensors'].items():
                    if t['dtype'] == 'BF16': continue   # numpy has no bfloat16
                    a = f.get_tensor(name)
                    if list(a.shape) != t['shape'] or a.tobytes().hex() != t['hex']: bad.append((name, 'numpy view'))
            print(json.dumps({'checked': len(got), 'bad': [str(b) for b in bad]}))
            """
        let out = try InteropPython.check(script, [dir.path])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "python printed: \(out)")
        #expect((report["checked"] as? NSNumber)?.intValue == manifest.count)
        #expect((report["bad"] as? [String])?.isEmpty == true, "safetensors disagrees: \(report["bad"] ?? "")")
    }

    @Test func swiftReadsWhatPackageWrites() throws {
        let dir = try InteropPython.temporaryDirectory("st-python")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import json, os, sys
            import numpy as np
            import safetensors
            from safetensors.numpy import save_file
            d = sys.argv[1]
            rng = np.random.default_rng(11)
            tensors, manifest = {}, {}
            names = {'f4': 'F32', 'f2': 'F16', 'f8': 'F64', 'i1': 'I8', 'u1': 'U8', 'i2': 'I16', 'i4': 'I32', 'i8': 'I64', 'b1': 'BOOL'}
            for code, st in names.items():
                for order in '<>':
                    for s, shape in enumerate([(), (0,), (4,), (3, 2), (2, 1, 3)]):
                        n = int(np.prod(shape))
                        le = np.dtype('<' + code)
                        if code == 'b1':
                            a = rng.integers(0, 2, n).astype(bool)
                        else:
                            a = np.frombuffer(rng.integers(0, 256, n * le.itemsize, dtype=np.uint8).tobytes(), dtype=le).copy()
                        hexdata = a.tobytes().hex()
                        if order == '>' and le.itemsize > 1:
                            a = a.byteswap().view(le.newbyteorder('>'))   # save_file converts to little-endian
                        name = f'{st}.{"le" if order == "<" else "be"}.{s}'
                        tensors[name] = a.reshape(shape)
                        manifest[name] = {'dtype': st, 'shape': list(shape), 'hex': hexdata}
            meta = {'producer': 'safetensors ' + safetensors.__version__, 'ünï': 'cødé'}
            save_file(tensors, os.path.join(d, 'numpy.safetensors'), metadata=meta)
            # BF16 (no numpy dtype) through the low-level serializer, whose API changed in 0.6.
            bits = np.array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x8000], dtype='<u2')
            if hasattr(safetensors, 'TensorSpec'):
                spec = {'b': safetensors.TensorSpec(dtype='bfloat16', shape=[7], data_ptr=bits.ctypes.data, data_len=bits.nbytes)}
            else:
                spec = {'b': {'dtype': 'bfloat16', 'shape': [7], 'data': bits.tobytes()}}
            raw = safetensors.serialize(spec, metadata={'k': 'v'})
            open(os.path.join(d, 'bf16.safetensors'), 'wb').write(bytes(raw))
            json.dump({'tensors': manifest, 'metadata': meta, 'bf16_hex': bits.tobytes().hex()}, open(os.path.join(d, 'manifest.json'), 'w'))
            print(len(manifest))
            """
        _ = try InteropPython.check(script, [dir.path])
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as? [String: Any])
        let tensors = try #require(manifest["tensors"] as? [String: [String: Any]])
        let expectedCount: Int = 9 * 2 * 5   // dtypes x byte orders x shapes
        #expect(tensors.count == expectedCount)
        let file = try SafeTensorsFile.read(path: dir.appendingPathComponent("numpy.safetensors").path)
        #expect(Set(file.names) == Set(tensors.keys))
        #expect(file.metadata == manifest["metadata"] as? [String: String])
        for (name, m) in tensors {
            let t = try file.tensor(name)
            #expect(t.dtype.rawValue == m["dtype"] as? String, "\(name)")
            #expect(t.shape == InteropPython.ints(m["shape"]), "\(name)")
            #expect(InteropPython.hex(t.data) == m["hex"] as? String, "\(name): data differs")
        }
        let bf16 = try SafeTensorsFile.read(path: dir.appendingPathComponent("bf16.safetensors").path)
        let b = try bf16.tensor("b")
        #expect(b.dtype == .bfloat16 && b.shape == [7])
        #expect(InteropPython.hex(b.data) == manifest["bf16_hex"] as? String)
        #expect(try b.floats().prefix(4) == [1, -2, .infinity, -.infinity])
        #expect(bf16.metadata == ["k": "v"])
    }
}
