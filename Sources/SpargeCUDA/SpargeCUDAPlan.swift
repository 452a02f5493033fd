#if CUDA
import Foundation
import SpargeAttn

/// SpargeAttn on an NVIDIA GPU for one problem shape and parameter set: the same algorithm,
/// inputs, outputs and results as the CPU path (``SpargeAttn/SpargeAttention``), computed by
/// CUDA kernels that NVRTC compiles for the device on first use.
///
/// Stage 1 and the INT8 quantization repeat the CPU's arithmetic, so the block maps and INT8
/// tensors are identical to the CPU path's with the same parameters; stage 2 runs on tensor
/// cores (INT8 Q.K^T, fp16 or FP8 P.V), so ``SpargeAttn/GPUReproduction/pvNumerics`` must be
/// `.fp16` or `.fp8` (the CPU path's emulations of the same numerics); `.fp8` (V in e4m3
/// per channel, SageAttention2's scaling) needs head dim 64 or 128 and compute capability 8.9
/// or later: on 9.0 the Hopper kernel (blocks of 64 or 128), else the `mma.sync` kernel (blockK
/// a multiple of 32); ``supportsFP8(device:headDim:blockQ:blockK:)`` tells.
///
/// Limits of the kernels, each refused with ``CUDAError/unsupported(_:)`` that says what to
/// change: head dims 32, 64, 96 and 128; batch x heads at most 65535 (a grid dimension);
/// shared memory per thread block within the device's (long key sequences need larger key
/// blocks); no Q smoothing or fixed-point P.V. Causal attention in either alignment, sliding
/// windows, learned sinks, the attention sink block, key padding and the log-sum-exp are
/// supported as on the CPU path.
///
/// Device buffers are allocated on the first call and reused by later ones; a plan is
/// thread-safe (calls are serialised by a lock).
public final class SpargeCUDAPlan: @unchecked Sendable {
    public let shape: AttentionShape
    public let parameters: SpargeParameters
    public let device: CUDADevice

    let nq: Int, nk: Int
    private let lock = NSLock()
    private let buffers: Buffers
    /// The side stream of the preparation (point 0: Q blocks done, 1: V^T done).
    private let side: StreamFork
    /// The Hopper kernel's configuration for this plan (nil: the `mma.sync` kernel), resolved
    /// when the plan is made (it reads a dozen `SPARGE_CUDA_*` variables and builds its options):
    /// the thresholds uploaded then depend on which kernel runs.
    private let hopper: Kernels.HopperConfiguration?
    /// The stage-2 kernel (the Hopper kernel where `hopper` applies, else the `mma.sync` one),
    /// its dynamic shared memory and threads per block, after the first call that needs it;
    /// keyed by `unmasked` (the Hopper program without the masked path, see `launchHopper`).
    private var attentionKernels: [Bool: (CUhandle, shared: Int, threads: Int)] = [:]
    var mapBuffer: DeviceBuffer { buffers.map }

    /// Whether calls count every tile the stage-2 filter skips (``SpargeAttn/SparseStatistics/skippedTiles``);
    /// see ``init(shape:parameters:device:countSkippedTiles:)``.
    public let countSkippedTiles: Bool
    /// Whether the results' skip counts are complete: false when `countSkippedTiles` is false
    /// and the Hopper kernel runs heads whose threshold is above 40 without the filter.
    private let skipsCounted: Bool
    /// The Hopper kernel's filter code for the uploaded thresholds: none when every one is
    /// infinite, the count alone when every finite one is above 40 (Hopper only).
    private let filterCode: Kernels.FilterCode

    /// Checks that the GPU backend supports `shape` and `parameters` and opens `device`
    /// (device 0 by default). Throws ``SpargeAttn/SpargeError`` for invalid input and
    /// ``CUDAError`` for what the GPU backend cannot do or a missing driver.
    ///
    /// - Parameter countSkippedTiles: with `false`, the Hopper kernel does no filter work for
    ///   heads whose ``SpargeAttn/SpargeParameters/pvThreshold`` is above 40 (base 2), where
    ///   skipping a tile cannot change the output (see *Exact semantics*, section 4): it runs
    ///   them as with an infinite threshold, the output the counting kernel gives, and their
    ///   skips go uncounted (the results' ``SpargeAttn/SparseStatistics/skippedTilesCounted``
    ///   is false). The filter's per-tile decision is about 4% of the D=64 kernel and 1% at
    ///   D=128 (H100). No effect on heads at 40 or below, where skips can change the output, nor
    ///   on the `mma.sync` kernel, where a skip saves the tile's work. The default counts every
    ///   skip.
    public init(shape: AttentionShape, parameters: SpargeParameters = .recommended, device: CUDADevice? = nil,
                countSkippedTiles: Bool = true) throws {
        try shape.validate()
        try parameters.validate(for: shape)
        try Self.checkSupported(shape: shape, parameters: parameters)
        self.shape = shape
        self.parameters = parameters
        self.device = try device ?? CUDADevice.open()
        nq = (shape.queryLength + parameters.blockQ - 1) / parameters.blockQ
        nk = (shape.keyLength + parameters.blockK - 1) / parameters.blockK
        if parameters.gpuReproduction.pvNumerics == .fp8,
           !Self.supportsFP8(device: self.device, headDim: shape.headDim, blockQ: parameters.blockQ, blockK: parameters.blockK) {
            let cc = self.device.computeCapability
            throw CUDAError.unsupported("pvNumerics fp8: the FP8 P.V kernels need compute capability 8.9 or later (this device: \(cc.major).\(cc.minor)), head dim 64 or 128 (here \(shape.headDim)) and blockK a multiple of 32 (here \(parameters.blockK)); use pvNumerics = .fp16 here")
        }
        buffers = Buffers(device: self.device)
        side = try StreamFork(device: self.device, points: 2)
        // The per-head hyper-parameters go to the device once; without skip counts, thresholds
        // above 40 go to the Hopper kernel as +inf (nothing there for the filter to decide).
        self.countSkippedTiles = countSkippedTiles
        let hopper = Kernels.HopperConfiguration(device: self.device, headDim: shape.headDim, blockQ: parameters.blockQ,
                                                 blockK: parameters.blockK, fp8: parameters.gpuReproduction.pvNumerics == .fp8)
        self.hopper = hopper
        let thresholds = (0..<shape.heads).map { parameters.pvThreshold[$0] }
        let uncounted = thresholds.map { !countSkippedTiles && hopper != nil && $0.isFinite && $0 > Kernels.filterNoopThreshold }
        let lambdas = zip(thresholds, uncounted).map { $1 ? Float.infinity : $0 }
        skipsCounted = !uncounted.contains(true)
        filterCode = Kernels.FilterCode(lambdas: lambdas, countsAboveNoop: hopper?.countsAboveNoop ?? false)
        let thetas = (0..<shape.heads).map { parameters.simThreshold[$0] }
        let selections = (0..<shape.heads).map { h -> Float in
            switch parameters.selection {
            case .cdf(let t): return t[h]
            case .topK(let t): return t[h]
            }
        }
        try self.device.makeCurrent()
        try lambdas.withUnsafeBytes { try buffers.lambda.upload($0.baseAddress!, bytes: $0.count) }
        try thetas.withUnsafeBytes { try buffers.theta.upload($0.baseAddress!, bytes: $0.count) }
        try selections.withUnsafeBytes { try buffers.selection.upload($0.baseAddress!, bytes: $0.count) }
        if let sinks = parameters.sinkLogits {
            let logits = (0..<shape.heads).map { sinks[$0] }
            try logits.withUnsafeBytes { try buffers.sinkLogits.upload($0.baseAddress!, bytes: $0.count) }
        }
    }

