#if CUDA
/// CUDA C of stage 2 (ExactSemantics.md section 4): the block-sparse online softmax, one thread
/// block per (query block, head), 16 or 32 query rows per warp (MT row tiles of 16: with two,
/// every K and V fragment read from shared memory feeds two mma). Q.K^T on INT8 tensor cores
/// (`mma.sync` m16n8k32 s8, int32 accumulation), the per-query-block lambda filter, P.V on
/// fp16 tensor cores (m16n8k16, fp32 accumulation) with P and V in fp16 as the Ampere
/// kernels do: P = 2^x is evaluated two at a time in fp16 (`ex2.approx.f16x2`; the special
/// function unit is the bottleneck at head dim 64) and the row sums `l` are the tensor cores'
/// product of P with a column of ones (fp32 sums of the same fp16 P). K and V tiles of the next selected block are copied with `cp.async`
/// while the current one is computed. Compiled once per (HEAD_DIM, BLOCK_Q, BLOCK_K).
enum AttentionSource {
    /// Asynchronous copies, warp-level mma, ldmatrix and the fp16 exponential, shared with
    /// the Hopper kernel.
    static let helpers = #"""
// s0, s1: the V scales of channels c and c + 1, per channel from `vsc` with FP8 P.V, else 1
// (a constant condition: fp16 programs never read `vsc`).
#define CHANNEL_SCALES(c) const float s0 = PV_FP8 ? vsc[c] : 1.0f, s1 = PV_FP8 ? vsc[(c) + 1] : 1.0f
DEV void cp16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
DEV void cp_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> DEV void cp_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }

DEV void mma_s8(int* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
DEV void mma_f16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
DEV void ldsm_x4(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
        : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
DEV void ldsm_x4_trans(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
        : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
DEV unsigned ex2h2(float lo, float hi) {
    unsigned x, y;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(x) : "f"(hi), "f"(lo));
    asm("ex2.approx.f16x2 %0, %1;" : "=r"(y) : "r"(x));
    return y;
}
DEV unsigned pack2(float lo, float hi) { return (unsigned)f2h(lo) | ((unsigned)f2h(hi) << 16); }

// Stage 2's visit list, built by one warp: the marked key blocks in ascending order, without
// those entirely in the future of every row (causal) or entirely before the sliding window of
// every row (`window` > 0: keys up to `firstLimit`, the first row's causal limit minus the
// window, are outside it); `ords` keeps each one's ordinal among all marked blocks, `ksc` its
// K scale (prefetched: no global load in the loop); sh[0] = the number to visit, sh[1] = the
// number marked.
DEV void visit_list(const unsigned char* mrow, int nk, int bk, int Nk, int causal, i64 lastRow, i64 window, i64 firstLimit,
                    const float* kScale, int lane, int* list, int* ords, float* ksc, int* sh) {
    int selected = 0, cnt = 0;
    for (int base = 0; base < nk; base += 32) {
        int j = base + lane;
        bool marked = j < nk && mrow[j] != 0;
        bool future = (causal && (i64)j * bk > lastRow) || (window > 0 && before_window(j, bk, Nk, firstLimit));
        unsigned mm = __ballot_sync(0xffffffffu, marked);
        unsigned mv = __ballot_sync(0xffffffffu, marked && !future);
        unsigned below = (1u << lane) - 1u;
        if (marked && !future) {
            int pos = cnt + __popc(mv & below);
            list[pos] = j;
            ords[pos] = selected + __popc(mm & below);
            ksc[pos] = kScale[j];
        }
        selected += __popc(mm);
        cnt += __popc(mv);
    }
    if (lane == 0) { sh[0] = cnt; sh[1] = selected; }
}

// Steps 2-3 of stage 2 for the whole query block, from each thread's largest increase of a
// row maximum (`inc`; -inf or NaN for rows without keys, which never keep a tile). The block
// skips the tile when no row keeps it (inc + lambda > 0). Each warp decides for its own rows
// with one vote instruction and writes the answer (1: keep) to `votes`; a warp that keeps
// the tile knows the block's answer and only announces itself (bar.arrive); only warps that
// would skip wait for the others (bar.sync on the same named barrier, BAR: an immediate, so
// that ptxas knows which barriers the kernel uses) and read every answer.
template <int NT, int WARPS, int BAR = 1>
DEV bool block_skips(float inc, float lam, int* votes, int warp, int lane) {
    const bool keep = __any_sync(0xffffffffu, __fadd_rn(inc, lam) > 0.0f);
    if (lane == 0) votes[warp] = keep;
    if (keep) {
        asm volatile("bar.arrive %0, %1;" :: "n"(BAR), "n"(NT) : "memory");
        return false;
    }
    asm volatile("bar.sync %0, %1;" :: "n"(BAR), "n"(NT) : "memory");
    int any = 0;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) any |= votes[w];
    return any == 0;
}
#if defined(PV_FP8) && PV_FP8
// Four P values (fp32) rounded to e4m3 (saturating) and packed, the first in the low byte
// (e4m3 needs sm_89: only where the options ask for FP8 P.V).
DEV unsigned e4m3pack(float a, float b, float c, float d) {
    unsigned y;
    asm("{ .reg .b16 lo, hi;\ncvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\ncvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\nmov.b32 %0, {lo, hi}; }"
        : "=r"(y) : "f"(a), "f"(b), "f"(c), "f"(d));
    return y;
}
#endif
"""#


    static let text = CommonSource.text + helpers + #"""

#define D HEAD_DIM
#define BQ BLOCK_Q
#define BK BLOCK_K
#ifndef MT
#define MT 1                    // m16 row tiles per warp: 2 shares every K/V fragment between two tiles
#endif
#define ROWS (16 * MT)          // query rows per warp
#define WARPS (BQ / ROWS)
#ifndef K_LDSM
#define K_LDSM (MT > 1)         // K fragments by ldmatrix (else two 32-bit shared loads per mma: fewer registers)
#endif
#define MAGIC_I 0x4B400000      // bit pattern of 1.5 * 2^23 (int -> float without a conversion)
#define MAGIC_F 12582912.0f
#define NT (WARPS * 32)
#define KS (D + 16)             // bytes per K row in shared memory (padding: no bank conflicts)
#define VS (D + 8)              // halves per V row in shared memory
#ifndef PV_FP8
#define PV_FP8 0                // P.V in e4m3 (m16n8k32, sm_89 and later) on V^T tiles from prep_values_t8
#endif
#define KTILE (BK * KS)
#if PV_FP8
#define VTILE (BK * D)          // bytes of an e4m3 V^T tile, prep_values_t8's layout as it is in memory
#define FP8_OFFSET 8.807f       // SageAttention2: P = 2^(S - m + 8.807) uses the e4m3 range
#else
#define VTILE (BK * VS * 2)
#endif
#ifndef STAGES
#define STAGES 2                // K/V tiles in flight (cp.async pipeline depth)
#endif
#ifndef EXP_F16
#define EXP_F16 1               // P = 2^x in fp16 pairs (ex2.approx.f16x2); 0: fp32 exp2 then rounding
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1            // thread blocks per SM the register budget must allow
#endif

#if PV_FP8
DEV void mma_e4m3(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// Dynamic shared memory: STAGES * (KTILE + VTILE) + nk * 12 + 2 * WARPS * 4 + 8 bytes.
// PV_FP8: v16 is the e4m3 V^T of prep_values_t8 ([B * Hkv][nk][BK * D], the strides unused) and
// vScale its per-channel scales ([B * Hkv][D]); else V in fp16 at the given strides.
// lse (optional, [B][H][Nq] fp32): each row's natural-log log-sum-exp of the scores it attended.
// keyValid (optional, [B][Nk] bytes, 0 = padding) and blockFlags ([B][nk], bit 0: the key block
// has padding): padded keys score -inf (the tiles with padding take the masked path).
extern "C" __global__ void __launch_bounds__(NT, MIN_BLOCKS) sparse_attention(
        const signed char* q8, const float* qScale, const signed char* k8, const float* kScale, const u16* v16, i64 vbs, i64 vhs, i64 vts,
        const unsigned char* map, int H, int groupSize, int Nq, int Nk, int nq, int nk,
        const float* lambdas, float scoreFactor, int causal, int offset, i64 window, int exemptTail, int tritonPad,
        void* out, int outType, i64 obs, i64 ohs, i64 ots, int* counts, float* lse,
        const unsigned char* keyValid, const unsigned char* blockFlags, const float* sinks, const float* vScale) {
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char* kbuf = smem;
    unsigned char* vbuf = smem + STAGES * KTILE;
    int* list = (int*)(vbuf + STAGES * VTILE);
    int* ords = list + nk;
    float* ksc = (float*)(ords + nk);
    int* wred = (int*)(ksc + nk);          // two sets of votes: a fast warp may write the next tile's
    int* sh = wred + 2 * WARPS;

    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int kvh = b * (H / groupSize) + h / groupSize;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int qStart = i * BQ, rows = min(BQ, Nq - qStart);
    const unsigned char* mrow = map + ((i64)bh * nq + i) * nk;

    if (warp == 0) visit_list(mrow, nk, BK, Nk, causal, (i64)qStart + rows - 1 + offset, window, (i64)qStart + offset - window,
                              kScale + (i64)kvh * nk, lane, list, ords, ksc, sh);

    // This warp's rows: MT tiles of 16, rows g and g + 8 of each (the mma fragment layout).
    // Q fragments (A operand of m16n8k32) stay in registers for the whole loop.
    int row[MT][2];
    bool valid[MT][2];
    unsigned qa[MT][D / 32][4];
    const signed char* qb = q8 + (i64)bh * Nq * D;
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int hf = 0; hf < 2; hf++) { row[mt][hf] = qStart + warp * ROWS + mt * 16 + g + hf * 8; valid[mt][hf] = row[mt][hf] < Nq; }
        #pragma unroll
        for (int kk = 0; kk < D / 32; kk++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int hf = e & 1;
                qa[mt][kk][e] = valid[mt][hf] ? *(const unsigned*)(qb + (i64)row[mt][hf] * D + kk * 32 + (e >> 1) * 16 + t4 * 4) : 0u;
            }
        }
    }
    const float qs = qScale[(i64)bh * nq + i];
    const float lam = lambdas[h];
    const bool lamFinite = fabsf(lam) < SP_INF;
    float m[MT][2];
    float lsum[MT][4];   // row sums of P from the tensor cores (P times a ones column); PV_FP8: [mt][hf] this thread's part of the fp32 sums
    float o[MT][D / 8][4];
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = -SP_INF; m[mt][1] = -SP_INF;
        #pragma unroll
        for (int e = 0; e < 4; e++) lsum[mt][e] = 0.0f;
        #pragma unroll
        for (int n = 0; n < D / 8; n++) { o[mt][n][0] = 0.0f; o[mt][n][1] = 0.0f; o[mt][n][2] = 0.0f; o[mt][n][3] = 0.0f; }
    }

    __syncthreads();
    const int cnt = sh[0], selected = sh[1];
    const signed char* kbase = k8 + (i64)kvh * Nk * D;
    const u16* vbase = v16 + (i64)(kvh / (H / groupSize)) * vbs + (i64)(kvh % (H / groupSize)) * vhs;

    auto load = [&](int idx, int buf) {
        const int kStart = list[idx] * BK;
        unsigned char* kd = kbuf + buf * KTILE;
        #pragma unroll
        for (int e = tid; e < BK * D / 16; e += NT) {
            int r = e / (D / 16), c = e - r * (D / 16);
            bool ok = kStart + r < Nk;
            cp16(kd + r * KS + c * 16, ok ? (const void*)(kbase + (i64)(kStart + r) * D + c * 16) : (const void*)kbase, ok ? 16 : 0);
        }
        unsigned char* vd = vbuf + buf * VTILE;
#if PV_FP8
        // The whole tile is one contiguous run, stored as it is (keys past Nk are zeros there).
        const unsigned char* vt8 = (const unsigned char*)v16 + ((i64)kvh * nk + list[idx]) * VTILE;
        #pragma unroll
        for (int e = tid; e < VTILE / 16; e += NT) cp16(vd + e * 16, vt8 + e * 16, 16);
#else
        #pragma unroll
        for (int e = tid; e < BK * D / 8; e += NT) {
            int r = e / (D / 8), c = e - r * (D / 8);
            bool ok = kStart + r < Nk;
            cp16(vd + (r * VS + c * 8) * 2, ok ? (const void*)(vbase + (i64)(kStart + r) * vts + c * 8) : (const void*)vbase, ok ? 16 : 0);
        }
#endif
    };

    int skipped = 0;
    #pragma unroll
    for (int st = 0; st < STAGES - 1; st++) { if (st < cnt) load(st, st); cp_commit(); }
    for (int idx = 0; idx < cnt; idx++) {
        const int buf = idx % STAGES;
        cp_wait<STAGES - 2>();
        __syncthreads();   // tile idx visible to all; every warp is done with tile idx - 1
        if (idx + STAGES - 1 < cnt) load(idx + STAGES - 1, (idx + STAGES - 1) % STAGES);
        cp_commit();
        const int j = list[idx], kStart = j * BK, cols = min(BK, Nk - kStart);
        // Step 1: S = dequant(Q K^T) in base-2 units. The int32 accumulators start at the bit
        // pattern of 1.5 * 2^23, so that (|Q.K| < 2^22 for D <= 256) each ends as the bit
        // pattern of the float 1.5 * 2^23 + Q.K: one exact subtraction instead of a
        // conversion instruction (a quarter-rate pipe) per score.
        const unsigned char* ks = kbuf + buf * KTILE;
        int acc[MT][BK / 8][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) { acc[mt][n][0] = MAGIC_I; acc[mt][n][1] = MAGIC_I; acc[mt][n][2] = MAGIC_I; acc[mt][n][3] = MAGIC_I; }
        }
        #pragma unroll
        for (int n = 0; n < BK / 8; n++) {
#if K_LDSM && D % 64 == 0
            // ldmatrix: one instruction brings the B fragments of two k32 steps (8 keys x 64 bytes).
            #pragma unroll
            for (int kp = 0; kp < D / 64; kp++) {
                unsigned kf[4];
                ldsm_x4(kf, ks + (n * 8 + (lane & 7)) * KS + kp * 64 + (lane >> 3) * 16);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_s8(acc[mt][n], qa[mt][2 * kp], kf[0], kf[1]);
                    mma_s8(acc[mt][n], qa[mt][2 * kp + 1], kf[2], kf[3]);
                }
            }
