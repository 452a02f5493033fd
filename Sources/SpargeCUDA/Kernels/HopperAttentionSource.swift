#if CUDA
/// CUDA C of stage 2 for Hopper (sm_90a): the same algorithm and numerics as
/// ``AttentionSource``, with the products on warpgroup tensor-core instructions (`wgmma`):
/// each warpgroup (4 warps) owns 64 query rows; Q.K^T is `wgmma` s8 (Q from registers, or with
/// `Q_SMEM`, the default at D=128, from shared memory in the K tile's layout; the K tile from
/// shared memory), P.V is `wgmma` f16 (P from registers, V^T from shared memory).
/// K (INT8) and V^T (fp16, `prep_values_t`) arrive from the preparation kernels already in
/// the plain K-major shared-memory layout of 8 x 16-byte core matrices, one contiguous run of
/// bytes per tile, so one thread copies each tile with a single bulk copy (`cp.async.bulk`,
/// completion counted by an mbarrier) instead of every thread issuing 16-byte copies; eight
/// extra rows of ones below V^T make the same instruction produce the row sums `l` of the
/// fp16 P.
enum HopperAttentionSource {
    static let text = CommonSource.text + AttentionSource.helpers + wrappers + kernel

    /// `wgmma` wrappers for the shapes the kernel uses (accumulators as operand lists).
    static var wrappers: String {
        /// `wgmma` with A from registers: `acc` accumulators of `constraint` ("r" or "f"), the
        /// instruction's type suffix, and the immediates after scale-d.
        /// `accumulate: false`: D = A B, the accumulators written only (scale-d 0).
        func wrapper(_ name: String, n: Int, k: Int, accType: String, types: String, constraint: String, immediates: String,
                     accumulate: Bool = true) -> String {
            let acc = n / 2
            let dl = (0..<acc).map { "%\($0)" }.joined(separator: ", ")
            let outs = (0..<acc).map { "\"\(accumulate ? "+" : "=")\(constraint)\"(d[\($0)])" }.joined(separator: ", ")
            return """
            DEV void \(name)_n\(n)(\(accType)* d, const unsigned* a, u64 desc) {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %\(acc + 5), 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n\(n)k\(k).\(types) {\(dl)}, {%\(acc), %\(acc + 1), %\(acc + 2), %\(acc + 3)}, %\(acc + 4), p\(immediates);\\n}\\n"
                    : \(outs) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(\(accumulate ? 1 : 0)));
            }

            """
        }
        let s8 = [64, 128].map { wrapper("wgmma_s8", n: $0, k: 32, accType: "int", types: "s32.s8.s8", constraint: "r", immediates: "") }
            + [64, 128].map { wrapper("wgmma_s8_fresh", n: $0, k: 32, accType: "int", types: "s32.s8.s8", constraint: "r", immediates: "", accumulate: false) }
        // Q.K^T with both operands in shared memory (descriptors), for Q_SMEM.
        let s8ss = [(64, true), (128, true), (64, false), (128, false)].map { n, accumulate -> String in
            let acc = n / 2
            let dl = (0..<acc).map { "%\($0)" }.joined(separator: ", ")
            let outs = (0..<acc).map { "\"\(accumulate ? "+" : "=")r\"(d[\($0)])" }.joined(separator: ", ")
            return """
            DEV void wgmma_s8ss\(accumulate ? "" : "_fresh")_n\(n)(int* d, u64 adesc, u64 desc) {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %\(acc + 2), 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n\(n)k32.s32.s8.s8 {\(dl)}, %\(acc), %\(acc + 1), p;\\n}\\n"
                    : \(outs) : "l"(adesc), "l"(desc), "r"(\(accumulate ? 1 : 0)));
            }

            """
        }
        let f16 = [72, 136].map { wrapper("wgmma_f16", n: $0, k: 16, accType: "float", types: "f32.f16.f16", constraint: "f", immediates: ", 1, 1, 0") }
        // FP8 (no transpose immediates: 8-bit operands are K-major only); guarded so that the
        // source still compiles for architectures without e4m3.
        let e4m3 = [8, 64, 72, 128, 136].map { wrapper("wgmma_e4m3", n: $0, k: 32, accType: "float", types: "f32.e4m3.e4m3", constraint: "f", immediates: ", 1, 1") }
            // D = A B (the accumulators' old values ignored): the first P.V of a tile with two-level accumulation.
            + [8, 64, 72, 128, 136].map { wrapper("wgmma_e4m3_fresh", n: $0, k: 32, accType: "float", types: "f32.e4m3.e4m3", constraint: "f", immediates: ", 1, 1", accumulate: false) }
        return "\n" + (s8 + s8ss + f16).joined() + "#if PV_FP8\n" + e4m3.joined() + "#endif\n"
    }

