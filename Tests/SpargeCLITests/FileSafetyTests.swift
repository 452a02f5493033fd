import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
import SpargeTuning
import SpargeTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, files: an output that is an input (also through links), a FIFO, a directory or a
/// device is refused before anything runs, with exit 2 and a message a person can act on;
/// inputs that are not regular files are refused; writes are atomic.
struct FileSafetyTests {
    typealias CLI = CLITests

    private static func md5(_ url: URL) throws -> Data { try Data(contentsOf: url) }

    /// `sparge run --input x --output x` used to leave only o, mask and the INT8 tensors.
    @Test func runRefusesOutputThatIsTheInput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try CLI.writeInput(to: input)
        let before = try Data(contentsOf: input)
        let link = dir.appendingPathComponent("link.safetensors"), hard = dir.appendingPathComponent("hard.safetensors")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: input)
        #expect(Glibc.link(input.path, hard.path) == 0)
        for out in [input.path, link.path, hard.path, dir.path + "/./in.safetensors"] {
            for extra in [[], ["--dense"]] {
                let r = try CLI.sparge(["run", "--input", input.path, "--output", out, "--threads", "1"] + extra)
                CLI.expectUsageError(r, "run --output \(out) \(extra)")
                #expect(r.stderr.contains("same file as the input"), "\(r.stderr)")
            }
        }
        #expect(try Data(contentsOf: input) == before, "the input was changed")
        #expect(try SafeTensorsFile.read(path: input.path).names == ["k", "q", "v"])
    }

    @Test func tuneAndMaskRefuseOutputThatIsTheInput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try CLI.writeInput(to: input)
        let before = try Data(contentsOf: input)
        let tune = try CLI.sparge(["tune", "--input", input.path, "--output", input.path, "--threads", "1"])
        CLI.expectUsageError(tune, "tune --output IN")
        #expect(tune.stderr.contains("same file as the input"))
        let mask = try CLI.sparge(["mask", "--input", input.path, "--predict", "--png", input.path])
        CLI.expectUsageError(mask, "mask --png IN")
        #expect(mask.stderr.contains("same file as the input"))
        #expect(try Data(contentsOf: input) == before)
    }

    /// FIFOs and directories as outputs are refused untouched (a FIFO stands in for a device
    /// node such as /dev/full, which tests must not touch), for every command that writes.
    @Test func outputsMustBeRegularFilesOrNewPaths() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try CLI.writeInput(to: input)
        let fifo = dir.appendingPathComponent("fifo"), sub = dir.appendingPathComponent("sub")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: false)
        for (target, word) in [(fifo.path, "FIFO"), (sub.path, "directory")] {
            let commands: [[String]] = [
                ["run", "--input", input.path, "--output", target, "--threads", "1"],
                ["tune", "--input", input.path, "--output", target, "--threads", "1"],
                ["mask", "--input", input.path, "--predict", "--png", target],
                ["generate", "--output", target, "--n", "64", "--heads", "1", "--d", "16"],
            ]
            for c in commands {
                let r = try CLI.sparge(c)
                CLI.expectUsageError(r, c.joined(separator: " "))
                #expect(r.stderr.contains(word), "\(c): \(r.stderr)")
                #expect(!r.stderr.contains("NSCocoaErrorDomain"))
            }
        }
        var st = stat()
        #expect(lstat(fifo.path, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO, "the FIFO was replaced")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sub.path).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["fifo", "in.safetensors", "sub"],
                "no temporary file may be left behind")
    }

    /// Device paths are only ever checked, never opened for writing.
    @Test func devicePathsAreRefusedUntouched() throws {
        for path in ["/dev/null", "/dev/full", "/dev/zero"] where FileManager.default.fileExists(atPath: path) {
            #expect(throws: FileSafety.Problem.self) { try FileSafety.checkOutput(path) }
            #expect(throws: TensorFileError.self) { try SafeTensorsFile(tensors: [:]).write(path: path) }
            #expect(throws: TensorFileError.self) { try SafeTensorsFile.read(path: path) }
            #expect(throws: NumpyFileError.self) { try NumpyFile.read(path: path) }
            #expect(throws: TuningError.self) { try TunedSettings.read(path: path) }
            var st = stat()
            #expect(stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFCHR, "\(path) is no longer a device")
        }
        let r = try CLI.sparge(["generate", "--output", "/dev/null", "--n", "64", "--heads", "1", "--d", "16"])
        CLI.expectUsageError(r, "generate --output /dev/null")
        #expect(r.stderr.contains("character device"))
    }

    /// An unwritable or missing directory is reported before the computation; Foundation's
    /// "error 512" and "You don't have permission" never reach the user.
    @Test func unwritableDirectoryIsReportedFirst() throws {
        let dir = try CLI.temporaryDirectory()
        defer { chmod(dir.path + "/ro", 0o700); try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors")
        _ = try CLI.writeInput(to: input)
        let missing = try CLI.sparge(["run", "--input", input.path, "--output", dir.path + "/nope/out.safetensors"])
        CLI.expectUsageError(missing, "missing directory")
        #expect(missing.stderr.contains("does not exist"))
        let ro = dir.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: ro, withIntermediateDirectories: false)
        chmod(ro.path, 0o500)
        if access(ro.path, W_OK) != 0 {  // root can write anywhere: nothing to check then
            let r = try CLI.sparge(["run", "--input", input.path, "--output", ro.path + "/out.safetensors", "--threads", "1"])
            CLI.expectUsageError(r, "read-only directory")
            #expect(r.stderr.contains("not writable"), "\(r.stderr)")
            #expect(!r.stderr.contains("NSCocoaErrorDomain") && !r.stderr.contains("You don"))
        }
    }

    /// A FIFO or a directory given as an input is refused (a device would be read forever).
    @Test func inputsMustBeRegularFiles() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        for c in [["run", "--input", fifo.path], ["evaluate", "--input", fifo.path],
                  ["check", "--q", fifo.path, "--k", fifo.path, "--v", fifo.path, "--gpu-output", fifo.path],
                  ["run", "--input", dir.path], ["run", "--input", "/dev/null"]] {
            let r = try CLI.sparge(c)
            CLI.expectUsageError(r, c.joined(separator: " "))
            #expect(r.stderr.contains("not a regular file") || r.stderr.contains("directory"), "\(c): \(r.stderr)")
            #expect(!r.stderr.contains("You don"))
        }
        let cfg = try CLI.sparge(["run", "--input", dir.path + "/x.safetensors", "--config", fifo.path])
        CLI.expectUsageError(cfg, "--config FIFO")
    }

    /// The library writers replace atomically and follow a link to the file it names.
    @Test func libraryWritesAreAtomicAndFollowLinks() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("a.npy"), link = dir.appendingPathComponent("l.npy")
        try NumpyFile.write(try Tensor(floats: [1, 2], shape: [2]), path: target.path)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        try NumpyFile.write(try Tensor(floats: [3, 4, 5], shape: [3]), path: link.path)
        #expect(try NumpyFile.read(path: target.path).floats() == [3, 4, 5])
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)) != nil, "the link was replaced")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a.npy", "l.npy"])
        #expect(throws: NumpyFileError.self) { try NumpyFile.write(try Tensor(floats: [1], shape: [1]), path: dir.path) }
    }
}
