#!/usr/bin/env python3
"""NumPy reference of SmolLM2 (Llama) read from the same GGUF file as the Swift example.

Written independently of the Swift code: float64 throughout, the Hugging Face conventions
(Q/K weights un-permuted back from llama.cpp's layout, rotate-half RoPE), dequantization by
the `gguf` package. Compares against the logits `smollm logits` wrote:

    pip install gguf numpy
    swift run -c release smollm logits --text /usr/share/common-licenses/GPL-3 \
        --context 64 --output /tmp/swift_logits.safetensors
    python3 Scripts/smollm_reference.py --model PATH.gguf --compare /tmp/swift_logits.safetensors

Exit status 0 when the relative error (max |swift - ref| / max |ref|, and ||swift - ref|| / ||ref||)
is at most --tolerance (1e-3), 1 otherwise.
"""
import argparse
import json
import struct
import sys

import numpy as np
import gguf


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
    return out


class Model:
    def __init__(self, path):
        r = gguf.GGUFReader(path)
        self.fields = {k: f for k, f in r.fields.items()}
        self.tensors = {}
        for t in r.tensors:
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            self.tensors[t.name] = np.asarray(w, dtype=np.float64).reshape([int(d) for d in reversed(t.shape)])
        f = lambda k: self.fields[k].contents()
        self.layers = int(f("llama.block_count"))
        self.heads = int(f("llama.attention.head_count"))
        self.kv_heads = int(f("llama.attention.head_count_kv"))
        self.hidden = int(f("llama.embedding_length"))
        self.head_dim = self.hidden // self.heads
        self.theta = float(f("llama.rope.freq_base"))
        self.eps = float(f("llama.attention.layer_norm_rms_epsilon"))

    @staticmethod
    def unpermute(w, n_head):
        # Inverse of convert_hf_to_gguf.py's LlamaModel.permute: back to the half-split RoPE layout.
        return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, n):
        # x: [heads, n, D]; Hugging Face rotate_half.
        d = self.head_dim
        inv = self.theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, axis=-1)
        sin = np.concatenate([np.sin(ang)] * 2, axis=-1)
        rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
        return x * cos + rot * sin

    def logits(self, tokens):
        T = self.tensors
        n, H, Hk, D = len(tokens), self.heads, self.kv_heads, self.head_dim
        emb = T["token_embd.weight"]
        x = emb[tokens]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.layers):
            p = f"blk.{l}."
            h = self.rms(x, T[p + "attn_norm.weight"])
            q = h @ self.unpermute(T[p + "attn_q.weight"], H).T
            k = h @ self.unpermute(T[p + "attn_k.weight"], Hk).T
            v = h @ T[p + "attn_v.weight"].T
            q = self.rope(q.reshape(n, H, D).transpose(1, 0, 2), n)
            k = self.rope(k.reshape(n, Hk, D).transpose(1, 0, 2), n)
            v = v.reshape(n, Hk, D).transpose(1, 0, 2)
            k = np.repeat(k, H // Hk, axis=0)
            v = np.repeat(v, H // Hk, axis=0)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = (s @ v).transpose(1, 0, 2).reshape(n, H * D)
            x = x + o @ T[p + "attn_output.weight"].T
            h = self.rms(x, T[p + "ffn_norm.weight"])
            g = h @ T[p + "ffn_gate.weight"].T
            u = h @ T[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ T[p + "ffn_down.weight"].T
        h = self.rms(x, T["output_norm.weight"])
        head = T.get("output.weight", emb)
        return h @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--compare", required=True, help="safetensors from `smollm logits` (tokens, logits)")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    a = ap.parse_args()
    swift = read_safetensors(a.compare)
    tokens = swift["tokens"].astype(np.int64)
    ref = Model(a.model).logits(tokens)
    got = swift["logits"].astype(np.float64)
    max_rel = np.abs(got - ref).max() / np.abs(ref).max()
    l2_rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    worst_row = (np.abs(got - ref).max(-1) / np.abs(ref).max(-1)).max()
    agree = (got.argmax(-1) == ref.argmax(-1)).mean()
    print(f"{len(tokens)} tokens: max|d|/max|ref| {max_rel:.2e}, ||d||/||ref|| {l2_rel:.2e}, "
          f"worst row {worst_row:.2e}, argmax agreement {agree:.3f}")
    ok = max_rel <= a.tolerance and l2_rel <= a.tolerance
    print("PASS" if ok else f"FAIL: tolerance {a.tolerance}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
