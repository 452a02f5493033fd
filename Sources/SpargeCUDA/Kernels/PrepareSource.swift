#if CUDA
/// CUDA C of the preparation kernels (ExactSemantics.md sections 1-3): K mean, K smoothing, block
/// summaries, INT8 quantization, stage-1 selection, V in fp16. Each kernel repeats the CPU
/// path's arithmetic in the same order (compiled with `--fmad=false`; fused only where the
/// CPU build fuses), so masks and INT8 tensors come out identical.
enum PrepareSource {
    static let text = CommonSource.text + #"""

// Section 1, part 1: fp32 partial sums of 64 keys (the CPU's flush granularity), widened to
// double; with GPU rounding, double sums of fp16 values (exact, so order-free).
extern "C" __global__ void k_mean_partial(const void* k, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int D, int gpuRound, double* partial) {
    int chunk = blockIdx.x, bh = blockIdx.y, chunks = gridDim.x;
    int b = bh / Hkv, h = bh % Hkv;
    int t0 = chunk * 64, t1 = min(N, t0 + 64);
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        i64 base = b * bs + h * hs + c;
        double r;
        if (gpuRound) {
            double s = 0;
            for (int t = t0; t < t1; t++) s += (double)roundh(ldx(k, base + t * ts, type));
            r = s;
        } else {
            float s = 0;
            #pragma unroll 8
            for (int t = t0; t < t1; t++) s = __fadd_rn(s, ldx(k, base + t * ts, type));
            r = (double)s;
        }
        partial[((i64)bh * chunks + chunk) * D + c] = r;
    }
}

// Section 1, part 2: the mean (fp16-rounded with GPU rounding): the partial sums of 8
// channels per thread block, summed in chunk order by one thread per channel from shared
// memory, where all 256 threads stage them (the loads in parallel, not one chain of global
// loads). grid (B*H, ceil(D / 8)), 256 threads, 128 * 8 doubles of dynamic shared memory.
extern "C" __global__ void k_mean_finish(const double* partial, int chunks, int N, int D, int gpuRound, float* mean) {
    extern __shared__ double part[];
    const int bh = blockIdx.x, c0 = blockIdx.y * 8, tid = threadIdx.x;
    double s = 0;
    for (int base = 0; base < chunks; base += 128) {
        const int n = min(128, chunks - base);
        for (int e = tid; e < n * 8; e += blockDim.x) {
            const int c = c0 + (e & 7);
            part[e] = c < D ? partial[((i64)bh * chunks + base + (e >> 3)) * D + c] : 0.0;
        }
        __syncthreads();
        if (tid < 8) {
            #pragma unroll 8
            for (int ch = 0; ch < n; ch++) s += part[ch * 8 + tid];
        }
        __syncthreads();
    }
    if (tid < 8 && c0 + tid < D) {
        float m = (float)(s / (double)N);
        mean[(i64)bh * D + c0 + tid] = gpuRound ? roundh(m) : m;
    }
}

