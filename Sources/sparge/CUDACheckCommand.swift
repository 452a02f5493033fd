import Foundation
import SpargeAttn
import SpargeFormats
import SpargeWorkloads
#if CUDA
import SpargeCUDA
#endif

/// `sparge cuda-check`: the GPU backend against the CPU path on the golden cases and on
/// random shapes: block maps, INT8 tensors and stage-2 skip counts must be identical, outputs
/// within cosine 0.9999, per-row log-sum-exp within 1e-3.
struct CUDACheckCommand {
    static let usage = """
        Usage: sparge cuda-check [--golden DIR] [--random N] [--seed S]

        Runs every input through the CPU path and the GPU backend (fp16 P.V numerics on both;
        on Ada and Hopper also FP8 P.V, the sage2 presets' numerics, where the FP8 kernels apply) and compares: block maps and INT8 tensors identical, scales and K mean bitwise equal,
        the tiles stage 2's filter skips equal in number ("skips g/c", GPU / CPU), output cosine
        >= 0.9999, per-row log-sum-exp (lse:) within 1e-3 (-inf rows on both sides).
        Besides the golden and random cases, the "lse" cases: causal with Nq > Nk (rows with no
        key), K smoothing on and off, and a key padding mask (left padding in batch 0, right
        padding in batch 1: fully and partly padded key blocks, rows with only padded keys); and
        the "sink" cases, where the filter skips tiles (lambda 50 and 12, D 64 and 128; at lambda 50
        also on plans that do not count skips, "nocount"); and the "long keys" cases, 300 queries
        against 20,000 keys (visit lists of up to 313 key blocks); and the "window" cases, causal
        sliding windows of 1 to 3000 keys in both alignments (rows whose window is empty); and
        the "sinks" cases, learned sink logits with and without a window.
        Then an output view with gaps between its rows (rows as a dense output's, gaps untouched).
        Prints one row per case; exit status 1 if any case fails.

          --golden DIR   folder of golden .safetensors cases (q, k, v; metadata 'case' with the
                         causal flag); each runs with several parameter sets (default Tests/Golden,
                         the repository's compact set; give the full set's folder when you have it)
          --random N     random shapes: ragged lengths, GQA, Nq != Nk, causal, head dims 32-128,
                         HND/NHD, fp32/fp16/bf16 inputs (default 24)
          --seed S       seed of the random shapes (default 1)
        """