    /// Whether `device` runs P.V in FP8 (``SpargeAttn/PVNumerics/fp8``) at this shape: the Hopper
    /// kernel's shapes on compute capability 9.0, else the `mma.sync` kernel's on 8.9 and later
    /// (head dim 64 or 128, blockK a multiple of 32).
    public static func supportsFP8(device: CUDADevice, headDim: Int, blockQ: Int, blockK: Int) -> Bool {
        if Kernels.HopperConfiguration(device: device, headDim: headDim, blockQ: blockQ, blockK: blockK, fp8: true) != nil { return true }
        return device.architecture >= 89 && Kernels.fp8AttentionShape(headDim: headDim, blockK: blockK)
    }

    /// What the kernels handle; anything else is a clear error, never a wrong result.
    static func checkSupported(shape: AttentionShape, parameters p: SpargeParameters) throws {
        let d = shape.headDim
        // Batch x heads is a grid dimension of every kernel (at most 65535 thread blocks), and
        // lengths and counts go to the kernels as 32-bit integers.
        guard shape.batch * shape.heads <= 65535 else {
            throw CUDAError.unsupported("batch \(shape.batch) x heads \(shape.heads) = \(shape.batch * shape.heads): the GPU kernels take at most 65535 (a grid dimension); \(shape.heads <= 65535 ? "split the batch into calls of at most \(65535 / shape.heads) sequences" : "split the heads into several calls")")
        }
        guard shape.queryLength <= Int(Int32.max), shape.keyLength <= Int(Int32.max) else {
            throw CUDAError.unsupported("sequence lengths \(shape.queryLength) and \(shape.keyLength): the GPU kernels take lengths below 2^31")
        }
        guard d % 32 == 0, d <= 128 else {
            throw CUDAError.unsupported("head dim \(d): the GPU kernels take 32, 64, 96 or 128 (use the CPU path for other head dims)")
        }
        guard p.blockQ % 16 == 0, (16...128).contains(p.blockQ) else {
            throw CUDAError.unsupported("blockQ \(p.blockQ): the GPU kernel takes a multiple of 16 up to 128 (16 query rows per warp)")
        }
        guard p.blockK % 16 == 0, (16...128).contains(p.blockK) else {
            throw CUDAError.unsupported("blockK \(p.blockK): the GPU kernel takes a multiple of 16 up to 128")
        }
        guard !p.smoothQ else {
            throw CUDAError.unsupported("smoothQ: the GPU kernels quantize Q as the authors' entry points do, without Q smoothing; set smoothQ = false here, or run the CPU path")
        }
        guard !p.fixedPointPV else {
            throw CUDAError.unsupported("fixedPointPV is the CPU's integer P.V; the GPU kernels compute P.V on fp16 or FP8 tensor cores (pvNumerics); set fixedPointPV = false here")
        }
        guard p.gpuReproduction.pvNumerics == .fp16 || p.gpuReproduction.pvNumerics == .fp8 else {
            throw CUDAError.unsupported("pvNumerics \(p.gpuReproduction.pvNumerics): the GPU kernels compute P.V on fp16 or FP8 tensor cores; set pvNumerics = .fp16 or .fp8 (the CPU path's emulations of them are the reference)")
        }
    }

    /// Sparse attention of host tensors (any layout and element type the CPU path takes):
    /// copies them to the device, runs stage 1, quantization and stage 2 there, copies the
    /// output back and returns the block map and statistics (and, if asked, the INT8 tensors).
    ///
    /// - Parameters:
    ///   - lse: where to write each query row's log-sum-exp (`B,H,Nq` floats, natural log of
    ///     the sum of `e^s` over the keys the row attended, `s` the scaled score; -inf for a
    ///     row with no key): the CPU path's definition, on both stage-2 kernels.
    ///   - keyPadding: which keys are padding (``SpargeAttn/KeyPaddingMask``), as on the CPU
    ///     path: key blocks whose keys are all padding score -inf in stage 1 and are never
    ///     selected, and padded keys score -inf in stage 2. A mask of the wrong size throws
    ///     ``SpargeAttn/SpargeError/invalidParameter(_:)``.
    @discardableResult
    public func run(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        blockMap: BlockMap? = nil, captureQuantized: Bool = false,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil
    ) throws -> SparseAttentionResult {
        let t = try SpargeAttention.resolveSparseCall(q: q, k: k, v: v, output: output, shape: shape,
                                                      parameters: parameters, blockMap: blockMap)
        let lseCount = try Self.checkLSE(lse, shape: shape)
        let padding = try Self.keyPaddingBytes(keyPadding, shape: shape, blockK: parameters.blockK)
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        let b = buffers
        try b.q.upload(t.q.base, bytes: t.q.span * t.q.type.size)
        try b.k.upload(t.k.base, bytes: t.k.span * t.k.type.size)
        try b.v.upload(t.v.base, bytes: t.v.span * t.v.type.size)
        // The whole span comes back from the device: where the output's strides leave gaps
        // between its rows (a view into a wider buffer), the caller's values go up first so
        // that the gaps come back unchanged.
        if t.output.span > shape.batch * shape.heads * shape.queryLength * shape.headDim {
            try b.out.upload(t.output.base, bytes: t.output.span * t.output.type.size)
        } else {
            try b.out.reserve(t.output.span * t.output.type.size)
        }
        if lse != nil { try b.lse.reserve(lseCount * 4) }
        if let padding {
            try padding.valid.withUnsafeBytes { try b.keyValid.upload($0.baseAddress!, bytes: $0.count) }
            try padding.flags.withUnsafeBytes { try b.blockFlags.upload($0.baseAddress!, bytes: $0.count) }
        }
        if let m = blockMap { try m.bits.withUnsafeBytes { try b.map.upload($0.baseAddress!, bytes: $0.count) } }
        let events = try EventPair(device: device)
        try launchAll(q: .init(b.q.pointer, t.q), k: .init(b.k.pointer, t.k), v: .init(b.v.pointer, t.v),
                      output: .init(b.out.pointer, t.output), predict: blockMap == nil, events: events,
                      lse: lse == nil ? 0 : b.lse.pointer,
                      keyPadding: padding == nil ? nil : (b.keyValid.pointer, b.blockFlags.pointer))
        try device.synchronize()
        try b.out.download(into: UnsafeMutableRawPointer(mutating: t.output.base), bytes: t.output.span * t.output.type.size)
        if let lse { try b.lse.download(into: UnsafeMutableRawPointer(lse.baseAddress!), bytes: lseCount * 4) }
        let (prep, kernel) = try events.elapsed()
        let map = try b.map.array(UInt8.self, count: shape.batch * shape.heads * nq * nk)
        let counts = try b.counts.array(Int32.self, count: shape.batch * shape.heads * nq * 2)
        var visited = 0, skipped = 0
        for n in stride(from: 0, to: counts.count, by: 2) { visited += Int(counts[n]); skipped += Int(counts[n + 1]) }
        let quantized = captureQuantized ? try quantizedTensors() : nil
        var result = try SpargeAttention.sparseResult(
            shape: shape, parameters: parameters, map: map, visited: visited, skipped: skipped,
            timings: SparseTimings(preparationSeconds: prep, kernelSeconds: kernel, stage1CPUSeconds: 0, quantizationCPUSeconds: 0),
            quantized: quantized)
        result.statistics.skippedTilesCounted = skipsCounted
        return result
    }

