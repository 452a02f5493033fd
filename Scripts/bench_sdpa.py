#!/usr/bin/env python3
"""Times PyTorch's scaled_dot_product_attention on the inputs `sparge bench --backend cuda
--dump DIR` wrote (DIR/{q,k,v}_N_D.npy, fp16, B,H,N,D): CUDA events, median of many runs
after warm-up. Prints one row per shape: ms and TOPS (4*N^2*D*H / time)."""
import glob, os, sys
import numpy as np
import torch
from authors_compare import median_ms  # the one CUDA-event timing loop of the scripts

def main(folder, repeats=50):
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("    N    D   SDPA ms    TOPS   backend")
    for qpath in sorted(glob.glob(os.path.join(folder, "q_*.npy")), key=lambda p: tuple(map(int, p[:-4].split("_")[-2:]))):
        n, d = map(int, qpath[:-4].split("_")[-2:])
        q, k, v = (torch.from_numpy(np.load(os.path.join(folder, f"{x}_{n}_{d}.npy"))).cuda() for x in "qkv")
        ms = median_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), repeats=repeats, warmup=10)
        h = q.shape[1]
        backend = "flash" if torch.backends.cuda.flash_sdp_enabled() else "other"
        print(f"{n:6d} {d:4d} {ms:9.3f} {4 * n * n * d * h / ms / 1e9:7.1f}   {backend}")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sparge-inputs")
