import Foundation
import SpargeAttn
import SpargeFormats
import SpargeTuning

/// Reading the q, k, v of `sparge tune` and `sparge evaluate` inputs, and the per-head table
/// both print.
enum TuningInputs {
    /// The q, k, v of a safetensors file (as `sparge run` reads them).
    static func sample(path: String) throws -> CalibrationSample {
        let file = try SafeTensorsFile.read(path: path)
        for name in ["q", "k", "v"] where file[name] == nil {
            throw UsageError("'\(path)' has no tensor '\(name)'; each input must hold q, k and v (B,H,N,D)")
        }
        let qt = try file.tensor("q"), kt = try file.tensor("k"), vt = try file.tensor("v")
        let shape = try RunCommand.shape(q: qt, k: kt, v: vt)
        return CalibrationSample(q: try RunCommand.floats(qt, "q"), k: try RunCommand.floats(kt, "k"),
                                 v: try RunCommand.floats(vt, "v"), shape: shape)
    }

    /// Per-head rows of a table: `columns` headers, then one line per head.
    static func table(_ columns: [String], _ rows: [[String]]) -> String {
        let widths = columns.indices.map { c in ([columns[c]] + rows.map { $0[c] }).map(\.count).max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(columns)] + rows.map(line)).joined(separator: "\n")
    }

    static func format(_ x: Double, _ digits: Int = 4) -> String { x.isFinite ? String(format: "%.\(digits)f", x) : "inf" }
    static func format(_ x: Float) -> String { x.isFinite ? "\(x)" : "inf" }

    /// `12.3 s` or `2 min 5 s`.
    static func duration(_ s: Double) -> String {
        s < 90 ? String(format: "%.1f s", s) : String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60)
    }
}
