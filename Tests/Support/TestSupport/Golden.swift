import Foundation
import SpargeAttn
import SpargeFormats

/// The official GPU outputs (the article *Exact semantics*, section 6), in two sets:
/// - the compact set in `Tests/Golden`, part of the repository, always tested: a few heads of
///   four cases, made by `Scripts/make_compact_golden.py`;
/// - the full set, tested too when a `shared/golden` folder sits beside the repository. Its
///   absence is not a failure of `swift test`; `.ci/run` requires it.
/// A case id is `compact/<name>` or `full/<name>`.
package enum Golden {
    package static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()
    package static let compactFolder = packageRoot.appendingPathComponent("Tests/Golden")
    package static let fullFolder = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/golden")

    /// The cases the compact set must hold: both block shapes, causal, a ragged length,
    /// D = 32 / 64 / 128 and real activations.
    package static let compactCaseNames = ["gauss_1000_d64", "lm_2048_d128_causal", "minilm_l2_512_d32", "smollm2_l15_2048_d64_causal"]

    package static func caseNames(in folder: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }.sorted()
    }

    /// Every case id: the compact set, then the full set when present.
    package static var caseIDs: [String] {
        caseNames(in: compactFolder).map { "compact/" + $0 } + caseNames(in: fullFolder).map { "full/" + $0 }
    }

    /// The file of a case id (`compact/<name>` or `full/<name>`).
    package static func path(_ id: String) -> String {
        let parts = id.split(separator: "/", maxSplits: 1).map(String.init)
        let folder = parts.first == "full" ? fullFolder : compactFolder
        return folder.appendingPathComponent((parts.last ?? id) + ".safetensors").path
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    package struct Case {
        package let name: String
        package let file: SafeTensorsFile
        package let meta: [String: Any]
        package let shape: AttentionShape
        package let q: [Float], k: [Float], v: [Float]
        package var causal: Bool { meta["causal"] as? Bool ?? false }
        package var masks: [String: [String: Any]] { meta["masks"] as? [String: [String: Any]] ?? [:] }
    }

    package static func load(_ id: String) throws -> Case {
        let file = try SafeTensorsFile.read(path: path(id))
        guard let json = file.metadata["case"],
              let meta = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw Failure(description: "\(id): the metadata has no JSON object under \"case\"")
        }
        let q = try file.tensor("q"), k = try file.tensor("k")
        let shape = AttentionShape(batch: q.shape[0], heads: q.shape[1], kvHeads: k.shape[1],
                                   queryLength: q.shape[2], keyLength: k.shape[2], headDim: q.shape[3])
        return Case(name: id, file: file, meta: meta, shape: shape,
                    q: try q.floats(), k: try k.floats(), v: try file.tensor("v").floats())
    }
}

/// Case ids for parameterized tests; a missing compact set gives a placeholder id whose load fails.
package let goldenCaseNames: [String] = {
    let ids = Golden.caseIDs
    return ids.isEmpty ? ["compact/<missing Tests/Golden>"] : ids
}()
