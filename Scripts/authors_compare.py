#!/usr/bin/env python3
"""Beside Scripts/authors-compare.sh, on the GPU machine: the authors' SpargeAttn CUDA extension
(built in place by that script) against ours and PyTorch SDPA.

  time --authors DIR --inputs DIR --ours LOG...   times spas_sage2_attn_meansim_topk_cuda and
      SDPA on the q/k/v files `sparge bench --dump` wrote (fp16, B,H,N,D), end to end (stage 1,
      quantization, kernel; CUDA events, median of 20 after 5 warm-ups), and prints one table
      with ours from the `sparge bench` logs (one column per log).
  dump --authors DIR --inputs DIR   writes q, k, v and the authors' outputs of sage2-topk and
      sage2-cdf on smaller shapes as .npy, for `sparge check`."""
import argparse, glob, os, re, sys
import numpy as np
import torch

def load_authors(folder):
    # Their extension leaves the instantiations of other architectures undefined: lazy binding.
    sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
    sys.path.insert(0, folder)
    import spas_sage_attn
    return spas_sage_attn

def median_ms(f, repeats=20, warmup=5):
    for _ in range(warmup):
        f()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))

def ours_from(log):
    """(N, D, topk) -> (density, total ms) from a `sparge bench --backend cuda` log; the blocks
    and P.V numerics from its header ("nocount": plans that do not count the filter's skips,
    as the authors' kernel counts none)."""
    rows, label = {}, os.path.basename(log)
    for line in open(log):
        m = re.search(r"blocks (\d+x\d+), P.V (\w+)", line)
        if m:
            label = f"ours {m.group(2)} {m.group(1)}" + (" nocount" if "skips not counted" in line else "")
        f = line.split()
        if len(f) >= 7 and f[0].isdigit() and f[1].isdigit():
            rows[(int(f[0]), int(f[1]), float(f[2]))] = (float(f[3]), float(f[6]))
    return label, rows

def time_all(args):
    sa = load_authors(args.authors)
    ours = [ours_from(log) for log in args.ours]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; ms end to end, median of 20 (density in brackets)")
    head = f"{'N':>6} {'D':>4} {'topk':>5} | " + " | ".join(f"{l:>22}" for l, _ in ours) + f" | {'authors sm90 (density)':>22} | {'SDPA':>7}"
    print(head)
    files = sorted(glob.glob(os.path.join(args.inputs, "q_*.npy")), key=lambda p: tuple(map(int, p[:-4].split("_")[-2:])))
    for qpath in files:
        n, d = map(int, qpath[:-4].split("_")[-2:])
        q, k, v = (torch.from_numpy(np.load(os.path.join(args.inputs, f"{x}_{n}_{d}.npy"))).cuda() for x in "qkv")
        sdpa = median_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
        for topk in (1.0, 0.5, 0.25):
            call = lambda: sa.spas_sage2_attn_meansim_topk_cuda(q, k, v, topk=topk, is_causal=False)
            _, sparsity = sa.spas_sage2_attn_meansim_topk_cuda(q, k, v, topk=topk, is_causal=False, return_sparsity=True)
            theirs = median_ms(call)
            cells = []
            for _, rows in ours:
                r = rows.get((n, d, topk))
                cells.append(f"{r[1]:9.3f} ({r[0]:.3f})" if r else f"{'-':>22}")
            cells.append(f"{theirs:9.3f} ({1 - sparsity:.3f})")
            print(f"{n:6d} {d:4d} {topk:5.2f} | " + " | ".join(f"{c:>22}" for c in cells) + f" | {sdpa:7.3f}", flush=True)
        del q, k, v
        torch.cuda.empty_cache()

def dump(args):
    sa = load_authors(args.authors)
    os.makedirs(args.inputs, exist_ok=True)
    g = torch.Generator(device="cuda").manual_seed(7)
    for n, d, h in ((4096, 64, 4), (4096, 128, 4)):
        # Tokens that share a few directions with their neighbours, so selection matters.
        def tensor(shift):
            base = torch.randn(1, h, n // 256, 1, d, device="cuda", generator=g) * shift
            x = torch.randn(1, h, n // 256, 256, d, device="cuda", generator=g) * 0.5 + base
            return x.reshape(1, h, n, d).half()
        q, k, v = tensor(1.0), tensor(1.5), tensor(0.3)
        shape = f"{n}x{d}"
        for name, x in (("q", q), ("k", k), ("v", v)):
            np.save(os.path.join(args.inputs, f"{name}_{shape}.npy"), x.cpu().numpy())
        outs = {"sage2-topk": sa.spas_sage2_attn_meansim_topk_cuda(q, k, v, is_causal=False),
                "sage2-cdf": sa.spas_sage2_attn_meansim_cuda(q, k, v, is_causal=False)}
        for preset, o in outs.items():
            np.save(os.path.join(args.inputs, f"o_{preset}_{shape}.npy"), o.half().cpu().numpy())
        print(f"wrote {shape} H={h}: {', '.join(outs)}")

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["time", "dump"])
    p.add_argument("--authors", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--ours", nargs="*", default=[])
    a = p.parse_args()
    time_all(a) if a.mode == "time" else dump(a)