    /// The LSE destination's required length (`B * H * Nq`), checked (``SpargeAttn/SpargeError/bufferTooSmall(name:expected:actual:)``
    /// when shorter); 0 without one.
    static func checkLSE(_ lse: UnsafeMutableBufferPointer<Float>?, shape: AttentionShape) throws -> Int {
        guard let lse else { return 0 }
        let needed = shape.batch * shape.heads * shape.queryLength
        guard lse.baseAddress != nil, lse.count >= needed else {
            throw SpargeError.bufferTooSmall(name: "lse", expected: needed, actual: lse.count)
        }
        return needed
    }

    /// Throws ``SpargeAttn/SpargeError/invalidParameter(_:)`` for a mask of the wrong size.
    static func checkKeyPadding(_ mask: KeyPaddingMask?, shape: AttentionShape) throws {
        _ = try keyPaddingBytes(mask, shape: shape, blockK: 64)
    }

    /// The key padding mask for the kernels: the `B x Nk` bytes (1 = a real key) and per key
    /// block `B x nk` flags (bit 0: some key is padding, bit 1: every key is); nil without a
    /// mask or when no key is padding. A mask of the wrong size is
    /// ``SpargeAttn/SpargeError/invalidParameter(_:)``.
    static func keyPaddingBytes(_ mask: KeyPaddingMask?, shape: AttentionShape, blockK: Int) throws -> (valid: [UInt8], flags: [UInt8])? {
        guard let mask else { return nil }
        guard mask.batch == shape.batch, mask.keyLength == shape.keyLength else {
            throw SpargeError.invalidParameter("keyPadding is \(mask.batch) x \(mask.keyLength), the shape needs batch x keyLength = \(shape.batch) x \(shape.keyLength)")
        }
        let n = shape.keyLength, nk = (n + blockK - 1) / blockK
        var valid = [UInt8](repeating: 1, count: shape.batch * n)
        var flags = [UInt8](repeating: 0, count: shape.batch * nk)
        var any = false
        for b in 0..<shape.batch {
            for j in 0..<nk {
                var real = 0
                let keys = (j * blockK)..<min(n, (j + 1) * blockK)
                for t in keys { if mask[b, t] { real += 1 } else { valid[b * n + t] = 0 } }
                if real < keys.count { flags[b * nk + j] = real == 0 ? 3 : 1; any = true }
            }
        }
        return any ? (valid, flags) : nil
    }

    private func quantizedTensors() throws -> QuantizedTensors {
        let s = shape, d = s.headDim, b = buffers
        return QuantizedTensors(
            qInt8: try b.q8.array(Int8.self, count: s.batch * s.heads * s.queryLength * d),
            qScale: try b.qScale.array(Float.self, count: s.batch * s.heads * nq),
            kInt8: try keysInt8(),
            kScale: try b.kScale.array(Float.self, count: s.batch * s.kvHeads * nk),
            kMean: try b.kMean.array(Float.self, count: s.batch * s.kvHeads * d))
    }

    /// INT8 K as [batch][kv head][token][D], from either device layout.
    private func keysInt8() throws -> [Int8] {
        let s = shape, d = s.headDim, b = buffers, heads = s.batch * s.kvHeads, n = s.keyLength
        guard b.keysTiled else { return try b.k8.array(Int8.self, count: heads * n * d) }
        let bk = parameters.blockK, tiled = try b.k8.array(Int8.self, count: heads * nk * bk * d)
        var rows = [Int8](repeating: 0, count: heads * n * d)
        for h in 0..<heads {
            for t in 0..<n {
                let tile = (h * nk + t / bk) * bk * d, r = t % bk
                for c in 0..<d { rows[(h * n + t) * d + c] = tiled[tile + (r / 8) * d * 8 + (c / 16) * 128 + (r % 8) * 16 + c % 16] }
            }
        }
        return rows
    }

    // MARK: - Device-resident calls (benchmarks, callers with device buffers)

    /// A tensor already on the device: its address, element type and strides.
    public struct DeviceTensor: Sendable {
        public var address: UInt64
        public var type: ElementType
        public var layout: TensorLayout
        public init(address: UInt64, type: ElementType, layout: TensorLayout) {
            self.address = address; self.type = type; self.layout = layout
        }
        init(_ address: CUdeviceptr, _ r: ResolvedTensor) { self.init(address: address, type: r.type, layout: r.layout) }
    }

    /// The device time of each preparation kernel (milliseconds, in launch order), one list for
    /// each of `repeats` calls, on tensors already on the device (their layouts checked, their
    /// sizes the caller's responsibility, as in ``timeResident(q:k:v:output:warmup:repeats:)``).
    /// The kernels run one after another, each timed alone; every call launches the same kernels.
    ///
    /// Throws ``SpargeAttn/SpargeError/invalidParameter(_:)`` for fewer than one repeat.
    public func profilePreparation(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                                   repeats: Int = 5) throws -> [[(String, Double)]] {
        guard repeats >= 1 else {
            throw SpargeError.invalidParameter("profilePreparation: repeats \(repeats); it must be at least 1")
        }
        try checkResident(q: q, k: k, v: v, output: output)
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        let events = try EventPair(device: device)
        var runs: [[(String, Double)]] = []
        for _ in 0..<repeats {
            // Every launch of the call queued behind a 2 ms spin before the first kernel starts:
            // otherwise the first interval also holds the host's time to launch that kernel
            // (the Q blocks read 0.05 ms at D=64 N=16384 whatever their work; NCU: 0.026-0.046).
            try holdStream(microseconds: 2000)
            let profiler = KernelProfiler(device: device)
            try launchAll(q: q, k: k, v: v, output: output, predict: true, events: events, profiler: profiler)
            _ = try events.elapsed()
            runs.append(try profiler.times())
        }
        return runs
    }

    /// A kernel spinning `microseconds` on the main stream, so that what is launched after it
    /// queues up before it ends (diagnosis and profiling only).
    private func holdStream(microseconds: Int) throws {
        var a = KernelArguments()
        a.add(long: microseconds * 1000)
        try device.launch(try Kernels.prepare(device, "hold_stream"), grid: (1, 1), block: 32, a, name: "hold_stream")
    }

