import Foundation
import SpargeAttn
import SpargeFormats
#if CUDA
import SpargeCUDA
#endif

/// `sparge bench --backend cuda`: the GPU pipeline's time (stage 1 + quantization, kernel)
/// with device events, per shape and density, on fp16 Gaussian inputs; optionally writes the
/// inputs as .npy so that PyTorch's SDPA can be timed on the same data
/// (Scripts/bench_sdpa.py).
struct CUDABenchCommand {
    /// Untimed runs before the timed ones, and the calls `--profile` takes the median of (the help says both).
    static let warmupRuns = 5, profileCalls = 5

    static let usage = """
        Usage: sparge bench --backend cuda [--heads 16] [--lengths 16384,32768] [--dims 64,128]
          [--top-k 1,0.5,0.25] [--bq 128] [--bk 64] [--pv fp16|fp8] [--lambda 50|inf] [--no-skip-counts] [--sink S]
          [--causal [--sliding-window W]] [--repeat 30] [--profile] [--dump DIR]

        Times sparse attention on the GPU (device events, median of --repeat runs after \(warmupRuns)
        warm-up runs) on B=1 fp16 Gaussian q, k, v: stage 1 + quantization and the
        block-sparse kernel, per top-k density. TOPS counts the dense-equivalent 4*N^2*D*H
        operations over the end-to-end time (what SDPA's TOPS counts).

          --pv         P.V numerics: fp16 (default) or fp8 (e4m3 V per channel; compute capability 8.9+)
          --lambda     stage 2's threshold (pvThreshold, default 50); inf turns the filter off, to
                       time what its per-tile vote costs
          --no-skip-counts
                       plans made with countSkippedTiles: false (no filter work above lambda 40
                       on the Hopper kernel; the authors' kernels count no skips either)
          --sink S     an attention sink: every query and the first 64 keys of each head near one
                       direction (S times a unit vector, plus noise), so that each row's maximum
                       is in the first key block and the running maxima stop rising after it
                       (S = 8: about 11 base-2 units above the other scores' mean at D=64, 8 at D=128)
          --causal     causal attention (the density then counts the blocks kept of all blocks,
                       so the causal future counts as dropped; the dense-equivalent work is half)
          --sliding-window W
                       with --causal, each query sees only its last W keys
          --profile    also print the device time of each preparation kernel, run one after
                       another (median of \(profileCalls) calls)
          --dump DIR   also write q, k, v of every shape to DIR/{q,k,v}_N_D.npy (fp16, B,H,N,D)
        """