    static let kernel = #"""

#define D HEAD_DIM
#define BQ BLOCK_Q
#define BK BLOCK_K
#define NT (BQ * 2)                 // one warpgroup (128 threads) per 64 query rows
#define WARPS (NT / 32)
#ifndef PV_FP8
#define PV_FP8 0                    // P.V in e4m3 (V^T from prep_values_t8), else fp16
#endif
#ifndef FP8_SUMS_MMA
#define FP8_SUMS_MMA 0              // FP8: l by wgmma from e4m3 ones: 1 rows below V^T, 2 a separate n8 per tile (probes, see Kernels.swift)
#endif
#define SEP_SUMS (PV_FP8 && FP8_SUMS_MMA == 2)
#define ONES_BYTES (SEP_SUMS ? BK * 8 : 0)  // mode 2: 8 rows of e4m3 ones, the B operand of its n8 wgmma
#if PV_FP8 && FP8_SUMS_MMA != 1
#define DV D                        // V^T rows in shared memory: D channels (l is summed in fp32)
#define VELEM 1                     // bytes per V element
#define OCH (D / 8)                 // accumulator chunks of 8 columns per thread
#elif PV_FP8
#define DV (D + 8)                  // V^T rows in shared memory: D channels, then 8 rows of ones (e4m3 1.0)
#define VELEM 1
#define OCH (D / 8 + 1)             // chunk D/8: the row sums of the e4m3 P
#else
#define DV (D + 8)                  // V^T rows in shared memory: D channels, then 8 rows of ones
#define VELEM 2
#define OCH (D / 8 + 1)             // chunk D/8: the row sums (P times the ones rows)
#endif
#define KTILE (BK * D)              // bytes
#define VTILE (DV * BK * VELEM)
#define VBYTES (D * BK * VELEM)     // the copied part of a V^T tile (the ones rows stay)
#define PK (BK * VELEM / 32)        // P.V instructions per tile: BK / 16 (k16, fp16), BK / 32 (k32, e4m3)
#define FP8_OFFSET 8.807f           // SageAttention2: P = 2^(S - m + 8.807) uses the e4m3 range
#ifndef EXP_F16
#define EXP_F16 0                   // ex2.approx.f16x2 is two MUFU.EX2.F16 plus a PRMT on sm_90: fp32 is cheaper
#endif
#ifndef PIPELINE
#define PIPELINE 1                  // P.V of tile idx - 1 runs during the softmax of tile idx
#endif
#ifndef LOOKAHEAD
#define LOOKAHEAD 1                 // K/V tiles copied ahead of the one computed
#endif
#ifndef SYNC2
#define SYNC2 0                     // the __syncthreads (and the refills) every second tile, two tiles at a time
#endif
#define STAGES (LOOKAHEAD + 1 + PIPELINE + SYNC2)
#ifndef DECOUPLE
#define DECOUPLE 0                  // per-stage "empty" mbarriers instead of a __syncthreads per tile
#endif
#if !PIPELINE
#undef DECOUPLE
#define DECOUPLE 0
#endif
#if DECOUPLE
#undef SYNC2
#define SYNC2 0
#endif
#ifndef PINGPONG
#define PINGPONG 0                  // the two warpgroups take turns to issue their wgmma (FlashAttention-3)
#endif
#if BQ != 128 || !PIPELINE
#undef PINGPONG
#define PINGPONG 0
#endif
// Sets of lambda votes (and named barriers 1 .. VOTE_SETS): decoupled warps drift apart by at
// most STAGES - 1 tiles (a tile's copy waits for every warp to release the buffer's last tile).
#define VOTE_SETS (DECOUPLE ? STAGES : 2)     // at most 5 (LOOKAHEAD <= 3)
// The filter as a count: above FILTER_NOOP_LAMBDA (40), skipping a tile cannot change the
// output, and this kernel saves no work by it (a skipped tile's P = 0 goes to the same wgmma).
// A tile the filter would skip has every score more than lambda - 1 below its row's running
// maximum m (base 2) while |m| < 2^23, so P < 2^(9.807 - lambda) < 2^-30 with FP8 and 2^-39
// with fp16; where m and the scores round on coarser grids, P is still at most 2^-24 (FP8) and
// 2^-32 (fp16). Either rounds to 0 in e4m3 (below 2^-10) and in fp16 (below 2^-25); m stays
// (each row's tile maximum is below it) and O gains zeros. Only l, the FP8 path's fp32 sums of
// the unrounded P, may gain such values: for |m| < 2^23 under 2^-18 of l over a million keys
// (l is at least 2^8.807). So there, where a __syncthreads starts every step (no SYNC2 or
// DECOUPLE), each thread only notes whether its rows keep the tile, and the next step's
// barrier reduces the notes (bar.red.or) to count the tiles the filter would skip, for the
// result's statistics: no vote, no named barrier. With SYNC2 (D=64) the general program
// (FILTER=1) keeps the vote: in it a count kept in registers cost 2.4-3.2% more (H100, session
// 30) and one on the SYNC2 barrier (bar.red.popc, two tiles' notes at once) 2.6-4.6% more
// (session 31); a program without the vote's code (FILTER=2, below) counts by bit masks, 2-3%
// faster than the vote (session 36). COUNT_FILTER=0: the vote at every finite lambda.
#ifndef COUNT_FILTER
#define COUNT_FILTER 1
#endif
// The program's filter code, chosen by the host from the plan's lambdas. FILTER=0: every head's
// lambda is infinite (no filter, or skips not counted): no vote or count code at all, a plain
// __syncthreads per step. FILTER=2: every finite lambda is above 40: only the count, no vote
// code; each warp (COUNT_BITS, or without the per-step __syncthreads: SYNC2, DECOUPLE) ORs whether it keeps the
// tile into a bit mask of 32 tiles and stores the mask to its own word of `kept` every step (an
// __any_sync and a predicated store: no barrier, branch or atomic; a shared atomic became a
// branch around a warp reduction), and the block counts the tiles no warp kept at the end.
// FILTER=1: the vote and the count.
#ifndef FILTER
#define FILTER 1
#endif
#ifndef COUNT_BITS
#define COUNT_BITS 1                // FILTER=2: count by the bit masks even with a __syncthreads per step
#endif
#define COUNT_BY_BARRIER (FILTER && COUNT_FILTER && !SYNC2 && !DECOUPLE && !(FILTER == 2 && COUNT_BITS))
#define COUNT_BY_BITS (FILTER == 2 && !COUNT_BY_BARRIER)
// ANY_MASKED=0: a program for calls where no tile needs a mask (no token-level causal mask, no
// key padding, Nk a multiple of BK; the host decides), without the masked path's code.
#ifndef ANY_MASKED
#define ANY_MASKED 1
#endif
#ifndef EPI_SMEM
#define EPI_SMEM 1                  // 2-byte outputs: O staged in shared memory, written by 16-byte coalesced stores
#endif
#ifndef Q_EARLY
#define Q_EARLY 1                   // Q_SMEM: the query block's loads issued before the marks', stored after the ballots
#endif
#ifndef SINKS
#define SINKS 0                     // learned sinks in the epilogue (the host: calls with sinkLogits)
#endif
#ifndef WINDOW
#define WINDOW 0                    // the sliding window's skips and masks (the host: calls with a window > 0); a
                                    // runtime test instead changed the loop's schedule in every program
#endif
#ifndef PROBE_TIMES
#define PROBE_TIMES 0               // diagnosis: thread 0 stamps each CTA's phases into `probe` (see PROBE)
#endif
#define FILTER_NOOP_LAMBDA 40.0f
#define PP_BAR 8                    // named barriers 8 and 9: whose turn it is to issue
// (Barrier numbers are immediates throughout: a register operand makes ptxas reserve every
// named barrier for the block.)
#define MAGIC_I 0x4B400000          // bit pattern of 1.5 * 2^23 (int -> float without a conversion)
#define MAGIC_F 12582912.0f
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1
#endif
#ifndef FIRST_COPIES
#define FIRST_COPIES 0              // the first tiles' copies issued before the visit list is written (host: with 128 x 64 and 64 x 128 blocks)
#endif
#define CAT3(a, b, c) a##b##c
#define WG_S8(n) CAT3(wgmma_s8_n, n, )
#ifndef SUMS_GATE
#define SUMS_GATE 0                 // FP8: the row sums in the rescale's condition (see the step)
#endif
#if FP8_SUMS_MMA
#undef SUMS_GATE
#define SUMS_GATE 0                 // no fp32 sums to put there
#endif
#ifndef Q_SMEM
#define Q_SMEM 0                    // Q read by wgmma from shared memory (16 registers fewer per thread)
#endif
#define QBYTES (Q_SMEM ? BQ * D : 0)
// Q_SMEM: row r, 16-byte chunk c of the query block, in global memory and in qbuf (the K tile's
// layout: (r / 8) * D * 8 + c * 128 + (r % 8) * 16).
#define Q_CHUNK(r, c) (*(const uint4*)(q8 + ((i64)bh * Nq + qStart + (r)) * D + (c) * 16))
#define Q_SHARED(r, c) (*(uint4*)(qbuf + ((r) >> 3) * D * 8 + (c) * 128 + ((r) & 7) * 16))
// (The staged rows fit in the Q and tile buffers, or the old stores stay.)
#define OPITCH (D * 2 + 16)         // EPI_SMEM: bytes a staged row (16 more than its values: no bank conflicts)
#if EPI_SMEM && BQ * OPITCH > QBYTES + STAGES * (KTILE + VTILE)
#undef EPI_SMEM
#define EPI_SMEM 0
#endif
// Step kk (32 channels) of S = Q K^T into acc, K from the descriptor kdesc.
#if Q_SMEM
#define WG_S8SS(n) CAT3(wgmma_s8ss_n, n, )
#define WG_S8SS_FRESH(n) CAT3(wgmma_s8ss_fresh_n, n, )
#define S_MMA(acc, kk, kdesc) WG_S8SS(BK)(acc, sdesc(qLo + (kk) * 16, D * 8), kdesc)
#define S_MMA_FRESH(acc, kdesc) WG_S8SS_FRESH(BK)(acc, sdesc(qLo, D * 8), kdesc)
#else
#define WG_S8_FRESH(n) CAT3(wgmma_s8_fresh_n, n, )
#define S_MMA(acc, kk, kdesc) WG_S8(BK)(acc, qa[kk], kdesc)
#define S_MMA_FRESH(acc, kdesc) WG_S8_FRESH(BK)(acc, qa[0], kdesc)
#endif
#ifndef I2F
#define I2F 0                       // S from fresh int32 accumulators by cvt (I2FP), not the 1.5 * 2^23 bias
#endif
// The score sum as a float: with the bias, a subtraction (exact); with I2F, already converted.
#if I2F
#define UNBIAS(x) (x)
#else
#define UNBIAS(x) __fsub_rn((x), MAGIC_F)
#endif
#ifndef UNROLL2
#define UNROLL2 0                   // the pipelined loop two tiles per iteration (no copies of P)
#endif
#ifndef IMAX3
#define IMAX3 1                     // unmasked tiles: the row maxima of the int32 sums by three-input max (VIMNMX3), then converted
#endif
#ifndef FP8_TWO_LEVEL
#define FP8_TWO_LEVEL 0             // FP8: each tile's P.V into fresh accumulators, added to O in fp32
#endif
#define TWO_LEVEL (PV_FP8 && FP8_TWO_LEVEL)
#if PV_FP8 && FP8_SUMS_MMA == 1 && D == 64
#define WG_PV wgmma_e4m3_n72
#define WG_PV_FRESH wgmma_e4m3_fresh_n72
#elif PV_FP8 && FP8_SUMS_MMA == 1
#define WG_PV wgmma_e4m3_n136
#define WG_PV_FRESH wgmma_e4m3_fresh_n136
#elif PV_FP8 && D == 64
#define WG_PV wgmma_e4m3_n64
#define WG_PV_FRESH wgmma_e4m3_fresh_n64
#elif PV_FP8
#define WG_PV wgmma_e4m3_n128
#define WG_PV_FRESH wgmma_e4m3_fresh_n128
#elif D == 64
#define WG_PV wgmma_f16_n72
#else
#define WG_PV wgmma_f16_n136
#endif

// Shared-memory matrix descriptor, no swizzle: 8-row x 16-byte core matrices, `lbo` bytes to the
// next core matrix along the reduction dimension, `sbo` to the next 8 rows.
// The low word (address, lbo) is computed once per buffer base; a tile's descriptor adds its
// offset / 16 to it (the 14-bit address field cannot overflow below 256 KB).
DEV unsigned desc_lo(const void* p, unsigned lbo) { return ((smem_addr(p) & 0x3FFFFu) >> 4) | ((lbo >> 4) << 16); }
DEV u64 sdesc(unsigned lo, unsigned sbo) { return (u64)lo | ((u64)(sbo >> 4) << 32); }
DEV void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
DEV void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> DEV void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }
DEV void proxy_fence() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// Tile copies: one thread announces the bytes on the stage's mbarrier and issues the bulk
// copies; every thread waits for the barrier's phase (parity) to complete.
DEV void mbar_init(u64* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(smem_addr(bar)), "r"(count) : "memory");
}
DEV void mbar_arrive(u64* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(smem_addr(bar)) : "memory");
}
DEV void mbar_expect(u64* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(smem_addr(bar)), "r"(bytes) : "memory");
}
DEV void bulk_copy(void* dst, const void* src, unsigned bytes, u64* bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
        :: "r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)) : "memory");
}
// The retry loop is in PTX: a C loop on a per-thread flag would make everything after it look
// divergent to the compiler, which then builds the wgmma descriptors in per-thread registers
// and serializes the wgmma.
DEV void mbar_wait(u64* bar, unsigned parity) {
    asm volatile("{ .reg .pred p;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT;\n}"
        :: "r"(smem_addr(bar)), "r"(parity) : "memory");
}
// P = 2^x for two scores, packed to fp16x2.
DEV unsigned ex2pack(float lo, float hi) {
#if EXP_F16
    return ex2h2(lo, hi);
#else
    unsigned y;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(y) : "f"(ex2(hi)), "f"(ex2(lo)));
    return y;
