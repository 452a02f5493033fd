#if CUDA
/// The compiled kernel programs: one for the preparation kernels, one per attention
/// configuration (head dim, block sizes), each compiled once per process.
enum Kernels {
    /// Stage 1 on the CPU never fuses its multiply-adds (the same rounding at every CPU kernel
    /// level and on every platform); the preparation kernels do the same so that stage 1
    /// matches bit for bit.
    static let cpuFusesMultiplyAdd = false

    static let prepareOptions = ["--fmad=false", "-DSPARGE_FMA=\(cpuFusesMultiplyAdd ? 1 : 0)", "--std=c++17"]

    /// A preparation kernel (compiled with the whole preparation program on first use; later
    /// calls are a dictionary lookup by name: a call launches up to a dozen of them).
    static func prepare(_ device: CUDADevice, _ name: String) throws -> CUhandle {
        if let f = device.preparationFunction(name) { return f }
        let f = try device.function(name, program: "sparge_prepare", source: PrepareSource.text,
                                    options: prepareOptions, sharedBytes: device.maxSharedBytes)
        device.rememberPreparationFunction(name, f)
        return f
    }

    /// A stage-2 kernel configuration: the program's name and NVRTC options, and its block size.
    struct AttentionConfiguration {
        let program: String
        let options: [String]
        let threads: Int

        /// Defaults measured on an H100; `SPARGE_CUDA_*` variables override them (for tuning
        /// on other GPUs): STAGES (cp.async depth), MT (16-row tiles per warp), MIN_BLOCKS
        /// (thread blocks per SM the register budget must allow), K_LDSM, EXP_F16. `fp8`: P.V in
        /// e4m3 (`mma.sync` m16n8k32, compute capability 8.9 and later; head dim 64 or 128, key
        /// blocks a multiple of 32: the layout of `prep_values_t8`).
        init(headDim d: Int, blockQ: Int, blockK: Int, fp8: Bool = false) {
            let stages = Kernels.environmentInt("SPARGE_CUDA_STAGES", in: 2...4) ?? 2
            // Two row tiles per warp halve the shared-memory traffic per mma; their registers
            // fit only with small tiles.
            let mtDefault = blockQ % 32 == 0 && d <= 64 && blockK <= 64 ? 2 : 1
            var mt = Kernels.environmentInt("SPARGE_CUDA_MT", in: 1...2) ?? mtDefault
            if blockQ % (16 * mt) != 0 { mt = 1 }
            let threads = blockQ / (16 * mt) * 32
            let minDefault = mt == 2 ? max(1, 256 / threads) : (d > 64 ? (blockQ <= 64 ? 2 : 1) : (blockQ <= 64 ? 3 : 2))
            let minBlocks = Kernels.environmentInt("SPARGE_CUDA_MIN_BLOCKS", in: 1...8) ?? minDefault
            let halfExp = Kernels.environmentInt("SPARGE_CUDA_EXP_F16", in: 0...1) ?? 1
            let kLdsm = Kernels.environmentInt("SPARGE_CUDA_K_LDSM", in: 0...1) ?? (mt > 1 ? 1 : 0)
            program = "sparge_attention_d\(d)_q\(blockQ)_k\(blockK)_s\(stages)_t\(mt)_m\(minBlocks)_e\(halfExp)_l\(kLdsm)\(fp8 ? "_v8" : "")"
            options = ["-DHEAD_DIM=\(d)", "-DBLOCK_Q=\(blockQ)", "-DBLOCK_K=\(blockK)", "-DSTAGES=\(stages)", "-DMT=\(mt)",
                       "-DMIN_BLOCKS=\(minBlocks)", "-DEXP_F16=\(halfExp)", "-DK_LDSM=\(kLdsm)", "-DPV_FP8=\(fp8 ? 1 : 0)", "--std=c++17"]
            self.threads = threads
            sharedBytes = stages * (blockK * (d + 16) + (fp8 ? blockK * d : blockK * (d + 8) * 2))
        }

