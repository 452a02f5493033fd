#if CUDA
/// CUDA C of the preparation kernels (ExactSemantics.md sections 1-3): K mean, K smoothing, block
/// summaries, INT8 quantization, stage-1 selection, V in fp16. Each kernel repeats the CPU
/// path's arithmetic in the same order (compiled with `--fmad=false`; fused only where the
/// CPU build fuses), so masks and INT8 tensors come out identical.
enum PrepareSource {
    /// Keys per thread block of `v_amax` and `v_amax_h2` (the source's V_AMAX_KEYS; the host
    /// sizes their grid by it): 512 fits the whole grid in one wave on an H200 at N=16384 (256
    /// took 1.3 waves).
    static let valueMaximumKeys = 512

    static let text = CommonSource.text + #"""

// Section 1, part 1: fp32 partial sums of 64 keys (the CPU's flush granularity), widened to
// double; with GPU rounding, double sums of fp16 values (exact, so order-free).
// `vec` (fp16 or bf16 rows 16-byte aligned, no GPU rounding, D a multiple of 8 dividing 256):
// 256 threads, 256 / D chunks a thread block, grid (ceil(chunks * D / 256), B*H), 32 KB of
// dynamic shared memory; else 64 threads, one channel a thread, a chunk a thread block, grid
// (chunks, B*H). Each channel's sum runs over its chunk's keys in order either way.
template <int TYPE>
DEV void k_mean_partial_vec(const char* src, i64 rowBytes, int N, int D, int t0, double* dst) {
    // The block's rows are staged in shared memory by eight independent 16-byte loads a thread,
    // then each thread sums one channel of one chunk from there. (NCU, H200, N=16384 D=64:
    // 13.2 us against 15.3 for one channel a thread from memory in the same run; eight channels
    // a thread by 16-byte loads from memory took 14.4-15.0 at 11% occupancy, each thread waiting
    // out a load latency every few keys.)
    extern __shared__ __align__(16) u16 rowsK[];
    const int tid = threadIdx.x, groups = D >> 3;
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        const int e = tid + 256 * i, r = e / groups, g = e - r * groups;
        if (t0 + r < N) *(uint4*)(rowsK + r * D + g * 8) = *(const uint4*)(src + (i64)r * rowBytes + g * 16);
    }
    __syncthreads();
    const int cb = tid / D, c = tid - cb * D, first = t0 + cb * 64, n = min(N, first + 64) - first;
    if (n <= 0) return;
    const u16* col = rowsK + cb * 64 * D + c;
    float s = 0.0f;
    #pragma unroll 8
    for (int t = 0; t < n; t++) s = __fadd_rn(s, bits16f(col[t * D], TYPE));
    dst[(i64)(first >> 6) * D + c] = (double)s;
}
extern "C" __global__ void k_mean_partial(const void* k, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int D, int gpuRound, int vec, double* partial) {
    const int bh = blockIdx.y, chunks = (N + 63) / 64;
    const int b = bh / Hkv, h = bh % Hkv;
    if (vec) {
        const int t0 = blockIdx.x * (256 / D) * 64;
        const char* src = (const char*)k + (b * bs + h * hs + (i64)t0 * ts) * 2;
        double* dst = partial + (i64)bh * chunks * D;
        if (type == 1) k_mean_partial_vec<1>(src, ts * 2, N, D, t0, dst);
        else k_mean_partial_vec<2>(src, ts * 2, N, D, t0, dst);
        return;
    }
    const int chunk = blockIdx.x;
    const int t0 = chunk * 64, t1 = min(N, t0 + 64);
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
// loads), 512 chunks (32768 keys) at a time. grid (B*H, ceil(D / 8)), 256 threads, 512 * 8
// doubles of dynamic shared memory.
extern "C" __global__ void k_mean_finish(const double* partial, int chunks, int N, int D, int gpuRound, float* mean) {
    extern __shared__ double part[];
    const int bh = blockIdx.x, c0 = blockIdx.y * 8, tid = threadIdx.x;
    double s = 0;
    for (int base = 0; base < chunks; base += 512) {
        const int n = min(512, chunks - base);
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

// Division by a divisor shared by many quotients: the reciprocal refined once (`div_reciprocal`),
// then two fused multiply-adds per quotient (`div_by`). These are the operations of ptxas's
// fast path for `div.rn.f32` (MUFU.RCP, then FFMA r0*(-b)+1, FFMA r0*e+r0, FMUL a*r1, FFMA
// q0*(-b)+a, FFMA r1*rem+q0), so the quotient is the correctly rounded a / b wherever that
// path's range check (FCHK) would have let it through; callers keep b in [2^-40, 2^40] and a
// away from the subnormal range, or do not depend on the last bit there (the quantization,
// whose tiny quotients round to 0 either way). The sign of a zero quotient may differ: the
// sums that start at +0 and the INT8 rounding cannot see it; the e4m3 conversion could, so V
// sends zeros to the exact division.
DEV bool div_divisor_in_range(float b) { return b >= 0x1p-40f && b <= 0x1p40f; }
DEV float div_reciprocal(float b) {
    float r0;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r0) : "f"(b));
    return __fmaf_rn(r0, __fmaf_rn(r0, -b, 1.0f), r0);
}
DEV float div_by(float a, float b, float r1) {
    const float q0 = __fmul_rn(a, r1);
    return __fmaf_rn(r1, __fmaf_rn(q0, -b, a), q0);
}
// The CPU's INT8 rounding of one value: round half away from zero of x * premul / scale,
// clamped to 127, with the shared divisor when `fast` (scale in range, see above).
// floor(min(t, 127)) is min(floor(t), 127) and t >= 0.5, so the truncating conversion does the
// floor: five instructions a value instead of six. `premul` is skipped when it is 1 (x * 1 = x).
DEV int quantize_int8(float x, float premul, bool scaled, float sc, float r1, bool fast) {
    const float a = scaled ? __fmul_rn(x, premul) : x;
    const float y = fast ? div_by(a, sc, r1) : __fdiv_rn(a, sc);
    const float t = fminf(__fadd_rn(fabsf(y), 0.5f), 127.0f);
    return __float2int_rz(y < 0 ? -t : t);
}

// Sections 1-3 for one block of Q or K: (K' = K - mean), pooled mean, self-similarity,
// scale and INT8 values. grid (blocks, B*H), dynamic shared memory
// (blockSize * prep_row_pitch(D) + 2 * blockSize + 64 + D) floats. Instantiated per input element
// type so the loads are plain and batched. INT8 rows are row-major [head][token][D], or with
// `tiled` in the Hopper kernel's shared-memory layout, one contiguous tile per block
// ([head][block][blockSize * D], 8 x 16-byte core matrices, D a multiple of 16), rows past the
// end zero.
// The block's values are staged in shared memory with a row pitch of 4 mod 8 floats: rows are
// 16-byte aligned for vector reads along a row, eight rows read at once by eight threads fall in
// distinct banks, and threads reading one channel of consecutive rows (the column sums) read
// consecutive words.
DEV int prep_row_pitch(int D) { return ((D + 7) & ~7) + 4; }
// Offset of INT8 value (r, c) of a block: row-major, or `tiled` (8 x 16-byte core matrices,
// D a multiple of 16; 16 consecutive channels of a row are contiguous).
DEV int int8_offset(int r, int c, int D, int tiled) {
    return tiled ? (r >> 3) * (D * 8) + (r & 7) * 16 + (c >> 4) * 128 + (c & 15) : r * D + c;
}
// a / b and a % b (a >= 0, b > 0) by shifts when b is a power of two, as every head dimension
// and head count seen in practice is: a division by a run-time divisor is about twenty
// instructions, and the block kernel's index setup had a dozen of them in every warp.
DEV int div_pow2(int a, int b) { return (b & (b - 1)) == 0 ? a >> (__ffs(b) - 1) : a / b; }
DEV int mod_pow2(int a, int b) { return (b & (b - 1)) == 0 ? a & (b - 1) : a % b; }
// The INT8 values of a staged block, four channels (one 4-byte store) a thread: rows rq,
// rq + rowsPerPass, ... up to `end` (zeros from `rows` on), read from `src` (row rq, channel cq
// of the staged values) and written to `dst` (the block's INT8 values, see int8_offset).
// `affine`: the thread's INT8 offset advances by rowsPerPass * D a row.
template <bool FAST>
DEV void quantize_quads(const float* src, signed char* dst, int rq, int cq, int rows, int end, int rowsPerPass, int DP,
                        int D, int tiled, bool affine, float premul, bool scaled, float sc, float scInv) {
    signed char* o = dst + int8_offset(rq, cq, D, tiled);
    #pragma unroll 2
    for (int r = rq; r < end; r += rowsPerPass) {
        unsigned packed = 0;
        if (r < rows) {
            const float4 v = *(const float4*)src;
            const int q0 = quantize_int8(v.x, premul, scaled, sc, scInv, FAST), q1 = quantize_int8(v.y, premul, scaled, sc, scInv, FAST);
            const int q2 = quantize_int8(v.z, premul, scaled, sc, scInv, FAST), q3 = quantize_int8(v.w, premul, scaled, sc, scInv, FAST);
            packed = (q0 & 0xff) | (q1 & 0xff) << 8 | (q2 & 0xff) << 16 | (unsigned)(q3 & 0xff) << 24;
        }
        *(unsigned*)(affine ? o : dst + int8_offset(r, cq, D, tiled)) = packed;
        o += rowsPerPass * D;
        src += rowsPerPass * DP;
    }
}

template <int TYPE>
DEV void prep_blocks_body(const void* x, i64 bs, i64 hs, i64 ts,
        int H, int N, int D, int blockSize, const float* mean, float premul, int gpuRound, int partialNever, int tiled,
        int vec, int summaries, signed char* q8, float* scaleOut, float* pooledOut, float* simOut) {
    extern __shared__ float sm[];
    int j = blockIdx.x, bh = blockIdx.y, nb = gridDim.x;
    int b = div_pow2(bh, H), h = mod_pow2(bh, H);
    int start = j * blockSize, rows = min(blockSize, N - start);
    float* xs = sm;
    const int DP = prep_row_pitch(D);
    float* norms = xs + blockSize * DP;
    float* rinv = norms + blockSize;    // refined reciprocals of the norms (div_reciprocal)
    float* red = rinv + blockSize;      // 32 warp maxima, the scale, the in-range and tiny-value flags
    int* normsInRange = (int*)(red + 33);
    int* tinyValues = (int*)(red + 34);  // written by thread 0 after the loads (see red[w] below)
    float* usum = red + 64;             // the D sums of the unit rows
    const float* mu = mean ? mean + (i64)bh * D : 0;
    int tid = threadIdx.x, nt = blockDim.x;
    float amax = 0;
    // Whether some value is nonzero and below 2^-60 in magnitude (the unit rows then take the
    // exact division where it is; see div_by).
    bool tiny = false;
    if (tid == 0) *normsInRange = 1;
    // The element transform: K - mean, fp16 rounding with GPU rounding (the identity on an
    // fp16 input itself, so not done there).
    auto prepare = [&](float v, float m) {
        if (mu) v = gpuRound ? roundh(__fsub_rn(TYPE == 1 ? v : roundh(v), m)) : __fsub_rn(v, m);
        else if (gpuRound && TYPE != 1) v = roundh(v);
        return v;
    };
    // Tiny values matter only to the unit rows without GPU rounding (see below), and an fp16
    // input has none: its nonzero values are at least 2^-24, and K - mean is 0 or at least
    // 2^-60 (the mean of fp16 values, a multiple of 2^-24 over N < 2^31, is 0 or above 2^-55;
    // a nonzero difference of it from an fp16 value is a multiple of ulp(mean) >= 2^-60 or
    // dominated by a value of at least 2^-24). The test cost three instructions a value.
    const bool checkTiny = TYPE != 1 && summaries && !gpuRound;
    if (vec) {
        // 16-byte loads (`vec`: the host checked that rows are 16-byte aligned and D is a
        // multiple of the elements per load): fewer load instructions, more bytes in flight.
        // Each thread keeps its channels, so their means are loaded once.
        constexpr int E = TYPE == 0 ? 4 : 8;
        const int chunks = div_pow2(D, E), rowsPerLoad = div_pow2(nt, chunks);
        int cc = mod_pow2(tid, chunks), rr = div_pow2(tid, chunks);
        if (E == 8 && (chunks & 3) == 0 && (rowsPerLoad & 1) == 0) {
            // Each eight threads take four chunks of two rows, so that their 16-byte stores
            // (32 bytes apart along a row, rows 4 mod 32 words apart) fall in distinct banks:
            // eight chunks of one row put two stores on each bank (NCU: half the shared store
            // wavefronts were conflicts).
            const int q = chunks >> 2, rest = tid >> 3;
            cc = mod_pow2(rest, q) * 4 + (tid & 3);
            rr = div_pow2(rest, q) * 2 + ((tid >> 2) & 1);
        }
        if (rr < rowsPerLoad) {
            float m[E];
            #pragma unroll
            for (int e = 0; e < E; e++) m[e] = mu ? mu[cc * E + e] : 0.0f;
            // Four rows' loads in flight before any is converted (the usual 64- and 128-row
            // blocks take four per thread in all): with one load at a time the kernel waited out
            // the memory latency once per row (NCU, H200: a quarter of the DRAM bandwidth).
            const char* src = (const char*)x + (b * bs + h * hs + (i64)start * ts + cc * E) * (TYPE == 0 ? 4 : 2);
            const i64 rowBytes = ts * (TYPE == 0 ? 4 : 2);
            for (int r0 = rr; r0 < rows; r0 += 4 * rowsPerLoad) {
                uint4 raw[4];
                #pragma unroll
                for (int u = 0; u < 4; u++) {
                    const int r = r0 + u * rowsPerLoad;
                    raw[u] = r < rows ? *(const uint4*)(src + r * rowBytes) : make_uint4(0u, 0u, 0u, 0u);
                }
                #pragma unroll
                for (int u = 0; u < 4; u++) {
                    const int r = r0 + u * rowsPerLoad;
                    if (r >= rows) break;
                    float f[8];
                    unpack16(raw[u], TYPE, f);
                    float v[8];
                    #pragma unroll
                    for (int e = 0; e < E; e++) {
                        v[e] = prepare(f[e], m[e]);
                        amax = fmaxf(amax, fabsf(v[e]));
                    }
                    if (checkTiny) {
                        #pragma unroll
                        for (int e = 0; e < E; e++) tiny |= v[e] != 0.0f && fabsf(v[e]) < 0x1p-60f;
                    }
                    float4* dst = (float4*)(xs + r * DP + cc * E);
                    dst[0] = make_float4(v[0], v[1], v[2], v[3]);
                    if (E == 8) dst[1] = make_float4(v[4], v[5], v[6], v[7]);
                }
            }
        }
    } else {
        const int rowsPerPass = div_pow2(nt, D), c0 = mod_pow2(tid, D), r0 = div_pow2(tid, D);
        if (r0 < rowsPerPass) {
            const float m = mu ? mu[c0] : 0.0f;
            #pragma unroll 8
            for (int r = r0; r < rows; r += rowsPerPass) {
                float v = prepare(ldx(x, b * bs + h * hs + (i64)(start + r) * ts + c0, TYPE), m);
                xs[r * DP + c0] = v;
                amax = fmaxf(amax, fabsf(v));
                if (checkTiny) tiny |= v != 0.0f && fabsf(v) < 0x1p-60f;
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    // The warp's maximum, negated when the warp saw a tiny value (then it is positive), so the
    // flag needs no shared word set before the barrier: thread 0 decodes both after it.
    const bool warpTiny = __any_sync(0xffffffffu, tiny);
    if ((tid & 31) == 0) red[tid >> 5] = warpTiny ? -amax : amax;
    __syncthreads();
    // Row norms, eight lanes as the CPU's SIMD8 loop (two 16-byte reads per step), then its
    // horizontal sum and the tail; and each norm's reciprocal for the unit rows below.
    int vend = D & ~7;
    for (int r = tid; summaries && r < rows; r += nt) {
        const float* row = xs + r * DP;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        for (int c = 0; c < vend; c += 8) {
            const float4 u = *(const float4*)(row + c), w = *(const float4*)(row + c + 4);
            s0 = madd(u.x, u.x, s0); s1 = madd(u.y, u.y, s1); s2 = madd(u.z, u.z, s2); s3 = madd(u.w, u.w, s3);
            s4 = madd(w.x, w.x, s4); s5 = madd(w.y, w.y, s5); s6 = madd(w.z, w.z, s6); s7 = madd(w.w, w.w, s7);
        }
        float a0 = __fadd_rn(s0, s4), a1 = __fadd_rn(s1, s5), a2 = __fadd_rn(s2, s6), a3 = __fadd_rn(s3, s7);
        float n2 = __fadd_rn(__fadd_rn(a0, a2), __fadd_rn(a1, a3));
        for (int c = vend; c < D; c++) n2 = __fadd_rn(n2, __fmul_rn(row[c], row[c]));
        const float nr = __fsqrt_rn(n2);
        norms[r] = nr;
        if (div_divisor_in_range(nr)) rinv[r] = div_reciprocal(nr);
        else *normsInRange = 0;
    }
    if (tid == 0) {
        float m = 0;
        int t = 0;
        for (int w = 0; w < (nt + 31) / 32; w++) { m = fmaxf(m, fabsf(red[w])); t |= red[w] < 0.0f; }
        *tinyValues = t;
        red[32] = __fadd_rn(__fdiv_rn(__fmul_rn(m, premul), 127.0f), 1e-7f);
    }
    __syncthreads();
    const float sc = red[32];
    // INT8 values, four channels a thread (one 4-byte store) where D allows, else one. Rows
    // past the end of a tiled block are written as zeros (the tile is copied whole). A thread's
    // rows are rowsPerPass apart: with rowsPerPass a multiple of 8 its INT8 offset then advances
    // by rowsPerPass * D in either layout.
    const bool fastQ = div_divisor_in_range(sc), scaled = premul != 1.0f;
    const float scInv = fastQ ? div_reciprocal(sc) : 0.0f;
    signed char* dst = q8 + (tiled ? ((i64)bh * nb + j) * blockSize * D : ((i64)bh * N + start) * D);
    const int end = tiled ? blockSize : rows;
    if ((D & 3) == 0) {
        const int quads = D >> 2, cq = mod_pow2(tid, quads) * 4, rq = div_pow2(tid, quads), rowsPerPass = div_pow2(nt, quads);
        if (rq < rowsPerPass) {
            const bool affine = !tiled || (rowsPerPass & 7) == 0;
            const float* src = xs + rq * DP + cq;
            // The divisor's path chosen once for the loop, not per value (a branch around every
            // quotient kept ptxas from overlapping them).
            if (fastQ) quantize_quads<true>(src, dst, rq, cq, rows, end, rowsPerPass, DP, D, tiled, affine, premul, scaled, sc, scInv);
            else quantize_quads<false>(src, dst, rq, cq, rows, end, rowsPerPass, DP, D, tiled, affine, premul, scaled, sc, scInv);
        }
    } else {
        const int rowsPerPass = nt / D, c0 = tid % D, r0 = tid / D;
        if (r0 < rowsPerPass) {
            #pragma unroll 4
            for (int r = r0; r < end; r += rowsPerPass)
                dst[int8_offset(r, c0, D, tiled)] = r < rows ? (signed char)quantize_int8(xs[r * DP + c0], premul, scaled, sc, scInv, fastQ) : 0;
        }
    }
    // Without `summaries` (a block map known without the scores: given, or keeping every block)
    // the scale and the INT8 values are all the caller needs.
    if (!summaries) {
        if (tid == 0) scaleOut[(i64)bh * nb + j] = sc;
        return;
    }
    // The pooled mean: column sums in the CPU's row order, one thread per channel (nt >= D).
    const float n = (float)rows;
    if (tid < D) {
        float p = 0;
        #pragma unroll 8
        for (int r = 0; r < rows; r++) p = __fadd_rn(p, xs[r * DP + tid]);
        const float m = __fdiv_rn(p, n);
        pooledOut[((i64)bh * nb + j) * D + tid] = gpuRound ? roundh(m) : m;
    }
    __syncthreads();
    // The unit rows in place, every thread (each value divided by its row's norm as the CPU
    // does, fp16-rounded with GPU rounding), so that the column sums below are chains of loads
    // and adds alone. The shared reciprocal where every norm is in range and the values are not
    // tiny (with GPU rounding they are fp16 values: 0 or at least 2^-24).
    {
        // Zeros take the shared reciprocal too: their quotient's sign may differ from the exact
        // division's, which the sums (starting at +0) cannot see.
        const bool normsFast = *normsInRange != 0, fast = normsFast && (gpuRound || *tinyValues == 0);
        const int groups = (D + 3) >> 2, cg = mod_pow2(tid, groups) * 4, rg = div_pow2(tid, groups), rowsPerPass = div_pow2(nt, groups);
        if (rg < rowsPerPass) {
            for (int r = rg; r < rows; r += rowsPerPass) {
                float* row = xs + r * DP + cg;   // 16-byte aligned (the pitch is a multiple of 4)
                const float nr = norms[r], r1 = rinv[r];
                float4 x = *(const float4*)row;
                float* v = &x.x;
                if (fast) {
                    #pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const float w = div_by(v[i], nr, r1);
                        v[i] = gpuRound ? roundh(w) : w;
                    }
                } else {
                    // Not fast: a norm out of range (every value takes the exact division), or
                    // tiny values without GPU rounding (those take it).
                    #pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const float w = normsFast && fabsf(v[i]) >= 0x1p-60f ? div_by(v[i], nr, r1) : __fdiv_rn(v[i], nr);
                        v[i] = gpuRound ? roundh(w) : w;
                    }
                }
                // Channels past D (the pitch's padding) are written but never read.
                *(float4*)row = x;
            }
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
        const float* mean, float premul, int gpuRound, int partialNever, int tiled, int vec, int summaries, signed char* q8, \
        float* scaleOut, float* pooledOut, float* simOut) { \
    prep_blocks_body<TYPE>(x, bs, hs, ts, H, N, D, blockSize, mean, premul, gpuRound, partialNever, tiled, vec, summaries, q8, scaleOut, pooledOut, simOut); \
}
PREP_BLOCKS(prep_blocks_f32, 0)
PREP_BLOCKS(prep_blocks_f16, 1)
PREP_BLOCKS(prep_blocks_bf16, 2)

// Step 7's rule (the CPU's blockCausallyAllowed): whether query block i sees some key of key
// block j (query t sees keys up to t + offset).
DEV bool block_causally_allowed(int i, int j, int bq, int bk, int offset) { return (i64)j * bk < (i64)(i + 1) * bq + offset; }
// The CPU's blockInsideWindow: whether some query of block i sees some key of block j through a
// sliding window of `window` keys ending at each query's causal limit (0: no window). The
// block's first query has the earliest window; the block's last key is clipped to Nk.
DEV bool block_inside_window(int i, int j, int bq, int bk, int offset, i64 window, int Nk) {
    return window == 0 || !before_window(j, bk, Nk, (i64)i * bq + offset - window);
}
// The end of a map entry m of query block i, key block j, after the selection: the causal
// future cleared (step 7), then block 0 marked with the attention sink, then the blocks before
// every window of the query block cleared (the window masks the sink too).
DEV unsigned char causal_sink_window(unsigned char m, int i, int j, int bq, int bk, int causal, int offset, int sink,
                                  i64 window, int Nk) {
    if (causal && !block_causally_allowed(i, j, bq, bk, offset)) m = 0;
    if (sink && j == 0) m = 1;
    if (!block_inside_window(i, j, bq, bk, offset, window, Nk)) m = 0;
    return m;
}

// Rows [0, rows) of a row-major [.][D] source into shared memory at `pitch`, zeros past
// `valid`; 256 threads, the element's row and column advanced without a division per element.
DEV void copy_rows(float* dst, int pitch, const float* src, int rows, int valid, int D) {
    int r = threadIdx.x / D, c = threadIdx.x - r * D;
    const int dr = 256 / D, dc = 256 - dr * D;
    for (int e = threadIdx.x; e < rows * D; e += 256) {
        dst[r * pitch + c] = r < valid ? src[e] : 0.0f;
        r += dr; c += dc;
        if (c >= D) { c -= D; r++; }
    }
}
// Section 2, step 3: compressed scores of 16 query blocks x 64 key blocks per thread block,
// each a sequential dot product in the CPU's order, with the -inf of key blocks that are not
// self-similar, of the causal future, before every sliding window and (blockFlags bit 1,
// [B][nk], optional) of key blocks whose keys are all padding, as on the CPU: such blocks take no share of the block softmax,
// so the CDF count does not depend on them. grid (ceil(nq/16), ceil(nk/64), B*H), 256 threads,
// dynamic shared memory (16 * block_scores_q_pitch(D) + 64 * prep_row_pitch(D)) floats. Each
// thread computes one key block against four query blocks (four independent chains), so each
// key value read from shared memory serves four products: one key row per thread made the
// kernel bound by shared-memory wavefronts (a warp's 16-byte reads of 32 key rows take four).
// Operands are read 16 bytes at a time: query rows are the same for a whole warp (broadcasts),
// the key rows' pitch of 4 mod 8 words keeps eight of them in distinct banks.
DEV int block_scores_q_pitch(int D) { return (D + 3) & ~3; }
extern "C" __global__ void block_scores(const float* pooledQ, const float* pooledK, const float* simK,
        int H, int groupSize, int nq, int nk, int D, int bq, int bk, float scale, const float* theta,
        int causal, int offset, i64 window, int Nk, int gpuRound, const unsigned char* blockFlags, float* scores) {
    extern __shared__ float sm[];
    const int QP = block_scores_q_pitch(D), KP = prep_row_pitch(D);
    float* pq = sm;
    float* pk = sm + 16 * QP;
    int bh = blockIdx.z, b = bh / H, h = bh % H, kh = b * (H / groupSize) + h / groupSize;
    int i0 = blockIdx.x * 16, j0 = blockIdx.y * 64, tid = threadIdx.x;
    copy_rows(pq, QP, pooledQ + ((i64)bh * nq + i0) * D, 16, nq - i0, D);
    copy_rows(pk, KP, pooledK + ((i64)kh * nk + j0) * D, 64, nk - j0, D);
    __syncthreads();
    const int jl = tid & 63, g = tid >> 6, j = j0 + jl, iFirst = i0 + 4 * g;
    if (j >= nk || iFirst >= nq) return;
    const float th = theta[h];
    // Masked for all four queries: not self-similar, padding, in the causal future of the last
    // of them (then of all) or before the window of the first (then of all).
    const bool keyMasked = !(simK[(i64)kh * nk + j] > th) || (blockFlags && (blockFlags[(i64)b * nk + j] & 2));
    auto future = [&](int i) { return causal && !block_causally_allowed(i, j, bq, bk, offset); };
    auto beforeWindow = [&](int i) { return !block_inside_window(i, j, bq, bk, offset, window, Nk); };
    float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (!keyMasked && !future(min(iFirst + 3, nq - 1)) && !beforeWindow(iFirst)) {
        const float* a = pq + 4 * g * QP;
        const float* k = pk + jl * KP;
        const int d4 = D & ~3;
        #pragma unroll 2
        for (int c = 0; c < d4; c += 4) {
            const float4 y = *(const float4*)(k + c);
            #pragma unroll
            for (int q = 0; q < 4; q++) {
                const float4 x = *(const float4*)(a + q * QP + c);
                float d = dot[q];
                d = __fadd_rn(d, __fmul_rn(x.x, y.x)); d = __fadd_rn(d, __fmul_rn(x.y, y.y));
                d = __fadd_rn(d, __fmul_rn(x.z, y.z)); d = __fadd_rn(d, __fmul_rn(x.w, y.w));
                dot[q] = d;
            }
        }
        for (int c = d4; c < D; c++) {
            #pragma unroll
            for (int q = 0; q < 4; q++) dot[q] = __fadd_rn(dot[q], __fmul_rn(a[q * QP + c], k[c]));
        }
    }
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        const int i = iFirst + q;
        if (i < nq) {
            const float s = keyMasked || future(i) || beforeWindow(i) ? -SP_INF
                : gpuRound ? roundh(__fmul_rn(roundh(dot[q]), scale)) : __fmul_rn(dot[q], scale);
            scores[((i64)bh * nq + i) * nk + j] = s;
        }
    }
}

// The selection's sort key of a block probability (p >= 0, or NaN): ascending keys are
// descending probabilities.
DEV unsigned prob_sort_key(float p) { return 0xffffffffu - __float_as_uint(p); }
// Inclusive sum over the lanes of a warp (all 32 lanes take part).
DEV unsigned warp_inclusive_sum(unsigned x) {
    const int lane = threadIdx.x & 31;
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned v = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += v;
    }
    return x;
}
// Selection by CDF: a bitonic sort of `keys` (ascending keys = descending probability, lower
// index first on ties; P2 entries, those past nk all ones), then the count of the leading
// blocks whose cumulative probability stays within tau, at least one; marks them in rowm.
DEV void select_cdf(u64* keys, const float* probs, int nk, int P2, float tau, int gpuRound, float* red, unsigned char* rowm) {
    const int tid = threadIdx.x, nt = blockDim.x;
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
        int count = 0;
        float cum = 0;
        for (int t = 0; t < nk; t++) {
            float p = probs[(int)(keys[t] & 0xffffffffu)];
            cum = gpuRound ? roundh(__fadd_rn(cum, p)) : __fadd_rn(cum, p);
            if (cum <= tau) count = t + 1; else break;
        }
        red[33] = __int_as_float(min(max(count, 1), nk));
    }
    __syncthreads();
    const int count = __float_as_int(red[33]);
    for (int t = tid; t < count; t += nt) rowm[(int)(keys[t] & 0xffffffffu)] = 1;
}

// Selection of the `count` most probable blocks, lower index first among equal probabilities:
// the same blocks as the sort above takes, found without sorting. A radix select (four 8-bit
// digits, most significant first) finds the sort key u (prob_sort_key) of the count-th block and
// how many blocks with that key it takes (`need`); then every block with a smaller key is taken,
// and of those with key u the `need` of lowest index (a scan over contiguous chunks of blocks).
// 256-entry `hist`; red[34..] for the search state and the scan; marks rowm.
DEV void select_top_k(const float* probs, int nk, int count, unsigned* hist, float* red, unsigned char* rowm) {
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, warp = tid >> 5;
    unsigned* state = (unsigned*)(red + 34);    // [0] prefix, [1] need, [2] ties with the final key
    unsigned* warpTies = state + 4;             // per-warp tie counts: red[38..64), at most 26 warps (launched with 2 for top-k)
    if (tid == 0) { state[0] = 0; state[1] = (unsigned)count; }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += nt) hist[b] = 0;
        __syncthreads();
        const unsigned prefix = state[0], high = shift == 24 ? 0u : 0xffffffffu << (shift + 8);
        for (int j = tid; j < nk; j += nt) {
            const unsigned u = prob_sort_key(probs[j]);
            if ((u & high) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (warp == 0) {
            // Lane l holds digits 8l..8l+7; an inclusive scan of the lanes' sums finds the lane
            // whose digits reach `need`, and that lane walks them.
            const unsigned need = state[1];
            unsigned mine = 0;
            #pragma unroll
            for (int e = 0; e < 8; e++) mine += hist[lane * 8 + e];
            const unsigned incl = warp_inclusive_sum(mine), before = incl - mine;
            if (before < need && incl >= need) {
                unsigned acc = before;
                for (int e = 0; e < 8; e++) {
                    const unsigned hb = hist[lane * 8 + e];
                    if (acc + hb >= need) {
                        state[0] = prefix | ((unsigned)(lane * 8 + e) << shift);
                        state[1] = need - acc;
                        state[2] = hb;
                        break;
                    }
                    acc += hb;
                }
            }
        }
        __syncthreads();
    }
    const unsigned key = state[0], need = state[1], ties = state[2];
    // Contiguous chunks of blocks per thread, so that ranks among the ties follow the index.
    const int chunk = (nk + nt - 1) / nt, j0 = min(nk, tid * chunk), j1 = min(nk, j0 + chunk);
    unsigned rank = 0;
    if (ties > need) {
        unsigned mine = 0;
        for (int j = j0; j < j1; j++) mine += prob_sort_key(probs[j]) == key;
        const unsigned incl = warp_inclusive_sum(mine);
        if (lane == 31) warpTies[warp] = incl;
        __syncthreads();
        rank = incl - mine;
        for (int w = 0; w < warp; w++) rank += warpTies[w];
    }
    for (int j = j0; j < j1; j++) {
        const unsigned u = prob_sort_key(probs[j]);
        if (u < key) rowm[j] = 1;
        else if (u == key) { if (rank < need) rowm[j] = 1; rank++; }
    }
}

// Section 2, steps 4-7, for query block blockIdx.x of head blockIdx.y, from the compressed
// scores. Dynamic shared memory: P2 * 8 (sort keys, CDF only) + (nk + 64 + 256) * 4 + nk bytes,
// P2 = next power of two >= nk.
extern "C" __global__ void select_blocks(const float* scores, const float* simQ, const float* simK,
        int H, int groupSize, int nq, int nk, int P2, int bq, int bk,
        const float* theta, const float* sel, int isTopK, int causal, int offset, int sink, i64 window, int Nk, int gpuRound,
        unsigned char* map, float* probsOut) {
    extern __shared__ u64 keys[];
    float* probs = (float*)(keys + P2);
    float* red = probs + nk;
    unsigned* hist = (unsigned*)(red + 64);
    unsigned char* rowm = (unsigned char*)(hist + 256);
    int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    int kh = b * (H / groupSize) + h / groupSize;
    int tid = threadIdx.x, nt = blockDim.x;
    float th = theta[h];
    const float* sk = simK + (i64)kh * nk;
    // Step 7's inputs are read here, beside the scores: read after the selection, each load
    // waited behind the map's byte store before it (a quarter of the stall samples, NCU).
    // rowm starts as "key block not self-similar" (kept whatever the selection says); the
    // selection only sets entries.
    const bool selfSimilarQ = simQ[(i64)bh * nq + i] > th;
    float lmax = -SP_INF;
    for (int j = tid; j < nk; j += nt) {
        float s = scores[((i64)bh * nq + i) * nk + j];
        rowm[j] = !(sk[j] > th);
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
            if (!isTopK) keys[j] = ((u64)prob_sort_key(p) << 32) | (u64)j;
        } else if (!isTopK) keys[j] = ~0ull;
    }
    __syncthreads();
    if (isTopK) select_top_k(probs, nk, min(max(1, (int)__fmul_rn(sel[h], (float)nk)), nk), hist, red, rowm);
    else select_cdf(keys, probs, nk, P2, sel[h], gpuRound, red, rowm);
    __syncthreads();
    unsigned char* out = map + ((i64)bh * nq + i) * nk;
    for (int j = tid; j < nk; j += nt) {
        const unsigned char m = selfSimilarQ ? rowm[j] : 1;
        out[j] = causal_sink_window(m, i, j, bq, bk, causal, offset, sink, window, Nk);
    }
}