#endif
}
// Pins a register between the asynchronous instructions (no read or write moves across).
DEV void pin(int& x) { asm volatile("" : "+r"(x) :: "memory"); }
DEV void pin(float& x) { asm volatile("" : "+f"(x) :: "memory"); }
DEV void pin(unsigned& x) { asm volatile("" : "+r"(x) :: "memory"); }
// The largest of v[0 .. N) (v overwritten): levels of three-input maxima (VIMNMX3 on sm_90).
template <int N> DEV int imax_all(int* v) {
    if constexpr (N == 1) {
        return v[0];
    } else {
        #pragma unroll
        for (int k = 0; k < N / 3; k++) v[k] = __vimax3_s32(v[3 * k], v[3 * k + 1], v[3 * k + 2]);
        if constexpr (N % 3 == 2) v[N / 3] = max(v[N - 2], v[N - 1]);
        if constexpr (N % 3 == 1) v[N / 3] = v[N - 1];
        return imax_all<(N + 2) / 3>(v);
    }
}

// K tile (KTILE bytes per key block in k8, `prep_blocks` with tiled rows): key r, 16-byte
// chunk c of its D bytes at (r / 8) * D * 8 + c * 128 + (r % 8) * 16.
// V^T tile (VBYTES per key block in vt, `prep_values_t`): channel r, chunk c (8 keys) at
// (r / 8) * BK * 16 + c * 128 + (r % 8) * 16.
// Dynamic shared memory: QBYTES + STAGES * (KTILE + VTILE + 16) + ONES_BYTES + nk * 12 + VOTE_SETS * WARPS * 4
// + (8 + 4 * WARPS) * ceil(nk / 32) bytes (the last: the visit list's two ballots per chunk of key
// blocks, and the kept bits of COUNT_BY_BITS).
// lse (optional, [B][H][Nq] fp32): each row's natural-log log-sum-exp of the scores it attended.
// keyValid, blockFlags (optional): the key padding mask, as in AttentionSource.
extern "C" __global__ void __launch_bounds__(NT, MIN_BLOCKS) sparse_attention_wg(
        const signed char* q8, const float* qScale, const signed char* k8, const float* kScale, const void* vt, const float* vScale,
        const unsigned char* map, int H, int groupSize, int Nq, int Nk, int nq, int nk,
        const float* lambdas, float scoreFactor, int causal, int offset, i64 window, int exemptTail, int tritonPad,
        void* out, int outType, i64 obs, i64 ohs, i64 ots, int* counts, float* lse,
        const unsigned char* keyValid, const unsigned char* blockFlags, const float* sinks, unsigned long long* probe) {
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* qbuf = smem;                  // Q_SMEM: the query block in the K tile's layout
    unsigned char* kbuf = smem + QBYTES;
    unsigned char* vbuf = kbuf + STAGES * KTILE;
    unsigned char* ones = vbuf + STAGES * VTILE; // ONES_BYTES (FP8_SUMS_MMA=2)
    u64* full = (u64*)(ones + ONES_BYTES);       // per stage: its tile has arrived
    u64* empty = full + STAGES;                  // per stage: every warp is done with its tile (DECOUPLE)
    int* list = (int*)(empty + STAGES);
    int* ords = list + nk;
    float* ksc = (float*)(ords + nk);
    int* wred = (int*)(ksc + nk);                // the filter's votes, VOTE_SETS sets
    unsigned* cmask = (unsigned*)(wred + VOTE_SETS * WARPS);   // the visit list's two ballots per chunk of 32 key blocks

    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int kvh = b * (H / groupSize) + h / groupSize;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int qStart = i * BQ, rows = min(BQ, Nq - qStart);
    const unsigned char* mrow = map + ((i64)bh * nq + i) * nk;
#if PROBE_TIMES
    // PROBE_TIMES: 12 words a CTA at probe[(bh * nq + i) * 12]: clock64 at stamps 0-6 (entry,
    // first barrier, list written, first step done, loop done, last P.V done, end), globaltimer
    // at entry (7) and end (8), the SM (9), the tiles visited (10).
    unsigned long long* const pr = probe && threadIdx.x == 0 ? probe + ((i64)bh * nq + i) * 12 : nullptr;
    #define PROBE(k) do { if (pr) { pr[k] = clock64(); } } while (0)
    if (pr) {
        unsigned sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        pr[7] = global_ns(); pr[9] = sm;
    }
    PROBE(0);
#else
    #define PROBE(k) do { } while (0)
#endif

    // The visit list in two phases around the first barrier. Here every warp loads the marks
    // of its chunks of 32 key blocks at once (one round trip, where warp 0 alone waited for
    // each chunk's marks and then its K scales: 0.1-4.4% more kernel time on the H200) and
    // keeps two ballots per chunk: marked, and marked and not entirely in the future of every
    // row (causal).
    const int chunks = (nk + 31) / 32;
#if Q_SMEM && Q_EARLY
    // The query block's 16-byte chunks loaded first, so that their round trip overlaps the marks'
    // (stored to shared memory after the ballots; rows past Nq zero).
    #define QV ((BQ * (D / 16) + NT - 1) / NT)
    uint4 qv[QV];
    #pragma unroll
    for (int k = 0; k < QV; k++) {
        const int e = tid + k * NT, r = e / (D / 16), c = e % (D / 16);
        qv[k] = make_uint4(0u, 0u, 0u, 0u);
        if (e < BQ * (D / 16) && qStart + r < Nq) qv[k] = Q_CHUNK(r, c);
    }
#endif
    // COUNT_BY_BITS: word w * chunks + t / 32, bit t % 32: warp w keeps visited tile t (every
    // word up to the last tile's is written by its warp, so none needs clearing).
    unsigned* kept = cmask + 2 * chunks;
    // (Loop bounds that do not depend on the warp: a per-warp trip count here makes ptxas treat
    // the tile loop as divergent and move its descriptors off the uniform datapath.)
    for (int c0 = 0; c0 < chunks; c0 += WARPS) {
        const int c = c0 + warp, j = c * 32 + lane;
        const bool marked = c < chunks && j < nk && mrow[j] != 0;
        // (Before the sliding window of every row counts as the future does: not visited.)
        const bool future = (causal && (i64)j * BK > (i64)qStart + rows - 1 + offset)
            || (WINDOW && before_window(j, BK, Nk, (i64)qStart + offset - window));
        const unsigned mm = __ballot_sync(0xffffffffu, marked), mv = __ballot_sync(0xffffffffu, marked && !future);
        if (lane == 0 && c < chunks) { cmask[2 * c] = mm; cmask[2 * c + 1] = mv; }
    }
    // The rows of ones below V^T in every stage (never overwritten by the copies), and zeros in
    // the V rows of the last stage: the first iteration's P.V (P = 0) reads them as "tile -1".
#if !PV_FP8 || FP8_SUMS_MMA == 1
    // (1.0 as fp16 pairs, or as four e4m3 bytes)
    for (int e = tid; e < STAGES * BK * 8 * VELEM / 4; e += NT) {
        const int st = e / (BK * 2 * VELEM), w = e - st * (BK * 2 * VELEM);
        ((unsigned*)(vbuf + st * VTILE + (D / 8) * BK * 8 * VELEM))[w] = VELEM == 2 ? 0x3c003c00u : 0x38383838u;
    }
#elif SEP_SUMS
    for (int e = tid; e < ONES_BYTES / 4; e += NT) ((unsigned*)ones)[e] = 0x38383838u;     // e4m3 1.0
#endif
    for (int e = tid; e < VBYTES / 4; e += NT) ((unsigned*)(vbuf + (STAGES - 1) * VTILE))[e] = 0u;
    if (tid == 0) {
        for (int st = 0; st < STAGES; st++) { mbar_init(full + st, 1); mbar_init(empty + st, WARPS); }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
#if Q_SMEM && Q_EARLY
    #pragma unroll
    for (int k = 0; k < QV; k++) {
        const int e = tid + k * NT, r = e / (D / 16), c = e % (D / 16);
        if (e < BQ * (D / 16)) Q_SHARED(r, c) = qv[k];
    }
#elif Q_SMEM
    // Rows past Nq zero.
    for (int e = tid; e < BQ * (D / 16); e += NT) {
        const int r = e / (D / 16), c = e % (D / 16);
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (qStart + r < Nq) v = Q_CHUNK(r, c);
        Q_SHARED(r, c) = v;
    }
#endif
    proxy_fence();      // the generic writes above are ordered before the bulk copies and wgmma

    // Rows of this thread: g and g + 8 of its warp's 16 (the wgmma fragment layout).
    const int r0 = qStart + warp * 16 + g, r1 = r0 + 8;
    const bool valid0 = r0 < Nq, valid1 = r1 < Nq;
#if Q_SMEM
    const unsigned qLo = desc_lo(qbuf + (warp >> 2) * 64 * D, 128);   // this warpgroup's 64 rows
#else
    unsigned qa[D / 32][4];
    const signed char* qb = q8 + (i64)bh * Nq * D;
    #pragma unroll
    for (int kk = 0; kk < D / 32; kk++) {
        qa[kk][0] = valid0 ? *(const unsigned*)(qb + (i64)r0 * D + kk * 32 + t4 * 4) : 0u;
        qa[kk][1] = valid1 ? *(const unsigned*)(qb + (i64)r1 * D + kk * 32 + t4 * 4) : 0u;
        qa[kk][2] = valid0 ? *(const unsigned*)(qb + (i64)r0 * D + kk * 32 + 16 + t4 * 4) : 0u;
        qa[kk][3] = valid1 ? *(const unsigned*)(qb + (i64)r1 * D + kk * 32 + 16 + t4 * 4) : 0u;
    }
#endif
    const float qs = qScale[(i64)bh * nq + i];
#if FILTER
    const float lam = lambdas[h];
    const bool lamFinite = fabsf(lam) < SP_INF;
#else
    const float lam = SP_INF;
    const bool lamFinite = false;
#endif
#if FILTER == 2
    const bool lamCount = lamFinite, lamVote = false;   // (the host: every finite lambda above 40)
#else
    const bool lamCount = COUNT_BY_BARRIER && lamFinite && lam > FILTER_NOOP_LAMBDA, lamVote = lamFinite && !lamCount;
#endif
    // Rows past Nq start at m = +inf: ml - m is then -inf, so they never keep a tile, and their
    // m never moves (no rescale of their O, P = 0). Their results are not written.
    float m0 = valid0 ? -SP_INF : SP_INF, m1 = valid1 ? -SP_INF : SP_INF;
    float o[OCH * 4];
    #pragma unroll
    for (int e = 0; e < OCH * 4; e++) o[e] = 0.0f;
#if PV_FP8 && !FP8_SUMS_MMA
    float l0 = 0.0f, l1 = 0.0f;     // this thread's part of the row sums of the fp32 P
#elif SEP_SUMS
    float l0 = 0.0f, l1 = 0.0f;     // the row sums of the e4m3 P (whole rows), added tile by tile in fp32
    float ls[4];                    // one tile's sums by the n8 wgmma: ls[0], ls[1] row r0, ls[2], ls[3] row r1
    #pragma unroll
    for (int e = 0; e < 4; e++) ls[e] = 0.0f;
#endif

    __syncthreads();
    PROBE(1);
    // Key block j's K tile and V^T into buffer `buf` (thread 0), both counted by its barrier.
    auto copy_tile = [&](int j, int buf, const signed char* kbase, const unsigned char* vtbase) {
        mbar_expect(full + buf, KTILE + VBYTES);
        bulk_copy(kbuf + buf * KTILE, kbase + (i64)j * KTILE, KTILE, full + buf);
        bulk_copy(vbuf + buf * VTILE, vtbase + (i64)j * VBYTES, VBYTES, full + buf);
    };
#if FIRST_COPIES
    // The first LOOKAHEAD tiles' copies now, from the ballots, instead of after the list is
    // written and the block has met again: their latency overlaps the second phase.
    if (tid == 0) {
        int found = 0;
        for (int c = 0; c < chunks && found < LOOKAHEAD; c++) {
            unsigned v = cmask[2 * c + 1];
            while (v != 0u && found < LOOKAHEAD) {
                const int j = c * 32 + __ffs(v) - 1;
                v &= v - 1u;
                // (The head's bases computed here, not hoisted with kbase and vtbase above the
                // list: hoisted, they changed the register allocation of every program with
                // the first copies.)
                copy_tile(j, found++, k8 + (i64)kvh * nk * KTILE, (const unsigned char*)vt + (i64)kvh * nk * VBYTES);
            }
        }
    }
#endif
    // Second phase: every warp sums the chunks' counts, then writes the entries of its own
    // chunks at the positions the chunks before them leave. Once per selected tile instead of
    // in the loop: its score scale (in place of the key block's scale) and its flags (in place
    // of its order): bit 0, the tile takes the masked path (past Nk, crossing the causal
    // diagonal or the start of a row's sliding window, or padded keys); bit 1, exempt from the
    // filter.
    int cnt = 0, selected = 0;
    for (int c0 = 0; c0 < chunks; c0 += 32) {
        const int c = c0 + lane;
        selected += __reduce_add_sync(0xffffffffu, c < chunks ? __popc(cmask[2 * c]) : 0);
        cnt += __reduce_add_sync(0xffffffffu, c < chunks ? __popc(cmask[2 * c + 1]) : 0);
    }
    for (int w0 = 0; w0 < chunks; w0 += WARPS) {
        const int c = w0 + warp;
        int before = 0, beforeVisited = 0;
        for (int c0 = 0; c0 < w0 + WARPS; c0 += 32) {
            const int cc = c0 + lane;
            const bool earlier = cc < c && cc < chunks;
            before += __reduce_add_sync(0xffffffffu, earlier ? __popc(cmask[2 * cc]) : 0);
            beforeVisited += __reduce_add_sync(0xffffffffu, earlier ? __popc(cmask[2 * cc + 1]) : 0);
        }
        const unsigned mm = c < chunks ? cmask[2 * c] : 0u, mv = c < chunks ? cmask[2 * c + 1] : 0u, below = (1u << lane) - 1u;
        if ((mv >> lane) & 1u) {
            const int j = c * 32 + lane, t = beforeVisited + __popc(mv & below), kStart = j * BK;
            const bool masked = kStart + BK > Nk || (causal && kStart + BK - 1 > qStart + offset)
                || (WINDOW && (i64)kStart <= (i64)qStart + BQ - 1 + offset - window)
                || (blockFlags && (blockFlags[(i64)b * nk + j] & 1));
            const bool exempt = before + __popc(mm & below) >= selected - exemptTail;
            list[t] = j;
            ksc[t] = __fmul_rn(__fmul_rn(qs, kScale[(i64)kvh * nk + j]), scoreFactor);
            ords[t] = (masked ? 1 : 0) | (exempt ? 2 : 0);
        }
    }
    __syncthreads();
    PROBE(2);
    const signed char* kbase = k8 + (i64)kvh * nk * KTILE;
    const unsigned char* vtbase = (const unsigned char*)vt + (i64)kvh * nk * VBYTES;

    const unsigned kLo = desc_lo(kbuf, 128), vLo = desc_lo(vbuf, 128);
#if SEP_SUMS
    const unsigned onesLo = desc_lo(ones, 128);
#endif
    // Tile t into buffer `buf` by thread 0. DECOUPLE: first wait until every warp has
    // released the buffer's previous tile (t - STAGES, or the zeros of tile -1); the
    // (n - 1)-th release completes phase n - 1 of the buffer's empty barrier. Thread 0's warp
    // runs about 47 instructions a tile more than the others, but handing the copies to warps
    // on other schedulers measured up to 9% slower, never faster (H100, session 29).
    auto load = [&](int t, int buf) {
        if (tid == 0) {
#if DECOUPLE
            const int n = (t + PIPELINE) / STAGES;   // earlier tiles of this buffer, tile -1 included
            if (n > 0) mbar_wait(empty + buf, (n - 1) & 1);
#endif
            copy_tile(list[t], buf, kbase, vtbase);
        }
    };

    // With PIPELINE the loop is software-pipelined across tiles (FlashAttention-3's
    // intra-warpgroup overlap): iteration idx issues S(idx) = Q K(idx)^T and O += P(idx - 1)
    // V(idx - 1) together, waits only for S, computes the softmax of tile idx while the tensor
    // cores do P.V, then waits for O and rescales it. Tile t lives in buffer t % STAGES. Every
    // wgmma is issued unconditionally (a skipped tile, and the tile before the first, have P = 0
    // against zeros) so that the compiler never serializes them.
    int skipped = 0;
    int keeps = 1;          // lamCount: whether this thread's rows keep the previous tile (1 before the first)
    unsigned kb = 0u;       // COUNT_BY_BITS: whether this warp keeps tiles 32c .. idx (bit t % 32)
    // P of two tiles: each step reads the previous tile's (the A operand of its pending P.V) from
    // one and writes its own to the other. UNROLL2 runs the loop two steps at a time with the
    // roles swapped, so no register copies P from one to the other between tiles.
    unsigned pA[PK][4], pB[PK][4];
    #pragma unroll
    for (int kk = 0; kk < PK; kk++) {
        pA[kk][0] = 0u; pA[kk][1] = 0u; pA[kk][2] = 0u; pA[kk][3] = 0u;
        pB[kk][0] = 0u; pB[kk][1] = 0u; pB[kk][2] = 0u; pB[kk][3] = 0u;
    }
    // O += P V^T(buffer) for the P in pa, issued, not waited for; then the wait, after which O
    // and pa may be touched again (pinned: no read or write of them moves across). With
    // TWO_LEVEL the tile's product goes to fresh accumulators `ot`, added to O after the wait
    // (Hopper's FP8 wgmma keeps fewer accumulator bits than fp32; SageAttention2 does the same).
#if TWO_LEVEL
    float ot[OCH * 4];
    #pragma unroll
    for (int e = 0; e < OCH * 4; e++) ot[e] = 0.0f;
    #define PV_ACC ot
#else
    #define PV_ACC o
#endif
    auto issue_pv = [&](int buf, const unsigned (&pa)[PK][4]) {
        #pragma unroll
        for (int kk = 0; kk < PK; kk++) {
#if TWO_LEVEL
            if (kk == 0) WG_PV_FRESH(ot, pa[kk], sdesc(vLo + (buf * VTILE) / 16, BK * 8 * VELEM));
            else
#endif
            WG_PV(PV_ACC, pa[kk], sdesc(vLo + (buf * VTILE + kk * 256) / 16, BK * 8 * VELEM));
#if SEP_SUMS
            // The tile's row sums into fresh accumulators (not the running ones: the FP8
            // accumulator's 13-bit additions would bias a long row's sum).
            if (kk == 0) wgmma_e4m3_fresh_n8(ls, pa[kk], sdesc(onesLo, BK * 8));
            else wgmma_e4m3_n8(ls, pa[kk], sdesc(onesLo + kk * 16, BK * 8));
#endif
        }
        wg_commit();
    };
    auto wait_pv = [&](unsigned (&pa)[PK][4]) {
        wg_wait<0>();
        #pragma unroll
        for (int e = 0; e < OCH * 4; e++) pin(PV_ACC[e]);
        #pragma unroll
        for (int kk = 0; kk < PK; kk++) { pin(pa[kk][0]); pin(pa[kk][1]); pin(pa[kk][2]); pin(pa[kk][3]); }
#if SEP_SUMS
        #pragma unroll
        for (int e = 0; e < 4; e++) pin(ls[e]);
        l0 += ls[0]; l1 += ls[2];
#endif
#if TWO_LEVEL
        #pragma unroll
        for (int e = 0; e < OCH * 4; e++) o[e] += ot[e];
#endif
    };
#if !FIRST_COPIES
    #pragma unroll
    for (int st = 0; st < LOOKAHEAD; st++) if (st < cnt) load(st, st);
#endif
#if PINGPONG
    // Warpgroup 0 issues first; then each lets the other issue once its own wgmma are queued,
    // so that one warpgroup's softmax runs while the other's products occupy the tensor cores.
    const int wg = warp >> 2;
    if (wg == 1 && cnt > 0) asm volatile("bar.arrive %0, %1;" :: "n"(PP_BAR), "n"(NT) : "memory");
#endif
    // `odd` = idx & 1 (a constant in the two-tile loop).
    auto step = [&](int idx, int odd, unsigned (&pa)[PK][4], unsigned (&pn)[PK][4]) {
        const int buf = idx % STAGES;
        mbar_wait(full + buf, (idx / STAGES) & 1);   // tile idx is the (idx / STAGES)-th fill of its buffer
#if !DECOUPLE
        // Every warp is done with the buffer(s) refilled next. With SYNC2 only on even tiles,
        // refilling two (one more stage holds the second), so warps drift apart by at most one
        // tile between the barriers (the votes alternate between two named barriers).
        if (!(SYNC2 && odd)) {
#if COUNT_BY_BARRIER
            // (keeps stays 1 unless lamCount.)
            skipped += !__syncthreads_or(keeps);
#else
            __syncthreads();
#endif
            if (idx + LOOKAHEAD < cnt) load(idx + LOOKAHEAD, (idx + LOOKAHEAD) % STAGES);
#if SYNC2
            if (idx + LOOKAHEAD + 1 < cnt) load(idx + LOOKAHEAD + 1, (idx + LOOKAHEAD + 1) % STAGES);
#endif
        }
#endif
#if PINGPONG
        if (wg == 0) asm volatile("bar.sync %0, %1;" :: "n"(PP_BAR), "n"(NT) : "memory");
        else asm volatile("bar.sync %0, %1;" :: "n"(PP_BAR + 1), "n"(NT) : "memory");
#endif
        int acc[BK / 2];
#if I2F
        // Step 1: S = Q K^T, the first step into fresh accumulators.
        wg_fence();
        S_MMA_FRESH(acc, sdesc(kLo + (buf * KTILE) / 16, D * 8));
        #pragma unroll
        for (int kk = 1; kk < D / 32; kk++) S_MMA(acc, kk, sdesc(kLo + (buf * KTILE + kk * 256) / 16, D * 8));
#else
        #pragma unroll
        for (int e = 0; e < BK / 2; e++) { acc[e] = MAGIC_I; pin(acc[e]); }
        wg_fence();
        // Step 1: S = Q K^T; the accumulators start at the bit pattern of 1.5 * 2^23.
        #pragma unroll
        for (int kk = 0; kk < D / 32; kk++) S_MMA(acc, kk, sdesc(kLo + (buf * KTILE + kk * 256) / 16, D * 8));
#endif
        wg_commit();
#if PIPELINE
        issue_pv((idx + STAGES - 1) % STAGES, pa);
#if PINGPONG
        // The last arrival of warpgroup 1 would have no partner.
        if (wg == 0) asm volatile("bar.arrive %0, %1;" :: "n"(PP_BAR + 1), "n"(NT) : "memory");
        else if (idx + 1 < cnt) asm volatile("bar.arrive %0, %1;" :: "n"(PP_BAR), "n"(NT) : "memory");
#endif
#if DECOUPLE
        if (idx + LOOKAHEAD < cnt) load(idx + LOOKAHEAD, (idx + LOOKAHEAD) % STAGES);   // while S is computed
#endif
        wg_wait<1>();      // S is ready; P.V may still run
#else
        wg_wait<0>();
#endif
        #pragma unroll
        for (int e = 0; e < BK / 2; e++) pin(acc[e]);

        const float sc = ksc[idx];
        const int flags = ords[idx];
        const bool masked = ANY_MASKED && (flags & 1);
        float s[BK / 2];
        float ml0 = -SP_INF, ml1 = -SP_INF;
        #pragma unroll
        for (int e = 0; e < BK / 2; e++) s[e] = I2F ? __int2float_rn(acc[e]) : __int_as_float(acc[e]);   // Q.K (+ 1.5 * 2^23), exact
        if (masked) {
            const int kStart = list[idx] * BK, cols = min(BK, Nk - kStart);
            #pragma unroll
            for (int e = 0; e < BK / 2; e++) {
                const int col = (e >> 2) * 8 + 2 * t4 + (e & 1);
                const int row = (e & 2) ? r1 : r0;
                float v = __fmul_rn(UNBIAS(s[e]), sc);
                if (col >= cols) v = tritonPad ? 0.0f : -SP_INF;
                if (causal && kStart + col > row + offset) v = -SP_INF;
                if (WINDOW && (i64)kStart + col <= (i64)row + offset - window) v = -SP_INF;
                if (keyValid && col < cols && !keyValid[(i64)b * Nk + kStart + col]) v = -SP_INF;
                s[e] = v;
                if (e & 2) ml1 = fmaxf(ml1, v); else ml0 = fmaxf(ml0, v);
            }
        } else {
#if IMAX3
            // The maxima of the sums as integers (the conversion, and the bias's bit pattern, keep
            // their order, so the converted maximum is the maximum of the converted sums): a tree
            // of three-input maxima, half the instructions of fmaxf's and one level less deep,
            // which need not wait for the conversions.
            int w0[BK / 4], w1[BK / 4];
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) { w0[2 * n] = acc[4 * n]; w0[2 * n + 1] = acc[4 * n + 1]; w1[2 * n] = acc[4 * n + 2]; w1[2 * n + 1] = acc[4 * n + 3]; }
            const int i0 = imax_all<BK / 4>(w0), i1 = imax_all<BK / 4>(w1);
            ml0 = I2F ? __int2float_rn(i0) : __int_as_float(i0);
            ml1 = I2F ? __int2float_rn(i1) : __int_as_float(i1);
#else
            ml0 = fmaxf(s[0], s[1]); ml1 = fmaxf(s[2], s[3]);
            #pragma unroll
            for (int n = 1; n < BK / 8; n++) {
                ml0 = fmaxf(ml0, fmaxf(s[4 * n], s[4 * n + 1]));
                ml1 = fmaxf(ml1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
            }
#endif
        }
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 1));
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 2));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 1));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 2));
        // Unmasked tiles keep the sums as they are (biased without I2F): the row maxima come out
        // exactly as in the CPU path (the bias subtracts exactly), and each exponent is
        // (s - 1.5 * 2^23) * sc - m, the subtraction exact (with I2F, s * sc - m). (Folding the
        // bias into the constant, -m - 1.5 * 2^23 * sc, saved that subtraction but rounded the
        // constant at its magnitude: with large Q and K scales, 2^-9 of a unit of the exponent
        // per key block, 1.4e-3 in the log-sum-exp.)
        if (!masked) { ml0 = __fmul_rn(UNBIAS(ml0), sc); ml1 = __fmul_rn(UNBIAS(ml1), sc); }
        const float mul = masked ? 1.0f : sc;