        /// Shared memory for the K/V pipeline; the kernel adds per-key-block and per-warp state.
        private let sharedBytes: Int
        func sharedBytes(keyBlocks: Int) -> Int { sharedBytes + keyBlocks * 12 + 2 * (threads / 32) * 4 + 8 }
    }

    /// Whether the `mma.sync` kernel takes FP8 P.V at this shape: V^T from `prep_values_t8`
    /// (64 channels per thread block, 32 keys per step).
    static func fp8AttentionShape(headDim d: Int, blockK: Int) -> Bool { (d == 64 || d == 128) && blockK % 32 == 0 }

    /// The stage-2 kernel for a configuration, its dynamic shared memory for `keyBlocks` and its threads per block.
    static func attention(_ device: CUDADevice, headDim d: Int, blockQ: Int, blockK: Int, keyBlocks: Int,
                          fp8: Bool = false) throws -> (CUhandle, shared: Int, threads: Int) {
        let c = AttentionConfiguration(headDim: d, blockQ: blockQ, blockK: blockK, fp8: fp8)
        let shared = c.sharedBytes(keyBlocks: keyBlocks)
        guard shared <= device.maxSharedBytes else {
            throw CUDAError.unsupported("\(keyBlocks) key blocks need \(shared) bytes of shared memory, the device has \(device.maxSharedBytes); use larger key blocks")
        }
        let f = try device.function("sparse_attention", program: c.program, source: AttentionSource.text,
                                    options: c.options, sharedBytes: device.maxSharedBytes)
        return (f, shared, c.threads)
    }

    /// The Hopper (sm_90a, `wgmma`) stage-2 kernel, where it applies: compute capability 9.0,
    /// head dim 64 or 128, query blocks of 64 or 128 rows (a warpgroup per 64), key blocks of 64
    /// or 128; `SPARGE_CUDA_WGMMA=0` turns it off (the `mma.sync` kernel then runs). P.V in
    /// fp16 or, with `fp8`, in e4m3 (SageAttention2's numerics, V^T from `prep_values_t8`).
    struct HopperConfiguration {
        let program: String
        let options: [String]
        let threads: Int
        private let tiles: Int

        /// The configuration on `device`: nil when it is not a Hopper GPU or the kernel is turned off.
        init?(device: CUDADevice, headDim d: Int, blockQ: Int, blockK: Int, fp8: Bool = false) {
            guard device.architecture == 90, Kernels.environmentInt("SPARGE_CUDA_WGMMA", in: 0...1) != 0 else { return nil }
            self.init(headDim: d, blockQ: blockQ, blockK: blockK, fp8: fp8)
        }

