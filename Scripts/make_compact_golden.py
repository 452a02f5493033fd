#!/usr/bin/env python3
"""Writes the compact golden set (Tests/Golden) from the full set of official GPU outputs.

Usage: python3 Scripts/make_compact_golden.py FULL_GOLDEN_DIR [OUT_DIR]   (needs numpy, safetensors)

Stage 1, the INT8 quantization (K smoothing included: the K mean is per head) and the
kernels all work per head, so every official mask, INT8 tensor and output of a kept head
stays valid when the other heads are dropped. Each compact case keeps a few heads of one
full case and every tensor of those heads except `dense.o` (exact attention, which the
tests recompute in float64). The metadata `case` JSON is the original one with the
densities and the Triton output's accuracy recomputed for the kept heads, plus a
`compact` entry naming the source and the heads.
"""
import json
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

# case -> heads kept: both block shapes are in every case; together they cover a ragged
# length (1000), causal, D = 32 / 64 / 128 and real activations (MiniLM, SmolLM2). The heads
# are chosen for non-trivial masks (CDF 0.9 and Triton densities well below 1).
KEEP = {
    "gauss_1000_d64": [0, 1],
    "minilm_l2_512_d32": [1, 4],
    "smollm2_l15_2048_d64_causal": [3],
    "lm_2048_d128_causal": [1],
}
OMITTED = ["dense.o"]


def compact(source, out_dir, name, heads):
    with safe_open(source, "np") as f:
        meta = json.loads(f.metadata()["case"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    # Every tensor is B,H,... with H on axis 1 (masks, INT8 tensors, scales, outputs).
    kept = {k: np.ascontiguousarray(v[:, heads]) for k, v in tensors.items() if k not in OMITTED}
    for cfg, m in meta["masks"].items():
        m["density"] = float(kept["mask." + cfg].astype(np.float64).mean())
    triton = meta["triton"]
    triton["density"] = float(kept["mask.triton"].astype(np.float64).mean())
    if "triton.o" in kept:
        a = kept["triton.o"].astype(np.float64).ravel()
        b = tensors["dense.o"][:, heads].astype(np.float64).ravel()
        triton["cossim_vs_dense"] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        triton["l1_vs_dense"] = float(np.abs(a - b).sum() / np.abs(b).sum())
    meta["compact"] = {"source": name, "heads": heads, "omitted": OMITTED}
    save_file(kept, os.path.join(out_dir, name + ".safetensors"), metadata={"case": json.dumps(meta)})


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    full = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Golden")
    os.makedirs(out_dir, exist_ok=True)
    for name, heads in KEEP.items():
        compact(os.path.join(full, name + ".safetensors"), out_dir, name, heads)
        size = os.path.getsize(os.path.join(out_dir, name + ".safetensors"))
        print(f"{name}: heads {heads}, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