#if I2F
        #define SUB(x) (x)
#else
        const float sub = masked ? 0.0f : MAGIC_F;
        #define SUB(x) __fsub_rn((x), sub)
#endif
        // Steps 2-3: the filter for the whole query block (see AttentionSource).
        const bool exempt = flags & 2;
        bool skip = false;
        // This thread's largest increase of a row maximum: ml - m, +inf for a row's first keys
        // (m = -inf); NaN (ignored by fmaxf, never keeping the tile) for rows without keys in
        // the tile, -inf for rows past Nq (m = +inf). Computed where a branch needs it.
        auto increase = [&]() { return fmaxf(__fsub_rn(ml0, m0), __fsub_rn(ml1, m1)); };
#if COUNT_BY_BITS
        {
            // The vote's rule for this warp's rows, one bit per warp that keeps the tile.
            const bool wk = __any_sync(0xffffffffu, exempt || __fadd_rn(increase(), lam) > 0.0f);
            kb |= (unsigned)wk << (idx & 31);
            if (lamCount && lane == 0) kept[warp * chunks + (idx >> 5)] = kb;
            if ((idx & 31) == 31) kb = 0u;
        }
#endif
        if (COUNT_BY_BARRIER && lamCount) {
            // The vote's rule for this thread's rows, reduced at the next step's barrier.
            keeps = exempt || __fadd_rn(increase(), lam) > 0.0f;
        } else if (!exempt && lamVote) {
            const float inc = increase();
#if DECOUPLE
            // Named barrier 1 + idx % VOTE_SETS, as an immediate.
            int* votes = wred + (idx % VOTE_SETS) * WARPS;
            switch (idx % VOTE_SETS) {
            case 0: skip = block_skips<NT, WARPS, 1>(inc, lam, votes, warp, lane); break;
            case 1: skip = block_skips<NT, WARPS, 2>(inc, lam, votes, warp, lane); break;
            case 2: skip = block_skips<NT, WARPS, 3>(inc, lam, votes, warp, lane); break;
            case 3: skip = block_skips<NT, WARPS, 4>(inc, lam, votes, warp, lane); break;
            default: skip = block_skips<NT, WARPS, 5>(inc, lam, votes, warp, lane); break;
            }
#elif SYNC2
            if (odd) skip = block_skips<NT, WARPS, 2>(inc, lam, wred + WARPS, warp, lane);
            else skip = block_skips<NT, WARPS, 1>(inc, lam, wred, warp, lane);
#else
            skip = block_skips<NT, WARPS>(inc, lam, wred + odd * WARPS, warp, lane);
#endif
        }
        skipped += skip;
        // Steps 4-5: P = 2^(S - m) in fp16 while the previous P.V runs; then rescale O and l.
        // A skipped tile leaves m, O and l alone and passes P = 0 to the next P.V.
        const float mn0 = skip ? m0 : fmaxf(m0, ml0), mn1 = skip ? m1 : fmaxf(m1, ml1);
        // (A row's first keys: 2^-inf = 0 times O = 0 and l = 0; rows past Nq: +inf = +inf, 1.)
        const float a0 = m0 == mn0 ? 1.0f : ex2(m0 - mn0);
        const float a1 = m1 == mn1 ? 1.0f : ex2(m1 - mn1);
        m0 = mn0; m1 = mn1;