#else
            #pragma unroll
            for (int kk = 0; kk < D / 32; kk++) {
                const unsigned char* kr = ks + (n * 8 + g) * KS + kk * 32 + t4 * 4;
                const unsigned b0 = *(const unsigned*)kr, b1 = *(const unsigned*)(kr + 16);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) mma_s8(acc[mt][n], qa[mt][kk], b0, b1);
            }
#endif
        }
        const float sc = __fmul_rn(__fmul_rn(qs, ksc[idx]), scoreFactor);
        // Only the tiles at the end of the keys, on the causal diagonal or on the window's start
        // need masks; the others keep the raw sums (exact in fp32) and fold the scale into the
        // exp: max(acc * sc) = max(acc) * sc since rounding is monotone.
        const bool masked = kStart + BK > Nk || (causal && kStart + BK - 1 > qStart + offset)
            || (window > 0 && (i64)kStart <= (i64)qStart + BQ - 1 + offset - window)
            || (blockFlags && (blockFlags[(i64)b * nk + j] & 1));
        float s[MT][BK / 8][4];
        float ml[MT][2];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            ml[mt][0] = -SP_INF; ml[mt][1] = -SP_INF;
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) s[mt][n][e] = __fsub_rn(__int_as_float(acc[mt][n][e]), MAGIC_F);
            }
            if (masked) {
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = n * 8 + 2 * t4 + (e & 1);
                        float v = __fmul_rn(s[mt][n][e], sc);
                        if (col >= cols) v = tritonPad ? 0.0f : -SP_INF;
                        if (causal && kStart + col > row[mt][e >> 1] + offset) v = -SP_INF;
                        if (window > 0 && (i64)kStart + col <= (i64)row[mt][e >> 1] + offset - window) v = -SP_INF;
                        if (keyValid && col < cols && !keyValid[(i64)b * Nk + kStart + col]) v = -SP_INF;
                        s[mt][n][e] = v;
                        ml[mt][e >> 1] = fmaxf(ml[mt][e >> 1], v);
                    }
                }
            } else {
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
                    ml[mt][0] = fmaxf(ml[mt][0], fmaxf(s[mt][n][0], s[mt][n][1]));
                    ml[mt][1] = fmaxf(ml[mt][1], fmaxf(s[mt][n][2], s[mt][n][3]));
                }
            }
            #pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                ml[mt][hf] = fmaxf(ml[mt][hf], __shfl_xor_sync(0xffffffffu, ml[mt][hf], 1));
                ml[mt][hf] = fmaxf(ml[mt][hf], __shfl_xor_sync(0xffffffffu, ml[mt][hf], 2));
                if (!masked) ml[mt][hf] = __fmul_rn(ml[mt][hf], sc);
            }
        }
        const float mul = masked ? 1.0f : sc;
        // Steps 2-3: the filter, decided once for the whole query block (block_skips).
        const bool exempt = ords[idx] >= selected - exemptTail;
        bool skip = false;
        if (!exempt && lamFinite) {
            float inc = -SP_INF;
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                #pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    if (valid[mt][hf] && ml[mt][hf] != -SP_INF) inc = fmaxf(inc, m[mt][hf] == -SP_INF ? SP_INF : __fsub_rn(ml[mt][hf], m[mt][hf]));
                }
            }
            skip = block_skips<NT, WARPS>(inc, lam, wred + (idx & 1) * WARPS, warp, lane);
        }
        if (skip) {
            skipped++;
        } else {
#if PV_FP8
            // Steps 4-5 with SageAttention2's FP8 numerics: P = 2^(S - m + 8.807) in fp32, l summed
            // from it unrounded, P rounded to e4m3 and packed in place: the accumulator layout
            // of S is the A-operand layout of P with V^T's keys permuted to match (prep_values_t8).
            unsigned pa[MT][BK / 32][4];
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                float shf[2], a[2];
                bool keep[2];
                #pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const float mn = fmaxf(m[mt][hf], ml[mt][hf]);
                    a[hf] = m[mt][hf] == -SP_INF ? 1.0f : ex2(m[mt][hf] - mn);
                    m[mt][hf] = mn;
                    #pragma unroll
                    for (int n = 0; n < D / 8; n++) { o[mt][n][2 * hf] *= a[hf]; o[mt][n][2 * hf + 1] *= a[hf]; }
                    shf[hf] = __fadd_rn(mn == -SP_INF ? 0.0f : -mn, FP8_OFFSET);
                    keep[hf] = mn != -SP_INF;
                }
                float pf[BK / 8][4];
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) pf[n][e] = keep[e >> 1] ? ex2(fmaf(s[mt][n][e], mul, shf[e >> 1])) : 0.0f;
                }
                float ts0 = pf[0][0] + pf[0][1], ts1 = pf[0][2] + pf[0][3];
                #pragma unroll
                for (int n = 1; n < BK / 8; n++) { ts0 += pf[n][0] + pf[n][1]; ts1 += pf[n][2] + pf[n][3]; }
                lsum[mt][0] = __fmaf_rn(lsum[mt][0], a[0], ts0);
                lsum[mt][1] = __fmaf_rn(lsum[mt][1], a[1], ts1);
                #pragma unroll
                for (int kk = 0; kk < BK / 32; kk++) {
                    pa[mt][kk][0] = e4m3pack(pf[4 * kk][0], pf[4 * kk][1], pf[4 * kk + 1][0], pf[4 * kk + 1][1]);
                    pa[mt][kk][1] = e4m3pack(pf[4 * kk][2], pf[4 * kk][3], pf[4 * kk + 1][2], pf[4 * kk + 1][3]);
                    pa[mt][kk][2] = e4m3pack(pf[4 * kk + 2][0], pf[4 * kk + 2][1], pf[4 * kk + 3][0], pf[4 * kk + 3][1]);
                    pa[mt][kk][3] = e4m3pack(pf[4 * kk + 2][2], pf[4 * kk + 2][3], pf[4 * kk + 3][2], pf[4 * kk + 3][3]);
                }
            }
            // B fragments: channel n * 8 + g, positions 32 kk + 4 t4 (+ 16) of the V^T tile
            // (8 x 16-byte core matrices: 32 lanes read 32 distinct words).
            const unsigned char* vs = vbuf + buf * VTILE;
            #pragma unroll
            for (int kk = 0; kk < BK / 32; kk++) {
                #pragma unroll
                for (int n = 0; n < D / 8; n++) {
                    const unsigned char* vb = vs + n * (BK * 8) + kk * 256 + g * 16 + t4 * 4;
                    const unsigned b0 = *(const unsigned*)vb, b1 = *(const unsigned*)(vb + 128);
                    #pragma unroll
                    for (int mt = 0; mt < MT; mt++) mma_e4m3(o[mt][n], pa[mt][kk], b0, b1);
                }
            }
