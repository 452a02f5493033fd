import Foundation
import SpargeAttn
import SpargeFormats

// The one rendering of a call's statistics and accuracy in every command's text and JSON:
// density and sparsity as `SparseStatistics` defines them (over allowed blocks: those the
// causal rule and the key padding leave), the fraction of all blocks beside it.

extension SparseStatistics {
    /// `density 0.400 of allowed blocks (0.200 of all), sparsity 0.600`.
    var densityText: String {
        String(format: "density %.3f of allowed blocks (%.3f of all), sparsity %.3f", density, densityOfAllBlocks, sparsity)
    }

    /// The statistics under snake-case keys, the same in every command's JSON.
    var jsonPairs: [(String, JSONValue)] {
        [
            ("density", .finite(density)),
            ("sparsity", .finite(sparsity)),
            ("density_of_all_blocks", .finite(densityOfAllBlocks)),
            ("computed_density", .finite(computedDensity)),
            ("stage2_skipped_fraction", .finite(stage2SkippedFraction)),
            ("total_blocks", .int(totalBlocks)),
            ("allowed_blocks", .int(allowedBlocks)),
            ("selected_blocks", .int(selectedBlocks)),
            ("visited_tiles", .int(visitedTiles)),
            ("skipped_tiles", .int(skippedTiles)),
            ("skipped_tiles_counted", .bool(skippedTilesCounted)),
        ]
    }
}

extension Accuracy {
    /// `cosine 0.99912, rel L1 0.0345, rel L2 0.0400, max abs 1.2e-02`.
    var text: String {
        String(format: "cosine %.5f, rel L1 %.4f, rel L2 %.4f, max abs %.3e", cosine, relativeL1, relativeL2, maxAbsoluteError)
    }

    /// The accuracy under snake-case keys, the same in every command's JSON.
    var json: JSONValue {
        .object([
            ("cosine", .finite(cosine)), ("relative_l1", .finite(relativeL1)), ("relative_l2", .finite(relativeL2)),
            ("rmse", .finite(rmse)), ("max_abs_error", .finite(maxAbsoluteError)),
        ])
    }
}

/// The `--json` flag of every command that reports: one JSON object on stdout instead of text.
enum OutputFormat {
    static let flag = "json"
    static let help = "--json              one JSON object on stdout instead of the text report"
}

extension SparseAttentionResult {
    /// The block map of a one-shot or GPU call (which owns it); throws instead of trapping
    /// should a result without one (a plan call's, after its workspace moved on) come here.
    func ownedBlockMap() throws -> BlockMap {
        guard let map = blockMap else { throw UsageError("internal error: the call's block map is no longer available") }
        return map
    }
}
