/// The pre-tokenizer of SmolLM2 (GGUF `tokenizer.ggml.pre = smollm`): every digit on its own,
/// then the GPT-2 pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// written out by hand over Unicode scalars (no regular-expression engine needed).
enum PreTokenizer {
    enum Class { case letter, number, space, other }

    static func classify(_ s: Unicode.Scalar) -> Class {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return s.properties.isWhitespace ? .space : .other
        }
    }

    /// The pieces of `text`, each a range of its scalars, in order.
    static func split(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        let c = s.map(classify)
        var pieces: [String] = []
        var i = 0
        func emit(_ a: Int, _ b: Int) {
            var str = String.UnicodeScalarView()
            str.append(contentsOf: s[a..<b])
            pieces.append(String(str))
        }
        while i < s.count {
            // Contractions.
            if s[i] == "'" && i + 1 < s.count {
                let n1 = s[i + 1]
                if n1 == "s" || n1 == "t" || n1 == "m" || n1 == "d" { emit(i, i + 2); i += 2; continue }
                if i + 2 < s.count {
                    let n2 = s[i + 2]
                    if (n1 == "r" && n2 == "e") || (n1 == "v" && n2 == "e") || (n1 == "l" && n2 == "l") {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            // An optional single space before a run of letters, one digit, or other symbols.
            var j = i
            if s[i] == " " && i + 1 < s.count && c[i + 1] != .space { j = i + 1 }
            switch c[j] {
            case .letter:
                var e = j
                while e < s.count && c[e] == .letter { e += 1 }
                emit(i, e); i = e; continue
            case .number:
                // Digits are isolated before the GPT-2 pattern runs, so a space before a digit
                // is a piece of its own.
                if j > i { emit(i, j); i = j; continue }
                emit(i, i + 1); i += 1; continue
            case .other:
                var e = j
                while e < s.count && c[e] == .other { e += 1 }
                emit(i, e); i = e; continue
            case .space:
                break
            }
            // Whitespace: the run, less its last scalar when a non-space follows (that scalar
            // then starts the next piece), except before a digit, where the isolated digits end
            // the piece the pattern sees.
            var e = i
            while e < s.count && c[e] == .space { e += 1 }
            if e < s.count && e - i > 1 && c[e] != .number { e -= 1 }
            emit(i, e); i = e
        }
        return pieces
    }
}
