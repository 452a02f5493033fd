/// Statistics of one sparse attention call.
public struct SparseStatistics: Sendable, Hashable {
    /// Marked blocks over all blocks of the map (1 - sparsity).
    public var density: Double
    /// Marked blocks over the blocks a causal mask allows (equals `density` when not causal):
    /// the GPU code's definition for causal attention.
    public var allowedDensity: Double
    /// `density` per query head (over the batch).
    public var densityPerHead: [Double]
    /// Marked key blocks that stage 2 visited (blocks entirely in a causal future are not).
    public var visitedTiles: Int
    /// Visited tiles that the stage-2 filter skipped.
    public var skippedTiles: Int
    /// `skippedTiles / visitedTiles` (0 when nothing was visited).
    public var stage2SkippedFraction: Double {
        visitedTiles == 0 ? 0 : Double(skippedTiles) / Double(visitedTiles)
    }
    /// Fraction of all blocks whose P.V product was computed.
    public var computedFraction: Double
}

/// The INT8 tensors of section 3, in the GPU code's layout: `qInt8` is `B,H,Nq,D`,
/// `qScale` is `B,H,nq`; `kInt8` is `B,Hkv,Nk,D`, `kScale` is `B,Hkv,nk`; `kMean` is
/// `B,Hkv,D` (zero without K smoothing).
public struct QuantizedTensors: Sendable, Hashable {
    /// INT8 Q, `B,H,Nq,D`.
    public var qInt8: [Int8]
    /// One scale per query block, `B,H,nq`.
    public var qScale: [Float]
    /// INT8 smoothed K, `B,Hkv,Nk,D`.
    public var kInt8: [Int8]
    /// One scale per key block, `B,Hkv,nk`.
    public var kScale: [Float]
    /// The K mean subtracted before quantizing, `B,Hkv,D` (zero without K smoothing).
    public var kMean: [Float]

    package init(qInt8: [Int8], qScale: [Float], kInt8: [Int8], kScale: [Float], kMean: [Float]) {
        self.qInt8 = qInt8; self.qScale = qScale; self.kInt8 = kInt8; self.kScale = kScale; self.kMean = kMean
    }
}

/// Where the time of a sparse call went.
public struct SparseTimings: Sendable, Hashable {
    /// Wall time of stage 1 and quantization together (phases run before the kernel).
    public var preparationSeconds: Double
    /// Wall time of stage 2 (the block-sparse kernel).
    public var kernelSeconds: Double
    /// CPU time (summed over threads) of stage 1: K smoothing, pooling, self-similarity, selection.
    public var stage1CPUSeconds: Double
    /// CPU time (summed over threads) of the INT8 quantization and packing of Q and K.
    public var quantizationCPUSeconds: Double

    /// Wall time of stage 1 alone, apportioned from the preparation by CPU share.
    public var stage1Seconds: Double {
        let cpu = stage1CPUSeconds + quantizationCPUSeconds
        return cpu == 0 ? 0 : preparationSeconds * stage1CPUSeconds / cpu
    }
    /// Wall time of quantization alone, apportioned likewise.
    public var quantizationSeconds: Double { preparationSeconds - stage1Seconds }

    package init(preparationSeconds: Double, kernelSeconds: Double, stage1CPUSeconds: Double, quantizationCPUSeconds: Double) {
        self.preparationSeconds = preparationSeconds; self.kernelSeconds = kernelSeconds
        self.stage1CPUSeconds = stage1CPUSeconds; self.quantizationCPUSeconds = quantizationCPUSeconds
    }
}

/// Everything a sparse attention call produces besides the output.
public struct SparseAttentionResult: Sendable, Hashable {
    /// The block map used (predicted, or the caller's).
    public var blockMap: BlockMap
    /// Phase timings of the call (not part of equality: they differ between runs).
    public var timings: SparseTimings
    /// Densities and stage-2 tile counts of the call.
    public var statistics: SparseStatistics
    /// The INT8 tensors, when the call asked for them.
    public var quantized: QuantizedTensors?
    /// Stage 1's block probabilities `P_hat` (`B,H,nq,nk`), when the call asked for them
    /// (see ``SpargeAttention/predictBlockMap(q:k:shape:parameters:threads:captureQuantized:captureProbabilities:)``).
    public var blockProbabilities: [Float]? = nil
    /// Each query row's log-sum-exp (`B,H,Nq`, natural log), when the call asked for it
    /// (`captureLSE`): `ln sum_j e^(scale * q_i . k_j)` over the keys the row attended; -inf
    /// for a row that attended no key.
    public var lse: [Float]? = nil

    /// Equal maps, statistics and captured tensors; timings are ignored.
    public static func == (a: SparseAttentionResult, b: SparseAttentionResult) -> Bool {
        a.blockMap == b.blockMap && a.statistics == b.statistics && a.quantized == b.quantized
            && a.blockProbabilities == b.blockProbabilities && a.lse.map { $0.map(\.bitPattern) } == b.lse.map { $0.map(\.bitPattern) }
    }

    /// Hashes the map and the statistics (timings are ignored, as in `==`).
    public func hash(into h: inout Hasher) {
        h.combine(blockMap)
        h.combine(statistics)
    }
}
