/// A sparse-attention call prepared once for a shape and configuration, then run many times.
///
/// Build the plan once (it validates everything that does not depend on the data), give every
/// thread that calls it its own ``SpargeWorkspace`` (``makeWorkspace()``), and call
/// ``run(q:k:v:output:workspace:blockMap:lse:keyPadding:attentionMask:)``: after the workspace's first call (which widens
/// fp16/bf16 V into a buffer it then keeps) a call performs no heap allocation. A call returns
/// the same ``SparseAttentionResult`` as the one-shot call; its block map stays in the workspace
/// and is copied out only when read. The plan is
/// immutable and `Sendable` (share it freely); a workspace runs one call at a time and
/// throws ``SpargeError/concurrentUse(_:)`` when a second call overlaps the first.
///
/// ```swift
/// let plan = try SpargePlan(shape: shape, parameters: .recommended)
/// let workspace = plan.makeWorkspace()
/// var out = [Float](repeating: 0, count: shape.queryElements)
/// for (q, k, v) in layers {   // each layer's projections, dense B,H,N,D arrays
///     let result = try plan.run(q: q, k: k, v: v, output: &out, workspace: workspace)
///     print(result.statistics.density)
/// }
/// ```
public final class SpargePlan: Sendable {
    /// The shape every call of this plan has.
    public let shape: AttentionShape
    /// The configuration of every call (validated when the plan was made).
    public let parameters: SpargeParameters
    /// Worker threads of each call (the CPUs of the process unless given).
    public let threads: Int

    /// The order attention visits the tokens in (nil: the caller's own); see ``TokenOrder``.
    public let tokenOrder: TokenOrder?

    /// Validates `shape`, `parameters` and `tokenOrder` once for every later call; throws
    /// ``SpargeError`` when one is unusable or `threads` is outside 1...1024 (or the CPU count, where that is larger).
    ///
    /// With a `tokenOrder` (``TokenOrder``: a permutation, or a Hilbert curve over an image or
    /// video grid after a prefix such as a CLS token) every call takes and returns tensors in
    /// the caller's order and attends in token order; each workspace then also holds token-order
    /// copies of Q, K, V and the output (4 bytes an element), so calls still allocate nothing.
    /// The block maps (given and returned) are in token order. A non-identity order needs
    /// `queryLength == keyLength == tokenOrder.count` and no causal mask
    /// (``SpargeError/invalidTokenOrder(_:)`` otherwise).
    public init(shape: AttentionShape, parameters: SpargeParameters = .recommended, tokenOrder: TokenOrder? = nil,
                threads: Int? = nil) throws {
        try shape.validate()
        try parameters.validate(for: shape)
        try tokenOrder?.validate(for: shape, causal: parameters.causal)
        self.threads = try resolvedThreadCount(threads)
        self.shape = shape
        self.parameters = parameters
        self.tokenOrder = tokenOrder
    }

    /// Allocates the memory of one caller's calls (INT8 blocks, summaries, the block map,
    /// per-thread tiles, and with a token order the token-order copies of the tensors).
    public func makeWorkspace() -> SpargeWorkspace {
        SpargeWorkspace(storage: SparseStorage(shape: shape, parameters: parameters, threads: threads), plan: self,
                        staging: tokenOrder.flatMap { $0.isIdentity ? nil : TokenOrderStaging(shape: shape) })
    }

    /// Sparse attention into `output` with `workspace`'s memory; with `blockMap` (the same
    /// ``BlockMap`` the one-shot call takes, `B,H,nq,nk` for the plan's block sizes) stage 1
    /// is skipped and that map is used; with `lse`
    /// (`B*H*Nq` floats) each query row's log-sum-exp is written (natural log, as
    /// FlashAttention's `softmax_lse`); with `keyPadding` the padded keys get no weight
    /// (``KeyPaddingMask``), with `attentionMask` the pairs it forbids (``AttentionMask``).
    /// With the plan's ``tokenOrder`` the tensors, `lse`, `keyPadding` and `attentionMask` are
    /// in the caller's order and `blockMap` in token order (a masked call permutes the mask
    /// into memory the workspace keeps: allocated by the first masked call, and again only
    /// when a mask with more batch entries comes). The result's
    /// ``SparseAttentionResult/blockMap`` (in token order) and
    /// ``SparseAttentionResult/densityPerHead`` are read from `workspace` on demand, until its next call.
    @discardableResult
    public func run(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        workspace: SpargeWorkspace, blockMap: BlockMap? = nil,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil, attentionMask: AttentionMask? = nil
    ) throws -> SparseAttentionResult {
        guard workspace.plan === self else {
            throw SpargeError.invalidParameter("the workspace belongs to another plan; make one with this plan's makeWorkspace()")
        }
        return try workspace.exclusive.run(SpargeWorkspace.busyMessage) {
            let checksFinite = SparsePipeline.detectsNonFinite(parameters, tokenOrder: tokenOrder)
            var views = try CallValidation.views(q: q, k: k, v: v, output: output, shape: shape, policy: parameters.nonFinitePolicy,
                                                 halfRounded: HalfRoundedInputs(parameters), temp: workspace.storage.temp.pointer,
                                                 threads: threads, pipelineChecksFinite: checksFinite)
            views.output?.lse = try CallValidation.lseDestination(lse, shape: shape, numerics: parameters.gpuReproduction.pvNumerics)
            try blockMap?.validate(for: shape, blockQ: parameters.blockQ, blockK: parameters.blockK)
            try keyPadding?.validate(for: shape)
            try attentionMask?.validate(for: shape)
            return try withTokenOrder(tokenOrder, views, shape: shape, keyPadding: keyPadding, attentionMask: attentionMask,
                                      staging: workspace.staging, threads: threads) { views, keyValid, pairMask in
                var pipeline = SparsePipeline(shape: shape, parameters: parameters)
                pipeline.keyValid = keyValid
                pipeline.pairMask = pairMask
                pipeline.detectsNonFinite = checksFinite
                workspace.calls &+= 1
                let result = if let blockMap {
                    try blockMap.bits.withUnsafeBufferPointer {
                        try pipeline.callWithWorkspace(views, given: $0.baseAddress, storage: workspace.storage, memory: workspace, call: workspace.calls)
                    }
                } else {
                    try pipeline.callWithWorkspace(views, given: nil, storage: workspace.storage, memory: workspace, call: workspace.calls)
                }
                parameters.markNonFiniteRows(views, shape: shape, keyValid: keyValid, pairMask: pairMask)   // after a call that did not throw
                return result
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
    // @unchecked: `storage` and `calls` are touched only inside `exclusive.run`, which admits
    // one call at a time.
    let storage: SparseStorage
    let plan: SpargePlan
    /// The token-order copies (a plan with a non-identity ``TokenOrder`` only).
    let staging: TokenOrderStaging?
    let exclusive = ExclusiveUse()
    /// Calls run so far (the last call's number): a result reads the map only while it matches.
    var calls: UInt64 = 0

    static let busyMessage: StaticString =
        "this SpargeWorkspace is already running another call; give every thread its own (plan.makeWorkspace()) or wait for the first call to return"

    init(storage: SparseStorage, plan: SpargePlan, staging: TokenOrderStaging? = nil) {
        self.storage = storage
        self.plan = plan
        self.staging = staging
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
        try storedMaps(storage, geometry: storage.g, shape: plan.shape)
    }

    func maps(ofCall call: UInt64) -> (map: BlockMap, densityPerHead: [Double])? {
        try? exclusive.run(Self.busyMessage) { calls == call ? try lastMaps() : nil }
    }
}