    /// Times the whole pipeline on tensors already on the device with device events:
    /// `(stage 1 + quantization, stage 2)` in seconds for each of `repeats` runs after
    /// `warmup` runs. The output tensor is overwritten.
    ///
    /// The layouts are checked (strides, rows that do not overlap, output rows that share no
    /// memory); the device memory behind each address is not known here and must hold the
    /// layout's span (``allocate(bytes:)``, ``upload(_:)``). Throws ``SpargeAttn/SpargeError/invalidParameter(_:)`` for a negative
    /// `warmup` or fewer than one repeat.
    public func timeResident(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                             warmup: Int = 3, repeats: Int = 20) throws -> [(preparation: Double, kernel: Double)] {
        guard warmup >= 0, repeats >= 1 else {
            throw SpargeError.invalidParameter("timeResident: warmup \(warmup) and repeats \(repeats); warmup must be at least 0 and repeats at least 1")
        }
        try checkResident(q: q, k: k, v: v, output: output)
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        let events = try EventPair(device: device)
        for _ in 0..<warmup { try launchAll(q: q, k: k, v: v, output: output, predict: true, events: events) }
        try device.synchronize()
        var times: [(Double, Double)] = []
        // Diagnosis (SPARGE_CUDA_BENCH_HOLD_US=n): a kernel spinning n microseconds ahead of each
        // call, so that the events time the GPU alone, with every launch queued before the first
        // kernel starts; the difference from a plain run is the host's launch time the GPU waits for.
        let hold = Kernels.environmentInt("SPARGE_CUDA_BENCH_HOLD_US", in: 1...100_000)
        var hostSeconds: [Double] = []
        for _ in 0..<repeats {
            if let hold { try holdStream(microseconds: hold) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            try launchAll(q: q, k: k, v: v, output: output, predict: true, events: events)
            hostSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            times.append(try events.elapsed())
        }
        if hopper?.probeTimes == true, let prefix = environmentPaths("SPARGE_CUDA_PROBE_FILE").first {
            try writeProbeTimes(prefix: prefix)
        }
        if Kernels.environmentInt("SPARGE_CUDA_BENCH_HOST", in: 0...1) == 1 {
            FileHandle.standardError.write(Data("host launch time, median: \(String(format: "%.1f", hostSeconds.sorted()[hostSeconds.count / 2] * 1e6)) us\n".utf8))
        }
        return times
    }

    /// Diagnosis: the last call's per-CTA stamps (PROBE_TIMES) to a new file
    /// `<prefix>-N<Nq>-D<D>-k<percent of blocks kept>.u64` (12 little-endian words a CTA in
    /// grid order; never overwrites a file).
    private func writeProbeTimes(prefix: String) throws {
        let ctas = shape.batch * shape.heads * nq
        let words = try buffers.probe.array(UInt64.self, count: ctas * 12)
        let kept = Int((try keptFraction() * 100).rounded())
        let path = "\(prefix)-N\(shape.queryLength)-D\(shape.headDim)-k\(kept).u64"
        let data = words.withUnsafeBytes { Data($0) }
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
        } catch {
            throw SpargeError.invalidParameter("SPARGE_CUDA_PROBE_FILE: cannot create '\(path)' (\(error.localizedDescription)); name a prefix whose files do not exist yet")
        }
    }

    /// The resident tensors' layouts, checked as the host call checks them (their element
    /// counts are unknown: only that the strides are valid, rows do not overlap, and the
    /// output's rows share no memory).
    private func checkResident(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor) throws {
        let s = shape
        for (name, t, heads, tokens) in [("q", q, s.heads, s.queryLength), ("k", k, s.kvHeads, s.keyLength),
                                         ("v", v, s.kvHeads, s.keyLength), ("output", output, s.heads, s.queryLength)] {
            guard t.address != 0 else { throw SpargeError.invalidParameter("'\(name)' has device address 0; pass an address from allocate(bytes:) or upload(_:)") }
            try SpargeAttention.checkResidentLayout(t.layout, name: name, batch: s.batch, heads: heads, tokens: tokens, headDim: s.headDim,
                                                   isOutput: name == "output")
        }
    }

    /// Device memory holding a copy of `host` (freed when the allocation is released), for
    /// ``timeResident(q:k:v:output:warmup:repeats:)``. Throws
    /// ``SpargeAttn/SpargeError/invalidParameter(_:)`` for an empty buffer.
    public func upload(_ host: UnsafeRawBufferPointer) throws -> DeviceAllocation {
        guard let base = host.baseAddress, host.count > 0 else {
            throw SpargeError.invalidParameter("upload: the host buffer is empty; pass the tensor's bytes")
        }
        try device.makeCurrent()
        let buf = DeviceBuffer(device: device)
        try buf.upload(base, bytes: host.count)
        return DeviceAllocation(buffer: buf)
    }

    /// `bytes` bytes of uninitialised device memory (freed when the allocation is released).
    /// Throws ``SpargeAttn/SpargeError/invalidParameter(_:)`` for a negative size.
    public func allocate(bytes: Int) throws -> DeviceAllocation {
        guard bytes >= 0 else { throw SpargeError.invalidParameter("allocate: \(bytes) bytes; the size must be at least 0") }
        try device.makeCurrent()
        let buf = DeviceBuffer(device: device)
        try buf.reserve(bytes)
        return DeviceAllocation(buffer: buf)
    }

    // MARK: - The pipeline

