/// A sparse-attention call prepared once for a shape and configuration, then run many times.
///
/// Build the plan once (it validates everything that does not depend on the data), give every
/// thread that calls it its own ``SpargeWorkspace`` (``makeWorkspace()``), and call
/// ``run(q:k:v:output:workspace:blockMap:)``: after the workspace's first call (which widens
/// fp16/bf16 V into a buffer it then keeps) a call performs no heap allocation. The plan is
/// immutable and `Sendable`; a workspace must not be used by two calls at once.
///
/// ```swift
/// let plan = try SpargePlan(shape: shape, parameters: .recommended)
/// let workspace = plan.makeWorkspace()
/// for layer in layers {
///     let summary = try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
///                                output: AttentionOutput(out), workspace: workspace)
/// }
/// ```
public final class SpargePlan: Sendable {
    /// The shape every call of this plan has.
    public let shape: AttentionShape
    /// The configuration of every call (validated when the plan was made).
    public let parameters: SpargeParameters
    /// Worker threads of each call (the CPUs of the process unless given).
    public let threads: Int

    /// Validates `shape` and `parameters` once for every later call; throws ``SpargeError`` when
    /// either is unusable or `threads` is below 1.
    public init(shape: AttentionShape, parameters: SpargeParameters = .recommended, threads: Int? = nil) throws {
        try shape.validate()
        try parameters.validate(for: shape)
        if let t = threads, t < 1 { throw SpargeError.invalidParameter("threads is \(t); it must be at least 1") }
        self.shape = shape
        self.parameters = parameters
        self.threads = threads ?? defaultThreadCount()
    }

    /// Allocates the memory of one caller's calls (INT8 blocks, summaries, the block map,
    /// per-thread tiles).
    public func makeWorkspace() -> SpargeWorkspace {
        SpargeWorkspace(storage: SparseStorage(shape: shape, parameters: parameters, threads: threads), plan: self)
    }

    /// Sparse attention into `output` with `workspace`'s memory; with `blockMap`
    /// (`B*H*nq*nk` bytes, 0 or 1) stage 1 is skipped and that map is used.
    @discardableResult
    public func run(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        workspace: SpargeWorkspace, blockMap: UnsafeBufferPointer<UInt8>? = nil
    ) throws -> SparseCallSummary {
        guard workspace.plan === self else {
            throw SpargeError.invalidParameter("the workspace belongs to another plan; make one with this plan's makeWorkspace()")
        }
        let views = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                             halfRounded: HalfRoundedInputs(parameters), temp: workspace.storage.temp.pointer)
        try CallValidation.requireMapBytes(blockMap, geometry: workspace.storage.g)
        return SparsePipeline(shape: shape, parameters: parameters)
            .callWithWorkspace(views, given: blockMap?.baseAddress, storage: workspace.storage)
    }
}

/// The memory of one caller's plan calls. Not for two calls at once; one per thread.
public final class SpargeWorkspace: @unchecked Sendable {
    let storage: SparseStorage
    let plan: SpargePlan

    init(storage: SparseStorage, plan: SpargePlan) {
        self.storage = storage
        self.plan = plan
    }

    /// The block map of the last call (a copy, `B,H,nq,nk`).
    public var blockMap: BlockMap {
        // The dimensions come from a validated plan, so the map is well formed.
        try! publicBlockMap(UnsafeBufferPointer(start: storage.map.pointer, count: storage.g.mapCount), geometry: storage.g)
    }
}

/// What a plan call reports (no arrays, so returning it allocates nothing).
public struct SparseCallSummary: Sendable, Hashable {
    /// Marked blocks over all blocks.
    public var density: Double
    /// Marked blocks over the blocks the causal rule allows (`density` when not causal).
    public var allowedDensity: Double
    /// Marked key blocks that stage 2 visited (blocks entirely in a causal future are not).
    public var visitedTiles: Int
    /// Visited tiles that the stage-2 filter skipped.
    public var skippedTiles: Int
    /// Where the call's time went.
    public var timings: SparseTimings

    /// `skippedTiles / visitedTiles` (0 when nothing was visited).
    public var stage2SkippedFraction: Double { visitedTiles == 0 ? 0 : Double(skippedTiles) / Double(visitedTiles) }
}