#else
            // Steps 4-5: rescale, P = 2^(S - m), l from the fp16 P, O += fp16(P) fp16(V).
            unsigned pa[MT][BK / 16][4];
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                float shf[2];
                unsigned keep[2];
                #pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const float mn = fmaxf(m[mt][hf], ml[mt][hf]);
                    const float a = m[mt][hf] == -SP_INF ? 1.0f : ex2(m[mt][hf] - mn);
                    m[mt][hf] = mn;
                    lsum[mt][2 * hf] *= a; lsum[mt][2 * hf + 1] *= a;
                    #pragma unroll
                    for (int n = 0; n < D / 8; n++) { o[mt][n][2 * hf] *= a; o[mt][n][2 * hf + 1] *= a; }
                    shf[hf] = mn == -SP_INF ? 0.0f : -mn;
                    keep[hf] = mn == -SP_INF ? 0u : 0xffffffffu;
                }
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
#if EXP_F16
                    // Two exponentials per MUFU instruction: fp32 arguments, fp16 results (what the
                    // tensor cores take); l comes from the same fp16 P through the ones column.
                    pa[mt][n >> 1][(n & 1) * 2 + 0] = ex2h2(fmaf(s[mt][n][0], mul, shf[0]), fmaf(s[mt][n][1], mul, shf[0])) & keep[0];
                    pa[mt][n >> 1][(n & 1) * 2 + 1] = ex2h2(fmaf(s[mt][n][2], mul, shf[1]), fmaf(s[mt][n][3], mul, shf[1])) & keep[1];