    /// Launches every kernel of one call on the default stream, recording `events` around
    /// the preparation (stage 1 + quantization) and stage 2.
    private func launchAll(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                           predict: Bool, events: EventPair, profiler: KernelProfiler? = nil, lse: CUdeviceptr = 0,
                           keyPadding: (valid: CUdeviceptr, flags: CUdeviceptr)? = nil) throws {
        let s = shape, p = parameters, d = s.headDim, dev = device, b = buffers
        let B = s.batch, H = s.heads, Hkv = s.kvHeads
        let scale = p.softmaxScale ?? (1 / Float(d).squareRoot())
        let log2e: Float = 1.44269504
        let premultiplier: Float = p.gpuReproduction.quantization == .triton ? scale * log2e : 1
        let chunks = (s.keyLength + 63) / 64
        // Q blocks and V^T go to the side stream, beside K mean and K blocks; not when
        // profiling, which times the kernels one after another (SPARGE_CUDA_SIDE_STREAM=0: never).
        let side = profiler == nil && Kernels.environmentInt("SPARGE_CUDA_SIDE_STREAM", in: 0...1) != 0 ? self.side : nil
        let hopper = self.hopper
        try b.kMean.reserve(B * Hkv * d * 4)
        try b.kPartial.reserve(B * Hkv * chunks * d * 8)
        // The Hopper kernel copies whole K tiles: INT8 K in its tile layout, padded to whole blocks.
        b.keysTiled = hopper != nil
        try b.k8.reserve(B * Hkv * (hopper != nil ? nk * p.blockK : s.keyLength) * d)
        try b.kScale.reserve(B * Hkv * nk * 4)
        // A selection that keeps every block (top-k 1) needs no scores, so no pooled blocks or
        // self-similarity either; nor does a given map (SPARGE_CUDA_DENSE_MAP=0: always predict
        // from the scores, for A/B runs).
        let keepsEveryBlock = predict && p.selectionKeepsEveryBlock(keyBlocks: nk, heads: H)
            && Kernels.environmentInt("SPARGE_CUDA_DENSE_MAP", in: 0...1) != 0
        let summaries = predict && !keepsEveryBlock
        try b.kPooled.reserve(B * Hkv * nk * d * 4)
        try b.kSim.reserve(B * Hkv * nk * 4)
        try b.q8.reserve(B * H * s.queryLength * d)
        try b.qScale.reserve(B * H * nq * 4)
        try b.qPooled.reserve(B * H * nq * d * 4)
        try b.qSim.reserve(B * H * nq * 4)
        try b.map.reserve(B * H * nq * nk)
        try b.counts.reserve(B * H * nq * 2 * 4)

        try events.recordStart()
        try profiler?.start()
        try side?.fork()
        let queryRule = SpargeAttention.queryPartialBlockRule(shape: s, parameters: p)
        try prepareBlocks(x: q, heads: H, tokens: s.queryLength, blockSize: p.blockQ, blocks: nq,
                          mean: 0, premultiplier: premultiplier, partialNever: queryRule == .neverSelfSimilar,
                          tiled: false, summaries: summaries, int8: b.q8.pointer, scaleOut: b.qScale.pointer, pooled: b.qPooled.pointer,
                          sim: b.qSim.pointer, stream: side?.stream)
        try side?.mark(0)
        try profiler?.mark("Q blocks")
        let fp8 = p.gpuReproduction.pvNumerics == .fp8
        if hopper != nil || fp8 {
            if fp8 {
                try transposeValuesFP8(v, stream: side?.stream)
                try profiler?.mark("V^T e4m3")
            } else {
                try transposeValues(v, stream: side?.stream)
                try profiler?.mark("V^T fp16")
            }
            try side?.mark(1)
        }
        // Section 1: K mean (zero without smoothing).
        if p.smoothK {
            let f1 = try Kernels.prepare(dev, "k_mean_partial")
            var a = KernelArguments()
            a.add(k.address); a.add(int: k.type.code); a.add(long: k.layout.batchStride); a.add(long: k.layout.headStride)
            a.add(long: k.layout.tokenStride); a.add(int: Hkv); a.add(int: s.keyLength); a.add(int: d)
            // The rows staged in shared memory by 16-byte loads where they allow (see k_mean_partial).
            let vec = k.type != .float32 && !p.gpuReproduction.gpuRounding && sixteenByteRows(k) && d % 8 == 0 && 256 % d == 0
            let chunksPerBlock = vec ? 256 / d : 1
            a.add(int: p.gpuReproduction.gpuRounding ? 1 : 0); a.add(int: vec ? 1 : 0); a.add(b.kPartial.pointer)
            try dev.launch(f1, grid: ((chunks + chunksPerBlock - 1) / chunksPerBlock, B * Hkv), block: vec ? 256 : 64,
                           sharedBytes: vec ? 256 * 64 * 2 : 0, a, name: "k_mean_partial")
            let f2 = try Kernels.prepare(dev, "k_mean_finish")
            var a2 = KernelArguments()
            a2.add(b.kPartial.pointer); a2.add(int: chunks); a2.add(int: s.keyLength); a2.add(int: d)
            a2.add(int: p.gpuReproduction.gpuRounding ? 1 : 0); a2.add(b.kMean.pointer)
            try dev.launch(f2, grid: (B * Hkv, (d + 7) / 8), block: 256, sharedBytes: 512 * 8 * 8, a2, name: "k_mean_finish")
            try profiler?.mark("K mean")
        } else {
            try dev.api.check(dev.api.cuMemsetD8(b.kMean.pointer, 0, B * Hkv * d * 4), "cuMemsetD8")
        }
        // Sections 1-3: K' blocks: summaries, scales, INT8 (Q blocks: on the side stream above).
        try prepareBlocks(x: k, heads: Hkv, tokens: s.keyLength, blockSize: p.blockK, blocks: nk,
                          mean: b.kMean.pointer, premultiplier: 1, partialNever: p.gpuReproduction.partialBlocks == .neverSelfSimilar,
                          tiled: hopper != nil, summaries: summaries, int8: b.k8.pointer, scaleOut: b.kScale.pointer, pooled: b.kPooled.pointer, sim: b.kSim.pointer)
        try profiler?.mark("K blocks")
        // Section 2, steps 3-7.
        if keepsEveryBlock {
            let f = try Kernels.prepare(dev, "fill_block_map")
            var a = KernelArguments()
            a.add(int: nq); a.add(int: nk); a.add(int: p.blockQ); a.add(int: p.blockK)
            a.add(int: p.causal ? 1 : 0); a.add(int: p.causalOffset(for: s)); a.add(int: p.attentionSink ? 1 : 0)
            a.add(long: p.kernelWindow); a.add(int: s.keyLength); a.add(b.map.pointer)
            try dev.launch(f, grid: (nq, B * H), block: 128, a, name: "fill_block_map")
            if let keyPadding { try clearPaddedBlocks(flags: keyPadding.flags) }
            try profiler?.mark("map")
        }
        try side?.join(0)
        if summaries {
            try b.scores.reserve(B * H * nq * nk * 4)
            let fs = try Kernels.prepare(dev, "block_scores")
            var a0 = KernelArguments()
            a0.add(b.qPooled.pointer); a0.add(b.kPooled.pointer); a0.add(b.kSim.pointer)
            a0.add(int: H); a0.add(int: s.groupSize); a0.add(int: nq); a0.add(int: nk); a0.add(int: d)
            a0.add(int: p.blockQ); a0.add(int: p.blockK); a0.add(scale); a0.add(b.theta.pointer)
            a0.add(int: p.causal ? 1 : 0); a0.add(int: p.causalOffset(for: s)); a0.add(long: p.kernelWindow); a0.add(int: s.keyLength)
            a0.add(int: p.gpuReproduction.gpuRounding ? 1 : 0)
            a0.add(keyPadding?.flags ?? 0); a0.add(b.scores.pointer)
            try dev.launch(fs, grid: ((nq + 15) / 16, (nk + 63) / 64, B * H), block: 256, sharedBytes: (16 * ((d + 3) / 4 * 4) + 64 * Self.preparationRowPitch(d)) * 4,
                           a0, name: "block_scores")
            try profiler?.mark("scores")
            var p2 = 1
            while p2 < nk { p2 <<= 1 }
            let shared = p2 * 8 + (nk + 64 + 256) * 4 + nk
            let isTopK: Bool = { if case .topK = p.selection { return true } else { return false } }()
            let f = try Kernels.prepare(dev, "select_blocks")
            var a = KernelArguments()
            a.add(b.scores.pointer); a.add(b.qSim.pointer); a.add(b.kSim.pointer)
            a.add(int: H); a.add(int: s.groupSize); a.add(int: nq); a.add(int: nk); a.add(int: p2)
            a.add(int: p.blockQ); a.add(int: p.blockK)
            a.add(b.theta.pointer); a.add(b.selection.pointer)
            a.add(int: isTopK ? 1 : 0)
            a.add(int: p.causal ? 1 : 0); a.add(int: p.causalOffset(for: s)); a.add(int: p.attentionSink ? 1 : 0)
            a.add(long: p.kernelWindow); a.add(int: s.keyLength)
            a.add(int: p.gpuReproduction.gpuRounding ? 1 : 0); a.add(b.map.pointer); a.add(CUdeviceptr(0))
            // Threads per row: two warps for top-k (its time is the row's serial chains and
            // barriers, so more rows in flight pay: H200, N=32768, 0.065 ms with 256 threads,
            // 0.045 with 128, 0.041 with 64), eight for the CDF's sort (not measured with fewer).
            // SPARGE_CUDA_SELECT_THREADS overrides (whole warps, at most 26 by its tie counts).
            let selectThreads = ((Kernels.environmentInt("SPARGE_CUDA_SELECT_THREADS", in: 32...832) ?? (isTopK ? 64 : 256)) + 31) / 32 * 32
            try dev.launch(f, grid: (nq, B * H), block: selectThreads, sharedBytes: shared, a, name: "select_blocks")
            if let keyPadding { try clearPaddedBlocks(flags: keyPadding.flags) }
            try profiler?.mark("selection")
        }
        try launchRowSinks(q: q)
        if hopper != nil {
            try side?.join(1)
            try launchHopper(output: output, events: events, lse: lse, keyPadding: keyPadding)
            try addKeyMeanScores(q: q, lse: lse)
            try events.recordEnd()
            return
        }
        // V for the fp16 tensor cores: read in place when it is fp16 with 16-byte aligned rows,
        // else converted once into a contiguous fp16 copy. FP8: V^T in e4m3 from the side stream
        // (the strides unused).
        var vTensor = (address: v.address, layout: v.layout)
        if fp8 {
            try side?.join(1)
            vTensor = (b.v16.pointer, .hnd(heads: Hkv, tokens: s.keyLength, headDim: d))
        }
        let inPlace = fp8 || v.type == .float16 && v.address % 16 == 0 && v.layout.tokenStride % 8 == 0
            && v.layout.headStride % 8 == 0 && v.layout.batchStride % 8 == 0
        if !inPlace {
            try b.v16.reserve(B * Hkv * s.keyLength * d * 2)
            let fv = try Kernels.prepare(dev, "prep_values")
            var av = KernelArguments()
            av.add(v.address); av.add(int: v.type.code); av.add(long: v.layout.batchStride); av.add(long: v.layout.headStride)
            av.add(long: v.layout.tokenStride); av.add(int: Hkv); av.add(int: s.keyLength); av.add(int: s.keyLength); av.add(int: d)
            av.add(b.v16.pointer)
            try dev.launch(fv, grid: ((s.keyLength * d + 255) / 256, B * Hkv), block: 256, av, name: "prep_values")
            try profiler?.mark("V fp16")
            vTensor = (b.v16.pointer, .hnd(heads: Hkv, tokens: s.keyLength, headDim: d))
        }
        try events.recordMiddle()
        // Section 4: stage 2.
        let (fa, shared, threads) = try stage2Kernel()
        var a = KernelArguments()
        a.add(b.q8.pointer); a.add(b.qScale.pointer); a.add(b.k8.pointer); a.add(b.kScale.pointer); a.add(vTensor.address)
        a.add(long: vTensor.layout.batchStride); a.add(long: vTensor.layout.headStride); a.add(long: vTensor.layout.tokenStride)
        addStage2Arguments(&a, output: output, lse: lse, keyPadding: keyPadding)
        a.add(fp8 ? b.vScale.pointer : CUdeviceptr(0))
        try dev.launch(fa, grid: (nq, B * H), block: threads, sharedBytes: shared, a, name: "sparse_attention")
        try addKeyMeanScores(q: q, lse: lse)
        try events.recordEnd()
    }

