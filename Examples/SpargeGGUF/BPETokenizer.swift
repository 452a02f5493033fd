/// A byte-level BPE tokenizer (GPT-2 style) built from a GGUF file's `tokenizer.ggml.*`
/// metadata: tokens, merges and token types. Control tokens (`<|im_start|>`, ...) are matched
/// literally in the text when `special` is true.
public struct BPETokenizer: Sendable {
    public let tokens: [String]
    public let bosID: Int?
    public let eosID: Int?
    private let ids: [String: Int]
    private let ranks: [String: Int]
    /// Control tokens, longest first, so that the longest literal wins.
    private let specials: [(text: String, id: Int)]
    private let byteToScalar: [Unicode.Scalar]
    private let scalarToByte: [UInt32: UInt8]

    public init(gguf: GGUFFile) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw GGUFError.unsupportedType("tokenizer model '\(model)' (only byte-level BPE, 'gpt2', is implemented)")
        }
        let tokens = try gguf.strings("tokenizer.ggml.tokens")
        let merges = try gguf.strings("tokenizer.ggml.merges")
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.numbersValue ?? []
        // A hostile file may hold NaN, infinities or huge values here: Int(_:) would trap.
        let tokenTypes = try types.enumerated().map { i, t in
            guard let type = Int(exactly: t) else {
                throw GGUFError.malformed("tokenizer.ggml.token_type[\(i)] is \(t), not an integer token type")
            }
            return type
        }
        try self.init(tokens: tokens, merges: merges, tokenTypes: tokenTypes,
                      bos: gguf.metadata["tokenizer.ggml.bos_token_id"]?.intValue,
                      eos: gguf.metadata["tokenizer.ggml.eos_token_id"]?.intValue)
    }

    /// `tokenTypes` follow llama.cpp: 1 normal, 3 control, 4 user-defined (both matched literally).
    public init(tokens: [String], merges: [String], tokenTypes: [Int], bos: Int?, eos: Int?) throws {
        guard !tokens.isEmpty else { throw GGUFError.malformed("the vocabulary is empty") }
        self.tokens = tokens
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        self.ids = ids
        var ranks: [String: Int] = [:]
        ranks.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() {
            guard m.split(separator: " ", omittingEmptySubsequences: false).count == 2 else {
                throw GGUFError.malformed("merge \(i) '\(m)' is not two symbols separated by one space")
            }
            if ranks[m] == nil { ranks[m] = i }
        }
        self.ranks = ranks
        var specials: [(String, Int)] = []
        for (i, t) in tokenTypes.enumerated() where i < tokens.count && (t == 3 || t == 4) && !tokens[i].isEmpty {
            specials.append((tokens[i], i))
        }
        self.specials = specials.sorted { $0.0.utf8.count > $1.0.utf8.count }
        for id in [bos, eos] {
            if let id, !(0..<tokens.count).contains(id) { throw GGUFError.malformed("special token id \(id) outside the vocabulary") }
        }
        bosID = bos
        eosID = eos
        // GPT-2's map of bytes to printable scalars.
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var inverse: [UInt32: UInt8] = [:]
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            let scalar = Unicode.Scalar(printable ? UInt32(b) : next)!
            if !printable { next += 1 }
            table[b] = scalar
            inverse[scalar.value] = UInt8(b)
        }
        byteToScalar = table
        scalarToByte = inverse
    }

    /// Token ids of `text`. With `special`, control-token literals in the text become their ids;
    /// without, they are tokenized as plain text.
    public func encode(_ text: String, special: Bool = true) -> [Int] {
        var out: [Int] = []
        var cache: [String: [Int]] = [:]
        for segment in split(text, special: special) {
            switch segment {
            case .special(let id): out.append(id)
            case .text(let t):
                for piece in PreTokenizer.split(t) {
                    if let ids = cache[piece] { out += ids; continue }
                    let ids = bpe(piece)
                    cache[piece] = ids
                    out += ids
                }
            }
        }
        return out
    }

    /// The text of `ids` (bytes that do not form valid UTF-8 become U+FFFD).
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }

    /// The bytes of `ids`; streaming callers decode once a character is complete.
    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var bytes: [UInt8] = []
        for id in ids where (0..<tokens.count).contains(id) {
            let t = tokens[id]
            if specials.contains(where: { $0.id == id }) { bytes += Array(t.utf8); continue }
            for s in t.unicodeScalars {
                if let b = scalarToByte[s.value] { bytes.append(b) } else { bytes += Array(String(s).utf8) }
            }
        }
        return bytes
    }

    private enum Segment { case text(String), special(Int) }

    private func split(_ text: String, special: Bool) -> [Segment] {
        guard special, !specials.isEmpty else { return [.text(text)] }
        let bytes = Array(text.utf8)
        var segments: [Segment] = []
        var start = 0, i = 0
        outer: while i < bytes.count {
            for (literal, id) in specials {
                let l = literal.utf8
                if l.count <= bytes.count - i && bytes[i..<(i + l.count)].elementsEqual(l) {
                    if start < i { segments.append(.text(String(decoding: bytes[start..<i], as: UTF8.self))) }
                    segments.append(.special(id))
                    i += l.count
                    start = i
                    continue outer
                }
            }
            i += 1
        }
        if start < bytes.count { segments.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
        return segments
    }

    /// Byte-level BPE of one pre-tokenized piece: merge the lowest-ranked adjacent pair until
    /// none is in the merge list.
    private func bpe(_ piece: String) -> [Int] {
        var symbols: [String] = piece.utf8.map { String(byteToScalar[Int($0)]) }
        while symbols.count > 1 {
            var best = Int.max, at = -1
            for k in 0..<(symbols.count - 1) {
                if let r = ranks[symbols[k] + " " + symbols[k + 1]], r < best { best = r; at = k }
            }
            if at < 0 { break }
            symbols[at] += symbols[at + 1]
            symbols.remove(at: at + 1)
        }
        // A symbol missing from the vocabulary (not possible with a complete byte alphabet)
        // falls back to its bytes' tokens.
        var out: [Int] = []
        for s in symbols {
            if let id = ids[s] { out.append(id); continue }
            for scalar in s.unicodeScalars { if let id = ids[String(scalar)] { out.append(id) } }
        }
        return out
    }
}
