// What a caller can ask of SpargeParameters before it has a shape: the range checks (a tool
// checks its options before reading a large file) and the block counts of a shape.

extension SpargeParameters {
    /// Throws ``SpargeError/invalidParameter(_:)`` for every out-of-range value that does not
    /// depend on the call's shape, with the same messages as ``validate(for:)``.
    ///
    /// Per-head lists are checked against each other (each has one value or as many as the
    /// longest), not against a head count; ``validate(for:)`` checks them against the call's heads.
    public func validate() throws {
        let selected: PerHead
        switch selection {
        case .cdf(let t), .topK(let t): selected = t
        }
        let heads = [simThreshold, pvThreshold, selected].map(\.values.count).max() ?? 1
        try validate(for: AttentionShape(heads: Swift.max(heads, 1), queryLength: 1, headDim: 1))
    }
}

extension AttentionShape {
    /// The number of query blocks and key blocks of this shape under `parameters`' block
    /// sizes: the `nq x nk` of the call's block maps.
    public func blockCounts(for parameters: SpargeParameters) -> (queryBlocks: Int, keyBlocks: Int) {
        blockCounts(blockQ: parameters.blockQ, blockK: parameters.blockK)
    }
}