    /// Key padding, the last step of stage 1: key blocks whose keys are all padding are cleared.
    private func clearPaddedBlocks(flags: CUdeviceptr) throws {
        let s = shape
        let f = try Kernels.prepare(device, "clear_padded_blocks")
        var a = KernelArguments()
        a.add(buffers.map.pointer); a.add(flags); a.add(int: s.heads); a.add(int: nq); a.add(int: nk)
        try device.launch(f, grid: (nq, s.batch * s.heads), block: 128, a, name: "clear_padded_blocks")
    }

    /// Each row's learned sink in the stage-2 kernels' units (`row_sinks`, after the K mean):
    /// nothing without ``SpargeAttn/SpargeParameters/sinkLogits``.
    private func launchRowSinks(q: DeviceTensor) throws {
        guard parameters.sinkLogits != nil else { return }
        let s = shape
        let f = try Kernels.prepare(device, "row_sinks")
        var a = KernelArguments()
        a.add(q.address); a.add(int: q.type.code); a.add(long: q.layout.batchStride); a.add(long: q.layout.headStride)
        a.add(long: q.layout.tokenStride); a.add(int: s.heads); a.add(int: s.groupSize); a.add(int: s.queryLength); a.add(int: s.headDim)
        a.add(buffers.kMean.pointer); a.add(parameters.softmaxScale ?? (1 / Float(s.headDim).squareRoot()))
        a.add(buffers.sinkLogits.pointer); a.add(try buffers.rowSinks.reserve(s.batch * s.heads * s.queryLength * 4))
        try device.launch(f, grid: ((s.queryLength + 127) / 128, s.batch * s.heads), block: 128, a, name: "row_sinks")
    }

    /// With K smoothing the kernels' log-sum-exp is of q.(k - mean): adds `scale * q.mean`
    /// back to each row (the CPU path's `addKeyMeanScores`). Nothing without `lse`.
    private func addKeyMeanScores(q: DeviceTensor, lse: CUdeviceptr) throws {
        guard lse != 0, parameters.smoothK else { return }
        let s = shape
        let f = try Kernels.prepare(device, "lse_add_key_mean")
        var a = KernelArguments()
        a.add(q.address); a.add(int: q.type.code); a.add(long: q.layout.batchStride); a.add(long: q.layout.headStride)
        a.add(long: q.layout.tokenStride); a.add(int: s.heads); a.add(int: s.groupSize); a.add(int: s.queryLength); a.add(int: s.headDim)
        a.add(buffers.kMean.pointer); a.add(parameters.softmaxScale ?? (1 / Float(s.headDim).squareRoot())); a.add(lse)
        try device.launch(f, grid: ((s.queryLength + 127) / 128, s.batch * s.heads), block: 128, a, name: "lse_add_key_mean")
    }

    /// V transposed to fp16 in the Hopper kernel's tile layout (keys padded to whole blocks).
    /// One thread block per key block; the kernels take 32 keys at a time, so blockK must be a
    /// multiple of 32 (the Hopper kernel's 64 or 128, the only callers).
    private func transposeValues(_ v: DeviceTensor, stream: CUhandle?) throws {
        let s = shape, d = s.headDim, b = buffers, B = s.batch, Hkv = s.kvHeads
        let keysPadded = nk * parameters.blockK
        try b.v16.reserve(B * Hkv * d * keysPadded * 2)
        let fv = try Kernels.prepare(device, "prep_values_t")
        var av = KernelArguments()
        av.add(v.address); av.add(int: v.type.code); av.add(long: v.layout.batchStride); av.add(long: v.layout.headStride)
        av.add(long: v.layout.tokenStride); av.add(int: Hkv); av.add(int: s.keyLength); av.add(int: nk); av.add(int: d)
        av.add(int: parameters.blockK); av.add(int: sixteenByteRows(v) ? 1 : 0); av.add(b.v16.pointer)
        try device.launch(fv, grid: (nk, d / 64, B * Hkv), block: 256, sharedBytes: parameters.blockK * 65 * 4, stream: stream,
                          av, name: "prep_values_t")
    }