    var heads = 16
    var lengths = [16384, 32768]
    var dims = [64, 128]
    var topks: [Float] = [1, 0.5, 0.25]
    var blockQ = 128, blockK = 64
    var repeats = 30
    var dump: String?
    var profile = false
    var numerics = PVNumerics.fp16
    var lambda: Float = SpargeParameters.recommended.pvThreshold[0]
    var sink: Float = 0
    var countSkippedTiles = true
    var causal = false
    var window: Int?

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: ["profile", "no-skip-counts", "causal"], options: ["backend", "heads", "lengths", "dims", "top-k", "bq", "bk", "pv", "lambda", "sink", "repeat", "dump", "sliding-window"],
                                          usage: Self.usage) else { return nil }
        heads = try a.int("heads", in: 1...1024) ?? heads
        func ints(_ name: String) throws -> [Int]? {
            try a.string(name).map { s in try s.split(separator: ",").map {
                guard let v = Int($0), v > 0 else { throw UsageError("--\(name) '\(s)' must be positive integers separated by commas") }
                return v
            } }
        }
        lengths = try ints("lengths") ?? lengths
        dims = try ints("dims") ?? dims
        if let s = a.string("top-k") {
            topks = try s.split(separator: ",").map {
                guard let v = Float($0), v > 0, v <= 1 else { throw UsageError("--top-k '\(s)' must be values in (0, 1] separated by commas") }
                return v
            }
        }
        blockQ = try a.int("bq", in: 16...128) ?? blockQ
        blockK = try a.int("bk", in: 16...128) ?? blockK
        repeats = try a.int("repeat", in: 1...10_000) ?? repeats
        dump = a.string("dump")
        profile = a.flag("profile")
        countSkippedTiles = !a.flag("no-skip-counts")
        causal = a.flag("causal")
        window = try a.int("sliding-window", in: 1...Int(Int32.max))
        if window != nil && !causal { throw UsageError("--sliding-window needs --causal (a window ends at each query's causal limit)") }
        if let s = a.string("lambda") {
            guard let v = Float(s), v >= 0 else { throw UsageError("--lambda '\(s)' must be a number at least 0, or inf") }
            lambda = v
        }
        if let s = a.string("sink") {
            guard let v = Float(s), v >= 0, v <= 100 else { throw UsageError("--sink '\(s)' must be a number from 0 to 100") }
            sink = v
        }
        if let s = a.string("pv") {
            guard let n = PVNumerics(rawValue: s), n != .fp32 else { throw UsageError("--pv '\(s)' must be fp16 or fp8") }
            numerics = n
        }
    }

    func execute() throws {
        #if CUDA
        let device = try CUDADevice.open()
        print("device: \(device.name) (\(device.multiprocessorCount) SMs, compute capability \(device.computeCapability.major).\(device.computeCapability.minor)), B=1 H=\(heads) fp16, blocks \(blockQ)x\(blockK), P.V \(numerics.rawValue), lambda \(lambda)\(countSkippedTiles ? "" : " (skips not counted)")\(causal ? ", causal" : "")\(window.map { ", sliding window \($0)" } ?? ""), median of \(repeats)")
        print("    N    D  top-k  density  stage1+quant ms  kernel ms  total ms   TOPS (dense-equiv.)  kernel TOPS on kept blocks")
        for d in dims {
            for n in lengths {
                let shape = AttentionShape(batch: 1, heads: heads, queryLength: n, headDim: d)
                let count = shape.queryElements
                var rng = CheckRandom(seed: UInt64(n * 1000 + d))
                // Irwin-Hall: the sum of four uniforms, scaled to unit variance.
                func value() -> Double {
                    let r = rng.next()
                    let u = Double(r & 0xFFFF) + Double((r >> 16) & 0xFFFF) + Double((r >> 32) & 0xFFFF) + Double(r >> 48)
                    return (u / 65536 - 2) * 1.7320508
                }
                func tensor() -> [Float16] { (0..<count).map { _ in Float16(value()) } }
                var q = tensor(), k = tensor(), v = tensor()
                if sink > 0 {
                    // One unit direction u; queries sink * u + 0.7 x, the first 64 keys of each
                    // head sink * u + 0.3 x, the other keys x (x: the Irwin-Hall values above).
                    var u = (0..<d).map { _ in value() }
                    let norm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    u = u.map { $0 / norm }
                    for e in 0..<count {
                        let c = e % d, token = (e / d) % n
                        q[e] = Float16(Double(sink) * u[c] + 0.7 * Double(q[e]))
                        if token < 64 { k[e] = Float16(Double(sink) * u[c] + 0.3 * Double(k[e])) }
                    }
                }
                if let dump {
                    for (name, x) in [("q", q), ("k", k), ("v", v)] {
                        let t = try Tensor(float16: x.map { Float($0) }, shape: [1, heads, n, d])
                        try NumpyFile.write(t, path: "\(dump)/\(name)_\(n)_\(d).npy")
                    }
                }
                for topk in topks {
                    var p = SpargeParameters.recommended
                    p.selection = .topK(PerHead(topk))
                    p.pvThreshold = PerHead(lambda)
                    p.gpuReproduction.pvNumerics = numerics
                    (p.blockQ, p.blockK) = (blockQ, blockK)
                    p.causal = causal
                    p.slidingWindow = window
                    let plan = try SpargeCUDAPlan(shape: shape, parameters: p, device: device, countSkippedTiles: countSkippedTiles)
                    let layout = TensorLayout.hnd(heads: heads, tokens: n, headDim: d)
                    let dq = try q.withUnsafeBytes { try plan.upload($0) }
                    let dk = try k.withUnsafeBytes { try plan.upload($0) }
                    let dv = try v.withUnsafeBytes { try plan.upload($0) }
                    let out = try plan.allocate(bytes: count * 2)
                    func t(_ a: DeviceAllocation) -> SpargeCUDAPlan.DeviceTensor { .init(address: a.address, type: .float16, layout: layout) }
                    let times = try plan.timeResident(q: t(dq), k: t(dk), v: t(dv), output: t(out), warmup: Self.warmupRuns, repeats: repeats)
                    let prep = Timing.median(times.map(\.preparation)), kernel = Timing.median(times.map(\.kernel))
                    let total = Timing.median(times.map { $0.preparation + $0.kernel })
                    let density = try plan.lastDensity()
                    if profile {
                        // Each kernel's median over the calls (which launch the same kernels; the
                        // shortest list bounds the indices all the same).
                        let calls = try plan.profilePreparation(q: t(dq), k: t(dk), v: t(dv), output: t(out), repeats: Self.profileCalls)
                        let parts = (0..<(calls.map(\.count).min() ?? 0)).map { n in (calls[0][n].0, Timing.median(calls.map { $0[n].1 })) }
                        print("        preparation: " + parts.map { String(format: "%@ %.3f ms", $0.0 as NSString, $0.1) }.joined(separator: ", "))
                    }
                    // Dense-equivalent work: 4 N^2 D H, half of it under the causal mask (as
                    // FlashAttention counts); the kept blocks' work is the density of all blocks.
                    let all = 4 * Double(n) * Double(n) * Double(d) * Double(heads), ops = causal ? all / 2 : all
                    print(String(format: "%6d %4d %6.2f %8.3f %16.3f %10.3f %9.3f %12.1f %24.1f", n, d, topk, density, prep * 1e3, kernel * 1e3,
                                 total * 1e3, ops / total / 1e12, all * density / kernel / 1e12))
                }
            }
        }
        #else
        throw UsageError("this sparge was built without the GPU backend; build it with `swift build -c release --traits default,CUDA`")
        #endif
    }
}
