import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats

/// Access to `../shared/golden`, the official GPU outputs (ALGORITHM.md section 6).
/// A missing folder is a failure, never a skip: CI must not go green without the goldens.
enum Golden {
    static var folder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared/golden")
    }

    static func caseNames() throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let cases = names.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }.sorted()
        if cases.isEmpty {
            Issue.record("no golden cases in \(folder.path): the shared folder must sit beside the package (../shared/golden)")
        }
        return cases
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

    static func load(_ name: String) throws -> Case {
        let file = try SafeTensorsFile.read(path: folder.appendingPathComponent(name + ".safetensors").path)
        let json = try #require(file.metadata["case"]).data(using: .utf8)!
        let meta = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let q = try file.tensor("q"), k = try file.tensor("k")
        let shape = AttentionShape(batch: q.shape[0], heads: q.shape[1], kvHeads: k.shape[1],
                                   queryLength: q.shape[2], keyLength: k.shape[2], headDim: q.shape[3])
        return Case(name: name, file: file, meta: meta, shape: shape,
                    q: try q.floats(), k: try k.floats(), v: try file.tensor("v").floats())
    }
}

/// Names of the golden cases, for parameterized tests (empty list records a failure).
let goldenCaseNames: [String] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: Golden.folder.path)) ?? []
    let cases = names.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }.sorted()
    return cases.isEmpty ? ["<missing ../shared/golden>"] : cases
}()