#if PV_FP8
        // P = 2^(S - m + 8.807) in fp32; l sums it unrounded (with FP8_SUMS_MMA the P.V's ones
        // rows sum it rounded), P.V takes it rounded to e4m3,
        // packed in the accumulator order (V^T's keys are permuted to match, prep_values_t8).
        // Rows without keys so far, and skipped tiles, get P = 0 from a shift of -inf (2^-inf = +0;
        // scores are finite, or -inf only in masked tiles, where `mul` is 1): no branch between
        // the exponentials and the sums and packs that use them, so that ptxas interleaves them
        // instead of issuing 32 MUFU.EX2 in a row.
        const float sh0 = mn0 == -SP_INF || skip ? -SP_INF : __fadd_rn(-mn0, FP8_OFFSET);
        const float sh1 = mn1 == -SP_INF || skip ? -SP_INF : __fadd_rn(-mn1, FP8_OFFSET);
        float pf[BK / 2];
        #pragma unroll
        for (int e = 0; e < BK / 2; e++) pf[e] = ex2(fmaf(SUB(s[e]), mul, (e & 2) ? sh1 : sh0));
#if !FP8_SUMS_MMA
        float ts0 = pf[0] + pf[1], ts1 = pf[2] + pf[3];
        #pragma unroll
        for (int n = 1; n < BK / 8; n++) { ts0 += pf[4 * n] + pf[4 * n + 1]; ts1 += pf[4 * n + 2] + pf[4 * n + 3]; }
        l0 = __fmaf_rn(l0, a0, ts0);
        l1 = __fmaf_rn(l1, a1, ts1);