// Sections 1-3 for one block of Q or K: (K' = K - mean), pooled mean, self-similarity,
// scale and INT8 values. grid (blocks, B*H), dynamic shared memory
// (blockSize * (D + 1) + blockSize + D + 64) floats. Instantiated per input element type so the
// loads are plain and batched. INT8 rows are row-major [head][token][D], or with `tiled` in
// the Hopper kernel's shared-memory layout, one contiguous tile per block ([head][block]
// [blockSize * D], 8 x 16-byte core matrices, D a multiple of 16), rows past the end zero.
template <int TYPE>
DEV void prep_blocks_body(const void* x, i64 bs, i64 hs, i64 ts,
        int H, int N, int D, int blockSize, const float* mean, float premul, int gpuRound, int partialNever, int tiled,
        int vec, signed char* q8, float* scaleOut, float* pooledOut, float* simOut) {
    extern __shared__ float sm[];
    int j = blockIdx.x, bh = blockIdx.y, nb = gridDim.x;
    int b = bh / H, h = bh % H;
    int start = j * blockSize, rows = min(blockSize, N - start);
    float* xs = sm;
    const int DP = D + 1;                // padded rows: row-wise and column-wise reads are conflict-free
    float* norms = xs + blockSize * DP;
    float* usum = norms + blockSize;
    float* red = usum + D;
    const float* mu = mean ? mean + (i64)bh * D : 0;
    int tid = threadIdx.x, nt = blockDim.x;
    float amax = 0;
    // Each pass of the threads covers nt / D whole rows (quantization, below).
    const int rowsPerPass = nt / D, c0 = tid % D, r0 = tid / D;
    // The element transform: K - mean, fp16 rounding with GPU rounding.
    auto prepare = [&](float v, int c) {
        const float m = mu ? mu[c] : 0.0f;
        if (mu) v = gpuRound ? roundh(__fsub_rn(roundh(v), m)) : __fsub_rn(v, m);
        else if (gpuRound) v = roundh(v);
        return v;
    };
    if (vec) {
        // 16-byte loads (`vec`: the host checked that rows are 16-byte aligned and D is a
        // multiple of the elements per load): fewer load instructions, more bytes in flight.
        constexpr int E = TYPE == 0 ? 4 : 8;
        const int chunks = D / E, cc = tid % chunks, rr = tid / chunks, rowsPerLoad = nt / chunks;
        if (rr < rowsPerLoad) {
            #pragma unroll 4
            for (int r = rr; r < rows; r += rowsPerLoad) {
                float f[8];
                ld16(x, b * bs + h * hs + (i64)(start + r) * ts + cc * E, TYPE, f);
                #pragma unroll
                for (int e = 0; e < E; e++) {
                    const float v = prepare(f[e], cc * E + e);
                    xs[r * DP + cc * E + e] = v;
                    amax = fmaxf(amax, fabsf(v));
                }
            }
        }
    } else if (r0 < rowsPerPass) {
        #pragma unroll 8
        for (int r = r0; r < rows; r += rowsPerPass) {
            float v = prepare(ldx(x, b * bs + h * hs + (i64)(start + r) * ts + c0, TYPE), c0);
            xs[r * DP + c0] = v;
            amax = fmaxf(amax, fabsf(v));
        }
    }
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if ((tid & 31) == 0) red[tid >> 5] = amax;
    __syncthreads();
    // Row norms, eight lanes as the CPU's SIMD8 loop, then its horizontal sum and the tail.
    int vend = D & ~7;
    for (int r = tid; r < rows; r += nt) {
        const float* row = xs + r * DP;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        for (int c = 0; c < vend; c += 8) {
            s0 = madd(row[c], row[c], s0); s1 = madd(row[c + 1], row[c + 1], s1);
            s2 = madd(row[c + 2], row[c + 2], s2); s3 = madd(row[c + 3], row[c + 3], s3);
            s4 = madd(row[c + 4], row[c + 4], s4); s5 = madd(row[c + 5], row[c + 5], s5);
            s6 = madd(row[c + 6], row[c + 6], s6); s7 = madd(row[c + 7], row[c + 7], s7);
        }
        float a0 = __fadd_rn(s0, s4), a1 = __fadd_rn(s1, s5), a2 = __fadd_rn(s2, s6), a3 = __fadd_rn(s3, s7);
        float n2 = __fadd_rn(__fadd_rn(a0, a2), __fadd_rn(a1, a3));
        for (int c = vend; c < D; c++) n2 = __fadd_rn(n2, __fmul_rn(row[c], row[c]));
        norms[r] = __fsqrt_rn(n2);
    }
    if (tid == 0) {
        float m = 0;
        for (int w = 0; w < (nt + 31) / 32; w++) m = fmaxf(m, red[w]);
        red[32] = __fadd_rn(__fdiv_rn(__fmul_rn(m, premul), 127.0f), 1e-7f);
    }
    __syncthreads();
    const float sc = red[32];
    // Rows past the end of a tiled block are written as zeros (the tile is copied whole).
    signed char* dst = q8 + (tiled ? ((i64)bh * nb + j) * blockSize * D : ((i64)bh * N + start) * D);
    const int end = tiled ? blockSize : rows, cOff = (c0 >> 4) * 128 + (c0 & 15);
    if (r0 < rowsPerPass) {
        #pragma unroll 4
        for (int r = r0; r < end; r += rowsPerPass) {
            signed char q = 0;
            if (r < rows) {
                float y = __fdiv_rn(__fmul_rn(xs[r * DP + c0], premul), sc);
                float t = fminf(floorf(__fadd_rn(fabsf(y), 0.5f)), 127.0f);
                q = (signed char)(int)(y < 0 ? -t : t);
            }
            dst[tiled ? (r >> 3) * (D * 8) + (r & 7) * 16 + cOff : r * D + c0] = q;
        }
    }
    // Column sums in the CPU's row order: the pooled mean from the values, then (all threads)
    // each value divided by its row's norm as the CPU does, in place, then the sum of those
    // unit rows. The divisions run on every thread, not inside the sequential sums.
    const float n = (float)rows;
    if (tid < D) {
        float p = 0;
        #pragma unroll 8
        for (int r = 0; r < rows; r++) p = __fadd_rn(p, xs[r * DP + tid]);
        const float m = __fdiv_rn(p, n);
        pooledOut[((i64)bh * nb + j) * D + tid] = gpuRound ? roundh(m) : m;
    }
    __syncthreads();
    if (r0 < rowsPerPass) {
        #pragma unroll 4
        for (int r = r0; r < rows; r += rowsPerPass) {
            const float w = __fdiv_rn(xs[r * DP + c0], norms[r]);
            xs[r * DP + c0] = gpuRound ? roundh(w) : w;
        }
    }
    __syncthreads();
    if (tid < D) {
        float u = 0;
        #pragma unroll 8
        for (int r = 0; r < rows; r++) u = __fadd_rn(u, xs[r * DP + tid]);
        usum[tid] = u;
    }
    __syncthreads();
    if (tid == 0) {
        float sim;
        if (rows < blockSize && partialNever) sim = __int_as_float(0x7fc00000);
        else {
            float total = 0;
            for (int c = 0; c < D; c++) total = __fadd_rn(total, __fmul_rn(usum[c], usum[c]));
            sim = __fdiv_rn(total, __fmul_rn(n, n));
        }
        simOut[(i64)bh * nb + j] = sim;
        scaleOut[(i64)bh * nb + j] = sc;
    }
}
#define PREP_BLOCKS(NAME, TYPE) \
extern "C" __global__ void NAME(const void* x, i64 bs, i64 hs, i64 ts, int H, int N, int D, int blockSize, \
        const float* mean, float premul, int gpuRound, int partialNever, int tiled, int vec, signed char* q8, \
        float* scaleOut, float* pooledOut, float* simOut) { \
    prep_blocks_body<TYPE>(x, bs, hs, ts, H, N, D, blockSize, mean, premul, gpuRound, partialNever, tiled, vec, q8, scaleOut, pooledOut, simOut); \
}
PREP_BLOCKS(prep_blocks_f32, 0)
PREP_BLOCKS(prep_blocks_f16, 1)
PREP_BLOCKS(prep_blocks_bf16, 2)

