// Checks, on the GPU it runs on, that the preparation kernel's shared-divisor division
// (div_reciprocal / div_by in Sources/SpargeCUDA/Kernels/PrepareSource.swift, copied below)
// gives the same quotients as div.rn.f32 (__fdiv_rn) where the kernel uses it:
//   A. unit rows with GPU rounding: every finite fp16 value a, divisors b in [2^-40, 2^40];
//   B. unit rows without rounding and V for FP8: random fp32 a with 2^-60 <= |a| <= 2^50,
//      same divisors;
//   C. INT8 quantization: random x (zeros, subnormals, any magnitude up to 130 * scale) and
//      quotients placed within a few ulps of every rounding boundary k + 0.5; the INT8 values
//      must agree.
// Zeros of either sign count as equal (the kernel only sums these quotients).
// Build and run on the GPU machine: nvcc -O3 -arch=sm_90 -o fdc Scripts/fast_division_check.cu && ./fdc
#include <cstdio>
#include <cstdint>

__device__ __forceinline__ float h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ bool div_divisor_in_range(float b) { return b >= 0x1p-40f && b <= 0x1p40f; }
__device__ __forceinline__ float div_reciprocal(float b) {
    float r0;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r0) : "f"(b));
    return __fmaf_rn(r0, __fmaf_rn(r0, -b, 1.0f), r0);
}
__device__ __forceinline__ float div_by(float a, float b, float r1) {
    const float q0 = __fmul_rn(a, r1);
    return __fmaf_rn(r1, __fmaf_rn(q0, -b, a), q0);
}
__device__ __forceinline__ int quantize_int8(float x, float premul, float sc, float r1, bool fast) {
    const float a = __fmul_rn(x, premul);
    const float y = fast ? div_by(a, sc, r1) : __fdiv_rn(a, sc);
    const float t = fminf(floorf(__fadd_rn(fabsf(y), 0.5f)), 127.0f);
    return (int)(y < 0 ? -t : t);
}
__device__ __forceinline__ uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// A float with exponent uniform in [lo, hi] (powers of two), random mantissa and sign.
__device__ __forceinline__ float random_float(uint64_t r, int lo, int hi, bool sign) {
    const int e = lo + (int)((r >> 40) % (uint64_t)(hi - lo + 1));
    const unsigned bits = ((unsigned)(e + 127) << 23) | (unsigned)(r & 0x7fffff) | (sign && (r >> 63) ? 0x80000000u : 0u);
    return __uint_as_float(bits);
}
__device__ __forceinline__ bool same(float x, float y) { return x == y ? true : __float_as_uint(x) == __float_as_uint(y); }

struct Report { unsigned long long tests, bad; float a, b, fast, exact; };

__device__ void record(Report* rep, float a, float b, float f, float e) {
    if (atomicAdd(&rep->bad, 1ull) == 0) { rep->a = a; rep->b = b; rep->fast = f; rep->exact = e; }
}

__global__ void check_fp16(uint64_t seed, Report* rep) {
    const uint64_t id = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float b = fabsf(random_float(mix(seed ^ id), -40, 40, false));
    const float r1 = div_reciprocal(b);
    unsigned long long n = 0;
    for (unsigned h = 0; h < 0x7c00u; h++) {
        for (int s = 0; s < 2; s++) {
            const float a = h2f((unsigned short)(h | (s << 15)));
            const float f = div_by(a, b, r1), e = __fdiv_rn(a, b);
            if (!same(f, e)) record(rep, a, b, f, e);
            n++;
        }
    }
    atomicAdd(&rep->tests, n);
}

__global__ void check_fp32(uint64_t seed, int perThread, Report* rep) {
    const uint64_t id = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float b = fabsf(random_float(mix(seed ^ id), -40, 40, false));
    const float r1 = div_reciprocal(b);
    for (int i = 0; i < perThread; i++) {
        const float a = random_float(mix(seed + id * 0x10001ull + (uint64_t)i * 0x9e37ull), -60, 50, true);
        const float f = div_by(a, b, r1), e = __fdiv_rn(a, b);
        if (!same(f, e)) record(rep, a, b, f, e);
    }
    atomicAdd(&rep->tests, (unsigned long long)perThread);
}

__global__ void check_quantization(uint64_t seed, int perThread, Report* rep) {
    const uint64_t id = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float sc = fabsf(random_float(mix(seed ^ id), -40, 40, false));
    const float r1 = div_reciprocal(sc);
    const float premul = (id & 1) ? 1.0f : 0.18033688f;  // the CUDA and the Triton quantization
    unsigned long long n = 0;
    for (int i = 0; i < perThread; i++) {
        const uint64_t r = mix(seed * 31 + id * 0x10001ull + (uint64_t)i);
        float x;
        switch (i & 3) {
        case 0: {   // near a rounding boundary: (k + 0.5) * sc / premul, moved by up to 8 ulps
            const int k = (int)(r % 131);
            const float base = __fdiv_rn(__fmul_rn((float)k + 0.5f, sc), premul);
            const int ulps = (int)((r >> 20) % 17) - 8;
            x = __uint_as_float(__float_as_uint(base) + ulps) * ((r >> 62) ? -1.0f : 1.0f);
            break;
        }
        case 1: x = __uint_as_float((unsigned)(r & 0x807fffffull)); break;  // zero or subnormal
        case 2: x = random_float(r, -149 + 23, 0, true) * sc; break;          // small against the scale
        default: x = __fmul_rn(__fdiv_rn(random_float(r, -1, 7, true), premul), sc);  // |y| up to 256
        }
        if (!isfinite(x)) continue;
        const int f = quantize_int8(x, premul, sc, r1, true), e = quantize_int8(x, premul, sc, r1, false);
        if (f != e) record(rep, x, sc, (float)f, (float)e);
        n++;
    }
    atomicAdd(&rep->tests, n);
}

static bool run(const char* name, Report* rep) {
    cudaError_t err = cudaDeviceSynchronize();
    Report h;
    cudaMemcpy(&h, rep, sizeof h, cudaMemcpyDeviceToHost);
    if (err != cudaSuccess) { printf("%s: CUDA error %s\n", name, cudaGetErrorString(err)); return false; }
    printf("%-28s %llu quotients, %llu differ", name, h.tests, h.bad);
    if (h.bad) printf(" (first: a=%a b=%a fast=%a exact=%a)", h.a, h.b, h.fast, h.exact);
    printf("\n");
    cudaMemset(rep, 0, sizeof h);
    return h.bad == 0 && h.tests > 0;
}

int main() {
    Report* rep;
    cudaMalloc(&rep, sizeof(Report));
    cudaMemset(rep, 0, sizeof(Report));
    bool ok = true;
    check_fp16<<<4096, 256>>>(1, rep);
    ok &= run("A fp16 a, 2^20 divisors", rep);
    check_fp32<<<65536, 256>>>(2, 4096, rep);
    ok &= run("B fp32 a", rep);
    check_quantization<<<65536, 256>>>(3, 4096, rep);
    ok &= run("C INT8 quantization", rep);
    printf(ok ? "fast division check: PASS\n" : "fast division check: FAIL\n");
    return ok ? 0 : 1;
}