    /// V transposed to e4m3 in the Hopper FP8 kernel's tile layout, with the per-channel scales
    /// `max|V[:, c]| / fp8ValueRange` (the CPU path's `pvNumerics = .fp8` emulation).
    private func transposeValuesFP8(_ v: DeviceTensor, stream: CUhandle?) throws {
        let s = shape, d = s.headDim, b = buffers, B = s.batch, Hkv = s.kvHeads
        let keysPadded = nk * parameters.blockK
        try b.v16.reserve(B * Hkv * d * keysPadded)
        try b.vAmax.reserve(B * Hkv * d * 4)
        try b.vScale.reserve(B * Hkv * d * 4)
        try device.api.check(device.api.cuMemsetD8Async(b.vAmax.pointer, 0, B * Hkv * d * 4, stream), "cuMemsetD8Async")
        // fp16 and bf16 rows of 16-byte loads: the packed-maximum kernel (FP8 needs compute
        // capability 8.9, so max.f16x2 and max.bf16x2 are there).
        let vec = sixteenByteRows(v), packed = v.type != .float32 && vec
        let amaxName = packed ? "v_amax_h2" : "v_amax"
        let fa = try Kernels.prepare(device, amaxName)
        var aa = KernelArguments()
        aa.add(v.address); aa.add(int: v.type.code); aa.add(long: v.layout.batchStride); aa.add(long: v.layout.headStride)
        aa.add(long: v.layout.tokenStride); aa.add(int: Hkv); aa.add(int: s.keyLength); aa.add(int: d)
        if !packed { aa.add(int: vec ? 1 : 0) }
        aa.add(b.vAmax.pointer)
        let keysPerBlock = PrepareSource.valueMaximumKeys
        try device.launch(fa, grid: ((s.keyLength + keysPerBlock - 1) / keysPerBlock, B * Hkv), block: 256, sharedBytes: 256 * 8 * 4, stream: stream,
                          aa, name: amaxName)
        let fv = try Kernels.prepare(device, "prep_values_t8")
        var av = KernelArguments()
        av.add(v.address); av.add(int: v.type.code); av.add(long: v.layout.batchStride); av.add(long: v.layout.headStride)
        av.add(long: v.layout.tokenStride); av.add(int: Hkv); av.add(int: s.keyLength); av.add(int: nk); av.add(int: d)
        av.add(int: parameters.blockK); av.add(b.vAmax.pointer); av.add(parameters.gpuReproduction.fp8ValueRange); av.add(b.vScale.pointer)
        // Four key blocks per thread block: the scales' divisions and the setup once for four.
        let perBlock = 4
        av.add(int: vec ? 1 : 0); av.add(b.v16.pointer); av.add(int: perBlock)
        try device.launch(fv, grid: ((nk + perBlock - 1) / perBlock, d / 64, B * Hkv), block: 256, sharedBytes: (parameters.blockK * 65 + 128) * 4, stream: stream,
                          av, name: "prep_values_t8")
    }

    /// The stage-2 kernel, compiled (or found) on the first call and kept: its configuration
    /// reads a dozen `SPARGE_CUDA_*` variables and its program key joins its options. `unmasked`:
    /// the Hopper program for calls where no tile needs a mask.
    private func stage2Kernel(unmasked: Bool = false) throws -> (CUhandle, shared: Int, threads: Int) {
        if let k = attentionKernels[unmasked] { return k }
        let p = parameters
        let k: (CUhandle, shared: Int, threads: Int)
        if let c = hopper {
            let (f, shared) = try Kernels.hopperAttention(device, c, keyBlocks: nk, filter: filterCode, unmasked: unmasked,
                                                          window: p.kernelWindow > 0, sinks: p.sinkLogits != nil)
            k = (f, shared, c.threads)
        } else {
            k = try Kernels.attention(device, headDim: shape.headDim, blockQ: p.blockQ, blockK: p.blockK, keyBlocks: nk,
                                      fp8: p.gpuReproduction.pvNumerics == .fp8)
        }
        attentionKernels[unmasked] = k
        return k
    }

    /// Stage 2 on Hopper, the `wgmma` kernel (V^T from `transposeValues` or `transposeValuesFP8`).
    private func launchHopper(output: DeviceTensor, events: EventPair, lse: CUdeviceptr,
                              keyPadding: (valid: CUdeviceptr, flags: CUdeviceptr)?) throws {
        let s = shape, dev = device, b = buffers, B = s.batch, H = s.heads
        try events.recordMiddle()
        // Calls without masked tiles run the program without the masked path.
        let unmasked = hopper?.specializesUnmasked == true
            && !Self.hasMaskedTiles(shape: s, parameters: parameters, padded: keyPadding != nil)
        let (fa, shared, threads) = try stage2Kernel(unmasked: unmasked)
        var a = KernelArguments()
        a.add(b.q8.pointer); a.add(b.qScale.pointer); a.add(b.k8.pointer); a.add(b.kScale.pointer); a.add(b.v16.pointer)
        a.add(parameters.gpuReproduction.pvNumerics == .fp8 ? b.vScale.pointer : CUdeviceptr(0))
        addStage2Arguments(&a, output: output, lse: lse, keyPadding: keyPadding)
        // Diagnosis (PROBE_TIMES): 12 words a CTA, written by the kernel; 0 otherwise.
        a.add(hopper?.probeTimes == true ? try b.probe.reserve(B * H * nq * 12 * 8) : CUdeviceptr(0))
        try dev.launch(fa, grid: (nq, B * H), block: threads, sharedBytes: shared, a, name: "sparse_attention_wg")
    }

    /// Whether some tile of a call takes the stage-2 kernels' masked path: with token-level
    /// causal masking, key padding (`padded`: the call has a mask with some key masked) or a
    /// partial last key block. The Hopper kernel's program for calls without such tiles leaves
    /// that path out (ANY_MASKED=0).
    static func hasMaskedTiles(shape: AttentionShape, parameters p: SpargeParameters, padded: Bool) -> Bool {
        (p.causal && p.gpuReproduction.causalMasking == .token) || padded || shape.keyLength % p.blockK != 0
    }

    /// The stage-2 arguments after V, common to both kernels.
    private func addStage2Arguments(_ a: inout KernelArguments, output: DeviceTensor, lse: CUdeviceptr,
                                    keyPadding: (valid: CUdeviceptr, flags: CUdeviceptr)?) {
        let s = shape, p = parameters, b = buffers
        let scale = p.softmaxScale ?? (1 / Float(s.headDim).squareRoot())
        a.add(b.map.pointer); a.add(int: s.heads); a.add(int: s.groupSize); a.add(int: s.queryLength); a.add(int: s.keyLength)
        a.add(int: nq); a.add(int: nk); a.add(b.lambda.pointer)
        a.add(p.gpuReproduction.quantization == .triton ? Float(1) : scale * 1.44269504)
        a.add(int: p.causal && p.gpuReproduction.causalMasking == .token ? 1 : 0); a.add(int: p.causalOffset(for: s))
        a.add(long: p.kernelWindow)   // 0: none (a window needs token-level causal masking: validated)
        a.add(int: p.gpuReproduction.stage2ExemptTailBlocks); a.add(int: p.gpuReproduction.tritonKeyPadding ? 1 : 0)
        a.add(output.address); a.add(int: output.type.code); a.add(long: output.layout.batchStride)
        a.add(long: output.layout.headStride); a.add(long: output.layout.tokenStride); a.add(b.counts.pointer)
        a.add(lse)   // 0: no log-sum-exp
        a.add(keyPadding?.valid ?? 0); a.add(keyPadding?.flags ?? 0)   // 0: no key padding
        a.add(p.sinkLogits == nil ? CUdeviceptr(0) : b.rowSinks.pointer)   // 0: no learned sinks
    }