#endif
        #pragma unroll
        for (int kk = 0; kk < PK; kk++) {
            const float* x = pf + 16 * kk;      // n-chunks 4kk .. 4kk + 3: keys 32kk .. 32kk + 31
            pn[kk][0] = e4m3pack(x[0], x[1], x[4], x[5]);
            pn[kk][1] = e4m3pack(x[2], x[3], x[6], x[7]);
            pn[kk][2] = e4m3pack(x[8], x[9], x[12], x[13]);
            pn[kk][3] = e4m3pack(x[10], x[11], x[14], x[15]);
        }
#else
        const float sh0 = mn0 == -SP_INF ? 0.0f : -mn0, sh1 = mn1 == -SP_INF ? 0.0f : -mn1;
        if (masked || skip) {
            // Rows without any key so far, and skipped tiles, get P = 0.
            const unsigned keep0 = mn0 == -SP_INF || skip ? 0u : 0xffffffffu, keep1 = mn1 == -SP_INF || skip ? 0u : 0xffffffffu;
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                pn[n >> 1][(n & 1) * 2 + 0] = ex2pack(fmaf(SUB(s[4 * n]), mul, sh0), fmaf(SUB(s[4 * n + 1]), mul, sh0)) & keep0;
                pn[n >> 1][(n & 1) * 2 + 1] = ex2pack(fmaf(SUB(s[4 * n + 2]), mul, sh1), fmaf(SUB(s[4 * n + 3]), mul, sh1)) & keep1;
            }
        } else {
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                pn[n >> 1][(n & 1) * 2 + 0] = ex2pack(fmaf(SUB(s[4 * n]), mul, sh0), fmaf(SUB(s[4 * n + 1]), mul, sh0));
                pn[n >> 1][(n & 1) * 2 + 1] = ex2pack(fmaf(SUB(s[4 * n + 2]), mul, sh1), fmaf(SUB(s[4 * n + 3]), mul, sh1));
            }
        }
