#if CUDA
/// CUDA C of stage 2 (ALGORITHM.md section 4): the block-sparse online softmax, one thread
/// block per (query block, head), 16 query rows per warp. Q.K^T on INT8 tensor cores
/// (`mma.sync` m16n8k32 s8, int32 accumulation), the per-query-block lambda filter, P.V on
/// fp16 tensor cores (m16n8k16, fp32 accumulation) with P and V rounded to fp16 as the
/// Ampere kernels do. K and V tiles of the next selected block are copied with `cp.async`
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

DEV void cp16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
DEV void cp_commit() { asm volatile("cp.async.commit_group;"); }
DEV void cp_wait1() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }

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
DEV unsigned pack2(float lo, float hi) { return (unsigned)f2h(lo) | ((unsigned)f2h(hi) << 16); }

// Dynamic shared memory: 2 * (KTILE + VTILE) + nk * 8 + WARPS * 4 + 8 bytes.
extern "C" __global__ void __launch_bounds__(NT) sparse_attention(
        const signed char* q8, const float* qScale, const signed char* k8, const float* kScale, const u16* v16,
        const unsigned char* map, int H, int groupSize, int Nq, int Nk, int NkPad, int nq, int nk,
        const float* lambdas, float scoreFactor, int causal, int offset, int exemptTail, int tritonPad,
        void* out, int outType, i64 obs, i64 ohs, i64 ots, int* counts) {
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char* kbuf = smem;
    unsigned char* vbuf = smem + 2 * KTILE;
    int* list = (int*)(vbuf + 2 * VTILE);
    int* ords = list + nk;
    float* wred = (float*)(ords + nk);
    int* sh = (int*)(wred + WARPS);

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
    float m0 = -SP_INF, m1 = -SP_INF, l0 = 0.0f, l1 = 0.0f;
    float o[D / 8][4];
    #pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }

    __syncthreads();
    const int cnt = sh[0], selected = sh[1];
    const signed char* kbase = k8 + (i64)kvh * Nk * D;
    const u16* vbase = v16 + (i64)kvh * NkPad * D;

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
            cp16(vd + (r * VS + c * 8) * 2, vbase + (i64)(kStart + r) * D + c * 8, 16);
        }
    };

    int skipped = 0;
    if (cnt > 0) load(0, 0);
    cp_commit();
    for (int idx = 0; idx < cnt; idx++) {
        const int buf = idx & 1;
        if (idx + 1 < cnt) load(idx + 1, buf ^ 1);
        cp_commit();
        cp_wait1();
        __syncthreads();
        const int j = list[idx], kStart = j * BK, cols = min(BK, Nk - kStart);
        // Step 1: S = dequant(Q K^T) in base-2 units, then the padding and causal masks.
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
        const float sc = __fmul_rn(__fmul_rn(qs, kScale[(i64)kvh * nk + j]), scoreFactor);
        float s[BK / 8][4];
        float ml0 = -SP_INF, ml1 = -SP_INF;
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
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 1));
        ml0 = fmaxf(ml0, __shfl_xor_sync(0xffffffffu, ml0, 2));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 1));
        ml1 = fmaxf(ml1, __shfl_xor_sync(0xffffffffu, ml1, 2));
        // Steps 2-3: the filter, decided once for the whole query block.
        float inc = -SP_INF;
        if (valid0 && ml0 != -SP_INF) inc = m0 == -SP_INF ? SP_INF : __fsub_rn(ml0, m0);
        if (valid1 && ml1 != -SP_INF) inc = fmaxf(inc, m1 == -SP_INF ? SP_INF : __fsub_rn(ml1, m1));
        inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 4));
        inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 8));
        inc = fmaxf(inc, __shfl_xor_sync(0xffffffffu, inc, 16));
        if (lane == 0) wred[warp] = inc;
        __syncthreads();
        float best = -SP_INF;
        #pragma unroll
        for (int w = 0; w < WARPS; w++) best = fmaxf(best, wred[w]);
        const bool exempt = ords[idx] >= selected - exemptTail;
        if (!exempt && lamFinite && __fadd_rn(best, lam) <= 0.0f) {
            skipped++;
        } else {
            // Steps 4-5: rescale, P = 2^(S - m), l from the fp32 P, O += fp16(P) fp16(V).
            const float mn0 = fmaxf(m0, ml0), mn1 = fmaxf(m1, ml1);
            const float a0 = m0 == -SP_INF ? 1.0f : ex2(m0 - mn0);
            const float a1 = m1 == -SP_INF ? 1.0f : ex2(m1 - mn1);
            m0 = mn0; m1 = mn1;
            l0 *= a0; l1 *= a1;
            #pragma unroll
            for (int n = 0; n < D / 8; n++) { o[n][0] *= a0; o[n][1] *= a0; o[n][2] *= a1; o[n][3] *= a1; }
            unsigned pa[BK / 16][4];
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                float p0 = mn0 == -SP_INF ? 0.0f : ex2(s[n][0] - mn0);
                float p1 = mn0 == -SP_INF ? 0.0f : ex2(s[n][1] - mn0);
                float p2 = mn1 == -SP_INF ? 0.0f : ex2(s[n][2] - mn1);
                float p3 = mn1 == -SP_INF ? 0.0f : ex2(s[n][3] - mn1);
                l0 += p0 + p1; l1 += p2 + p3;
                pa[n >> 1][(n & 1) * 2 + 0] = pack2(p0, p1);
                pa[n >> 1][(n & 1) * 2 + 1] = pack2(p2, p3);
            }
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
        __syncthreads();
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
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