    /// Whether every row of `x` starts 16-byte aligned and holds whole 16-byte loads (the
    /// preparation kernels' `vec`: 16-byte loads instead of one element per load).
    private func sixteenByteRows(_ x: DeviceTensor) -> Bool {
        let perLoad = 16 / x.type.size, l = x.layout
        return x.address % 16 == 0 && shape.headDim % perLoad == 0
            && [l.batchStride, l.headStride, l.tokenStride].allSatisfy { $0 % perLoad == 0 }
    }

    /// The preparation kernels' shared-memory row pitch in floats, `prep_row_pitch` of their
    /// source: 16-byte aligned rows, 4 mod 8 words apart.
    private static func preparationRowPitch(_ d: Int) -> Int { (d + 7) / 8 * 8 + 4 }

    private func prepareBlocks(x: DeviceTensor, heads: Int, tokens: Int, blockSize: Int, blocks: Int, mean: CUdeviceptr,
                               premultiplier: Float, partialNever: Bool, tiled: Bool, summaries: Bool, int8: CUdeviceptr, scaleOut: CUdeviceptr,
                               pooled: CUdeviceptr, sim: CUdeviceptr, stream: CUhandle? = nil) throws {
        let d = shape.headDim
        // The kernel's layout: the values at a row pitch of prep_row_pitch(D), the norms and their
        // reciprocals, then 64 words of reductions and flags and the D column sums.
        let shared = (blockSize * Self.preparationRowPitch(d) + 2 * blockSize + 64 + d) * 4
        let name = ["prep_blocks_f32", "prep_blocks_f16", "prep_blocks_bf16"][x.type.code]
        let f = try Kernels.prepare(device, name)
        var a = KernelArguments()
        a.add(x.address); a.add(long: x.layout.batchStride); a.add(long: x.layout.headStride)
        a.add(long: x.layout.tokenStride); a.add(int: heads); a.add(int: tokens); a.add(int: d); a.add(int: blockSize)
        a.add(mean); a.add(premultiplier); a.add(int: parameters.gpuReproduction.gpuRounding ? 1 : 0); a.add(int: partialNever ? 1 : 0)
        a.add(int: tiled ? 1 : 0)
        a.add(int: sixteenByteRows(x) ? 1 : 0); a.add(int: summaries ? 1 : 0)
        a.add(int8); a.add(scaleOut); a.add(pooled); a.add(sim)
        // At least one thread per channel; four per channel for 128-row blocks, two for smaller
        // ones, whose smaller tiles let more thread blocks share an SM (H200, session 14, N=32768
        // top-k 0.5: K blocks of 64 rows 0.274 -> 0.226 ms at D=128 with 2 per channel, 0.128 ->
        // 0.118 at D=64; Q blocks of 128 rows slower with 2: 0.269 -> 0.335 ms at D=128).
        let perChannel = blockSize >= 128 ? 4 : 2
        // Whole warps: the kernel's shuffles take every lane.
        let asked = max(d, Kernels.environmentInt("SPARGE_CUDA_PREP_THREADS", in: 64...512) ?? max(128, perChannel * d))
        let threads = (asked + 31) / 32 * 32
        try device.launch(f, grid: (blocks, shape.batch * heads), block: threads,
                          sharedBytes: shared, stream: stream, a, name: name)
    }

    /// The plan's device memory, grown on demand and kept between calls.
    final class Buffers: @unchecked Sendable {
        let q, k, v, out, kMean, kPartial, k8, kScale, kPooled, kSim, q8, qScale, qPooled, qSim, map, v16, counts,
            lambda, theta, selection, scores, vAmax, vScale, lse, keyValid, blockFlags, probe, sinkLogits, rowSinks: DeviceBuffer
        /// Whether the last call wrote INT8 K in the Hopper kernel's tile layout.
        var keysTiled = false
        init(device: CUDADevice) {
            func make() -> DeviceBuffer { DeviceBuffer(device: device) }
            (q, k, v, out, kMean, kPartial, k8) = (make(), make(), make(), make(), make(), make(), make())
            (kScale, kPooled, kSim, q8, qScale, qPooled, qSim) = (make(), make(), make(), make(), make(), make(), make())
            (map, v16, counts, lambda, theta, selection, scores) = (make(), make(), make(), make(), make(), make(), make())
            (vAmax, vScale, lse, keyValid, blockFlags, probe) = (make(), make(), make(), make(), make(), make())
            (sinkLogits, rowSinks) = (make(), make())
        }
    }
}

/// Device memory owned by the caller of ``SpargeCUDAPlan/upload(_:)`` (freed on release).
public final class DeviceAllocation: @unchecked Sendable {
    let buffer: DeviceBuffer
    init(buffer: DeviceBuffer) { self.buffer = buffer }
    public var address: UInt64 { buffer.pointer }
    /// Copies the allocation's first `host.count` bytes back to `host`. Throws
    /// ``SpargeAttn/SpargeError/invalidParameter(_:)`` when `host` is longer than the allocation.
    public func download(into host: UnsafeMutableRawBufferPointer) throws {
        guard let base = host.baseAddress, host.count > 0 else { return }
        guard host.count <= buffer.capacity else {
            throw SpargeError.invalidParameter("download: \(host.count) bytes asked for from an allocation of \(buffer.capacity); pass a host buffer of at most the allocation's size")
        }
        try buffer.device.makeCurrent()
        try buffer.download(into: base, bytes: host.count)
    }
}

extension ElementType {
    /// The kernels' element code.
    var code: Int {
        switch self {
        case .float32: return 0
        case .float16: return 1
        case .bfloat16: return 2
        }
    }
}
#endif

#if CUDA
extension SpargeCUDAPlan {
    /// Density of the block map of the last call (downloaded from the device).
    public func lastDensity() throws -> Double {
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        return try keptFraction()
    }

    /// The fraction of blocks the last call's map marks (the caller holds the lock).
    private func keptFraction() throws -> Double {
        let map = try mapBuffer.array(UInt8.self, count: shape.batch * shape.heads * nq * nk)
        return Double(map.reduce(0) { $0 + Int($1) }) / Double(map.count)
    }
}

extension SpargeParameters {
    /// `windowKeys` (the sliding window, 0 for none) capped at 2^32: lengths are below 2^31, so
    /// a longer window hides nothing either, and the kernels' 64-bit limits (a row's causal
    /// limit minus the window) cannot overflow.
    var kernelWindow: Int { Swift.min(windowKeys, 1 << 32) }
}
#endif
