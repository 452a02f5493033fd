import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats

/// The official GPU outputs (see the article *Exact semantics*, "The golden cases"), in two sets:
/// - the compact set in `Tests/Golden`, part of the repository, always tested: a few heads of
///   each case, made by `Scripts/make_compact_golden.py`;
/// - the full set in `../shared/golden`, tested too when that folder sits beside the
///   repository. Its absence is not a failure here; `.ci/run` requires it.
/// A case id is `compact/<name>` or `full/<name>`.
enum Golden {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let compactFolder = packageRoot.appendingPathComponent("Tests/Golden")
    static let fullFolder = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/golden")

    /// The cases the compact set must hold: both block shapes, causal, a ragged length,
    /// D = 32 / 64 / 128 and real activations.
    static let compactCaseNames = ["gauss_1000_d64", "lm_2048_d128_causal", "minilm_l2_512_d32", "smollm2_l15_2048_d64_causal"]

    static func caseNames(in folder: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }.sorted()
    }

    /// Every case id: the compact set, then the full set when present.
    static var caseIDs: [String] {
        caseNames(in: compactFolder).map { "compact/" + $0 } + caseNames(in: fullFolder).map { "full/" + $0 }
    }

    /// The file of a case id (`compact/<name>` or `full/<name>`).
    static func path(_ id: String) -> String {
        let parts = id.split(separator: "/", maxSplits: 1).map(String.init)
        let folder = parts.first == "full" ? fullFolder : compactFolder
        return folder.appendingPathComponent(parts.last! + ".safetensors").path
    }

    struct Case {
        let name: String
        let file: SafeTensorsFile
        let meta: [String: Any]
        let shape: AttentionShape
        let q: [Float], k: [Float], v: [Float]
        var causal: Bool { meta["causal"] as? Bool ?? false }
        var masks: [String: [String: Any]] { meta["masks"] as? [String: [String: Any]] ?? [:] }
    }

    static func load(_ id: String) throws -> Case {
        let file = try SafeTensorsFile.read(path: path(id))
        let json = try #require(file.metadata["case"]).data(using: .utf8)!
        let meta = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let q = try file.tensor("q"), k = try file.tensor("k")
        let shape = AttentionShape(batch: q.shape[0], heads: q.shape[1], kvHeads: k.shape[1],
                                   queryLength: q.shape[2], keyLength: k.shape[2], headDim: q.shape[3])
        return Case(name: id, file: file, meta: meta, shape: shape,
                    q: try q.floats(), k: try k.floats(), v: try file.tensor("v").floats())
    }
}

/// Case ids for parameterized tests; a missing compact set gives a placeholder that fails.
let goldenCaseNames: [String] = {
    let ids = Golden.caseIDs
    return ids.isEmpty ? ["compact/<missing Tests/Golden>"] : ids
}()
