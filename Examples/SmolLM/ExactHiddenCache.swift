import Foundation

/// The exact model's final hidden states for `perplexity --kl`, kept in a file between runs of
/// a sensitivity sweep (`--exact-hidden FILE`): every run compares against the same exact pass,
/// so it is computed once. The file records the token ids' checksum and the sizes; a file made
/// for other tokens is refused, never overwritten.
enum ExactHiddenCache {
    static let magic: UInt64 = 0x3144_4948_4C4F_4D53  // "SMOLHID1"

    /// FNV-1a over the token ids.
    static func checksum(_ tokens: [Int]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in tokens { h = (h ^ UInt64(truncatingIfNeeded: t)) &* 0x0000_0100_0000_01b3 }
        return h
    }

    /// The cached states of `tokens` (`count * dim` floats), or nil when `path` does not exist.
    static func load(path: String, tokens: [Int], dim: Int) throws -> [Float]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.usage("--exact-hidden: cannot read '\(path)'")
        }
        let header = [magic, UInt64(tokens.count), UInt64(dim), checksum(tokens)]
        let headerBytes = header.count * 8, floatBytes = tokens.count * dim * 4
        let stored: [UInt64] = data.count >= headerBytes
            ? data.prefix(headerBytes).withUnsafeBytes { raw in (0..<4).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
            : []
        guard stored == header, data.count == headerBytes + floatBytes else {
            throw ModelError.usage("--exact-hidden: '\(path)' holds the states of other tokens or another context; name a new file")
        }
        return data.dropFirst(headerBytes).withUnsafeBytes { raw in
            (0..<(tokens.count * dim)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        }
    }

    /// Writes the states to a new file at `path` (an existing file is left alone).
    static func save(_ hidden: [Float], path: String, tokens: [Int], dim: Int) throws {
        var data = Data()
        for v in [magic, UInt64(tokens.count), UInt64(dim), checksum(tokens)] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        hidden.withUnsafeBytes { data.append(contentsOf: $0) }
        let url = URL(fileURLWithPath: path)
        do { try data.write(to: url, options: .withoutOverwriting) } catch {
            if FileManager.default.fileExists(atPath: path) { return }  // another run of the sweep wrote it first
            throw ModelError.usage("--exact-hidden: cannot write '\(path)': \(error.localizedDescription)")
        }
    }
}
