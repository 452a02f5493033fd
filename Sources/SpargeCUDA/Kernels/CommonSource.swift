#if CUDA
/// CUDA C shared by the kernel programs: fp16 conversions through PTX (no CUDA headers are
/// needed, so NVRTC compiles it anywhere), element loads of the three input types, the CPU
/// build's multiply-add, and the tensor-core and async-copy instructions.
enum CommonSource {
    static let text = #"""
typedef unsigned short u16;
typedef unsigned long long u64;
typedef long long i64;
#define DEV static __device__ __forceinline__
#define SP_INF __int_as_float(0x7f800000)

DEV float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
DEV u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
DEV float roundh(float f) { return h2f(f2h(f)); }
DEV u16 f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}
// Element types: 0 fp32, 1 fp16, 2 bf16.
// The bits of a 16-bit element (type 1 or 2) as a float.
DEV float bits16f(u16 b, int type) { return type == 1 ? h2f(b) : __uint_as_float(((unsigned)b) << 16); }
DEV float ldx(const void* p, i64 i, int type) {
    if (type == 0) return ((const float*)p)[i];
    return bits16f(((const u16*)p)[i], type);
}
// 16 loaded bytes as floats: 4 (fp32) or 8 (fp16, bf16); returns the count.
DEV int unpack16(uint4 u, int type, float* f) {
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
    if (type == 0) { for (int e = 0; e < 4; e++) f[e] = __uint_as_float(w[e]); return 4; }
    for (int e = 0; e < 8; e++) {
        f[e] = bits16f((u16)(w[e >> 1] >> ((e & 1) * 16)), type);
    }
    return 8;
}
// 16 bytes from element i (16-byte aligned) as floats: 4 (fp32) or 8 (fp16, bf16); returns the count.
DEV int ld16(const void* p, i64 i, int type, float* f) {
    return unpack16(*(const uint4*)((const char*)p + i * (type == 0 ? 4 : 2)), type, f);
}
// Two values as one 32-bit word of type 1 (fp16) or 2 (bf16), the first in the low half.
DEV unsigned pack16x2(int type, float a, float b) {
    return type == 1 ? (unsigned)f2h(a) | ((unsigned)f2h(b) << 16) : (unsigned)f2bf(a) | ((unsigned)f2bf(b) << 16);
}
// The global timer, in nanoseconds.
DEV u64 global_ns() { u64 t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
DEV void stx(void* p, i64 i, int type, float v) {
    if (type == 0) ((float*)p)[i] = v;
    else if (type == 1) ((u16*)p)[i] = f2h(v);
    else ((u16*)p)[i] = f2bf(v);
}
// The CPU build's SIMD multiply-add: fused in the tuned build (FMA), separate otherwise.
DEV float madd(float a, float b, float c) {
#if SPARGE_FMA
    return __fmaf_rn(a, b, c);
#else
    return __fadd_rn(__fmul_rn(a, b), c);
#endif
}
DEV unsigned smem_addr(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}
DEV float ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
// A row's natural-log log-sum-exp from the kernels' base-2 state: max m, sum l of 2^(s - m + bias)
// (the CPU path's LSEDestination.store); -inf for a row that attended no key.
DEV float row_lse(float m, float l, float bias) {
    if (m != m || l != l) return __int_as_float(0x7fc00000);
    if (!(l > 0.0f) || m == -SP_INF) return -SP_INF;
    return (float)(((double)m + (double)log2f(l) - (double)bias) * 0.6931471805599453);
}
// Whether key block j (bk keys, its last clipped to Nk) lies at or before key `limit`: with
// limit = a row's causal limit minus the sliding window, entirely before that row's window.
DEV bool before_window(int j, int bk, int Nk, i64 limit) { return min((i64)(j + 1) * bk, (i64)Nk) - 1 <= limit; }
// A learned sink s (base-2 units, with the P offset of the kernel; -inf: none) folded into a
// row's state m, l (the CPU path's foldSink): when the sink is the larger the state moves to it
// and O is to be multiplied by f; a row that attended no key takes the sink alone (f = 0, so
// its zero O stays zero and its log-sum-exp is the sink).
DEV void fold_sink(float& m, float& l, float& f, float s) {
    f = 1.0f;
    if (!(s > -SP_INF)) return;
    if (!(m > -SP_INF) || !(l > 0.0f)) { m = s; l = 1.0f; f = 0.0f; return; }
    if (s > m) { f = exp2f(m - s); l = __fadd_rn(__fmul_rn(l, f), 1.0f); m = s; }
    else l = __fadd_rn(l, exp2f(s - m));
}
"""#
}
#endif