// Section 2, step 3: compressed scores of 8 query blocks x 32 key blocks per thread block,
// each a sequential dot product in the CPU's order, with the -inf of key blocks that are not
// self-similar, of the causal future and (blockFlags bit 1, [B][nk], optional) of key blocks
// whose keys are all padding, as on the CPU: such blocks take no share of the block softmax,
// so the CDF count does not depend on them. grid (ceil(nq/8), ceil(nk/32), B*H), 256 threads,
// dynamic shared memory (8 * D + 32 * (D + 1)) floats.
extern "C" __global__ void block_scores(const float* pooledQ, const float* pooledK, const float* simK,
        int H, int groupSize, int nq, int nk, int D, int bq, int bk, float scale, const float* theta,
        int causal, int offset, int gpuRound, const unsigned char* blockFlags, float* scores) {
    extern __shared__ float sm[];
    float* pq = sm;
    float* pk = sm + 8 * D;
    int bh = blockIdx.z, b = bh / H, h = bh % H, kh = b * (H / groupSize) + h / groupSize;
    int i0 = blockIdx.x * 8, j0 = blockIdx.y * 32, tid = threadIdx.x;
    for (int e = tid; e < 8 * D; e += 256) {
        int r = e / D;
        pq[e] = i0 + r < nq ? pooledQ[((i64)bh * nq + i0) * D + e] : 0.0f;
    }
    for (int e = tid; e < 32 * D; e += 256) {
        int r = e / D, c = e - r * D;
        pk[r * (D + 1) + c] = j0 + r < nk ? pooledK[((i64)kh * nk + j0) * D + e] : 0.0f;
    }
    __syncthreads();
    int i = i0 + (tid >> 5), j = j0 + (tid & 31);
    if (i >= nq || j >= nk) return;
    float th = theta[h];
    float s;
    if (!(simK[(i64)kh * nk + j] > th) || (causal && !((i64)j * bk < (i64)(i + 1) * bq + offset))
        || (blockFlags && (blockFlags[(i64)b * nk + j] & 2))) s = -SP_INF;
    else {
        const float* a = pq + (tid >> 5) * D;
        const float* k = pk + (tid & 31) * (D + 1);
        float dot = 0;
        #pragma unroll 8
        for (int c = 0; c < D; c++) dot = __fadd_rn(dot, __fmul_rn(a[c], k[c]));
        s = gpuRound ? roundh(__fmul_rn(roundh(dot), scale)) : __fmul_rn(dot, scale);
    }
    scores[((i64)bh * nq + i) * nk + j] = s;
}

