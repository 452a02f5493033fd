import Foundation

/// Finds an executable of this package built alongside the tests (`swift test` builds them).
package enum BuiltExecutable {
    package struct NotFound: Error, CustomStringConvertible {
        package var description: String
    }

    /// The executable `name` next to the test binary (`.build/<triple>/<config>/`), else in
    /// the package's `.build/<config>/`.
    package static func url(named name: String) throws -> URL {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(Bundle.main.bundleURL)
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        #if DEBUG
        let configs = ["debug", "release"]
        #else
        let configs = ["release", "debug"]
        #endif
        for c in configs { dirs.append(Golden.packageRoot.appendingPathComponent(".build").appendingPathComponent(c)) }
        for dir in dirs {
            let url = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw NotFound(description: "\(name) executable not found in \(dirs.map(\.path)); build the package first (swift build)")
    }
}