// scale * q.mean of query row t of head bh (in double, like the CPU path), for the kernels
// below: one thread per query row, grid (ceil(N / 128), B * H), block 128.
DEV double scaled_key_mean_score(const void* q, int type, i64 bs, i64 hs, i64 ts, int H, int groupSize, int D,
                                 const float* mean, float scale, int bh, int t) {
    const int b = bh / H, h = bh % H;
    const float* mu = mean + ((i64)b * (H / groupSize) + h / groupSize) * D;
    const i64 base = (i64)b * bs + (i64)h * hs + (i64)t * ts;
    double dot = 0.0;
    for (int c = 0; c < D; c++) dot += (double)ldx(q, base + c, type) * (double)mu[c];
    return (double)scale * dot;
}

// K smoothing leaves the softmax alone but shifts each row's scores, so its log-sum-exp, by
// q.mean: the stage-2 kernels' LSE (of q.(k - mean)) gets scale * q.mean added back.
extern "C" __global__ void lse_add_key_mean(const void* q, int type, i64 bs, i64 hs, i64 ts, int H, int groupSize,
        int N, int D, const float* mean, float scale, float* lse) {
    const int bh = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= N) return;
    float* x = lse + (i64)bh * N + t;
    *x = (float)((double)*x + scaled_key_mean_score(q, type, bs, hs, ts, H, groupSize, D, mean, scale, bh, t));
}