// Section 2, steps 4-7, for query block blockIdx.x of head blockIdx.y, from the compressed
// scores. Dynamic shared memory: P2 * 8 (sort keys) + (nk + 64) * 4 + nk bytes,
// P2 = next power of two >= nk.
extern "C" __global__ void select_blocks(const float* scores, const float* simQ, const float* simK,
        int H, int groupSize, int nq, int nk, int P2, int bq, int bk,
        const float* theta, const float* sel, int isTopK, int causal, int offset, int sink, int gpuRound,
        unsigned char* map, float* probsOut) {
    extern __shared__ u64 keys[];
    float* probs = (float*)(keys + P2);
    float* red = probs + nk;
    unsigned char* rowm = (unsigned char*)(red + 64);
    int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    int kh = b * (H / groupSize) + h / groupSize;
    int tid = threadIdx.x, nt = blockDim.x;
    float th = theta[h];
    const float* sk = simK + (i64)kh * nk;
    float lmax = -SP_INF;
    for (int j = tid; j < nk; j += nt) {
        float s = scores[((i64)bh * nq + i) * nk + j];
        probs[j] = s;
        lmax = fmaxf(lmax, s);
    }
    for (int o = 16; o > 0; o >>= 1) lmax = fmaxf(lmax, __shfl_xor_sync(0xffffffffu, lmax, o));
    if ((tid & 31) == 0) red[tid >> 5] = lmax;
    __syncthreads();
    float rowMax = -SP_INF;
    for (int w = 0; w < (nt + 31) / 32; w++) rowMax = fmaxf(rowMax, red[w]);
    // Softmax; exp in double then rounded, which is what glibc's expf returns.
    for (int j = tid; j < nk; j += nt)
        probs[j] = rowMax == -SP_INF ? 0.0f : (float)exp((double)__fsub_rn(probs[j], rowMax));
    __syncthreads();
    if (tid == 0) {
        // In the CPU's order; unrolled so that the loads run ahead of the chain of adds.
        float sum = 0;
        #pragma unroll 8
        for (int j = 0; j < nk; j++) sum = __fadd_rn(sum, probs[j]);
        red[32] = sum;
    }
    __syncthreads();
    float sum = red[32];
    for (int j = tid; j < P2; j += nt) {
        if (j < nk) {
            float p = probs[j];
            if (rowMax != -SP_INF) { p = __fdiv_rn(p, sum); if (gpuRound) p = roundh(p); }
            probs[j] = p;
            if (probsOut) probsOut[((i64)bh * nq + i) * nk + j] = p;
            keys[j] = ((u64)(0xffffffffu - __float_as_uint(p)) << 32) | (u64)j;
            rowm[j] = 0;
        } else keys[j] = ~0ull;
    }
    __syncthreads();
    // Bitonic sort, ascending keys = descending probability, lower index first on ties.
    for (int k = 2; k <= P2; k <<= 1) {
        for (int s = k >> 1; s > 0; s >>= 1) {
            for (int t = tid; t < P2; t += nt) {
                int p = t ^ s;
                if (p > t) {
                    u64 a = keys[t], c = keys[p];
                    bool up = (t & k) == 0;
                    if ((a > c) == up) { keys[t] = c; keys[p] = a; }
                }
            }
            __syncthreads();
        }
    }
    if (tid == 0) {
        int count;
        if (isTopK) count = max(1, (int)__fmul_rn(sel[h], (float)nk));
        else {
            count = 0;
            float cum = 0;
            for (int t = 0; t < nk; t++) {
                float p = probs[(int)(keys[t] & 0xffffffffu)];
                cum = gpuRound ? roundh(__fadd_rn(cum, p)) : __fadd_rn(cum, p);
                if (cum <= sel[h]) count = t + 1; else break;
            }
            count = max(count, 1);
        }
        red[33] = __int_as_float(min(count, nk));
    }
    __syncthreads();
    int count = __float_as_int(red[33]);
    for (int t = tid; t < count; t += nt) rowm[(int)(keys[t] & 0xffffffffu)] = 1;
    __syncthreads();
    bool selfSimilarQ = simQ[(i64)bh * nq + i] > th;
    unsigned char* out = map + ((i64)bh * nq + i) * nk;
    for (int j = tid; j < nk; j += nt) {
        unsigned char m = rowm[j];
        if (!selfSimilarQ || !(sk[j] > th)) m = 1;
        if (causal && !((i64)j * bk < (i64)(i + 1) * bq + offset)) m = 0;
        if (sink && j == 0) m = 1;
        out[j] = m;
    }
}

