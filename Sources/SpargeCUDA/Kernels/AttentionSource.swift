#if CUDA
/// CUDA C of stage 2 (ALGORITHM.md section 4): the block-sparse online softmax, one thread
/// block per (query block, head), 16 query rows per warp. Q.K^T on INT8 tensor cores
/// (`mma.sync` m16n8k32 s8, int32 accumulation), the per-query-block lambda filter, P.V on
/// fp16 tensor cores (m16n8k16, fp32 accumulation) with P and V in fp16 as the Ampere
/// kernels do: P = 2^x is evaluated two at a time in fp16 (`ex2.approx.f16x2`; the special
/// function unit is the bottleneck at head dim 64) and the row sums `l` are the tensor cores'
/// product of P with a column of ones (fp32 sums of the same fp16 P). K and V tiles of the next selected block are copied with `cp.async`
/// while the current one is computed. Compiled once per (HEAD_DIM, BLOCK_Q, BLOCK_K).
enum AttentionSource {
    static let text = CommonSource.text + #"""

#define D HEAD_DIM
#define BQ BLOCK_Q
#define BK BLOCK_K
#define WARPS (BQ / 16)
#define NT (WARPS * 32)
#define KS (D + 16)             // bytes per K row in shared memory (padding: no bank conflicts)
#define VS (D + 8)              // halves per V row in shared memory
#define KTILE (BK * KS)
#define VTILE (BK * VS * 2)
#ifndef STAGES
#define STAGES 2                // K/V tiles in flight (cp.async pipeline depth)
#endif
#ifndef EXP_F16
#define EXP_F16 1               // P = 2^x in fp16 pairs (ex2.approx.f16x2); 0: fp32 exp2 then rounding
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1            // thread blocks per SM the register budget must allow
#endif

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

// Dynamic shared memory: STAGES * (KTILE + VTILE) + nk * 12 + 2 * WARPS * 4 + 8 bytes.
extern "C" __global__ void __launch_bounds__(NT, MIN_BLOCKS) sparse_attention(
        const signed char* q8, const float* qScale, const signed char* k8, const float* kScale, const u16* v16, i64 vbs, i64 vhs, i64 vts,
        const unsigned char* map, int H, int groupSize, int Nq, int Nk, int nq, int nk,
        const float* lambdas, float scoreFactor, int causal, int offset, int exemptTail, int tritonPad,
        void* out, int outType, i64 obs, i64 ohs, i64 ots, int* counts) {
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char* kbuf = smem;
    unsigned char* vbuf = smem + STAGES * KTILE;
    int* list = (int*)(vbuf + STAGES * VTILE);
    int* ords = list + nk;
    float* ksc = (float*)(ords + nk);
    float* wred = ksc + nk;                // two sets: a fast warp may write the next tile's value
    int* sh = (int*)(wred + 2 * WARPS);

    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int kvh = b * (H / groupSize) + h / groupSize;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int qStart = i * BQ, rows = min(BQ, Nq - qStart);
    const unsigned char* mrow = map + ((i64)bh * nq + i) * nk;

    // The visit list: marked blocks in ascending order, without those entirely in the future
    // of every row (causal); `ords` keeps each one's ordinal among all marked blocks.
    if (warp == 0) {
        int selected = 0, cnt = 0;
        for (int base = 0; base < nk; base += 32) {
            int j = base + lane;
            bool marked = j < nk && mrow[j] != 0;
            bool future = causal && (i64)j * BK > (i64)qStart + rows - 1 + offset;
            unsigned mm = __ballot_sync(0xffffffffu, marked);
            unsigned mv = __ballot_sync(0xffffffffu, marked && !future);
            unsigned below = (1u << lane) - 1u;
            if (marked && !future) {
                int pos = cnt + __popc(mv & below);
                list[pos] = j;
                ords[pos] = selected + __popc(mm & below);
                ksc[pos] = kScale[(i64)kvh * nk + j];   // prefetched: no global load in the loop
            }
            selected += __popc(mm);
            cnt += __popc(mv);
        }
        if (lane == 0) { sh[0] = cnt; sh[1] = selected; }
    }

    // Q fragments of this warp's 16 rows (A operand of m16n8k32), kept for the whole loop.
    const int r0 = qStart + warp * 16 + g, r1 = r0 + 8;
    const bool valid0 = r0 < Nq, valid1 = r1 < Nq;
    unsigned qa[D / 32][4];
    const signed char* qb = q8 + (i64)bh * Nq * D;
    #pragma unroll
    for (int kk = 0; kk < D / 32; kk++) {
        qa[kk][0] = valid0 ? *(const unsigned*)(qb + (i64)r0 * D + kk * 32 + t4 * 4) : 0u;
        qa[kk][1] = valid1 ? *(const unsigned*)(qb + (i64)r1 * D + kk * 32 + t4 * 4) : 0u;
        qa[kk][2] = valid0 ? *(const unsigned*)(qb + (i64)r0 * D + kk * 32 + 16 + t4 * 4) : 0u;
        qa[kk][3] = valid1 ? *(const unsigned*)(qb + (i64)r1 * D + kk * 32 + 16 + t4 * 4) : 0u;
    }
    const float qs = qScale[(i64)bh * nq + i];
    const float lam = lambdas[h];
    const bool lamFinite = fabsf(lam) < SP_INF;
    float m0 = -SP_INF, m1 = -SP_INF;
    float lsum[4] = {0.0f, 0.0f, 0.0f, 0.0f};   // row sums of P from the tensor cores (P times a ones column)
    float o[D / 8][4];
    #pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }

    __syncthreads();
    const int cnt = sh[0], selected = sh[1];
    const signed char* kbase = k8 + (i64)kvh * Nk * D;
    const u16* vbase = v16 + (i64)(kvh / (H / groupSize)) * vbs + (i64)(kvh % (H / groupSize)) * vhs;

    auto load = [&](int idx, int buf) {
        const int kStart = list[idx] * BK;
        unsigned char* kd = kbuf + buf * KTILE;
        for (int e = tid; e < BK * D / 16; e += NT) {
            int r = e / (D / 16), c = e - r * (D / 16);
            bool ok = kStart + r < Nk;
            cp16(kd + r * KS + c * 16, ok ? (const void*)(kbase + (i64)(kStart + r) * D + c * 16) : (const void*)kbase, ok ? 16 : 0);
        }
        unsigned char* vd = vbuf + buf * VTILE;
        for (int e = tid; e < BK * D / 8; e += NT) {
            int r = e / (D / 8), c = e - r * (D / 8);
            bool ok = kStart + r < Nk;
            cp16(vd + (r * VS + c * 8) * 2, ok ? (const void*)(vbase + (i64)(kStart + r) * vts + c * 8) : (const void*)vbase, ok ? 16 : 0);
        }
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
        // Step 1: S = dequant(Q K^T) in base-2 units.
        const unsigned char* ks = kbuf + buf * KTILE;
        int acc[BK / 8][4];
        #pragma unroll
        for (int n = 0; n < BK / 8; n++) { acc[n][0] = 0; acc[n][1] = 0; acc[n][2] = 0; acc[n][3] = 0; }
        #pragma unroll
        for (int kk = 0; kk < D / 32; kk++) {
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                const unsigned char* kr = ks + (n * 8 + g) * KS + kk * 32 + t4 * 4;
                mma_s8(acc[n], qa[kk], *(const unsigned*)kr, *(const unsigned*)(kr + 16));
            }
        }
        const float sc = __fmul_rn(__fmul_rn(qs, ksc[idx]), scoreFactor);
        // Only the tiles at the end of the keys or on the causal diagonal need masks; the
        // others keep the raw int32 sums (exact in fp32) and fold the scale into the exp:
        // max(acc * sc) = max(acc) * sc since rounding is monotone.
        const bool masked = kStart + BK > Nk || (causal && kStart + BK - 1 > qStart + offset);
        float s[BK / 8][4];
        float ml0 = -SP_INF, ml1 = -SP_INF;
        if (masked) {
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    int col = n * 8 + 2 * t4 + (e & 1);
                    int row = e < 2 ? r0 : r1;
                    float v = __fmul_rn((float)acc[n][e], sc);
                    if (col >= cols) v = tritonPad ? 0.0f : -SP_INF;
                    if (causal && kStart + col > row + offset) v = -SP_INF;
                    s[n][e] = v;
                    if (e < 2) ml0 = fmaxf(ml0, v); else ml1 = fmaxf(ml1, v);
                }
            }
        } else {
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                s[n][0] = (float)acc[n][0]; s[n][1] = (float)acc[n][1]; s[n][2] = (float)acc[n][2]; s[n][3] = (float)acc[n][3];
                ml0 = fmaxf(ml0, fmaxf(s[n][0], s[n][1])); ml1 = fmaxf(ml1, fmaxf(s[n][2], s[n][3]));
            }
        }
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 1));
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 2));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 1));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 2));
        if (!masked) { ml0 = __fmul_rn(ml0, sc); ml1 = __fmul_rn(ml1, sc); }
        const float mul = masked ? 1.0f : sc;
        // Steps 2-3: the filter, decided once for the whole query block (a barrier only when
        // this tile can be skipped at all).
        const bool exempt = ords[idx] >= selected - exemptTail;
        bool skip = false;
        if (!exempt && lamFinite) {
            float inc = -SP_INF;
            if (valid0 && ml0 != -SP_INF) inc = m0 == -SP_INF ? SP_INF : __fsub_rn(ml0, m0);
            if (valid1 && ml1 != -SP_INF) inc = fmaxf(inc, m1 == -SP_INF ? SP_INF : __fsub_rn(ml1, m1));
            inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 4));
            inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 8));
            inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 16));
            if (lane == 0) wred[(idx & 1) * WARPS + warp] = inc;
            __syncthreads();
            float best = -SP_INF;
            #pragma unroll
            for (int w = 0; w < WARPS; w++) best = fmaxf(best, wred[(idx & 1) * WARPS + w]);
            skip = __fadd_rn(best, lam) <= 0.0f;
        }
        if (skip) {
            skipped++;
        } else {
            // Steps 4-5: rescale, P = 2^(S - m), l from the fp32 P, O += fp16(P) fp16(V).
            const float mn0 = fmaxf(m0, ml0), mn1 = fmaxf(m1, ml1);
            const float a0 = m0 == -SP_INF ? 1.0f : ex2(m0 - mn0);
            const float a1 = m1 == -SP_INF ? 1.0f : ex2(m1 - mn1);
            m0 = mn0; m1 = mn1;
            lsum[0] *= a0; lsum[1] *= a0; lsum[2] *= a1; lsum[3] *= a1;
            #pragma unroll
            for (int n = 0; n < D / 8; n++) { o[n][0] *= a0; o[n][1] *= a0; o[n][2] *= a1; o[n][3] *= a1; }
            const float sh0 = mn0 == -SP_INF ? 0.0f : -mn0, sh1 = mn1 == -SP_INF ? 0.0f : -mn1;
            const unsigned keep0 = mn0 == -SP_INF ? 0u : 0xffffffffu, keep1 = mn1 == -SP_INF ? 0u : 0xffffffffu;
            unsigned pa[BK / 16][4];
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
#if EXP_F16
                // Two exponentials per MUFU instruction: fp32 arguments, fp16 results (what the
                // tensor cores take); l comes from the same fp16 P through the ones column.
                pa[n >> 1][(n & 1) * 2 + 0] = ex2h2(fmaf(s[n][0], mul, sh0), fmaf(s[n][1], mul, sh0)) & keep0;
                pa[n >> 1][(n & 1) * 2 + 1] = ex2h2(fmaf(s[n][2], mul, sh1), fmaf(s[n][3], mul, sh1)) & keep1;
#else
                float p0 = ex2(fmaf(s[n][0], mul, sh0)), p1 = ex2(fmaf(s[n][1], mul, sh0));
                float p2 = ex2(fmaf(s[n][2], mul, sh1)), p3 = ex2(fmaf(s[n][3], mul, sh1));
                pa[n >> 1][(n & 1) * 2 + 0] = pack2(p0, p1) & keep0;
                pa[n >> 1][(n & 1) * 2 + 1] = pack2(p2, p3) & keep1;
#endif
            }
            #pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) mma_f16(lsum, pa[kk], 0x3c003c00u, 0x3c003c00u);
            const unsigned char* vs = vbuf + buf * VTILE;
            #pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                #pragma unroll
                for (int n16 = 0; n16 < D / 16; n16++) {
                    unsigned bfr[4];
                    int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    int ch = n16 * 16 + (lane >> 4) * 8;
                    ldsm_x4_trans(bfr, vs + (key * VS + ch) * 2);
                    mma_f16(o[2 * n16], pa[kk], bfr[0], bfr[1]);
                    mma_f16(o[2 * n16 + 1], pa[kk], bfr[2], bfr[3]);
                }
            }
        }
    }
    const float l0 = lsum[0], l1 = lsum[2];
    const float inv0 = l0 == 0.0f ? 0.0f : 1.0f / l0, inv1 = l1 == 0.0f ? 0.0f : 1.0f / l1;
    const i64 ob = (i64)b * obs + (i64)h * ohs;
    #pragma unroll
    for (int n = 0; n < D / 8; n++) {
        int c = n * 8 + 2 * t4;
        if (valid0) { stx(out, ob + (i64)r0 * ots + c, outType, o[n][0] * inv0); stx(out, ob + (i64)r0 * ots + c + 1, outType, o[n][1] * inv0); }
        if (valid1) { stx(out, ob + (i64)r1 * ots + c, outType, o[n][2] * inv1); stx(out, ob + (i64)r1 * ots + c + 1, outType, o[n][3] * inv1); }
    }
    if (tid == 0 && counts) { counts[((i64)bh * nq + i) * 2] = cnt; counts[((i64)bh * nq + i) * 2 + 1] = skipped; }
}
"""#
}
#endif