#endif
#if PIPELINE
        wait_pv(pa);
#if DECOUPLE
        // P.V of tile idx - 1 is done: this warp is finished with its buffer.
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + (idx + STAGES - 1) % STAGES);
#endif
#endif
        // Most tiles move no row maximum of the warp: no rescale then. (Every tile without the
        // branch, by 1 where nothing moved, was 0.5-6% slower on the H200: session 21.)
#if PV_FP8 && SUMS_GATE
        // The row sums in the condition (a NaN sum makes its row NaN whatever O holds), so that
        // ptxas computes them before the branch, interleaved with the exponentials, instead of
        // issuing the exponentials in a row and the sums after the branch.
        if (__any_sync(0xffffffffu, (a0 != 1.0f && ts0 == ts0) || (a1 != 1.0f && ts1 == ts1))) {
#else
        if (__any_sync(0xffffffffu, a0 != 1.0f || a1 != 1.0f)) {
#endif
            #pragma unroll
            for (int n = 0; n < OCH; n++) { o[4 * n] *= a0; o[4 * n + 1] *= a0; o[4 * n + 2] *= a1; o[4 * n + 3] *= a1; }
#if SEP_SUMS
            l0 *= a0; l1 *= a1;
#endif
        }
#if !PIPELINE
        #pragma unroll
        for (int e = 0; e < OCH * 4; e++) { pin(o[e]); pin(PV_ACC[e]); }
        wg_fence();
        issue_pv(buf, pn);
        wait_pv(pn);
#elif !UNROLL2
        #pragma unroll
        for (int kk = 0; kk < PK; kk++) { pa[kk][0] = pn[kk][0]; pa[kk][1] = pn[kk][1]; pa[kk][2] = pn[kk][2]; pa[kk][3] = pn[kk][3]; }
#endif
    };