// K smoothing leaves the softmax alone but shifts each row's scores, so its log-sum-exp, by
// q.mean: the stage-2 kernels' LSE (of q.(k - mean)) gets scale * q.mean added back, in double
// like the CPU path. One thread per query row; grid (ceil(N / 128), B * H), block 128.
extern "C" __global__ void lse_add_key_mean(const void* q, int type, i64 bs, i64 hs, i64 ts, int H, int groupSize,
        int N, int D, const float* mean, float scale, float* lse) {
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= N) return;
    const float* mu = mean + ((i64)b * (H / groupSize) + h / groupSize) * D;
    const i64 base = (i64)b * bs + (i64)h * hs + (i64)t * ts;
    double dot = 0.0;
    for (int c = 0; c < D; c++) dot += (double)ldx(q, base + c, type) * (double)mu[c];
    float* x = lse + (i64)bh * N + t;
    *x = (float)((double)*x + (double)scale * dot);
}

// Key padding, after the selection (the CPU's last step of stage 1): a key block whose keys are
// all padding (blockFlags bit 1, [B][nk]) is never selected. Grid (nq, B * H).
extern "C" __global__ void clear_padded_blocks(unsigned char* map, const unsigned char* blockFlags, int H, int nq, int nk) {
    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H;
    unsigned char* row = map + ((i64)bh * nq + i) * nk;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) if (blockFlags[(i64)b * nk + j] & 2) row[j] = 0;
}

