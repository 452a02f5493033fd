/// A sparse-attention call prepared once for a shape and configuration, then run many times.
///
/// Build the plan once (it validates everything that does not depend on the data), give every
/// thread that calls it its own ``SpargeWorkspace`` (``makeWorkspace()``), and call
/// ``run(q:k:v:output:workspace:blockMap:lse:keyPadding:)``: after the workspace's first call (which widens
/// fp16/bf16 V into a buffer it then keeps) a call performs no heap allocation. A call returns
/// the same ``SparseAttentionResult`` as the one-shot call; its block map stays in the workspace
/// and is copied out only when read. The plan is
/// immutable and `Sendable` (share it freely); a workspace runs one call at a time and
/// throws ``SpargeError/concurrentUse(_:)`` when a second call overlaps the first.
///
/// ```swift
/// let plan = try SpargePlan(shape: shape, parameters: .recommended)
/// let workspace = plan.makeWorkspace()
/// for layer in layers {
///     let result = try plan.run(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
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

    /// Sparse attention into `output` with `workspace`'s memory; with `blockMap` (the same
    /// ``BlockMap`` the one-shot call takes, `B,H,nq,nk` for the plan's block sizes) stage 1
    /// is skipped and that map is used; with `lse`
    /// (`B*H*Nq` floats) each query row's log-sum-exp is written (natural log, as
    /// FlashAttention's `softmax_lse`); with `keyPadding` the padded keys get no weight
    /// (``KeyPaddingMask``). The result's ``SparseAttentionResult/blockMap`` and
    /// ``SparseAttentionResult/densityPerHead`` are read from `workspace` on demand, until its next call.
    @discardableResult
    public func run(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        workspace: SpargeWorkspace, blockMap: BlockMap? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil
    ) throws -> SparseAttentionResult {
        guard workspace.plan === self else {
            throw SpargeError.invalidParameter("the workspace belongs to another plan; make one with this plan's makeWorkspace()")
        }
        return try workspace.exclusive.run(SpargeWorkspace.busyMessage) {
            var views = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                                 halfRounded: HalfRoundedInputs(parameters), temp: workspace.storage.temp.pointer)
            views.output?.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: parameters.gpuReproduction.pvNumerics)
            try blockMap?.validate(for: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
            try keyPadding?.validate(for: shape)
            return withKeyValid(keyPadding) { keyValid in
                var pipeline = SparsePipeline(shape: shape, parameters: parameters)
                pipeline.keyValid = keyValid
                workspace.calls &+= 1
                workspace.lastKeyPadding = keyPadding
                guard let blockMap else {
                    return pipeline.callWithWorkspace(views, given: nil, storage: workspace.storage, memory: workspace, call: workspace.calls)
                }
                return blockMap.bits.withUnsafeBufferPointer {
                    pipeline.callWithWorkspace(views, given: $0.baseAddress, storage: workspace.storage, memory: workspace, call: workspace.calls)
                }
            }
        }
    }
}

/// The memory of one caller's plan calls: one call at a time, one workspace per thread.
///
/// A workspace may be handed from thread to thread (it is `Sendable`), but a call that finds
/// it busy with another call throws ``SpargeError/concurrentUse(_:)`` before touching any
/// buffer, so sharing one by mistake fails loudly instead of mixing two calls' outputs.
public final class SpargeWorkspace: @unchecked Sendable, CallMemory {
    // @unchecked: `storage`, `calls` and `lastKeyPadding` are touched only inside
    // `exclusive.run`, which admits one call at a time.
    let storage: SparseStorage
    let plan: SpargePlan
    let exclusive = ExclusiveUse()
    /// Calls run so far (the last call's number): a result reads the map only while it matches.
    var calls: UInt64 = 0
    /// The last call's key padding (per-head densities count the blocks it masks).
    var lastKeyPadding: KeyPaddingMask?

    static let busyMessage: StaticString =
        "this SpargeWorkspace is already running another call; give every thread its own (plan.makeWorkspace()) or wait for the first call to return"

    init(storage: SparseStorage, plan: SpargePlan) {
        self.storage = storage
        self.plan = plan
    }

    /// The block map of the last call (a copy, `B,H,nq,nk`); throws
    /// ``SpargeError/concurrentUse(_:)`` while a call is running.
    public var blockMap: BlockMap {
        get throws {
            try exclusive.run(Self.busyMessage) {
                // The dimensions come from a validated plan, so the map is well formed.
                try lastMaps().map
            }
        }
    }

    /// The last call's map and per-head densities (call inside `exclusive.run`).
    private func lastMaps() throws -> (map: BlockMap, densityPerHead: [Double]) {
        try withKeyValid(lastKeyPadding) { keyValid in
            try ownedMaps(UnsafeBufferPointer(start: storage.map.pointer, count: storage.g.mapCount), geometry: storage.g,
                          shape: plan.shape, rule: BlockMaskRule(parameters: plan.parameters, shape: plan.shape, keyValid: keyValid))
        }
    }

    func maps(ofCall call: UInt64) -> (map: BlockMap, densityPerHead: [Double])? {
        try? exclusive.run(Self.busyMessage) { calls == call ? try lastMaps() : nil }
    }
}