#else
                    pa[mt][n >> 1][(n & 1) * 2 + 0] = pack2(ex2(fmaf(s[mt][n][0], mul, shf[0])), ex2(fmaf(s[mt][n][1], mul, shf[0]))) & keep[0];
                    pa[mt][n >> 1][(n & 1) * 2 + 1] = pack2(ex2(fmaf(s[mt][n][2], mul, shf[1])), ex2(fmaf(s[mt][n][3], mul, shf[1]))) & keep[1];
#endif
                }
                #pragma unroll
                for (int kk = 0; kk < BK / 16; kk++) mma_f16(lsum[mt], pa[mt][kk], 0x3c003c00u, 0x3c003c00u);
            }
            const unsigned char* vs = vbuf + buf * VTILE;
            #pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                #pragma unroll
                for (int n16 = 0; n16 < D / 16; n16++) {
                    unsigned bfr[4];
                    const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    const int ch = n16 * 16 + (lane >> 4) * 8;
                    ldsm_x4_trans(bfr, vs + (key * VS + ch) * 2);
                    #pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma_f16(o[mt][2 * n16], pa[mt][kk], bfr[0], bfr[1]);
                        mma_f16(o[mt][2 * n16 + 1], pa[mt][kk], bfr[2], bfr[3]);
                    }
                }
            }