// Learned sinks per row, in the stage-2 kernels' base-2 units (the CPU path's fillRowSinks):
// (logit - scale * q.mean) * log2(e), so that the sink moves with the row's scores under K
// smoothing (mean zero without it); lse_add_key_mean adds the same product back to the
// log-sum-exp. logits: one per head; log2(e) as the CPU's Float constant.
extern "C" __global__ void row_sinks(const void* q, int type, i64 bs, i64 hs, i64 ts, int H, int groupSize,
        int N, int D, const float* mean, float scale, const float* logits, float* sinks) {
    const int bh = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= N) return;
    const double shift = scaled_key_mean_score(q, type, bs, hs, ts, H, groupSize, D, mean, scale, bh, t);
    sinks[(i64)bh * N + t] = (float)(((double)logits[bh % H] - shift) * (double)1.4426950408889634f);
}

// Key padding, after the selection (the CPU's last step of stage 1): a key block whose keys are
// all padding (blockFlags bit 1, [B][nk]) is never selected. Grid (nq, B * H).
extern "C" __global__ void clear_padded_blocks(unsigned char* map, const unsigned char* blockFlags, int H, int nq, int nk) {
    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H;
    unsigned char* row = map + ((i64)bh * nq + i) * nk;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) if (blockFlags[(i64)b * nk + j] & 2) row[j] = 0;
}

