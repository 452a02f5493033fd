/// Block counts of one sparse call, and the one definition of density and sparsity that every
/// entry point, command and report uses.
///
/// A *block* is one `blockQ x blockK` tile of one (batch, head)'s score matrix. A block is
/// *masked* when the causal rule (``SpargeParameters/causal``) puts all its keys in every one
/// of its queries' future, when the sliding window (``SpargeParameters/slidingWindow``) puts
/// them before every window of its queries, when all its keys are padding
/// (``KeyPaddingMask``), or when an ``AttentionMask`` forbids every pair of it (each rule on
/// its own): no entry point computes a masked block. The others are *allowed*. The block map (stage 1's
/// prediction, or the caller's) *selects* some allowed blocks; stage 2 computes each selected
/// block unless its filter skips the tile.
///
/// - ``density``: selected blocks over allowed blocks (the GPU code's definition);
/// - ``sparsity``: `1 - density`;
/// - ``densityOfAllBlocks``: selected blocks over all blocks, masked ones included (lower
///   than ``density`` for causal or padded calls);
/// - ``computedDensity``: blocks actually computed (selected, not skipped by stage 2) over
///   allowed blocks.
///
/// Without a causal mask, a window, padding or an attention mask every block is allowed and the
/// two densities agree.
public struct SparseStatistics: Sendable, Hashable {
    /// All blocks of the call's map, `B*H*nq*nk`.
    public var totalBlocks: Int
    /// Blocks that the causal rule and the key padding leave something to attend.
    public var allowedBlocks: Int
    /// Allowed blocks the block map selects (a map entry on a masked block is not counted:
    /// no entry point computes it).
    public var selectedBlocks: Int
    /// Selected key blocks that stage 2 visited.
    public var visitedTiles: Int
    /// Visited tiles that the stage-2 filter skipped. (The GPU's Hopper kernel saves no work
    /// by a skip; at lambda above 40, where a skip cannot change the output, it computes these
    /// tiles and only counts them.) A lower bound when ``skippedTilesCounted`` is false.
    public var skippedTiles: Int
    /// Whether ``skippedTiles`` counts every skip. Always true on the CPU; false after a GPU plan
    /// made with `countSkippedTiles: false`, whose Hopper kernel does no filter work for heads
    /// whose threshold is above 40 (where a skip cannot change the output) and so counts none
    /// of their skips.
    public var skippedTilesCounted: Bool

    /// Selected blocks over allowed blocks (0 when nothing is allowed).
    public var density: Double { allowedBlocks == 0 ? 0 : Double(selectedBlocks) / Double(allowedBlocks) }
    /// `1 - density`: the fraction of allowed blocks that stage 1 skipped.
    public var sparsity: Double { 1 - density }
    /// Selected blocks over all blocks, masked ones included.
    public var densityOfAllBlocks: Double { totalBlocks == 0 ? 0 : Double(selectedBlocks) / Double(totalBlocks) }
    /// Blocks whose P.V product was computed (visited, not skipped by stage 2) over allowed blocks.
    public var computedDensity: Double {
        allowedBlocks == 0 ? 0 : Double(visitedTiles - skippedTiles) / Double(allowedBlocks)
    }
    /// `skippedTiles / visitedTiles` (0 when nothing was visited).
    public var stage2SkippedFraction: Double {
        visitedTiles == 0 ? 0 : Double(skippedTiles) / Double(visitedTiles)
    }

    /// Statistics from block and tile counts.
    public init(totalBlocks: Int, allowedBlocks: Int, selectedBlocks: Int, visitedTiles: Int, skippedTiles: Int,
                skippedTilesCounted: Bool = true) {
        self.totalBlocks = totalBlocks; self.allowedBlocks = allowedBlocks; self.selectedBlocks = selectedBlocks
        self.visitedTiles = visitedTiles; self.skippedTiles = skippedTiles; self.skippedTilesCounted = skippedTilesCounted
    }

    /// The old name of ``density`` (selected over allowed blocks).
    @available(*, deprecated, renamed: "density")
    public var allowedDensity: Double { density }
    /// The old fraction of all blocks computed; ``computedDensity`` counts over allowed blocks.
    @available(*, deprecated, message: "use computedDensity (over allowed blocks)")
    public var computedFraction: Double { totalBlocks == 0 ? 0 : Double(visitedTiles - skippedTiles) / Double(totalBlocks) }
    /// Per-head densities are no longer part of the statistics (they would need an array).
    @available(*, unavailable, message: "use SparseAttentionResult.densityPerHead")
    public var densityPerHead: [Double] { [] }
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
    /// Wall time of everything before the kernel: the pass over V (``valuePassSeconds``),
    /// then stage 1 and quantization.
    public var preparationSeconds: Double
    /// Wall time of stage 2 (the block-sparse kernel).
    public var kernelSeconds: Double
    /// CPU time (summed over threads) of stage 1: K smoothing, pooling, self-similarity, selection.
    public var stage1CPUSeconds: Double
    /// CPU time (summed over threads) of the INT8 quantization and packing of Q and K.
    public var quantizationCPUSeconds: Double
    /// Wall time of the pass over V that precedes stage 1, part of ``preparationSeconds``: V's
    /// overflow units and finiteness check (fp32 P.V), or its widening to fp32 rows. Neither
    /// stage 1 nor quantization; 0 when the call reads V prepared (a KV cache) or not at all.
    public var valuePassSeconds: Double

    /// Wall time of stage 1 alone, apportioned from the preparation after the V pass by CPU share.
    public var stage1Seconds: Double {
        let cpu = stage1CPUSeconds + quantizationCPUSeconds
        return cpu == 0 ? 0 : (preparationSeconds - valuePassSeconds) * stage1CPUSeconds / cpu
    }
    /// Wall time of quantization alone, apportioned likewise.
    public var quantizationSeconds: Double { preparationSeconds - valuePassSeconds - stage1Seconds }

    package init(preparationSeconds: Double, kernelSeconds: Double, stage1CPUSeconds: Double, quantizationCPUSeconds: Double,
                 valuePassSeconds: Double = 0) {
        self.preparationSeconds = preparationSeconds; self.kernelSeconds = kernelSeconds
        self.stage1CPUSeconds = stage1CPUSeconds; self.quantizationCPUSeconds = quantizationCPUSeconds
        self.valuePassSeconds = valuePassSeconds
    }
}

