/// What every sparse attention call returns besides its output: the one-shot calls of
/// ``SpargeAttention``, ``SpargePlan/run(q:k:v:output:workspace:blockMap:lse:keyPadding:attentionMask:)``,
/// ``SpargeKVCache/attend(q:output:queries:lse:attentionMask:)`` and the GPU backend.
///
/// ``statistics`` and ``timings`` are always there. The arrays are there when the call made
/// them: a one-shot or GPU call owns its block map; a plan or KV-cache call allocates nothing,
/// so its ``blockMap`` and ``densityPerHead`` are read on demand from the workspace (or cache)
/// while it still holds this call's map, that is until its next call (`nil` afterwards, or
/// while another call runs on it). ``quantized``, ``blockProbabilities`` and ``lse`` are there
/// when the call asked for them; ``wroteLSE`` says whether log-sum-exps were written (to the
/// caller's buffer or to ``lse``).
///
/// Ignoring the result is normal: the calls are `@discardableResult`.
public struct SparseAttentionResult: Sendable, Hashable {
    /// Block counts, density and sparsity (one definition: ``SparseStatistics``).
    public var statistics: SparseStatistics
    /// Phase timings of the call (not part of equality: they differ between runs).
    public var timings: SparseTimings
    /// The INT8 tensors, when the call asked for them.
    public var quantized: QuantizedTensors?
    /// Stage 1's block probabilities `P_hat` (`B,H,nq,nk`), when the call asked for them
    /// (see ``SpargeAttention/predictBlockMap(q:k:shape:parameters:threads:captureQuantized:captureProbabilities:keyPadding:attentionMask:)``).
    public var blockProbabilities: [Float]? = nil
    /// Each query row's log-sum-exp (`B,H,Nq`, natural log), when the array call asked for it
    /// (`captureLSE`): `ln sum_j e^(scale * q_i . k_j)` over the keys the row attended; -inf
    /// for a row that attended no key. Calls given an `lse` buffer write there instead.
    public var lse: [Float]? = nil
    /// Whether the call wrote each row's log-sum-exp (into the caller's `lse` buffer or ``lse``).
    public var wroteLSE: Bool
    /// Where the block map is: owned, in a workspace or cache, or nowhere.
    var maps: ResultMaps

    /// The block map used (predicted, or the caller's), `B,H,nq,nk`; for a plan or KV-cache
    /// call a copy read from its memory while that still holds this call's map, else `nil`.
    public var blockMap: BlockMap? {
        switch maps {
        case .owned(let map, _): map
        case .memory(let memory, let call): memory.maps(ofCall: call)?.map
        }
    }

    /// Each query head's density over the batch (selected over allowed blocks, as
    /// ``SparseStatistics/density``); `nil` exactly when ``blockMap`` is.
    public var densityPerHead: [Double]? {
        switch maps {
        case .owned(_, let perHead): perHead
        case .memory(let memory, let call): memory.maps(ofCall: call)?.densityPerHead
        }
    }

    init(statistics: SparseStatistics, timings: SparseTimings, maps: ResultMaps, quantized: QuantizedTensors? = nil,
         blockProbabilities: [Float]? = nil, lse: [Float]? = nil, wroteLSE: Bool) {
        self.statistics = statistics; self.timings = timings; self.maps = maps; self.quantized = quantized
        self.blockProbabilities = blockProbabilities; self.lse = lse; self.wroteLSE = wroteLSE
    }

    /// Equal maps, statistics and captured tensors; timings are ignored.
    public static func == (a: SparseAttentionResult, b: SparseAttentionResult) -> Bool {
        a.statistics == b.statistics && a.quantized == b.quantized && a.wroteLSE == b.wroteLSE
            && a.blockProbabilities == b.blockProbabilities && a.lse.map { $0.map(\.bitPattern) } == b.lse.map { $0.map(\.bitPattern) }
            && a.blockMap == b.blockMap
    }

    /// Hashes the statistics (timings are ignored, as in `==`).
    public func hash(into h: inout Hasher) {
        h.combine(statistics)
    }
}

/// Where a result's block map lives.
enum ResultMaps: Sendable {
    /// A one-shot or GPU call's own copy, with its per-head densities.
    case owned(BlockMap, densityPerHead: [Double])
    /// In a workspace or cache, valid while it still holds call number `call`.
    case memory(any CallMemory, call: UInt64)
}

/// A workspace or cache whose last call's map a result can read on demand.
protocol CallMemory: AnyObject, Sendable {
    /// The map and per-head densities of call number `call`, if this memory still holds them
    /// and no other call is running.
    func maps(ofCall call: UInt64) -> (map: BlockMap, densityPerHead: [Double])?
}

/// The old name of the plan's and KV cache's result.
@available(*, deprecated, renamed: "SparseAttentionResult")
public typealias SparseCallSummary = SparseAttentionResult

extension SparseAttentionResult {
    /// The old ``SparseCallSummary`` field: now ``SparseStatistics/density`` (over allowed blocks).
    @available(*, deprecated, renamed: "statistics.density")
    public var density: Double { statistics.density }
    /// The old ``SparseCallSummary`` field.
    @available(*, deprecated, renamed: "statistics.density")
    public var allowedDensity: Double { statistics.density }
    /// The old ``SparseCallSummary`` field.
    @available(*, deprecated, renamed: "statistics.visitedTiles")
    public var visitedTiles: Int { statistics.visitedTiles }
    /// The old ``SparseCallSummary`` field.
    @available(*, deprecated, renamed: "statistics.skippedTiles")
    public var skippedTiles: Int { statistics.skippedTiles }
    /// The old ``SparseCallSummary`` field.
    @available(*, deprecated, renamed: "statistics.stage2SkippedFraction")
    public var stage2SkippedFraction: Double { statistics.stage2SkippedFraction }
}
