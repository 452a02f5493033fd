import SpargeAttn
import SpargeFormats

/// Errors of the tuner and of tuned-settings files. Each message says what is wrong and how to
/// fix it.
public enum TuningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A ``TuningOptions`` value is out of range.
    case invalidOptions(String)
    /// The calibration samples are unusable (none, wrong sizes, different head counts).
    case invalidSamples(String)
    /// The settings file cannot be read.
    case unreadable(path: String, reason: String)
    /// The file is not a tuned-settings file (not JSON, or another `format`).
    case wrongFormat(String)
    /// The file's `version` is not one this build reads.
    case unsupportedVersion(Int)
    /// A required field is missing or has an invalid value.
    case missingField(String)
    /// The layer was tuned for another number of heads than the input has.
    case headCountMismatch(layer: String, tuned: Int, heads: Int)
    /// The layer was tuned with other block sizes than the parameters ask for.
    case blockSizeMismatch(layer: String, tuned: String, given: String)
    /// No layer of that name (or no name given and the file holds several layers).
    case unknownLayer(String, available: [String])

    public var description: String {
        switch self {
        case .invalidOptions(let m): return "invalid tuning options: \(m)"
        case .invalidSamples(let m): return "invalid calibration samples: \(m)"
        case .unreadable(let p, let r): return "cannot read tuned settings '\(p)': \(r)"
        case .wrongFormat(let m): return "not a sparge-tuned settings file: \(m)"
        case .unsupportedVersion(let v):
            return "tuned settings version \(v) is not supported: this build reads version \(TunedSettings.currentVersion); re-tune with this build"
        case .missingField(let f): return "tuned settings: field '\(f)' is missing or invalid"
        case .headCountMismatch(let l, let t, let h):
            return "layer '\(l)' was tuned for \(t) heads but the input has \(h); use the settings of a layer with \(h) heads or re-tune"
        case .blockSizeMismatch(let l, let t, let g):
            return "layer '\(l)' was tuned with blocks \(t) but the parameters use \(g); use the tuned block sizes (omit --bq/--bk) or re-tune"
        case .unknownLayer(let n, let a):
            // A file may hold many thousands of layers: name the first few only.
            let shown = a.prefix(20).joined(separator: ", ") + (a.count > 20 ? ", ... (\(a.count) layers)" : "")
            return "no layer '\(n)' in the tuned settings; name one of: \(shown) (--layer NAME)"
        }
    }
}