        /// The configuration for a shape, whatever the device (nil for shapes the kernel does not take).
        init?(headDim d: Int, blockQ: Int, blockK: Int, fp8: Bool = false) {
            guard d == 64 || d == 128, blockQ == 64 || blockQ == 128, blockK == 64 || blockK == 128 else { return nil }
            threads = blockQ * 2
            // D=128 with 128 x 64 blocks: Q read by wgmma from shared memory, which frees 16
            // registers per thread, and two CTAs per SM running the serial loop (128 registers,
            // no spills with FP8, 44 bytes with fp16) beat one CTA with Q in registers and the
            // pipelined loop (194-200 registers) on the H200 (session 13, kernel ms at N=16384,
            // top-k 1 / 0.5 / 0.25: FP8 4.68 / 2.45 / 1.33 -> 3.52 / 1.83 / 0.97, fp16 4.70 / 2.44 /
            // 1.31 -> 3.93 / 2.05 / 1.10; N=32768 FP8 18.1 -> 13.5 dense). At D=64 Q in shared
            // memory is 2-4% slower (the kernel already fits two CTAs there).
            let wide = d == 128 && threads == 256 && blockK == 64
            let pipeline = Kernels.environmentInt("SPARGE_CUDA_WG_PIPELINE", in: 0...1) ?? (wide ? 0 : 1)
            // One tile copied ahead (two stages fewer) for FP8 with 128 x 64 blocks: 1-2% faster at
            // D=64 and D=128 than two (H200, session 18, three interleaved rounds, kernel ms dense /
            // top-k 0.5 at N=16384 and 32768: D=64 2.396-2.412 / 1.245-1.246, 9.34-9.41 / 4.76-4.80 ->
            // 2.366-2.372 / 1.228-1.231, 9.23 / 4.70; D=128, with SYNC2 off below, 3.110-3.118 /
            // 1.626-1.627, 12.04-12.11 / 6.18-6.19 -> 3.067-3.090 / 1.606-1.616, 11.85 / 6.09).
            let lookahead = Kernels.environmentInt("SPARGE_CUDA_WG_LOOKAHEAD", in: 1...3) ?? (fp8 && threads == 256 && blockK == 64 ? 1 : 2)
            // Two blocks per SM only where ptxas (NVRTC 12.9) fits the kernel in 128 registers
            // without spills: D=64 with 128-key tiles spills (280 bytes of stack, 2.69 ms
            // against 1.47 at 128x64 on the H100).
            let minDefault = threads == 128 || (d == 64 && blockK == 64) || wide ? 2 : 1
            let minBlocks = Kernels.environmentInt("SPARGE_CUDA_MIN_BLOCKS", in: 1...8) ?? minDefault
            let halfExp = Kernels.environmentInt("SPARGE_CUDA_EXP_F16", in: 0...1) ?? 0
            let qShared = Kernels.environmentInt("SPARGE_CUDA_WG_Q_SMEM", in: 0...1) ?? (wide ? 1 : 0)
            // FP8 two-level accumulation (SPARGE_CUDA_FP8_TWO_LEVEL=1): closer to the CPU
            // emulation (relative L1 1.6e-3 -> 3.1e-4 on a golden case) but 10% slower at D=64
            // and 6% at D=128 (H200, session 9), and it spills in today's kernel: opt-in.
            let twoLevel = fp8 ? Kernels.environmentInt("SPARGE_CUDA_FP8_TWO_LEVEL", in: 0...1) ?? 0 : 0
            // Warps released from the per-tile __syncthreads (per-stage "empty" mbarriers), and
            // FlashAttention-3's ping-pong of the two warpgroups (128-row query blocks).
            // Both measured slower on the H200 (session 10: 2-7%), so off unless asked for.
            let decouple = Kernels.environmentInt("SPARGE_CUDA_WG_DECOUPLE", in: 0...1) ?? 0
            let pingPong = Kernels.environmentInt("SPARGE_CUDA_WG_PINGPONG", in: 0...1) ?? 0
            // The pipelined loop two tiles per iteration (no register copies of P between tiles):
            // FP8 only, where P is 8 registers; with fp16's 16 at D=64 ptxas serializes the wgmma.
            // H200, session 14, kernel ms at N=16384 D=64 FP8, top-k 1 / 0.5 / 0.25: 2.74 / 1.40 /
            // 0.74 -> 2.61 / 1.34 / 0.71.
            let unroll2 = Kernels.environmentInt("SPARGE_CUDA_WG_UNROLL2", in: 0...1) ?? (fp8 && pipeline == 1 ? 1 : 0)
            // S converted from fresh int32 accumulators (I2FP, one instruction per score) instead of
            // accumulators started at the bit pattern of 1.5 * 2^23 (a move per score) with the bias
            // taken off (an add): 1-3% faster, except fp16 at D=128, where the conversion's registers
            // cost spills (20 -> 68 bytes) and 2%.
            let intToFloat = Kernels.environmentInt("SPARGE_CUDA_WG_I2F", in: 0...1) ?? (fp8 || d == 64 ? 1 : 0)
            // The per-tile __syncthreads and the refill every second tile (one more stage), with
            // 128 x 64 blocks at D=64 (H200, session 16, kernel ms at N=16384 / 32768 dense: FP8 2.49 /
            // 9.70-9.80 -> 2.39-2.40 / 9.34-9.41; fp16 2.67 / 10.47 -> 2.61 / 10.18). At D=128 it was
            // equal for FP8 with two tiles ahead, and 2% slower with one (session 18: 3.14 / 12.16
            // against 3.07 / 11.85); fp16 at D=128 is 36% slower with it (the extra stage of fp16
            // V^T leaves room for one CTA per SM), and with 128-key tiles it can exceed the shared memory.
            let syncTwo = decouple == 1 ? 0 : Kernels.environmentInt("SPARGE_CUDA_WG_SYNC2", in: 0...1)
                ?? (threads == 256 && blockK == 64 && d == 64 ? 1 : 0)
            // FP8: the row sums l by wgmma from rows of e4m3 ones instead of 32 fp32 additions
            // per thread and tile. 1: eight ones rows below V^T, so the P.V itself sums P (as
            // the fp16 kernel does; D=64 128 x 64: 240 SASS instructions a tile on a warp's
            // path instead of 270.5, no spills), in the running FP8 accumulator, which keeps
            // about 13 mantissa bits (SageAttention2's FP22) and so may bias l on long rows.
            // 2: a separate m64n8k32 per P.V step into fresh registers, added to l in fp32 each
            // tile. Opt-in: either way l sums the rounded P (the CPU emulation and the authors'
            // kernels sum the unrounded one: up to 2% apart on rows of a few keys). H100, session
            // 29: the D=64 kernel 1.3-3.3% faster, D=128 -1.4 to +0.3%; the LSE up to 0.027 off.
            let sumsMMA = fp8 ? Kernels.environmentInt("SPARGE_CUDA_FP8_SUMS_MMA", in: 0...2) ?? 0 : 0
            // FP8: the row sums in the rescale's condition, so that ptxas interleaves them with the
            // exponentials before the branch. Pipelined loop only (H200, session 21, three
            // interleaved rounds, kernel ms dense / top-k 0.5: D=64 N=16384 2.335-2.343 /
            // 1.205-1.211 -> 2.279-2.283 / 1.178-1.182, N=32768 9.116-9.126 / 4.645-4.650 ->
            // 8.879-8.884 / 4.532-4.541); the serial loop at D=128 already interleaves them and
            // loses 1.5-3% with it.
            let sumsGate = sumsMMA != 0 ? 0 : Kernels.environmentInt("SPARGE_CUDA_WG_SUMS_GATE", in: 0...1) ?? (fp8 ? pipeline : 0)
            // Unmasked tiles: the row maxima taken of the int32 sums by a tree of three-input
            // maxima (VIMNMX3), then converted, instead of fmaxf over the converted scores (same
            // maxima; 16 instructions instead of 30 per thread and 64-key tile, one level less deep,
            // not waiting for the conversions). H200, session 25, three interleaved rounds, kernel
            // ms dense / top-k 0.5, FP8: D=64 N=16384 2.259-2.276 / 1.168-1.180 -> 2.219-2.236 /
            // 1.149-1.150, N=32768 8.803-8.807 / 4.492-4.495 -> 8.645-8.646 / 4.414-4.415; D=128
            // 0.3-1% faster; fp16 D=64 2.591 -> 2.554-2.561.
            let intMax = Kernels.environmentInt("SPARGE_CUDA_WG_IMAX3", in: 0...1) ?? 1
            // Lambda above 40, without SYNC2: the filter only counts the tiles it would skip,
            // which it cannot change (HopperAttentionSource, COUNT_FILTER); 0 keeps the vote.
            // H100, session 30, three interleaved rounds, kernel ms dense / top-k 0.5, FP8 D=128:
            // N=16384 2.874-2.908 / 1.508-1.523 -> 2.852-2.881 / 1.484-1.486, N=32768
            // 11.08-11.13 / 5.69-5.70 -> 10.89-10.92 / 5.61; fp16 D=128 0.2-1.2% (two rounds).
            let countFilter = Kernels.environmentInt("SPARGE_CUDA_WG_COUNT_FILTER", in: 0...1) ?? 1
            // With the list by every warp, thread 0 issues the first tiles' copies from the
            // chunks' ballots right after the first barrier, so that their latency overlaps the
            // list's second phase (H200, session 34, two interleaved rounds, FP8 128 x 64, kernel
            // median ratio 1 / 0, top-k 1 / 0.5 / 0.25: D=64 N=16384 0.995 / 0.996 / 0.998, N=32768
            // 0.998 / 0.998 / 0.996; D=128 0.979 / 0.986 / 0.990 and 0.981 / 0.983 / 0.985). With
            // 64 x 128 blocks (H100, session 35, two rounds, N=16384, same ratio): fp16 D=64 0.984
            // / 0.994 / 1.003, D=128 0.975 / 0.970 / 0.974; FP8 D=128 0.999 / 0.993 / 0.996, D=64
            // 1.006 / 1.006 / 1.006 and, in a second run of three rounds, 0.998 / 0.985 / 1.014
            // (within the noise: the same program against itself moved by up to 1.3% there).
            // Off with the block shapes not measured (64 x 64, 128 x 128).
            let measured = (threads == 256 && blockK == 64) || (threads == 128 && blockK == 128)
            let firstCopies = Kernels.environmentInt("SPARGE_CUDA_WG_FIRST_COPIES", in: 0...1) ?? (measured ? 1 : 0)
            // The count alone (FILTER=2) by per-warp bit masks also where a barrier starts every
            // step, not on that barrier (H100, session 36, two rounds, FP8 D=128 128 x 64, kernel
            // ratio bits / barrier, top-k 1 / 0.5 / 0.25: N=16384 0.984 / 0.985 / 0.974, N=32768
            // 0.986 / 0.993 / 0.984; D=64, the same program either way, 0.995-1.005).
            let countBits = Kernels.environmentInt("SPARGE_CUDA_WG_COUNT_BITS", in: 0...1) ?? 1
            // Diagnosis: each CTA's phases stamped into a buffer (SpargeCUDAPlan writes it to
            // SPARGE_CUDA_PROBE_FILE; Scripts/probe_times.py reads it).
            let probeTimes = Kernels.environmentInt("SPARGE_CUDA_WG_PROBE_TIMES", in: 0...1) ?? 0
            // fp16 and bf16 outputs staged in shared memory and written by 16-byte coalesced
            // stores instead of 2-byte stores over 8 rows each: the CTA's epilogue 4.0 -> 1.7 us
            // at D=64 and 8.9 -> 2.4 us at D=128 (per-CTA stamps, PROBE_TIMES), kernel median
            // ratio on -> off (H100, session 37, FP8 128 x 64, three interleaved rounds, top-k
            // 0.25 / 0.5 / 1): D=64 N=16384 0.960 / 0.976 / 0.980, N=32768 0.980 / 0.989 / 1.000;
            // D=128 0.930 / 0.978 / 0.985 and 0.990 / 0.999 / 1.004.
            let stagedOutput = Kernels.environmentInt("SPARGE_CUDA_WG_EPI_SMEM", in: 0...1) ?? 1
            // With Q_SMEM: the query block's loads issued before the marks' (stored after the
            // ballots), so that their round trips overlap: the first list phase 2.43 -> 2.04 us a
            // CTA at D=128 (H100, session 37), kernel ratio on / off 0.986 / 0.995 / 0.996 (FP8
            // N=16384 top-k 0.25 / 0.5 / 1, two rounds); the loop's SASS is the same.
            let earlyQuery = qShared == 1 ? Kernels.environmentInt("SPARGE_CUDA_WG_Q_EARLY", in: 0...1) ?? 1 : 0
            self.probeTimes = probeTimes == 1
            program = "sparge_attention_wg_d\(d)_q\(blockQ)_k\(blockK)_m\(minBlocks)_p\(pipeline)_l\(lookahead)_e\(halfExp)_v\(fp8 ? 8 : 16)_a\(twoLevel)_c\(decouple)_g\(pingPong)_s\(qShared)_u\(unroll2)_i\(intToFloat)\(syncTwo == 1 ? "_y2" : "")\(sumsGate == 1 ? "_t1" : "")\(intMax == 1 ? "" : "_x0")\(sumsMMA == 0 ? "" : "_r\(sumsMMA)")\(countFilter == 1 ? "" : "_f0")\(firstCopies == 1 ? "_fc" : "")\(countBits == 1 ? "" : "_cb0")\(probeTimes == 1 ? "_pt" : "")\(stagedOutput == 1 ? "" : "_es0")\(qShared == 1 && earlyQuery == 0 ? "_qe0" : "")"
            options = ["-DHEAD_DIM=\(d)", "-DBLOCK_Q=\(blockQ)", "-DBLOCK_K=\(blockK)", "-DMIN_BLOCKS=\(minBlocks)",
                       "-DPIPELINE=\(pipeline)", "-DLOOKAHEAD=\(lookahead)", "-DEXP_F16=\(halfExp)", "-DPV_FP8=\(fp8 ? 1 : 0)", "-DFP8_TWO_LEVEL=\(twoLevel)",
                       "-DDECOUPLE=\(decouple)", "-DPINGPONG=\(pingPong)", "-DQ_SMEM=\(qShared)",
                       "-DUNROLL2=\(unroll2)", "-DI2F=\(intToFloat)", "-DSYNC2=\(syncTwo)", "-DSUMS_GATE=\(sumsGate)", "-DIMAX3=\(intMax)", "-DFP8_SUMS_MMA=\(sumsMMA)",
                       "-DCOUNT_FILTER=\(countFilter)", "-DFIRST_COPIES=\(firstCopies)", "-DCOUNT_BITS=\(countBits)", "-DPROBE_TIMES=\(probeTimes)", "-DEPI_SMEM=\(stagedOutput)", "-DQ_EARLY=\(earlyQuery)", "--std=c++17"]
            // Q (with Q_SMEM), then per stage: the K tile, V^T (fp16 with its ones rows, or e4m3,
            // with ones rows for FP8_SUMS_MMA=1), the stage's two mbarriers; then one tile of
            // ones for FP8_SUMS_MMA=2.
            let stages = lookahead + 1 + pipeline + syncTwo
            tiles = qShared * blockQ * d + stages * (blockK * d + (fp8 ? (d + (sumsMMA == 1 ? 8 : 0)) * blockK : (d + 8) * blockK * 2) + 16)
                + (sumsMMA == 2 ? blockK * 8 : 0)
            voteSets = max(2, stages)
            countsAboveNoop = countFilter == 1
            specializesUnmasked = Kernels.environmentInt("SPARGE_CUDA_WG_MASK_CODE", in: 1...1) == nil
        }
        /// Whether the kernel only counts above lambda 40 (COUNT_FILTER), so that FILTER=2 applies.
        let countsAboveNoop: Bool
        /// Whether calls without masked tiles get the program without the masked path
        /// (SPARGE_CUDA_WG_MASK_CODE=1 keeps that path in every call's program, for A/B runs).
        let specializesUnmasked: Bool
        private let voteSets: Int
        /// Whether the kernel stamps its CTAs' phases (PROBE_TIMES).
        let probeTimes: Bool

