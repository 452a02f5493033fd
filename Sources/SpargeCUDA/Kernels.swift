#if CUDA
/// The compiled kernel programs: one for the preparation kernels, one per attention
/// configuration (head dim, block sizes), each compiled once per process.
enum Kernels {
    /// The CPU build fuses the multiply-adds of its SIMD loops in the tuned build only; the
    /// preparation kernels do the same so that stage 1 matches bit for bit.
    static var cpuFusesMultiplyAdd: Bool {
        #if Tuned
        return true
        #else
        return false
        #endif
    }

    static func prepare(_ device: CUDADevice, _ name: String) throws -> CUhandle {
        try device.function(name, program: "sparge_prepare", source: PrepareSource.text,
                            options: ["--fmad=false", "-DSPARGE_FMA=\(cpuFusesMultiplyAdd ? 1 : 0)", "--std=c++17"],
                            sharedBytes: device.maxSharedBytes)
    }

    /// The stage-2 kernel for a configuration and the dynamic shared memory it needs for `keyBlocks`.
    static func attention(_ device: CUDADevice, headDim d: Int, blockQ: Int, blockK: Int, keyBlocks: Int) throws -> (CUhandle, Int) {
        let kTile = blockK * (d + 16), vTile = blockK * (d + 8) * 2
        let shared = stages * (kTile + vTile) + keyBlocks * 12 + 2 * (blockQ / 16) * 4 + 8
        guard shared <= device.maxSharedBytes else {
            throw CUDAError.unsupported("\(keyBlocks) key blocks need \(shared) bytes of shared memory, the device has \(device.maxSharedBytes); use larger key blocks")
        }
        let f = try device.function("sparse_attention", program: "sparge_attention_d\(d)_q\(blockQ)_k\(blockK)_s\(stages)_m\(minBlocks(headDim: d, blockQ: blockQ))_e\(halfExp ? 1 : 0)",
                                    source: AttentionSource.text,
                                    options: ["-DHEAD_DIM=\(d)", "-DBLOCK_Q=\(blockQ)", "-DBLOCK_K=\(blockK)", "-DSTAGES=\(stages)",
                                              "-DMIN_BLOCKS=\(minBlocks(headDim: d, blockQ: blockQ))", "-DEXP_F16=\(halfExp ? 1 : 0)", "--std=c++17"],
                                    sharedBytes: device.maxSharedBytes)
        return (f, shared)
    }

    /// cp.async pipeline depth and the blocks per SM the register budget must allow, chosen by
    /// measurement on an H100; `SPARGE_CUDA_STAGES` / `SPARGE_CUDA_MIN_BLOCKS` override them
    /// (for tuning on other GPUs).
    static var stages: Int { environmentInt("SPARGE_CUDA_STAGES", in: 2...4) ?? 2 }
    /// P = 2^x in fp16 pairs (default; `SPARGE_CUDA_EXP_F16=0`: fp32 exp2, then rounding).
    static var halfExp: Bool { environmentInt("SPARGE_CUDA_EXP_F16", in: 0...1) != 0 }

    static func minBlocks(headDim d: Int, blockQ: Int) -> Int {
        environmentInt("SPARGE_CUDA_MIN_BLOCKS", in: 1...4) ?? (d > 64 ? (blockQ <= 64 ? 2 : 1) : (blockQ <= 64 ? 3 : 2))
    }

    static func environmentInt(_ name: String, in range: ClosedRange<Int>) -> Int? {
        guard let s = environmentPaths(name).first, let v = Int(s), range.contains(v) else { return nil }
        return v
    }
}

/// Two-phase timing with device events on the default stream.
final class EventPair {
    let device: CUDADevice
    let start: CUhandle, middle: CUhandle, end: CUhandle

    init(device: CUDADevice) throws {
        self.device = device
        func make() throws -> CUhandle {
            var e: CUhandle? = nil
            try device.api.check(device.api.cuEventCreate(&e, 0), "cuEventCreate")
            return e!
        }
        start = try make(); middle = try make(); end = try make()
    }

