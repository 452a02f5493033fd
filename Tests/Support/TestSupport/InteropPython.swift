import Foundation

/// Runs `python3 -c SCRIPT ARGS...` for the interoperability tests.
///
/// The tests that need Python are gated by ``mayRun(_:)``: a clone with only the Swift toolchain
/// skips them (with a message naming what is missing), while `SPARGE_REQUIRE_PYTHON=1`, which
/// `.ci/run` sets, makes a missing `python3` or package a failure, so CI never goes green
/// without having compared against the real zlib, NumPy and safetensors.
package enum InteropPython {
    /// The environment variable that turns a missing `python3` or package into a failure.
    package static let requireVariable = "SPARGE_REQUIRE_PYTHON"

    /// Whether a test that needs `python3` with `modules` should run: always under
    /// `SPARGE_REQUIRE_PYTHON=1` (the test then fails if they are missing), otherwise only when
    /// `python3` imports every one of them.
    package static func mayRun(_ modules: String...) -> Bool {
        if ProcessInfo.processInfo.environment[requireVariable] == "1" { return true }
        return hasModule(modules.joined(separator: ", "))
    }

    package struct Outcome {
        package var status: Int32
        package var stdout: String
        package var stderr: String
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
        package init(description: String) { self.description = description }
    }

    /// Runs the script; stdout and stderr go through files, so neither can fill a pipe and block.
    package static func run(_ script: String, _ arguments: [String] = []) throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory
        let outURL = dir.appendingPathComponent("py-out-\(UUID().uuidString)")
        let errURL = dir.appendingPathComponent("py-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + arguments
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            throw Failure(description: "could not start /usr/bin/env python3: \(error)")
        }
        p.waitUntilExit()
        try out.close()
        try err.close()
        return Outcome(status: p.terminationStatus,
                       stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                       stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// Runs the script and returns its stdout; throws (failing the test) on a non-zero status.
    package static func check(_ script: String, _ arguments: [String] = []) throws -> String {
        let r = try run(script, arguments)
        if r.status == 127 {
            throw Failure(description: "python3 was not found (exit 127): the interoperability tests need python3 with numpy 2.x on PATH. \(r.stderr)")
        }
        guard r.status == 0 else {
            throw Failure(description: "python3 exited with status \(r.status)\nstdout:\n\(r.stdout.suffix(4000))\nstderr:\n\(r.stderr.suffix(4000))")
        }
        return r.stdout
    }

    /// Whether `import NAME` succeeds (false also when python3 is missing); NAME may be a
    /// comma-separated list.
    package static func hasModule(_ name: String) -> Bool {
        (try? run("import \(name)"))?.status == 0
    }

    /// Lowercase hex of bytes, as Python's `bytes.hex()`.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func bytes(fromHex hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let v = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            i += 2
        }
        return out
    }

    /// A JSON array of integers (`NSNumber`s on Linux) as `[Int]`.
    package static func ints(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        for item in array {
            guard let n = item as? NSNumber else { return nil }
            out.append(n.intValue)
        }
        return out
    }

    package static func temporaryDirectory(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