#endif
        }
    }
    const i64 ob = (i64)b * obs + (i64)h * ohs;
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int hf = 0; hf < 2; hf++) {
#if PV_FP8
            // The row sums over the four threads of a row; O = O / l * v_scale (the 2^8.807 cancels).
            float l = lsum[mt][hf];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float* vsc = vScale + (i64)kvh * D;
            const float lb = FP8_OFFSET;    // l carries 2^8.807
#else
            const float l = lsum[mt][2 * hf];
            const float* vsc = nullptr;
            const float lb = 0.0f;
#endif
            if (!valid[mt][hf]) continue;
            // A learned sink joins the denominator (with the offset l carries).
            float lf = l, f = 1.0f, mf = m[mt][hf];
            if (sinks) fold_sink(mf, lf, f, sinks[(i64)bh * Nq + row[mt][hf]] + lb);
            const float inv = lf == 0.0f ? 0.0f : f / lf;
            if (lse && t4 == 0) lse[(i64)bh * Nq + row[mt][hf]] = row_lse(mf, lf, lb);
            const i64 base = ob + (i64)row[mt][hf] * ots;
            #pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const int c = n * 8 + 2 * t4;
                CHANNEL_SCALES(c);
                stx(out, base + c, outType, o[mt][n][2 * hf] * inv * s0);
                stx(out, base + c + 1, outType, o[mt][n][2 * hf + 1] * inv * s1);
            }
        }
    }
    if (tid == 0 && counts) { counts[((i64)bh * nq + i) * 2] = cnt; counts[((i64)bh * nq + i) * 2 + 1] = skipped; }
}
"""#
}
#endif
