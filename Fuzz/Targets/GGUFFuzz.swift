import Foundation
import SpargeGGUF

// libFuzzer target: any bytes through the GGUF reader (the SmolLM example's model files). It
// must parse or throw a GGUFError; whatever parses must dequantize every tensor it lists and
// build a tokenizer or throw. A crash, trap, leak report or hang is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let file = try? GGUFFile(data: Data(bytes: data, count: size)) else { return 0 }
    for t in file.tensors {
        // The reader checked each tensor's bytes against the file, so the floats are bounded by it.
        guard let floats = try? file.floats(t.name) else { continue }
        if floats.count != t.elementCount { fatalError("tensor '\(t.name)' gave \(floats.count) of \(t.elementCount) floats") }
    }
    if let tokenizer = try? BPETokenizer(gguf: file) {
        _ = tokenizer.encode("a b\u{0120}ab <|endoftext|>")
    }
    return 0
}