// V for the P.V tensor-core product: fp16, rows padded with zeros to Npad.
extern "C" __global__ void prep_values(const void* v, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int Npad, int D, u16* out) {
    int bh = blockIdx.y, b = bh / Hkv, h = bh % Hkv;
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (i64)Npad * D) return;
    int n = (int)(e / D), c = (int)(e - (i64)n * D);
    float x = n < N ? ldx(v, b * bs + h * hs + (i64)n * ts + c, type) : 0.0f;
    out[(i64)bh * Npad * D + e] = f2h(x);
}
// A tile of V, 32 keys from n0 x 64 channels from c0, into tile[key][channel] (row pitch 65:
// the gathers below are at most 2-way bank conflicts), each value through f(value, channel);
// keys past N zero. `vec`: 16-byte loads (the host checked that every row starts 16-byte
// aligned), else one element per load. 256 threads.
template <typename F>
DEV void load_value_tile(const void* v, int type, i64 base, i64 ts, int N, int n0, int c0, int vec, float (*tile)[65], F f) {
    const int tid = threadIdx.x;
    if (vec) {
        const int E = type == 0 ? 4 : 8, per = 64 / E;   // loads per key
        for (int e = tid; e < 32 * per; e += 256) {
            const int r = e / per, cc = (e % per) * E, n = n0 + r;
            float x[8];
            if (n < N) ld16(v, base + (i64)n * ts + c0 + cc, type, x);
            for (int i = 0; i < E; i++) tile[r][cc + i] = n < N ? f(x[i], cc + i) : 0.0f;
        }
    } else {
        for (int e = tid; e < 32 * 64; e += 256) {
            const int r = e >> 6, c = e & 63, n = n0 + r;
            tile[r][c] = n < N ? f(ldx(v, base + (i64)n * ts + c0 + c, type), c) : 0.0f;
        }
    }
}
// V transposed to fp16 for the Hopper kernel, whose shared-memory operands must be K-major:
// one contiguous tile of D x bk per key block ([head][block][D * bk] halves, the kernel's
// shared-memory layout: channel r, keys 8c..8c+7 at (r / 8) * bk * 8 + c * 64 + (r % 8) * 8),
// keys past N zero. 32 keys x 64 channels per thread block through shared memory: 16-byte
// reads along the channels, one 16-byte write (8 keys of a channel) per thread.
// Block 256 threads, grid (blocks * bk / 32, D / 64, heads), 32 * 65 * 4 bytes of dynamic
// shared memory (dynamic, since the program's functions all get the device's whole dynamic
// limit, which leaves no room for static arrays). D is 64 or 128 (the Hopper kernel's).
extern "C" __global__ void prep_values_t(const void* v, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int blocks, int D, int bk, int vec, u16* out) {
    extern __shared__ float tileData[];
    float (*tile)[65] = (float (*)[65])tileData;
    const int bh = blockIdx.z, b = bh / Hkv, h = bh % Hkv;
    const int n0 = blockIdx.x * 32, c0 = blockIdx.y * 64;
    load_value_tile(v, type, b * bs + h * hs, ts, N, n0, c0, vec, tile, [](float x, int) { return x; });
    __syncthreads();
    const int blk = n0 / bk, k0 = n0 - blk * bk;
    const int cl = threadIdx.x >> 2, kc = threadIdx.x & 3, ch = c0 + cl;
    unsigned w[4];
    for (int i = 0; i < 4; i++)
        w[i] = (unsigned)f2h(tile[kc * 8 + 2 * i][cl]) | ((unsigned)f2h(tile[kc * 8 + 2 * i + 1][cl]) << 16);
    u16* o = out + ((i64)bh * blocks + blk) * D * bk;
    *(uint4*)(o + (ch >> 3) * (bk * 8) + ((k0 >> 3) + kc) * 64 + (ch & 7) * 8) = make_uint4(w[0], w[1], w[2], w[3]);
}
// FP8 P.V (Ada / Hopper, the SageAttention2 numerics): V quantized per (batch, kv head,
// channel) to e4m3 with v_scale = max|V[:, c]| / range, as the CPU path's emulation does.
// Part 1: max|V| per channel by atomic max on the bit patterns (non-negative floats order as
// integers); `amax` zeroed before. grid (ceil(N / 256), B*Hkv), 256 threads: with `vec`,
// 16-byte loads of E channels (D / E threads per key), else one channel per thread (G = 256 / D
// threads per channel); 256 * 8 floats of dynamic shared memory (no static shared memory in
// this program: every function gets the device's whole dynamic allowance).
extern "C" __global__ void v_amax(const void* v, int type, i64 bs, i64 hs, i64 ts, int Hkv, int N, int D, int vec, unsigned* amax) {
    extern __shared__ float amaxPart[];
    const int bh = blockIdx.y, b = bh / Hkv, h = bh % Hkv, tid = threadIdx.x;
    const int t0 = blockIdx.x * 256, t1 = min(N, t0 + 256);
    const i64 base = b * bs + h * hs;
    const int E = vec ? (type == 0 ? 4 : 8) : 1, chunks = D / E, G = 256 / chunks;
    const int cc = tid % chunks, gi = tid / chunks;
    float m[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (gi < G) {
        // Four keys' loads in flight per thread (zeros past the end leave the maxima alone).
        for (int t = t0 + gi; t < t1; t += 4 * G) {
            float x[4][8];
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                const int tu = t + u * G;
                if (tu >= t1) { for (int e = 0; e < 8; e++) x[u][e] = 0.0f; }
                else if (vec) ld16(v, base + (i64)tu * ts + cc * E, type, x[u]);
                else x[u][0] = ldx(v, base + (i64)tu * ts + cc, type);
            }
            #pragma unroll
            for (int u = 0; u < 4; u++)
                for (int e = 0; e < E; e++) m[e] = fmaxf(m[e], fabsf(x[u][e]));
        }
        for (int e = 0; e < E; e++) amaxPart[gi * D + cc * E + e] = m[e];
    }
    __syncthreads();
    for (int c = tid; c < D; c += 256) {
        float r = 0.0f;
        for (int g = 0; g < G; g++) r = fmaxf(r, amaxPart[g * D + c]);
        atomicMax(amax + (i64)bh * D + c, __float_as_uint(r));
    }
}