        func sharedBytes(keyBlocks: Int) -> Int { tiles + keyBlocks * 12 + voteSets * (threads / 32) * 4 + (keyBlocks + 31) / 32 * (8 + threads / 8) }
    }

    /// What the Hopper kernel's lambdas ask of its filter code (its `FILTER`). Code a plan
    /// never runs still costs: left out, the kernel was 2.9-5.5% faster with no filter and 2-3%
    /// (D=64) and 1.3-1.7% (D=128) faster counting at lambda 50 (H100, session 36, FP8 128 x 64,
    /// N 16384 and 32768, top-k 1 / 0.5 / 0.25, two interleaved rounds, kernel medians). Counting
    /// by the barrier at D=64 too (SYNC2=0) was 1.9-3.2% slower than the general program.
    enum FilterCode: Int {
        /// Every lambda infinite: no filter code.
        case none = 0
        /// The vote, and the count above lambda 40.
        case full = 1
        /// Every finite lambda above 40: the count alone.
        case countOnly = 2

        /// The code `lambdas` (one a head, as uploaded) need. SPARGE_CUDA_WG_FILTER_CODE=1 asks
        /// for the full code whatever they are (A/B runs).
        init(lambdas: [Float], countsAboveNoop: Bool) {
            if Kernels.environmentInt("SPARGE_CUDA_WG_FILTER_CODE", in: 1...1) != nil { self = .full; return }
            let finite = lambdas.filter { $0.magnitude < .infinity }
            if finite.isEmpty { self = .none }
            else if countsAboveNoop && finite.allSatisfy({ $0 > Kernels.filterNoopThreshold }) { self = .countOnly }
            else { self = .full }
        }

