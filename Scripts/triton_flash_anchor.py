#!/usr/bin/env python3
"""What a plain dense FlashAttention forward written in Triton reaches on this GPU, as context
for the stage-2 kernel's throughput targets (issue 18: 550 TOPS at D=64). No sparsity, no INT8,
no filter: S = Q K^T and O = P V on the tensor cores, an online softmax in fp32 between them.

  python3 Scripts/triton_flash_anchor.py [--heads 16] [--lengths 16384,32768] [--dims 64,128]

Two variants per shape, each autotuned over a few tile shapes and pipeline depths:
  fp16: Q, K, V, P in fp16 (FlashAttention-2's numerics; compare with SDPA);
  fp8:  Q, K, V, P in e4m3 with fp32 accumulators (the tensor-core rate of our FP8 P.V kernel,
        whose Q.K^T is INT8 at the same rate).
Prints ms (median of CUDA events) and TOPS = 4 N^2 D H / time, and SDPA's fp16 time beside.
"""
import argparse
import torch
import triton
import triton.language as tl
from authors_compare import median_ms  # the one CUDA-event timing loop of the scripts


def configs():
    out = []
    for bm, bn, w, s in ((128, 64, 8, 2), (128, 64, 8, 3), (128, 128, 8, 2), (128, 64, 4, 3),
                         (64, 64, 4, 3), (128, 32, 4, 4)):
        out.append(triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_stages=s, num_warps=w))
    return out


@triton.autotune(configs=configs(), key=["N", "D", "FP8"])
@triton.jit
def flash_fwd(Q, K, VT, O, scale, N, H,
              D: tl.constexpr, FP8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # Q, K: (H, N, D); VT: (H, D, N) (V transposed: the layout FP8 wgmma wants for its B operand);
    # O: (H, N, D) fp16.
    m_blk = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    rows = m_blk * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, D)
    cols = tl.arange(0, BLOCK_N)
    q = tl.load(Q + h * N * D + rows[:, None] * D + dims[None, :])
    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    qk_scale = scale * 1.44269504
    for start in range(0, N, BLOCK_N):
        kt = tl.load(K + h * N * D + (start + cols)[None, :] * D + dims[:, None])       # (D, BLOCK_N)
        s = tl.dot(q, kt)
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
        p = tl.math.exp2(s * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        vt = tl.load(VT + h * D * N + dims[:, None] * N + (start + cols)[None, :])      # (D, BLOCK_N)
        if FP8:
            acc = tl.dot(p.to(tl.float8e4nv), tl.trans(vt), acc)
        else:
            acc = tl.dot(p.to(tl.float16), tl.trans(vt), acc)
        m_i = m_new
    acc = acc / l_i[:, None]
    tl.store(O + h * N * D + rows[:, None] * D + dims[None, :], acc.to(tl.float16))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--lengths", default="16384,32768")
    ap.add_argument("--dims", default="64,128")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, triton {triton.__version__}, {torch.cuda.get_device_name()}")
    print("    N    D  variant        ms    TOPS  config")
    for n in map(int, a.lengths.split(",")):
        for d in map(int, a.dims.split(",")):
            torch.manual_seed(0)
            q, k, v = (torch.randn(1, a.heads, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
            ops = 4 * n * n * d * a.heads
            ms = median_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), repeats=30)
            ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            print(f"{n:6d} {d:4d}  sdpa fp16  {ms:9.3f} {ops / ms / 1e9:7.1f}")
            for fp8 in (False, True):
                dt = torch.float8_e4m3fn if fp8 else torch.float16
                qq, kk = q[0].to(dt).contiguous(), k[0].to(dt).contiguous()
                vt = v[0].transpose(1, 2).to(dt).contiguous()
                o = torch.empty_like(q[0])
                grid = lambda meta: (n // meta["BLOCK_M"], a.heads)
                run = lambda: flash_fwd[grid](qq, kk, vt, o, d ** -0.5, n, a.heads, D=d, FP8=fp8)
                ms = median_ms(run, repeats=30)
                err = ((o.float() - ref[0].float()).abs().sum() / ref.float().abs().sum()).item()
                cfg = flash_fwd.best_config
                print(f"{n:6d} {d:4d}  triton {'fp8 ' if fp8 else 'fp16'}  {ms:9.3f} {ops / ms / 1e9:7.1f}  "
                      f"{cfg.kwargs['BLOCK_M']}x{cfg.kwargs['BLOCK_N']} w{cfg.num_warps} s{cfg.num_stages}; rel L1 vs SDPA {err:.1e}")


if __name__ == "__main__":
    main()
