import Foundation
import Testing
@testable import SpargeGGUF

/// The GGUF reader on small synthetic files: values, dequantization, and a typed error (never
/// a trap) for every truncation and for corrupt fields.
struct GGUFFileTests {
    /// A file with metadata and one tensor of each supported quantization.
    static func sample() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.add("llama.block_count", uint32: 2)
        b.add("llama.rope.freq_base", float: 10000)
        b.add("tokenizer.ggml.tokens", strings: ["a", "b", "ab"])
        b.add("tokenizer.ggml.token_type", int32s: [1, 1, 1])
        let f32 = [Float(1.5), -2, 0.25, 8].flatMap { GGUFBuilder.le($0.bitPattern) }
        b.tensors.append(("f32", [4], 0, f32))
        // Q8_0: d = 0.5 (fp16 0x3800), q = -16..<16 -> x = q / 2.
        let q8: [UInt8] = GGUFBuilder.le(UInt16(0x3800)) + (-16..<16).map { UInt8(bitPattern: Int8($0)) }
        b.tensors.append(("q8", [32], 8, q8))
        // Q4_1: d = 2 (0x4000), m = -1 (0xBC00); byte j = j | (15 - j) << 4.
        let q41: [UInt8] = GGUFBuilder.le(UInt16(0x4000)) + GGUFBuilder.le(UInt16(0xBC00)) + (0..<16).map { UInt8($0 | (15 - $0) << 4) }
        b.tensors.append(("q41", [32], 3, q41))
        // Q4_0: d = 1 (0x3C00), x = q - 8.
        let q40: [UInt8] = GGUFBuilder.le(UInt16(0x3C00)) + (0..<16).map { UInt8($0 | (15 - $0) << 4) }
        b.tensors.append(("q40", [32], 2, q40))
        // F16 and BF16: 1.0 and -2.0.
        b.tensors.append(("f16", [2], 1, GGUFBuilder.le(UInt16(0x3C00)) + GGUFBuilder.le(UInt16(0xC000))))
        b.tensors.append(("bf16", [2], 30, GGUFBuilder.le(UInt16(0x3F80)) + GGUFBuilder.le(UInt16(0xC000))))
        return b
    }

    /// Found by the GGUF fuzzer: a token type array of floats (NaN, huge) trapped in Int(_:);
    /// it is a typed error (the reproducer is in Fuzz/Corpus/GGUF).
    @Test func nonIntegerTokenTypesAreATypedError() throws {
        for bad: Float in [.nan, .infinity, 1e30, 1.5] {
            var b = GGUFBuilder()
            b.add("tokenizer.ggml.model", string: "gpt2")
            b.add("tokenizer.ggml.tokens", strings: ["a", "b"])
            b.add("tokenizer.ggml.merges", strings: ["a b"])
            b.add("tokenizer.ggml.token_type", float32s: [1, bad])
            let file = try GGUFFile(data: Data(b.bytes()))
            #expect(throws: GGUFError.self) { try BPETokenizer(gguf: file) }
        }
    }

    @Test func readsMetadataAndDequantizes() throws {
        let file = try GGUFFile(data: Data(Self.sample().bytes()))
        #expect(file.version == 3)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.int("llama.block_count") == 2)
        #expect(try file.double("llama.rope.freq_base") == 10000)
        #expect(try file.strings("tokenizer.ggml.tokens") == ["a", "b", "ab"])
        #expect(try file.floats("f32") == [1.5, -2, 0.25, 8])
        let q8Expected: [Float] = (-16..<16).map { (q: Int) -> Float in Float(q) / 2 }
        #expect(try file.floats("q8") == q8Expected)
        // Q4_1 low nibbles j, high nibbles 15 - j: x = q * 2 - 1.
        var q41Expected: [Float] = []
        for j in 0..<16 { q41Expected.append(Float(j) * 2 - 1) }
        for j in 0..<16 { q41Expected.append(Float(15 - j) * 2 - 1) }
        #expect(try file.floats("q41") == q41Expected)
        var q40Expected: [Float] = []
        for j in 0..<16 { q40Expected.append(Float(j - 8)) }
        for j in 0..<16 { q40Expected.append(Float(7 - j)) }
        #expect(try file.floats("q40") == q40Expected)
        #expect(try file.floats("f16") == [1, -2])
        #expect(try file.floats("bf16") == [1, -2])
        #expect(throws: GGUFError.self) { try file.floats("absent") }
    }

    /// Every prefix of a valid file that cuts into its header or tensor data throws a
    /// GGUFError (and never traps); only the alignment padding after the last tensor may go.
    @Test func everyTruncationThrows() throws {
        let bytes = Self.sample().bytes()
        let full = try GGUFFile(data: Data(bytes))
        let end = full.tensors.map { full.dataOffset + $0.offset + $0.byteCount }.max()!
        #expect(end < bytes.count)
        _ = try GGUFFile(data: Data(bytes[0..<end]))
        for n in 0..<end {
            #expect(throws: GGUFError.self) { try GGUFFile(data: Data(bytes[0..<n])) }
        }
    }

    @Test func corruptFieldsThrowTypedErrors() throws {
        let bytes = Self.sample().bytes()
        func corrupt(_ at: Int, _ values: [UInt8]) -> Data {
            var b = bytes
            for (i, v) in values.enumerated() { b[at + i] = v }
            return Data(b)
        }
        #expect(throws: GGUFError.notGGUF(firstBytes: Array("GGUX".utf8))) { try GGUFFile(data: corrupt(0, Array("GGUX".utf8))) }
        #expect(throws: GGUFError.unsupportedVersion(7)) { try GGUFFile(data: corrupt(4, [7, 0, 0, 0])) }
        // A tensor count of 2^40 cannot fit the file.
        #expect(throws: GGUFError.self) { try GGUFFile(data: corrupt(8, [0, 0, 0, 0, 0, 1, 0, 0])) }
        // Flipping any single byte of the header area gives a value or a typed error, no trap.
        for i in 0..<min(bytes.count, 600) {
            var b = bytes
            b[i] ^= 0xFF
            _ = try? GGUFFile(data: Data(b))
        }
    }

    @Test func errorsSayWhatIsWrong() {
        let e = GGUFError.truncated(field: "data of tensor 'x'", offset: 10, needed: 8, available: 3)
        #expect(e.description.contains("truncated") && e.description.contains("'x'"))
    }
}