    func recordStart() throws { try device.api.check(device.api.cuEventRecord(start, nil), "cuEventRecord") }
    func recordMiddle() throws { try device.api.check(device.api.cuEventRecord(middle, nil), "cuEventRecord") }
    func recordEnd() throws { try device.api.check(device.api.cuEventRecord(end, nil), "cuEventRecord") }

    /// Seconds from start to middle and from middle to end (waits for the end event).
    func elapsed() throws -> (Double, Double) {
        try device.api.check(device.api.cuEventSynchronize(end), "cuEventSynchronize")
        var a: Float = 0, b: Float = 0
        try device.api.check(device.api.cuEventElapsedTime(&a, start, middle), "cuEventElapsedTime")
        try device.api.check(device.api.cuEventElapsedTime(&b, middle, end), "cuEventElapsedTime")
        return (Double(a) / 1000, Double(b) / 1000)
    }

    deinit {
        _ = device.api.cuEventDestroy(start)
        _ = device.api.cuEventDestroy(middle)
        _ = device.api.cuEventDestroy(end)
    }
}
#endif

#if CUDA
/// Compiles the kernel programs without a GPU (NVRTC alone), e.g. to check the sources in CI.
public enum SpargeCUDAKernels {
    /// The attention configurations compiled by ``compileAll(architecture:)``.
    public static let configurations: [(headDim: Int, blockQ: Int, blockK: Int)] = [
        (64, 128, 64), (128, 128, 64), (64, 64, 128), (128, 64, 128), (32, 64, 64), (96, 128, 32),
    ]

    /// Compiles every program for `sm_<architecture>` and returns the CUBIN size of each.
    public static func compileAll(architecture: Int) throws -> [(program: String, bytes: Int)] {
        let nvrtc = try NVRTC()
        var sizes: [(String, Int)] = []
        let prep = try nvrtc.compile(source: PrepareSource.text, name: "sparge_prepare.cu", arch: architecture,
                                     options: ["--fmad=false", "-DSPARGE_FMA=\(Kernels.cpuFusesMultiplyAdd ? 1 : 0)", "--std=c++17"])
        sizes.append(("sparge_prepare", prep.count))
        for c in configurations {
            let name = "sparge_attention_d\(c.headDim)_q\(c.blockQ)_k\(c.blockK)"
            let cubin = try nvrtc.compile(source: AttentionSource.text, name: name + ".cu", arch: architecture,
                                          options: ["-DHEAD_DIM=\(c.headDim)", "-DBLOCK_Q=\(c.blockQ)", "-DBLOCK_K=\(c.blockK)", "--std=c++17"])
            sizes.append((name, cubin.count))
        }
        return sizes
    }

    /// The version of the NVRTC that ``compileAll(architecture:)`` loads.
    public static func compilerVersion() throws -> (major: Int, minor: Int) { try NVRTC().version }
}
#endif

#if CUDA
/// Device events after each kernel of one call, for the per-kernel times of the preparation.
final class KernelProfiler {
    let device: CUDADevice
    private var marks: [(String, CUhandle)] = []
    init(device: CUDADevice) { self.device = device }

    func start() throws { try mark("start") }

    func mark(_ label: String) throws {
        var e: CUhandle? = nil
        try device.api.check(device.api.cuEventCreate(&e, 0), "cuEventCreate")
        try device.api.check(device.api.cuEventRecord(e!, nil), "cuEventRecord")
        marks.append((label, e!))
    }

    func times() throws -> [(String, Double)] {
        var out: [(String, Double)] = []
        for n in 1..<marks.count {
            try device.api.check(device.api.cuEventSynchronize(marks[n].1), "cuEventSynchronize")
            var ms: Float = 0
            try device.api.check(device.api.cuEventElapsedTime(&ms, marks[n - 1].1, marks[n].1), "cuEventElapsedTime")
            out.append((marks[n].0, Double(ms)))
        }
        return out
    }

    deinit { for (_, e) in marks { _ = device.api.cuEventDestroy(e) } }
}
#endif