    var golden: String
    var random: Int
    var seed: UInt64

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: [], options: ["golden", "random", "seed"],
                                          usage: Self.usage) else { return nil }
        golden = a.string("golden") ?? "Tests/Golden"
        random = try a.int("random", in: 0...100_000) ?? 24
        seed = UInt64(try a.int("seed", in: 0...Int.max) ?? 1)
    }

    /// Returns whether every case passed.
    func execute() throws -> Bool {
        #if CUDA
        let device = try CUDADevice.open()
        print("device: \(device.name), compute capability \(device.computeCapability.major).\(device.computeCapability.minor), driver \(device.driverVersion), NVRTC \(try device.compilerVersion())")
        var rows: [CUDAAgreement] = []
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: golden)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        if names.isEmpty { print("no golden cases in \(golden)") }
        for name in names {
            rows += try goldenCase(path: golden + "/" + name, device: device)
        }
        var rng = CheckRandom(seed: seed)
        for n in 0..<random { rows += try randomCase(index: n, rng: &rng, device: device) }
        rows += try lseCases(device: device)
        rows += try filterCases(device: device)
        rows += try longKeyCases(device: device)
        rows += try windowCases(device: device)
        rows += try sinkLogitCases(device: device)
        print(String(format: "%-52@ %10@ %12@ %8@ %10@ %9@ %9@ %9@ %7@ %7@ %11@", "case" as NSString, "map diff" as NSString, "int8 diff" as NSString,
                     "scales" as NSString, "cosine" as NSString, "rel L1" as NSString, "max abs" as NSString, "lse err" as NSString,
                     "density" as NSString, "skip" as NSString, "skips g/c" as NSString))
        var failures = 0
        for r in rows {
            let ok = r.passed()
            if !ok { failures += 1 }
            print(String(format: "%-52@ %4d/%-5d %5d/%-6d %8@ %10.7f %9.2e %9.2e %9.2e %7.3f %7.3f %5d/%-5d %@", r.label as NSString, r.mapMismatches, r.mapEntries,
                         r.int8Mismatches, r.int8Elements, (r.scalesIdentical ? "equal" : "DIFFER") as NSString, r.cosine, r.relativeL1,
                         r.maxAbsoluteError, r.lseMaxAbsoluteError, r.density, r.stage2SkippedFraction, r.skippedTiles.gpu, r.skippedTiles.cpu,
                         (ok ? "PASS" : "FAIL") as NSString))
        }
        let gaps = try stridedOutputCase(device: device)
        print("strided output (token stride D + 5): rows equal to a dense output's, gaps untouched: \(gaps ? "PASS" : "FAIL")")
        if !gaps { failures += 1 }
        print("\(rows.count + 1 - failures) of \(rows.count + 1) cases pass" + (failures == 0 ? "" : " (\(failures) FAIL)"))
        return failures == 0
        #else
        throw UsageError("this sparge was built without the GPU backend; build it with `swift build -c release --traits default,CUDA`")
        #endif
    }

    #if CUDA
    /// An output view with gaps between its rows (`CUDAAgreementCheck.stridedOutputKeepsGaps`).
    private func stridedOutputCase(device: CUDADevice) throws -> Bool {
        var rng = CheckRandom(seed: seed &+ 0x6A9)
        let shape = AttentionShape(batch: 2, heads: 3, queryLength: 301, keyLength: 277, headDim: 64)
        func tensor(_ n: Int) -> [Float16] { (0..<n).map { _ in Float16(rng.gaussian()) } }
        let q = tensor(shape.queryElements), k = tensor(shape.keyElements), v = tensor(shape.keyElements)
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp16
        return try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try CUDAAgreementCheck.stridedOutputKeepsGaps(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
                                                          shape: shape, parameters: p, device: device)
        } } }
    }

    /// The log-sum-exp cases: fp16 inputs, causal with Nq > Nk (the first rows attend no key,
    /// -inf), GQA, K smoothing on and off, both block shapes of the kernels, with and without a
    /// key padding mask; FP8 P.V on Ada and Hopper.
    private func lseCases(device: CUDADevice) throws -> [CUDAAgreement] {
        var rng = CheckRandom(seed: seed &+ 0x15E)
        let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 650, keyLength: 523, headDim: 128)
        func tensor(_ n: Int, shift: Float) -> [Float16] { (0..<n).map { _ in Float16(rng.gaussian() + shift) } }
        let q = tensor(shape.queryElements, shift: 0), k = tensor(shape.keyElements, shift: 0.7), v = tensor(shape.keyElements, shift: 0)
        var valid = [Bool](repeating: true, count: 2 * shape.keyLength)
        for t in 0..<150 { valid[t] = false }                       // batch 0: left padding
        for t in 300..<shape.keyLength { valid[shape.keyLength + t] = false }   // batch 1: right padding
        let padding = try KeyPaddingMask(batch: 2, keyLength: shape.keyLength, valid: valid)
        var sets: [(String, SpargeParameters)] = []
        for (bq, bk) in [(128, 64), (64, 128)] {
            for smooth in [true, false] {
                var p = SpargeParameters.recommended
                p.gpuReproduction.pvNumerics = .fp16
                p.causal = true
                p.blockQ = bq
                p.blockK = bk
                p.smoothK = smooth
                sets.append(("lse causal D128 \(bq)x\(bk)\(smooth ? "" : " no-smooth")", p))
                if SpargeCUDAPlan.supportsFP8(device: device, headDim: shape.headDim, blockQ: bq, blockK: bk) {
                    p.gpuReproduction.pvNumerics = .fp8
                    sets.append(("lse causal D128 \(bq)x\(bk)\(smooth ? "" : " no-smooth") fp8", p))
                }
            }
        }
        let masks: [KeyPaddingMask?] = [nil, padding]
        return try masks.flatMap { mask in
            try compare(sets.map { ($0.0 + (mask == nil ? "" : " padded"), $0.1, nil) }, q: q, k: k, v: v, shape: shape,
                        keyPadding: mask, device: device)
        }
    }

    /// Gaussian fp16 q, k (every value shifted by `keyShift`) and v of `shape`, drawn in that order.
    private static func gaussianInputs(_ shape: AttentionShape, keyShift: Float,
                                       rng: inout CheckRandom) -> (q: [Float16], k: [Float16], v: [Float16]) {
        let q = (0..<shape.queryElements).map { _ in Float16(rng.gaussian()) }
        let k = (0..<shape.keyElements).map { _ in Float16(rng.gaussian() + keyShift) }
        let v = (0..<shape.keyElements).map { _ in Float16(rng.gaussian()) }
        return (q, k, v)
    }

    /// `p` with fp16 P.V, and with FP8 P.V (label + " fp8") where the device's kernels take it.
    private func bothNumerics(_ label: String, _ p: SpargeParameters, headDim d: Int,
                              device: CUDADevice) -> [(String, SpargeParameters, BlockMap?)] {
        var half = p, fp8 = p
        half.gpuReproduction.pvNumerics = .fp16
        fp8.gpuReproduction.pvNumerics = .fp8
        let withFP8 = SpargeCUDAPlan.supportsFP8(device: device, headDim: d, blockQ: p.blockQ, blockK: p.blockK)
        return [(label, half, nil)] + (withFP8 ? [(label + " fp8", fp8, nil)] : [])
    }

    /// Every parameter set of `sets` (each with its given block map, if any) on the same fp16
    /// inputs and key padding.
    private func compare(_ sets: [(String, SpargeParameters, BlockMap?)], q: [Float16], k: [Float16], v: [Float16],
                         shape: AttentionShape, keyPadding: KeyPaddingMask? = nil, device: CUDADevice,
                         countSkippedTiles: Bool = true) throws -> [CUDAAgreement] {
        try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try sets.map { (label, p, map) in
                try CUDAAgreementCheck.compare(label: label, q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v), shape: shape,
                                               parameters: p, blockMap: map, keyPadding: keyPadding, device: device,
                                               countSkippedTiles: countSkippedTiles)
            }
        } } }
    }

    /// The stage-2 filter where it skips tiles: every query close to one direction that the
    /// first 64 keys share, far above the other keys (a sink; strong: about 100 and 70 base-2
    /// units above the rest at D 64 and 128, mild: a quarter of that). Lambda 50 (above 40,
    /// where the Hopper kernel counts skips instead of taking them) and 12 (taken); fp16 and
    /// FP8 P.V, both block shapes, dense and top-k 0.5; the lambda-50 sets also with
    /// `countSkippedTiles: false`.
    private func filterCases(device: CUDADevice) throws -> [CUDAAgreement] {
        var rng = CheckRandom(seed: seed &+ 0x5C1)
        var rows: [CUDAAgreement] = []
        for d in [64, 128] {
            for strength in [Float(24), 12] {
                let shape = AttentionShape(batch: 1, heads: 4, kvHeads: 2, queryLength: 700, keyLength: 900, headDim: d)
                var u = (0..<d).map { _ in rng.gaussian() }
                let norm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
                u = u.map { $0 / norm }
                let q = (0..<shape.queryElements).map { Float16(strength * u[$0 % d] + 0.7 * rng.gaussian()) }
                let k = (0..<shape.keyElements).map { e -> Float16 in
                    let token = (e / d) % shape.keyLength
                    return Float16(token < 64 ? strength * u[e % d] + 0.3 * rng.gaussian() : rng.gaussian())
                }
                let v = (0..<shape.keyElements).map { _ in Float16(rng.gaussian()) }
                var sets: [(String, SpargeParameters, BlockMap?)] = []
                for (bq, bk) in [(128, 64), (64, 128)] {
                    for keep in [Float(1), 0.5] {
                        for lambda in [Float(50), 12] {
                            var p = SpargeParameters.recommended
                            p.blockQ = bq
                            p.blockK = bk
                            p.selection = .topK(PerHead(keep))
                            p.pvThreshold = PerHead(lambda)
                            sets += bothNumerics("sink\(Int(strength)) D\(d) \(bq)x\(bk) top-k \(keep) lambda \(Int(lambda))", p,
                                                 headDim: d, device: device)
                        }
                    }
                }
                rows += try compare(sets, q: q, k: k, v: v, shape: shape, device: device)
                // The lambda-50 sets again on plans that do not count skips: the same outputs,
                // at most the CPU's count.
                let uncounted = sets.filter { $0.1.pvThreshold[0] > 40 }.map { ($0.0 + " nocount", $0.1, $0.2) }
                rows += try compare(uncounted, q: q, k: k, v: v, shape: shape, device: device, countSkippedTiles: false)
            }
        }
        return rows
    }

    /// Many key blocks for few queries: 20,000 keys (313 blocks of 64, 157 of 128), so that the
    /// visit list spans more chunks of 32 key blocks than a thread block has warps; causal
    /// (rows see all but the last keys) and not, top-k 1 and 0.4 and CDF selection, both block
    /// shapes, fp16 and FP8 P.V, GQA.
    private func longKeyCases(device: CUDADevice) throws -> [CUDAAgreement] {
        var rng = CheckRandom(seed: seed &+ 0x10C)
        var rows: [CUDAAgreement] = []
        for d in [64, 128] {
            let shape = AttentionShape(batch: 1, heads: 2, kvHeads: 1, queryLength: 300, keyLength: 20_000, headDim: d)
            let (q, k, v) = Self.gaussianInputs(shape, keyShift: 0.5, rng: &rng)
            var sets: [(String, SpargeParameters, BlockMap?)] = []
            for (bq, bk) in [(128, 64), (64, 128)] {
                for causal in [false, true] {
                    for selection in [BlockSelection.topK(PerHead(1)), .topK(PerHead(0.4)), .cdf(PerHead(0.7))] {
                        var p = SpargeParameters.recommended
                        p.blockQ = bq
                        p.blockK = bk
                        p.causal = causal
                        p.selection = selection
                        sets += bothNumerics("long keys D\(d) \(bq)x\(bk)\(causal ? " causal" : "") \(selection)", p, headDim: d, device: device)
                    }
                }
            }
            rows += try compare(sets, q: q, k: k, v: v, shape: shape, device: device)
        }
        return rows
    }

    /// The sliding-window cases: windows of 1 key (each row sees itself), 37 (inside a block),
    /// 200 and 3000 (longer than the keys), bottom-right and top-left causal alignment with Nq
    /// != Nk (rows whose window holds no key), both block shapes, top-k 0.5, top-k 1 (the map
    /// without scores), CDF with the attention sink (masked by the window), fp16 and FP8 P.V,
    /// D 32, 64 and 128, GQA, K smoothing on; and a window over a caller's block map that marks
    /// every block (stage 2 must skip the blocks before the window itself).
    private func windowCases(device: CUDADevice) throws -> [CUDAAgreement] {
        var rng = CheckRandom(seed: seed &+ 0x3D0)
        var rows: [CUDAAgreement] = []
        // (D 32 runs the mma.sync kernel on every GPU; 64 and 128 the Hopper kernel on 9.0.)
        for (d, nq, nk) in [(64, 700, 900), (128, 650, 523), (32, 333, 410)] {
            let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: nq, keyLength: nk, headDim: d)
            let (q, k, v) = Self.gaussianInputs(shape, keyShift: 0.7, rng: &rng)
            var sets: [(String, SpargeParameters, BlockMap?)] = []
            for (n, window) in [1, 37, 200, 3000].enumerated() {
                let (bq, bk) = n % 2 == 0 ? (128, 64) : (64, 128)
                for alignment in [CausalAlignment.bottomRight, .topLeft] {
                    for selection in [BlockSelection.topK(PerHead(0.5)), .topK(PerHead(1)), .cdf(PerHead(0.8))] {
                        var p = SpargeParameters.recommended
                        p.blockQ = bq
                        p.blockK = bk
                        p.causal = true
                        p.causalAlignment = alignment
                        p.slidingWindow = window
                        p.selection = selection
                        if case .cdf = selection { p.attentionSink = true }
                        let label = "window \(window) D\(d) \(bq)x\(bk)\(alignment == .topLeft ? " top-left" : "") \(selection)\(p.attentionSink ? " sink" : "")"
                        sets += bothNumerics(label, p, headDim: d, device: device)
                    }
                }
            }
            // A caller's map that marks every block, under a window of 100 keys.
            var p = SpargeParameters.recommended
            p.causal = true
            p.slidingWindow = 100
            p.gpuReproduction.pvNumerics = .fp16
            let qBlocks = (nq + p.blockQ - 1) / p.blockQ, kBlocks = (nk + p.blockK - 1) / p.blockK
            let full = try BlockMap(batch: shape.batch, heads: shape.heads, queryBlocks: qBlocks, keyBlocks: kBlocks,
                                    bits: [UInt8](repeating: 1, count: shape.batch * shape.heads * qBlocks * kBlocks))
            sets.append(("window 100 D\(d) given full map", p, full))
            rows += try compare(sets, q: q, k: k, v: v, shape: shape, device: device)
        }
        return rows
    }

    /// The learned-sink cases (gpt-oss): per-head sink logits from below to above the scores,
    /// causal with Nq > Nk (the first rows see no key: zeros, the sink as the log-sum-exp),
    /// alone and with a sliding window of 200, K smoothing on and off, both block shapes, fp16
    /// and FP8 P.V, D 32 / 64 / 128.
    private func sinkLogitCases(device: CUDADevice) throws -> [CUDAAgreement] {
        var rng = CheckRandom(seed: seed &+ 0x51C)
        var rows: [CUDAAgreement] = []
        for d in [64, 128, 32] {
            let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 650, keyLength: 523, headDim: d)
            let (q, k, v) = Self.gaussianInputs(shape, keyShift: 0.7, rng: &rng)
            var sets: [(String, SpargeParameters, BlockMap?)] = []
            for (n, window) in [nil, 200].enumerated() {
                for smooth in [true, false] {
                    var p = SpargeParameters.recommended
                    (p.blockQ, p.blockK) = (n + (smooth ? 0 : 1)) % 2 == 0 ? (128, 64) : (64, 128)
                    p.causal = true
                    p.slidingWindow = window
                    p.smoothK = smooth
                    p.sinkLogits = [-5, 0.5, 3, 8]
                    let label = "sinks D\(d) \(p.blockQ)x\(p.blockK)\(window.map { " window \($0)" } ?? "")\(smooth ? "" : " no-smooth")"
                    sets += bothNumerics(label, p, headDim: d, device: device)
                }
            }
            rows += try compare(sets, q: q, k: k, v: v, shape: shape, device: device)
        }
        return rows
    }

    /// One golden file under several parameter sets, fp16 inputs as stored.
    private func goldenCase(path: String, device: CUDADevice) throws -> [CUDAAgreement] {
        let file = try SafeTensorsFile.read(path: path)
        let qt = try file.tensor("q"), kt = try file.tensor("k"), vt = try file.tensor("v")
        let shape = try RunCommand.shape(q: qt, k: kt, v: vt)
        // The golden files' metadata 'case' is JSON with the causal flag (ExactSemantics.md section 6).
        let meta = file.metadata["case"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let causal = meta?["causal"] as? Bool ?? false
        let q = try qt.floats().map { Float16($0) }, k = try kt.floats().map { Float16($0) }, v = try vt.floats().map { Float16($0) }
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var sets: [(String, SpargeParameters, BlockMap?)] = []
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp16
        p.causal = causal
        sets.append(("top-k 0.5 b128x64", p, nil))
        var cdf = SpargeParameters.preset(.sage2CDF, arch: .sm90)
        cdf.gpuReproduction.pvNumerics = .fp16
        cdf.causal = causal
        sets.append(("sage2-cdf sm90 gpu-rounding", cdf, nil))
        var tri = SpargeParameters.preset(.triton)
        tri.causal = causal
        sets.append(("triton preset", tri, nil))
        var sink = p
        sink.selection = .cdf(0.9)
        sink.simThreshold = 0.3
        sink.attentionSink = true
        sink.pvThreshold = 4
        sets.append(("cdf0.9 sink lambda4", sink, nil))
        // FP8 P.V (Ada and Hopper): the sage2 presets as the authors' sm90 and sm89 entry points
        // run them (blocks 64 x 128 and 128 x 64), where this GPU runs FP8 at those shapes.
        func fp8(_ q: SpargeParameters) -> Bool {
            SpargeCUDAPlan.supportsFP8(device: device, headDim: shape.headDim, blockQ: q.blockQ, blockK: q.blockK)
        }
        for arch in [GPUArch.sm90, .sm89] {
            for preset in [GPUPreset.sage2TopK, .sage2CDF] {
                var f = SpargeParameters.preset(preset, arch: arch)
                f.causal = causal
                if fp8(f) { sets.append(("\(preset.rawValue) \(arch.rawValue) fp8", f, nil)) }
            }
        }
        var f8 = p
        f8.gpuReproduction.pvNumerics = .fp8
        if fp8(f8) { sets.append(("top-k 0.5 b128x64 fp8", f8, nil)) }
        if let m = try? file.tensor("mask.b128x64_cdf"), m.shape.count == 4 {
            let map = try BlockMap(batch: m.shape[0], heads: m.shape[1], queryBlocks: m.shape[2], keyBlocks: m.shape[3], bits: try m.uint8s())
            sets.append(("given mask.b128x64_cdf", p, map))
        }
        return try compare(sets.map { ("\(base) \($0.0)", $0.1, $0.2) }, q: q, k: k, v: v, shape: shape, device: device)
    }

    /// A random shape, layout, element type and parameter set; on Ada and Hopper, where an FP8 kernel
    /// applies, the same case once more with FP8 P.V.
    private func randomCase(index: Int, rng: inout CheckRandom, device: CUDADevice) throws -> [CUDAAgreement] {
        let d = [32, 64, 96, 128][rng.int(0...3)]
        let group = [1, 2, 3][rng.int(0...2)]
        let kvHeads = rng.int(1...3), batch = rng.int(1...2)
        let nq = rng.int(1...700), nk = rng.uniform() < 0.5 ? nq : rng.int(1...700)
        let shape = AttentionShape(batch: batch, heads: kvHeads * group, kvHeads: kvHeads, queryLength: nq, keyLength: nk, headDim: d)
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp16
        p.causal = rng.uniform() < 0.4
        p.blockQ = [64, 128][rng.int(0...1)]
        p.blockK = [32, 64, 128][rng.int(0...2)]
        if rng.uniform() < 0.5 { p.selection = .cdf(PerHead(Float(0.5 + 0.45 * rng.uniform()))); p.simThreshold = PerHead(Float(rng.uniform() * 0.8)) }
        // Top-k 1 in some cases: the map then comes without the scores (fill_block_map).
        else { p.selection = .topK(PerHead(rng.uniform() < 0.25 ? 1 : Float(0.2 + 0.6 * rng.uniform()))) }
        p.pvThreshold = rng.uniform() < 0.5 ? PerHead(Float(1 + 10 * rng.uniform())) : 50
        p.smoothK = rng.uniform() < 0.8
        p.gpuReproduction.gpuRounding = rng.uniform() < 0.3
        p.attentionSink = rng.uniform() < 0.2
        if p.causal && rng.uniform() < 0.3 { p.causalAlignment = .topLeft }
        let nhd = rng.uniform() < 0.4
        var type = [ElementType.float32, .float16, .bfloat16][rng.int(0...2)]
        // Diagnosis: every random case in one element type (SPARGE_CHECK_TYPE=float32|float16|bfloat16).
        if let forced = ProcessInfo.processInfo.environment["SPARGE_CHECK_TYPE"].flatMap(ElementType.init(rawValue:)) { type = forced }
        // Structured data (a few directions shared by neighbouring tokens) so selection matters.
        func tensor(heads: Int, tokens: Int, shift: Float) -> [Float] {
            var x = [Float](repeating: 0, count: batch * heads * tokens * d)
            for i in 0..<x.count { x[i] = rng.gaussian() * 0.5 + shift * sin(Float(i / d / 16) + Float(i % d)) }
            // Diagnosis: the same cases with every value fp16-representable (SPARGE_CHECK_HALF_VALUES=1).
            if ProcessInfo.processInfo.environment["SPARGE_CHECK_HALF_VALUES"] == "1" { x = x.map { Float(Float16($0)) } }
            return x
        }
        let q = tensor(heads: shape.heads, tokens: nq, shift: 1), k = tensor(heads: kvHeads, tokens: nk, shift: 1.5)
        let v = tensor(heads: kvHeads, tokens: nk, shift: 0)
        func layout(_ heads: Int, _ tokens: Int) -> TensorLayout? { nhd ? .nhd(heads: heads, tokens: tokens, headDim: d) : nil }
        // Reorder HND data into NHD buffers when asked (the same tensor in the other layout).
        func arranged(_ x: [Float], heads: Int, tokens: Int) -> [Float] {
            guard nhd else { return x }
            var y = x
            for b in 0..<batch { for h in 0..<heads { for t in 0..<tokens { for c in 0..<d {
                y[((b * tokens + t) * heads + h) * d + c] = x[((b * heads + h) * tokens + t) * d + c]
            } } } }
            return y
        }
        let qa = arranged(q, heads: shape.heads, tokens: nq), ka = arranged(k, heads: kvHeads, tokens: nk), va = arranged(v, heads: kvHeads, tokens: nk)
        let label = "random \(index): B\(batch) H\(shape.heads)/\(kvHeads) \(nq)x\(nk) D\(d) \(p.blockQ)x\(p.blockK)\(p.causal ? (p.causalAlignment == .topLeft ? " causal top-left" : " causal") : "")\(nhd ? " nhd" : "") \(type.rawValue)"
        func run(_ body: (AttentionInput, AttentionInput, AttentionInput) throws -> CUDAAgreement) throws -> CUDAAgreement {
            switch type {
            case .float32:
                return try qa.withUnsafeBufferPointer { q in try ka.withUnsafeBufferPointer { k in try va.withUnsafeBufferPointer { v in
                    try body(AttentionInput(q, layout: layout(shape.heads, nq)), AttentionInput(k, layout: layout(kvHeads, nk)), AttentionInput(v, layout: layout(kvHeads, nk)))
                } } }
            case .float16:
                let (q16, k16, v16) = (qa.map { Float16($0) }, ka.map { Float16($0) }, va.map { Float16($0) })
                return try q16.withUnsafeBufferPointer { q in try k16.withUnsafeBufferPointer { k in try v16.withUnsafeBufferPointer { v in
                    try body(AttentionInput(q, layout: layout(shape.heads, nq)), AttentionInput(k, layout: layout(kvHeads, nk)), AttentionInput(v, layout: layout(kvHeads, nk)))
                } } }
            case .bfloat16:
                let (qb, kb, vb) = (qa.map { BFloat16($0) }, ka.map { BFloat16($0) }, va.map { BFloat16($0) })
                return try qb.withUnsafeBufferPointer { q in try kb.withUnsafeBufferPointer { k in try vb.withUnsafeBufferPointer { v in
                    try body(AttentionInput(q, layout: layout(shape.heads, nq)), AttentionInput(k, layout: layout(kvHeads, nk)), AttentionInput(v, layout: layout(kvHeads, nk)))
                } } }
            }
        }
        var cases = [(label, p)]
        if SpargeCUDAPlan.supportsFP8(device: device, headDim: d, blockQ: p.blockQ, blockK: p.blockK) {
            var f = p
            f.gpuReproduction.pvNumerics = .fp8
            cases.append((label + " fp8", f))
        }
        return try cases.map { (label, p) in
            try run { q, k, v in
                try CUDAAgreementCheck.compare(label: label, q: q, k: k, v: v, shape: shape, parameters: p, device: device)
            }
        }
    }
    #endif
}

/// The check's random cases: the library's SplitMix64 plus a bounded integer.
typealias CheckRandom = VideoLikeWorkload.SplitMix64

extension VideoLikeWorkload.SplitMix64 {
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
}