        /// The program key's suffix and the compiler options of this filter code.
        var programSuffix: String {
            switch self {
            case .none: return "_nf"
            case .full: return ""
            case .countOnly: return "_co"
            }
        }
        var options: [String] { self == .full ? [] : ["-DFILTER=\(rawValue)"] }
    }

    /// The Hopper kernel for `keyBlocks` key blocks with the filter code `filter`; `unmasked`:
    /// without the masked path (ANY_MASKED=0), for calls where no tile needs a mask (4.7-6.7% less
    /// kernel time counting at lambda 50 and 2.5-4.3% without counts on the H100 in session 36,
    /// same runs as above; its SASS is about half the size at D=64).
    static func hopperAttention(_ device: CUDADevice, _ c: HopperConfiguration, keyBlocks: Int, filter: FilterCode = .full,
                                unmasked: Bool = false, window: Bool = false, sinks: Bool = false) throws -> (CUhandle, shared: Int) {
        let shared = c.sharedBytes(keyBlocks: keyBlocks)
        guard shared <= device.maxSharedBytes else {
            throw CUDAError.unsupported("\(keyBlocks) key blocks need \(shared) bytes of shared memory, the device has \(device.maxSharedBytes); use larger key blocks")
        }
        let suffix = filter.programSuffix + (unmasked ? "_um" : "") + (window ? "_sw" : "") + (sinks ? "_sk" : "")
        let options = c.options + filter.options + (unmasked ? ["-DANY_MASKED=0"] : []) + (window ? ["-DWINDOW=1"] : [])
            + (sinks ? ["-DSINKS=1"] : [])
        let f = try device.function("sparse_attention_wg", program: c.program + suffix, source: HopperAttentionSource.text,
                                    options: options, architectureSuffix: "a", sharedBytes: device.maxSharedBytes)
        return (f, shared)
    }

