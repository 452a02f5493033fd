import Foundation
import Testing
@testable import SpargeAttn
@testable import SpargeFormats
@testable import SpargeTuning
import SpargeTestSupport

/// Issue 15, bounded memory and silent acceptance: duplicate names, huge headers of empty
/// tensors, settings files that are too large or hold out-of-range values, JSON errors that
/// say where, and CLI sizes checked before allocating.
struct ReaderLimitsTests {
    typealias CLI = CLITests

    static func file(header: String, buffer: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        LittleEndianBytes.append(UInt64(header.utf8.count), to: &out)
        return out + Array(header.utf8) + buffer
    }

    /// The last duplicate used to win silently (q became k's data).
    @Test func duplicateTensorNamesAreRejected() throws {
        let header = #"{"q": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "k": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}, "q": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#
        #expect(throws: TensorFileError.duplicateTensorName("q")) { try SafeTensorsFile.parse(Self.file(header: header, buffer: [1, 2])) }
        #expect(TensorFileError.duplicateTensorName("q").description.contains("\"q\" twice"))
        // Duplicate keys inside an entry or the metadata are JSON errors that say where.
        let inner = #"{"t": {"dtype": "U8", "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}"#
        do {
            _ = try SafeTensorsFile.parse(Self.file(header: inner, buffer: [1]))
            Issue.record("parsed")
        } catch let TensorFileError.invalidJSON(reason) {
            #expect(reason.contains("duplicate key \"dtype\"") && reason.contains("line 1, column 23"), "\(reason)")
        }
    }

    /// 100,000 zero-size tensors (5.8 MB) took 415 MB through JSONSerialization.
    @Test func manyEmptyTensorsParse() throws {
        var header = "{"
        for i in 0..<100_000 {
            header += (i == 0 ? "" : ",") + #""t\#(i)":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}"#
        }
        header += "}"
        let file = try SafeTensorsFile.parse(Self.file(header: header))
        #expect(file.tensors.count == 100_000)
        #expect(file["t99999"]?.shape == [0])
    }

    @Test func hostileHeaderShapesAreBounded() throws {
        let deep = String(repeating: "[", count: 1_000_000)
        #expect(throws: TensorFileError.self) { try SafeTensorsFile.parse(Self.file(header: #"{"t": "# + deep)) }
        let rank = "[" + Array(repeating: "1", count: 100).joined(separator: ",") + "]"
        #expect(throws: TensorFileError.self) {
            try SafeTensorsFile.parse(Self.file(header: #"{"t": {"dtype": "U8", "shape": \#(rank), "data_offsets": [0, 1]}}"#, buffer: [0]))
        }
    }

    @Test func malformedHeaderJSONSaysWhere() throws {
        do {
            _ = try SafeTensorsFile.parse(Self.file(header: "{\n  \"t\": {\"dtype\": \"U8\",,}\n}"))
            Issue.record("parsed")
        } catch let TensorFileError.invalidJSON(reason) {
            #expect(reason.contains("line 2, column 23"), "\(reason)")
        }
    }

    /// A config theta of 1e300 became +inf and was accepted (the CLI rejects it).
    @Test func settingsValuesMustBeFiniteAsFloats() throws {
        for (key, value) in [("theta", "1e300"), ("tau", "1e300"), ("lambda", "1e39"), ("theta", "-1e39")] {
            var fields = ["\"theta\": 0.3", "\"tau\": 0.9", "\"lambda\": 5"]
            fields = fields.map { $0.hasPrefix("\"\(key)\"") ? "\"\(key)\": \(value)" : $0 }
            let head = "{" + fields.joined(separator: ", ") + #", "block_q": 128, "block_k": 64}"#
            #expect(throws: TuningError.self, "\(key) \(value)") { try SettingsText.parse(SettingsText.file(heads: head)) }
        }
    }

    /// The settings file size is capped (117 MB took 2.25 GB), and loading is linear
    /// (60,000 layers took 23 s: a quadratic duplicate-name check).
    @Test func settingsFilesAreCappedAndLoadLinearly() throws {
        let big = Data(repeating: 0x20, count: TunedSettings.maxFileBytes + 1)
        #expect(throws: TuningError.self) { try TunedSettings.parse(big) }
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.json").path
        #expect(FileManager.default.createFile(atPath: path, contents: big))
        do {
            _ = try TunedSettings.read(path: path)
            Issue.record("read")
        } catch let TuningError.unreadable(_, reason) {
            #expect(reason.contains("\(TunedSettings.maxFileBytes)-byte limit"), "\(reason)")
        }
        // Linear: four times the layers take well under 16 times as long (the quadratic
        // check did; a ratio, so a slow or loaded machine does not matter).
        func seconds(_ count: Int) throws -> Double {
            let layers = (0..<count).map { #"{"name": "l\#($0)", "heads": [\#(SettingsText.head)]}"# }
            let text = #"{"format": "sparge-tuned", "version": 1, "layers": ["# + layers.joined(separator: ",") + "]}"
            let start = ContinuousClock.now
            let s = try TunedSettings.parse(Data(text.utf8))
            #expect(s.layers.count == count)
            return (ContinuousClock.now - start) / .seconds(1)
        }
        let small = try seconds(15_000), large = try seconds(60_000)
        #expect(large < 10 * small, "15,000 layers: \(small) s, 60,000: \(large) s")
    }

    // MARK: CLI

    @Test func oversizedOptionsAreRefusedBeforeAllocating() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gen = try CLI.sparge(["generate", "--output", dir.path + "/g.safetensors", "--n", "1048576", "--d", "256", "--heads", "64"])
        CLI.expectUsageError(gen, "generate huge")
        #expect(gen.stderr.contains("bytes") && gen.stderr.contains("--n"), "\(gen.stderr)")
        let demo = try CLI.sparge(["demo", "--n", "1048576", "--heads", "1024"])
        CLI.expectUsageError(demo, "demo huge")
        #expect(demo.stderr.contains("bytes") && demo.stderr.contains("--heads"), "\(demo.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func emptyWorkloadListIsAnError() throws {
        let r = try CLI.sparge(["bench", "--workloads", ""])
        CLI.expectUsageError(r, "bench --workloads ''")
        #expect(r.stderr.contains("--workloads"))
    }

    @Test func runHelpDescribesCausalWithUnequalLengths() throws {
        let r = try CLI.sparge(["run", "--help"])
        #expect(r.status == 0)
        #expect(!r.stdout.contains("Nq must equal Nk"))
        #expect(r.stdout.contains("Nq != Nk"))
    }
}

/// Settings-file text of one head, as TunerFileTests (library test target) writes it.
private enum SettingsText {
    static let head = #"{"theta": 0.3, "tau": 0.9, "lambda": null, "block_q": 128, "block_k": 64, "error": 0.01, "density": 0.5}"#
    static func file(version: String = "1", heads: String = head, extra: String = "") -> String {
        #"{"format": "sparge-tuned", "version": \#(version)\#(extra), "layers": [{"name": "a", "heads": [\#(heads)]}]}"#
    }
    static func parse(_ s: String) throws -> TunedSettings { try TunedSettings.parse(Data(s.utf8)) }
}
