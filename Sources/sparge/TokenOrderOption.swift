import Foundation
import SpargeAttn
import SpargeFormats

/// `--token-order raster|hilbert|FILE.npy [--grid HxW|TxHxW] [--prefix K]` of `sparge run`,
/// `evaluate`, `tune` and `mask --predict`: the order attention visits the tokens in
/// (``TokenOrder``), while the tensors stay in the file's order. Parsed once, here, for all four.
struct TokenOrderOption {
    /// Where the order comes from.
    enum Source {
        /// A Hilbert curve over a `frames x height x width` grid (frames 1 for an image).
        case hilbert(frames: Int, height: Int, width: Int)
        /// A permutation of the tokens after the prefix, in a .npy file of integers.
        case file(String)
    }

    var source: Source
    /// Leading tokens (CLS, registers) that keep their places.
    var prefix: Int
    /// The `--token-order` value as given, for messages and reports.
    var name: String

    /// The option names every command that takes a token order declares.
    static let names: Set<String> = ["token-order", "grid", "prefix"]

    /// The lines of `--help` that describe the options (indented as the commands' own).
    static let help = """
          --token-order raster|hilbert|FILE.npy
                              the order attention visits the tokens in (default raster, the
                              file's); hilbert: a Hilbert curve over --grid; FILE.npy: a
                              permutation (integers, one per token after --prefix). Tensors
                              stay in the file's order; block maps are in token order. Not with
                              --causal (a reordering changes which keys a query may see)
          --grid HxW|TxHxW    the image (37x37) or video (8x16x16) grid of the tokens after
                              --prefix, in raster order; needs --token-order hilbert
          --prefix K          leading tokens (CLS, registers) that keep their places (default
                              0); K plus the grid's product (or the file's length) must be
                              the sequence length N
        """

    /// Reads the options; nil without `--token-order` or with `raster` (the file's order).
    /// Every contradiction is a usage error that says how to fix it.
    init?(_ a: Arguments) throws {
        let prefix = try a.int("prefix", in: 0...Int(Int32.max))
        guard let given = a.string("token-order") else {
            if a.has("grid") || prefix != nil {
                throw UsageError("--grid and --prefix describe a token order; give --token-order hilbert (or --token-order FILE.npy with --prefix) too")
            }
            return nil
        }
        if a.flag("causal") && given.lowercased() != "raster" {
            throw UsageError("--token-order \(given) reorders the tokens, but causal attention is defined on the file's order; drop --causal (image and video tokens attend both ways) or the token order")
        }
        switch given.lowercased() {
        case "raster":
            if a.has("grid") || prefix != nil {
                throw UsageError("--token-order raster keeps the file's order, so --grid and --prefix do not apply; drop them or use --token-order hilbert")
            }
            return nil
        case "hilbert":
            guard let grid = a.string("grid") else {
                throw UsageError("--token-order hilbert needs --grid HxW (an image, e.g. 37x37) or TxHxW (a video, e.g. 8x16x16)")
            }
            let sizes = grid.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard (2...3).contains(sizes.count), sizes.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw UsageError("--grid '\(grid)' is not HxW or TxHxW with sizes of at least 1 (e.g. 37x37 or 8x16x16)")
            }
            let s = sizes.map { $0! }
            source = s.count == 2 ? .hilbert(frames: 1, height: s[0], width: s[1]) : .hilbert(frames: s[0], height: s[1], width: s[2])
        default:
            guard given.lowercased().hasSuffix(".npy") || FileManager.default.fileExists(atPath: given) else {
                throw UsageError("--token-order '\(given)' is not raster, hilbert or a .npy file")
            }
            if a.has("grid") {
                throw UsageError("--grid applies to --token-order hilbert; a permutation file gives the order itself (drop --grid)")
            }
            source = .file(given)
        }
        self.prefix = prefix ?? 0
        name = given
    }

    /// The order for inputs of `shape`; a usage error unless it covers exactly its tokens.
    func order(for shape: AttentionShape) throws -> TokenOrder {
        guard shape.queryLength == shape.keyLength else {
            throw UsageError("--token-order needs q and k of the same length (self-attention), got Nq = \(shape.queryLength) and Nk = \(shape.keyLength)")
        }
        let n = shape.queryLength
        switch source {
        case .hilbert(let t, let h, let w):
            let grid = t > 1 ? "\(t)x\(h)x\(w)" : "\(h)x\(w)"
            let (cells, overflow) = (t * h).multipliedReportingOverflow(by: w)
            guard !overflow, cells + prefix == n else {
                throw UsageError("--grid \(grid) with --prefix \(prefix) covers \(overflow ? "too many" : String(cells + prefix)) tokens but the input has N = \(n); make the grid's product plus --prefix equal N\(n > cells && !overflow ? " (--prefix \(n - cells)?)" : "")")
            }
            return try usage { try TokenOrder.hilbert(frames: t, height: h, width: w, prefix: prefix) }
        case .file(let path):
            let tensor = try NumpyFile.read(path: path)
            let entries: [Int]
            switch tensor.dtype {
            case .int64: entries = try tensor.int64s().map { Int(truncatingIfNeeded: $0) }
            case .int32: entries = try tensor.int32s().map(Int.init)
            case .int16: entries = try tensor.int16s().map(Int.init)
            default: throw UsageError("--token-order \(path) holds \(tensor.dtype); a permutation is integers (int64 or int32)")
            }
            guard tensor.shape.count == 1, entries.count + prefix == n else {
                throw UsageError("--token-order \(path) holds \(entries.count) entries (shape \(tensor.shape)) but the input has N = \(n) tokens and --prefix \(prefix); give a 1-D permutation of the N - prefix = \(n - prefix) tokens after the prefix")
            }
            return try usage { try TokenOrder(permutation: entries, prefix: prefix) }
        }
    }

    /// The order as given: `hilbert 37x37 + prefix 1`, `perm.npy`.
    var description: String {
        let prefixText = prefix > 0 ? " + prefix \(prefix)" : ""
        switch source {
        case .hilbert(let t, let h, let w): return "hilbert \(t > 1 ? "\(t)x" : "")\(h)x\(w)\(prefixText)"
        case .file(let path): return "\(path)\(prefixText)"
        }
    }

    /// `body`'s ``SpargeError`` as a usage error that names the option.
    private func usage(_ body: () throws -> TokenOrder) throws -> TokenOrder {
        do { return try body() } catch let error as SpargeError {
            throw UsageError("--token-order \(name): \(error)")
        }
    }

    /// `q`, `k` and `v` (dense `B,H,N,D` and `B,Hkv,N,D` of `shape`) in token order.
    func permuted(_ q: [Float], _ k: [Float], _ v: [Float], shape: AttentionShape) throws -> ([Float], [Float], [Float]) {
        let o = try order(for: shape), d = shape.headDim
        return (try o.permuted(q, rowWidth: d), try o.permuted(k, rowWidth: d), try o.permuted(v, rowWidth: d))
    }
}