    /// The Hopper kernel's FILTER_NOOP_LAMBDA: above this threshold (base 2) skipping a tile
    /// cannot change the output (HopperAttentionSource derives why).
    static let filterNoopThreshold: Float = 40

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
        let e = try device.events(3, flags: 0)
        start = e[0]; middle = e[1]; end = e[2]
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

    /// One NVRTC compilation: a kernel program with the options of one configuration or variant.
    public struct Program: Sendable, CustomStringConvertible {
        /// The program's name, with the variant's define appended for a Hopper variant (e.g.
        /// `..._PINGPONG_1`).
        public let name: String
        /// The compute capability it is compiled for, e.g. 90.
        public let architecture: Int
        let source: String
        let suffix: String
        let options: [String]
        public var description: String { "\(name) sm_\(architecture)\(suffix)" }
    }

    /// Every program ``compileAll(architecture:)`` compiles for `sm_<architecture>`: the
    /// preparation, each attention configuration (FP8 too from 8.9 on), and on 9.0 the Hopper
    /// programs of four block shapes with, at the default 128 x 64 blocks, each compile-time
    /// variant the kernel keeps (so a variant's path cannot rot unseen).
    public static func programs(architecture: Int) -> [Program] {
        var list = [Program(name: "sparge_prepare", architecture: architecture, source: PrepareSource.text, suffix: "",
                            options: ["--fmad=false", "-DSPARGE_FMA=\(Kernels.cpuFusesMultiplyAdd ? 1 : 0)", "--std=c++17"])]
        for c in configurations {
            // FP8 P.V where the GPU has e4m3 mma (8.9 and later) and the shape allows it.
            for fp8 in [false, true] where !fp8 || (architecture >= 89 && Kernels.fp8AttentionShape(headDim: c.headDim, blockK: c.blockK)) {
                let config = Kernels.AttentionConfiguration(headDim: c.headDim, blockQ: c.blockQ, blockK: c.blockK, fp8: fp8)
                list.append(Program(name: config.program, architecture: architecture, source: AttentionSource.text, suffix: "",
                                    options: config.options))
            }
        }
        guard architecture == 90 else { return list }
        for (d, bq, bk) in [(64, 128, 64), (128, 128, 64), (64, 64, 128), (128, 64, 128)] {
            for fp8 in [false, true] {
                // The same program and options as a run on a Hopper GPU.
                guard let config = Kernels.HopperConfiguration(headDim: d, blockQ: bq, blockK: bk, fp8: fp8) else { continue }
                list.append(Program(name: config.program, architecture: 90, source: HopperAttentionSource.text, suffix: "a",
                                    options: config.options))
            }
        }
        // The other variants compile too, at the default blocks (128 x 64): FP8 two-level
        // accumulation, ping-pong, the per-stage empty barriers instead of the per-tile
        // __syncthreads, the loop two tiles per iteration and the scores by conversion: on with
        // fp16, off with FP8 (whose defaults have them on), so both paths of each compile; the
        // float maxima (the integer ones by default) with both; the FP8 row sums by the P.V; the
        // programs without the filter's code, with the count alone, and without the masked path;
        // the old epilogue's stores, Q's loads after the marks (Q_SMEM), the per-CTA stamps, and
        // the programs of sliding windows and of learned sinks.
        // (At all four shapes they took CI's step 4 minutes on two cores; the 64 x 128 shapes of
        // the sage2 presets compile above with their own options.)
        let variants = [(true, "-DFP8_TWO_LEVEL=1"), (false, "-DPINGPONG=1"), (true, "-DPINGPONG=1"), (false, "-DDECOUPLE=1"), (true, "-DDECOUPLE=1"),
                        (false, "-DQ_SMEM=1"), (true, "-DQ_SMEM=1"), (false, "-DUNROLL2=1"), (true, "-DUNROLL2=0"),
                        (false, "-DI2F=1"), (true, "-DI2F=0"), (false, "-DSYNC2=1"), (true, "-DSYNC2=0"),
                        (false, "-DIMAX3=0"), (true, "-DIMAX3=0"), (true, "-DFP8_SUMS_MMA=1"), (true, "-DFP8_SUMS_MMA=2"),
                        (false, "-DFILTER=0"), (true, "-DFILTER=0"), (false, "-DFILTER=2"), (true, "-DFILTER=2"),
                        (false, "-DANY_MASKED=0"), (true, "-DANY_MASKED=0"), (false, "-DEPI_SMEM=0"), (true, "-DEPI_SMEM=0"),
                        (false, "-DQ_EARLY=0"), (true, "-DQ_EARLY=0"), (false, "-DPROBE_TIMES=1"), (true, "-DPROBE_TIMES=1"),
                        (false, "-DWINDOW=1"), (true, "-DWINDOW=1"), (false, "-DSINKS=1"), (true, "-DSINKS=1")]
        for d in [64, 128] {
            for (fp8, define) in variants {
                guard let config = Kernels.HopperConfiguration(headDim: d, blockQ: 128, blockK: 64, fp8: fp8) else { continue }
                let name = define.dropFirst(2).split(separator: "=")[0]
                let options = config.options.contains { $0.hasPrefix("-D\(name)=") }
                    ? config.options.map { $0.hasPrefix("-D\(name)=") ? define : $0 } : config.options + [define]
                let variant = config.program + "_" + define.dropFirst(2).replacingOccurrences(of: "=", with: "_")
                list.append(Program(name: variant, architecture: 90, source: HopperAttentionSource.text, suffix: "a", options: options))
            }
        }
        return list
    }

    /// Compiles one program to a CUBIN and returns its size in bytes.
    public static func compile(_ program: Program) throws -> Int {
        try NVRTC().compile(source: program.source, name: program.name + ".cu", arch: program.architecture,
                            suffix: program.suffix, options: program.options).count
    }

    /// Compiles every program of ``programs(architecture:)`` and returns the CUBIN size of each.
    public static func compileAll(architecture: Int) throws -> [(program: String, bytes: Int)] {
        try programs(architecture: architecture).map { ($0.name, try compile($0)) }
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