// The block map of a selection that keeps every block (top-k 1): steps 3-6 mark every block,
// then the end of select_blocks (causal_sink_window). Grid (nq, B * H).
extern "C" __global__ void fill_block_map(int nq, int nk, int bq, int bk, int causal, int offset, int sink, i64 window, int Nk,
                                          unsigned char* map) {
    const int i = blockIdx.x, bh = blockIdx.y;
    unsigned char* out = map + ((i64)bh * nq + i) * nk;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) out[j] = causal_sink_window(1, i, j, bq, bk, causal, offset, sink, window, Nk);
}

// Diagnosis and profiling only (SPARGE_CUDA_BENCH_HOLD_US, profilePreparation): spins for `ns`
// nanoseconds of the global timer.
extern "C" __global__ void hold_stream(long long ns) {
    const u64 t0 = global_ns();
    while ((long long)(global_ns() - t0) < ns) {}
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
// A tile of V, `rows` keys from n0 x 64 channels from c0, into tile[key][channel] (row pitch
// 65: the gathers below are at most 2-way bank conflicts), each value through f(value,
// channel); keys past N zero. `vec`: 16-byte loads (the host checked that every row starts
// 16-byte aligned), four in flight per thread, else one element per load. 256 threads.
template <typename F>
DEV void load_value_tile(const void* v, int type, i64 base, i64 ts, int N, int n0, int rows, int c0, int vec, float (*tile)[65], F f) {
    const int tid = threadIdx.x;
    if (vec) {
        // 64 / E loads per key.
        const int E = type == 0 ? 4 : 8, perShift = type == 0 ? 4 : 3, total = rows << perShift;
        for (int e0 = tid; e0 < total; e0 += 4 * 256) {
            float x[4][8];
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                const int e = e0 + u * 256, r = e >> perShift, n = n0 + r;
                if (e < total && n < N) ld16(v, base + (i64)n * ts + c0 + (e - (r << perShift)) * E, type, x[u]);
            }
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                const int e = e0 + u * 256, r = e >> perShift, cc = (e - (r << perShift)) * E, n = n0 + r;
                if (e < total)
                    for (int i = 0; i < E; i++) tile[r][cc + i] = n < N ? f(x[u][i], cc + i) : 0.0f;
            }
        }
    } else {
        for (int e = tid; e < rows * 64; e += 256) {
            const int r = e >> 6, c = e & 63, n = n0 + r;
            tile[r][c] = n < N ? f(ldx(v, base + (i64)n * ts + c0 + c, type), c) : 0.0f;
        }
    }
}
// V transposed to fp16 for the Hopper kernel, whose shared-memory operands must be K-major:
// one contiguous tile of D x bk per key block ([head][block][D * bk] halves, the kernel's
// shared-memory layout: channel r, keys 8c..8c+7 at (r / 8) * bk * 8 + c * 64 + (r % 8) * 8),
// keys past N zero. One key block x 64 channels per thread block through shared memory (a
// block per 32 keys left the loads too few to hide their latency): 16-byte reads along the
// channels, then per 32 keys one 16-byte write (8 keys of a channel) per thread.
// Block 256 threads, grid (blocks, D / 64, heads), bk * 65 * 4 bytes of dynamic shared memory
// (dynamic, since the program's functions all get the device's whole dynamic limit, which
// leaves no room for static arrays). D is 64 or 128 (the Hopper kernel's), bk a multiple of 32.
extern "C" __global__ void prep_values_t(const void* v, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int blocks, int D, int bk, int vec, u16* out) {
    extern __shared__ float tileData[];
    float (*tile)[65] = (float (*)[65])tileData;
    const int bh = blockIdx.z, b = bh / Hkv, h = bh % Hkv;
    const int blk = blockIdx.x, c0 = blockIdx.y * 64;
    load_value_tile(v, type, b * bs + h * hs, ts, N, blk * bk, bk, c0, vec, tile, [](float x, int) { return x; });
    __syncthreads();
    const int cl = threadIdx.x >> 2, kc = threadIdx.x & 3, ch = c0 + cl;
    u16* o = out + ((i64)bh * blocks + blk) * D * bk;
    for (int k0 = 0; k0 < bk; k0 += 32) {
        unsigned w[4];
        for (int i = 0; i < 4; i++)
            w[i] = (unsigned)f2h(tile[k0 + kc * 8 + 2 * i][cl]) | ((unsigned)f2h(tile[k0 + kc * 8 + 2 * i + 1][cl]) << 16);
        *(uint4*)(o + (ch >> 3) * (bk * 8) + ((k0 >> 3) + kc) * 64 + (ch & 7) * 8) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}
// The end of v_amax and v_amax_h2: each channel's maximum over the G groups' partial maxima
// in shared memory, merged into the global maxima by atomic max on the bit patterns.
DEV void amax_merge(const float* amaxPart, int G, int D, unsigned* amaxRow) {
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += 256) {
        float r = 0.0f;
        for (int g = 0; g < G; g++) r = fmaxf(r, amaxPart[g * D + c]);
        atomicMax(amaxRow + c, __float_as_uint(r));
    }
}
// Keys per thread block of v_amax and v_amax_h2 (PrepareSource.valueMaximumKeys, by which the
// host sizes their grid).
#define V_AMAX_KEYS \#(valueMaximumKeys)
// FP8 P.V (Ada / Hopper, the SageAttention2 numerics): V quantized per (batch, kv head,
// channel) to e4m3 with v_scale = max|V[:, c]| / range, as the CPU path's emulation does.
// Part 1: max|V| per channel by atomic max on the bit patterns (non-negative floats order as
// integers); `amax` zeroed before. grid (ceil(N / V_AMAX_KEYS), B*Hkv), 256 threads: with `vec`,
// 16-byte loads of E channels (D / E threads per key), else one channel per thread (G = 256 / D
// threads per channel); 256 * 8 floats of dynamic shared memory (no static shared memory in
// this program: every function gets the device's whole dynamic allowance).
extern "C" __global__ void v_amax(const void* v, int type, i64 bs, i64 hs, i64 ts, int Hkv, int N, int D, int vec, unsigned* amax) {
    extern __shared__ float amaxPart[];
    const int bh = blockIdx.y, b = bh / Hkv, h = bh % Hkv, tid = threadIdx.x;
    const int t0 = blockIdx.x * V_AMAX_KEYS, t1 = min(N, t0 + V_AMAX_KEYS);
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
    amax_merge(amaxPart, G, D, amax + (i64)bh * D);
}