#if __CUDA_ARCH__ >= 890
// Two values rounded to e4m3 (nearest, ties to even, saturating at 448 like the CPU's
// roundToE4M3) and packed, `lo` in the low byte.
DEV unsigned e4m3x2(float lo, float hi) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}
// Part 2: V^T in e4m3, in the Hopper kernel's tile layout for 8-bit B operands (core
// matrices of 8 channels x 16 keys, 16 bytes a row: channel r, position p of a tile at
// (r / 8) * bk * 8 + (p / 16) * 128 + (r % 8) * 16 + p % 16), with the keys of each
// 32-key chunk permuted so that the fp32 accumulator layout of S, packed in place, is the
// A-operand layout of P (FlashAttention-3's FP8 trick): position p holds key
// 16 * (p / 16) + 8 * ((p % 4) / 2) + 2 * ((p % 16) / 4) + p % 2. Also writes
// vScale = amax / range per channel (0 where the channel is all zeros: V8 is then 0).
// grid (blocks * bk / 32, D / 64, B*Hkv), 256 threads (one 8-byte write each: 8 positions
// of a channel), 32 x 65 + 64 floats of shared memory.
extern "C" __global__ void prep_values_t8(const void* v, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int blocks, int D, int bk, const float* amax, float range, float* vScale, int vec, unsigned char* out) {
    extern __shared__ float tileData[];
    float (*tile)[65] = (float (*)[65])tileData;
    float* scales = tileData + 32 * 65;
    const int bh = blockIdx.z, b = bh / Hkv, h = bh % Hkv;
    const int n0 = blockIdx.x * 32, c0 = blockIdx.y * 64, tid = threadIdx.x;
    if (tid < 64) {
        const float s = __fdiv_rn(amax[(i64)bh * D + c0 + tid], range);
        scales[tid] = s;
        if (blockIdx.x == 0) vScale[(i64)bh * D + c0 + tid] = s;
    }
    __syncthreads();
    load_value_tile(v, type, b * bs + h * hs, ts, N, n0, c0, vec, tile,
                    [&](float x, int c) { const float s = scales[c]; return s > 0.0f ? __fdiv_rn(x, s) : 0.0f; });
    __syncthreads();
    const int blk = n0 / bk, k0 = n0 - blk * bk;
    const int cl = tid >> 2, p0 = (tid & 3) * 8, ch = c0 + cl, pos = k0 + p0;
    unsigned w[2];
    for (int i = 0; i < 2; i++) {
        float x[4];
        for (int j = 0; j < 4; j++) {
            const int p = p0 + 4 * i + j;
            x[j] = tile[16 * (p >> 4) + 8 * ((p & 3) >> 1) + 2 * ((p & 15) >> 2) + (p & 1)][cl];
        }
        w[i] = e4m3x2(x[0], x[1]) | (e4m3x2(x[2], x[3]) << 16);
    }
    unsigned char* o = out + ((i64)bh * blocks + blk) * D * bk;
    *(uint2*)(o + (ch >> 3) * (bk * 8) + (pos >> 4) * 128 + (ch & 7) * 16 + (pos & 15)) = make_uint2(w[0], w[1]);
}
#endif
"""#
}
#endif