#if PIPELINE && UNROLL2
    int idx = 0;
    for (; idx + 1 < cnt; idx += 2) {
        step(idx, 0, pA, pB);
#if PROBE_TIMES
        if (idx == 0) PROBE(3);
#endif
        step(idx + 1, 1, pB, pA);
    }
    if (idx < cnt) {
        step(idx, 0, pA, pB);
        #pragma unroll
        for (int kk = 0; kk < PK; kk++) { pA[kk][0] = pB[kk][0]; pA[kk][1] = pB[kk][1]; pA[kk][2] = pB[kk][2]; pA[kk][3] = pB[kk][3]; }
    }
#else
    for (int idx = 0; idx < cnt; idx++) {
        step(idx, idx & 1, pA, pB);
#if PROBE_TIMES
        if (idx == 0) PROBE(3);
#endif
    }
#endif
    PROBE(4);
#if PIPELINE
    // The last tile's P.V (its P is in pA).
    {
        #pragma unroll
        for (int e = 0; e < OCH * 4; e++) { pin(o[e]); pin(PV_ACC[e]); }
        wg_fence();
        issue_pv((cnt + STAGES - 1) % STAGES, pA);
        wait_pv(pA);
    }
#endif
    PROBE(5);
#if PV_FP8 && !FP8_SUMS_MMA
    // The row sums over the four threads of a row; O = O / l * v_scale (the 2^8.807 cancels).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
#elif !SEP_SUMS
    // The row sums from the ones rows below V^T, whole rows already (SEP_SUMS: l0, l1 are too).
    const float l0 = o[(D / 8) * 4], l1 = o[(D / 8) * 4 + 2];
#endif
    const float* const vsc = PV_FP8 ? vScale + (i64)kvh * D : nullptr;   // (fp16 P.V: no V scales)
    // l carries 2^FP8_OFFSET in the FP8 path (P = 2^(S - m + 8.807)).
    const float lb = PV_FP8 ? FP8_OFFSET : 0.0f;
    float lf0 = l0, lf1 = l1, f0 = 1.0f, f1 = 1.0f;
#if SINKS
    // Learned sinks (per row, from row_sinks) join the denominators, with l's offset.
    fold_sink(m0, lf0, f0, valid0 ? sinks[(i64)bh * Nq + r0] + lb : -SP_INF);
    fold_sink(m1, lf1, f1, valid1 ? sinks[(i64)bh * Nq + r1] + lb : -SP_INF);
#endif
    const float inv0 = lf0 == 0.0f ? 0.0f : f0 / lf0, inv1 = lf1 == 0.0f ? 0.0f : f1 / lf1;
    if (lse && t4 == 0) {
        if (valid0) lse[(i64)bh * Nq + r0] = row_lse(m0, lf0, lb);
        if (valid1) lse[(i64)bh * Nq + r1] = row_lse(m1, lf1, lb);
    }
    const i64 ob = (i64)b * obs + (i64)h * ohs;
#if EPI_SMEM
    // fp16 and bf16 outputs whose rows start 16-byte aligned: the block's O is staged in the
    // tile buffers (free once every warp's last P.V is done) and written by 16-byte stores, a
    // row by D / 8 consecutive threads, instead of 2-byte stores scattered over 8 rows each.
    const bool staged = outType != 0 && ((((unsigned long long)out + (unsigned long long)ob * 2) | ((unsigned long long)ots * 2)) & 15u) == 0;
    if (staged) {
        __syncthreads();        // every warpgroup's last P.V has read its tiles
        unsigned char* const st = smem;
        const int lr = warp * 16 + g;
        #pragma unroll
        for (int n = 0; n < D / 8; n++) {
            const int c = n * 8 + 2 * t4;
            CHANNEL_SCALES(c);
            const float x0 = o[4 * n] * inv0 * s0, x1 = o[4 * n + 1] * inv0 * s1, y0 = o[4 * n + 2] * inv1 * s0, y1 = o[4 * n + 3] * inv1 * s1;
            *(unsigned*)(st + lr * OPITCH + c * 2) = pack16x2(outType, x0, x1);
            *(unsigned*)(st + (lr + 8) * OPITCH + c * 2) = pack16x2(outType, y0, y1);
        }
        __syncthreads();
        for (int e = tid; e < BQ * (D / 8); e += NT) {
            const int r = e / (D / 8), cc = e % (D / 8);
            if (qStart + r < Nq) *(uint4*)((u16*)out + ob + (i64)(qStart + r) * ots + cc * 8) = *(const uint4*)(st + r * OPITCH + cc * 16);
        }
    } else
#endif
    {
    #pragma unroll
    for (int n = 0; n < D / 8; n++) {
        const int c = n * 8 + 2 * t4;
        CHANNEL_SCALES(c);
        if (valid0) { stx(out, ob + (i64)r0 * ots + c, outType, o[4 * n] * inv0 * s0); stx(out, ob + (i64)r0 * ots + c + 1, outType, o[4 * n + 1] * inv0 * s1); }
        if (valid1) { stx(out, ob + (i64)r1 * ots + c, outType, o[4 * n + 2] * inv1 * s0); stx(out, ob + (i64)r1 * ots + c + 1, outType, o[4 * n + 3] * inv1 * s1); }
    }
    }
#if COUNT_BY_BARRIER
    if (lamCount && cnt > 0) skipped += !__syncthreads_or(keeps);   // the last tile
#elif COUNT_BY_BITS
    if (lamCount) {
        __syncthreads();    // every warp's bits stored
        if (warp == 0) {
            int k = 0;
            for (int c = lane; c < (cnt + 31) / 32; c += 32) {
                unsigned m = 0u;
                #pragma unroll
                for (int w = 0; w < WARPS; w++) m |= kept[w * chunks + c];
                k += __popc(m);
            }
            k = __reduce_add_sync(0xffffffffu, k);
            skipped = cnt - k;
        }
    }
#endif
    if (tid == 0 && counts) { counts[((i64)bh * nq + i) * 2] = cnt; counts[((i64)bh * nq + i) * 2 + 1] = skipped; }
#if PROBE_TIMES
    PROBE(6);
    if (pr) { pr[8] = global_ns(); pr[10] = cnt; }
#endif
    #undef PROBE
}
"""#
}
#endif
