import Foundation
import SpargeAttn
import SpargeTuning

/// `--config FILE [--layer NAME]` of `sparge run` and `sparge evaluate`: tuned per-head values
/// applied on top of the attention options given.
struct ConfigOption {
    var layer: TunedLayer
    /// The settings file (an input: an output may not be the same file).
    var path: String
    /// Whether --bq / --bk were given (else the tuned block sizes are used).
    var explicitBlocks: Bool

    /// Reads the file; nil without --config. Tuned values replace theta, tau / top-k and
    /// lambda, so giving those options as well is an error rather than silently ignored.
    init?(_ a: Arguments) throws {
        guard let path = a.string("config") else {
            if a.has("layer") { throw UsageError("--layer selects a layer of --config FILE; give --config too") }
            return nil
        }
        for name in ["simthreshd1", "cdfthreshd", "top-k", "pvthreshd"] where a.has(name) {
            throw UsageError("--\(name) and --config exclude each other: the tuned settings set theta, tau or top-k, and lambda per head")
        }
        self.path = path
        layer = try TunedSettings.read(path: path).layer(a.string("layer"))
        explicitBlocks = a.has("bq") || a.has("bk")
    }

    /// The tuned block sizes unless --bq / --bk were given (a mismatch then fails in `apply`).
    func adjustBlocks(_ p: inout SpargeParameters) {
        if !explicitBlocks, let b = layer.blockSizes { p.blockQ = b.blockQ; p.blockK = b.blockK }
    }

    /// `p` with the tuned values for `heads` heads; a note on stderr when the causal or sink
    /// option differs from the one the layer was tuned with.
    func apply(to p: SpargeParameters, heads: Int) throws -> SpargeParameters {
        var base = p
        adjustBlocks(&base)
        if base.causal != layer.causal || base.attentionSink != layer.attentionSink {
            FileHandle.standardError.write(Data("sparge: note: layer '\(layer.name)' was tuned with causal \(layer.causal), attention sink \(layer.attentionSink); running with causal \(base.causal), attention sink \(base.attentionSink)\n".utf8))
        }
        return try layer.parameters(base: base, heads: heads)
    }
}