#if __CUDA_ARCH__ >= 800
// max(m, |w|) of two fp16 (type 1) or bf16 values packed in a word.
DEV unsigned abs_max2(unsigned m, unsigned w, int type) {
    unsigned r;
    w &= 0x7fff7fffu;
    if (type == 1) asm("max.f16x2 %0, %1, %2;" : "=r"(r) : "r"(m), "r"(w));
    else asm("max.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(m), "r"(w));
    return r;
}
// v_amax for fp16 and bf16 rows read 16 bytes at a time (the FP8 path's usual case): |x| is
// the bit pattern with its sign cleared and max.f16x2 / max.bf16x2 take two at a time (exact; a
// NaN loses, as with fmaxf), so the four loads in flight stay 16 registers of raw bits (v_amax
// holds 32 converted floats: 85 registers, 24% occupancy). Same grid, block and shared memory.
extern "C" __global__ void v_amax_h2(const u16* v, int type, i64 bs, i64 hs, i64 ts, int Hkv, int N, int D, unsigned* amax) {
    extern __shared__ float amaxPart[];
    const int bh = blockIdx.y, b = bh / Hkv, h = bh % Hkv, tid = threadIdx.x;
    const int t0 = blockIdx.x * V_AMAX_KEYS, t1 = min(N, t0 + V_AMAX_KEYS);
    const u16* base = v + b * bs + h * hs;
    const int chunks = D / 8, G = 256 / chunks, cc = tid % chunks, gi = tid / chunks;
    unsigned m[4] = {0u, 0u, 0u, 0u};
    if (gi < G) {
        for (int t = t0 + gi; t < t1; t += 4 * G) {
            uint4 x[4];
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                const int tu = t + u * G;
                x[u] = tu < t1 ? *(const uint4*)(base + (i64)tu * ts + cc * 8) : make_uint4(0u, 0u, 0u, 0u);
            }
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                m[0] = abs_max2(m[0], x[u].x, type); m[1] = abs_max2(m[1], x[u].y, type);
                m[2] = abs_max2(m[2], x[u].z, type); m[3] = abs_max2(m[3], x[u].w, type);
            }
        }
        for (int e = 0; e < 8; e++) {
            const u16 hb = (u16)(m[e >> 1] >> ((e & 1) * 16));
            amaxPart[gi * D + cc * 8 + e] = bits16f(hb, type);
        }
    }
    amax_merge(amaxPart, G, D, amax + (i64)bh * D);
}
#endif
#if __CUDA_ARCH__ >= 890
// Two values rounded to e4m3 (nearest, ties to even, saturating at 448 like the CPU's
// roundToE4M3) and packed, `lo` in the low byte.
DEV unsigned e4m3x2(float lo, float hi) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}
// x / scale, by the channel's shared reciprocal except for zeros (whose sign the exact
// division keeps) and tiny values (see div_by); 0 for a channel without a scale.
DEV float value_quotient(float x, float s, float r1) {
    if (!(s > 0.0f)) return 0.0f;
    return r1 != 0.0f && fabsf(x) >= 0x1p-60f ? div_by(x, s, r1) : __fdiv_rn(x, s);
}
// prep_values_t8's fp16 / bf16 rows of 16-byte loads: U rows of the key block starting at key
// n0 (tid / 8 + 32 u, u < U), raw, zeros past the block and past N.
template <int U>
DEV void value_rows_load(const u16* src, i64 ts, int N, int n0, int rb, int bk, uint4 (&x)[U]) {
    #pragma unroll
    for (int u = 0; u < U; u++) {
        const int r = rb + 32 * u, n = n0 + r;
        x[u] = r < bk && n < N ? *(const uint4*)(src + (i64)n * ts) : make_uint4(0u, 0u, 0u, 0u);
    }
}
// Those rows' channels cc..cc+7 divided by their scales sv (reciprocals rv) into the fp32 tile;
// FP16: the values' quotients without checks (see the caller).
template <bool FP16, int U>
DEV void value_rows_convert(const uint4 (&x)[U], int type, int N, int n0, int rb, int bk, int cc,
                            const float* sv, const float* rv, float (*tile)[65]) {
    #pragma unroll
    for (int u = 0; u < U; u++) {
        const int r = rb + 32 * u, n = n0 + r;
        if (r < bk) {
            const unsigned w[4] = {x[u].x, x[u].y, x[u].z, x[u].w};
            #pragma unroll
            for (int i = 0; i < 8; i++) {
                const u16 hb = (u16)(w[i >> 1] >> ((i & 1) * 16));
                const float f = bits16f(hb, FP16 ? 1 : type);
                const float q = FP16 ? (f == 0.0f ? f : div_by(f, sv[i], rv[i])) : value_quotient(f, sv[i], rv[i]);
                tile[r][cc + i] = n < N ? q : 0.0f;
            }
        }
    }
}
// Every row of a key block of any size, 128 rows (four loads in flight per thread) at a time.
template <bool FP16>
DEV void value_rows_t8(const u16* src, int type, i64 ts, int N, int n0, int bk, int cc,
                       const float* sv, const float* rv, float (*tile)[65]) {
    for (int rb = threadIdx.x >> 3; rb < bk; rb += 128) {
        uint4 x[4];
        value_rows_load<4>(src, ts, N, n0, rb, bk, x);
        value_rows_convert<FP16, 4>(x, type, N, n0, rb, bk, cc, sv, rv, tile);
    }
}
// Part 2: V^T in e4m3, in the Hopper kernel's tile layout for 8-bit B operands (core
// matrices of 8 channels x 16 keys, 16 bytes a row: channel r, position p of a tile at
// (r / 8) * bk * 8 + (p / 16) * 128 + (r % 8) * 16 + p % 16), with the keys of each
// 32-key chunk permuted so that the fp32 accumulator layout of S, packed in place, is the
// A-operand layout of P (FlashAttention-3's FP8 trick): position p holds key
// 16 * (p / 16) + 8 * ((p % 4) / 2) + 2 * ((p % 16) / 4) + p % 2. Also writes
// vScale = amax / range per channel (0 where the channel is all zeros: V8 is then 0).
// grid (ceil(blocks / perBlock), D / 64, B*Hkv): perBlock key blocks x 64 channels per thread block, 256 threads
// (per 32 keys one 8-byte write each: 8 positions of a channel), bk x 65 + 128 floats of
// shared memory.
// Four thread blocks per SM (64 registers, no spills with NVRTC 13; the generic path's loop
// asks for 96 otherwise).
extern "C" __global__ void __launch_bounds__(256, 4) prep_values_t8(const void* v, int type, i64 bs, i64 hs, i64 ts,
        int Hkv, int N, int blocks, int D, int bk, const float* amax, float range, float* vScale, int vec, unsigned char* out,
        int perBlock) {
    extern __shared__ float tileData[];
    float (*tile)[65] = (float (*)[65])tileData;
    float* scales = tileData + bk * 65;
    float* recips = scales + 64;         // div_reciprocal of each scale, 0 where out of range
    const int bh = blockIdx.z, b = bh / Hkv, h = bh % Hkv;
    const int blk0 = blockIdx.x * perBlock, blkEnd = min(blocks, blk0 + perBlock), c0 = blockIdx.y * 64, tid = threadIdx.x;
    if (tid < 64) {
        const float s = __fdiv_rn(amax[(i64)bh * D + c0 + tid], range);
        scales[tid] = s;
        recips[tid] = div_divisor_in_range(s) ? div_reciprocal(s) : 0.0f;
        if (blk0 == 0) vScale[(i64)bh * D + c0 + tid] = s;
    }
    __syncthreads();
    // fp16 / bf16 rows of 16-byte loads: each thread always has the same eight channels
    // ((tid % 8) * 8: eight loads a key), so their scales and reciprocals stay in registers
    // (the generic loader reads them from shared memory after every store to the tile), and
    // the four loads in flight stay raw bits until converted. fp16 values are 0 or at least
    // 2^-24 in magnitude, so with eight usable scales the shared reciprocal serves every nonzero
    // value and a zero is its own quotient (sign kept): no per-value branch. bf16 or a zero
    // channel: the checks per value (value_quotient).
    const bool packed = vec && type != 0;
    // The tile of key block blk, e4m3 in the kernel's layout (32 keys: one 8-byte store each).
    auto store = [&](int blk) {
        const int cl = tid >> 2, p0 = (tid & 3) * 8, ch = c0 + cl;
        unsigned char* o = out + ((i64)bh * blocks + blk) * D * bk;
        for (int k0 = 0; k0 < bk; k0 += 32) {
            unsigned w[2];
            for (int i = 0; i < 2; i++) {
                float x[4];
                for (int j = 0; j < 4; j++) {
                    const int p = p0 + 4 * i + j;
                    x[j] = tile[k0 + 16 * (p >> 4) + 8 * ((p & 3) >> 1) + 2 * ((p & 15) >> 2) + (p & 1)][cl];
                }
                w[i] = e4m3x2(x[0], x[1]) | (e4m3x2(x[2], x[3]) << 16);
            }
            const int pos = k0 + p0;
            *(uint2*)(o + (ch >> 3) * (bk * 8) + (pos >> 4) * 128 + (ch & 7) * 16 + (pos & 15)) = make_uint2(w[0], w[1]);
        }
    };
    // perBlock key blocks in turn, the scales above once for all of them (a loop per path: one
    // loop around both left the generic path's registers to the whole kernel, 128).
    if (packed) {
        const int cc = (tid & 7) * 8;
        float sv[8], rv[8];
        bool normal = type == 1;
        #pragma unroll
        for (int i = 0; i < 8; i++) {
            sv[i] = scales[cc + i]; rv[i] = recips[cc + i];
            normal = normal && sv[i] > 0.0f && rv[i] != 0.0f;
        }
        const u16* src = (const u16*)v + b * bs + h * hs + c0 + cc;
        // Key blocks of 64 rows (the default's): the next block's rows are loaded before this
        // one's are converted and stored, so that loads stay in flight through the barriers (one
        // block's loads at a time: NCU, H200, a quarter of the DRAM bandwidth). 128 rows would
        // hold 32 registers of raw rows and spill at 64 registers; they take four loads at once.
        if (bk == 64) {
            constexpr int U = 2;
            const int rb = tid >> 3;
            uint4 next[U];
            value_rows_load<U>(src, ts, N, blk0 * bk, rb, bk, next);
            for (int blk = blk0; blk < blkEnd; blk++) {
                uint4 x[U];
                #pragma unroll
                for (int u = 0; u < U; u++) x[u] = next[u];
                if (blk + 1 < blkEnd) value_rows_load<U>(src, ts, N, (blk + 1) * bk, rb, bk, next);
                if (blk > blk0) __syncthreads();   // the previous block's tile is read
                if (normal) value_rows_convert<true, U>(x, type, N, blk * bk, rb, bk, cc, sv, rv, tile);
                else value_rows_convert<false, U>(x, type, N, blk * bk, rb, bk, cc, sv, rv, tile);
                __syncthreads();
                store(blk);
            }
        } else {
            for (int blk = blk0; blk < blkEnd; blk++) {
                if (blk > blk0) __syncthreads();   // the previous block's tile is read
                if (normal) value_rows_t8<true>(src, type, ts, N, blk * bk, bk, cc, sv, rv, tile);
                else value_rows_t8<false>(src, type, ts, N, blk * bk, bk, cc, sv, rv, tile);
                __syncthreads();
                store(blk);
            }
        }
    } else {
        for (int blk = blk0; blk < blkEnd; blk++) {
            if (blk > blk0) __syncthreads();
            load_value_tile(v, type, b * bs + h * hs, ts, N, blk * bk, bk, c0, vec, tile,
                            [&](float x, int c) { return value_quotient(x, scales[c], recips[c]); });
            __syncthreads();
            store(blk);
        }
    }
}
#endif
"""#
}
#endif
