#!/usr/bin/env python3
"""Save the inputs and output of chosen attention calls of a PyTorch model to safetensors.

The CPU port cross-checks GPU results from files: this helper produces them. It wraps
``torch.nn.functional.scaled_dot_product_attention`` (SDPA), counts its calls (with one call
per layer in a forward pass, call i is layer i), and for the chosen call indices writes

    OUT/call0015.safetensors   q (B,H,Nq,D), k, v (B,Hkv,Nk,D), o (B,H,Nq,D)
                               [+ attn_mask when the call had one, + o_dense with --sparge]

with the call's arguments (is_causal, scale, GQA, shapes, dtypes) as JSON in the metadata
key ``call``. The tensors keep the model's dtype (fp16/bf16/fp32) unless ``--dtype`` says
otherwise, and are moved to the CPU. Then, for example:

    sparge check --q OUT/call0015.safetensors:q --k OUT/call0015.safetensors:k \\
                 --v OUT/call0015.safetensors:v --gpu-output OUT/call0015.safetensors:o [--causal]
    sparge mask --input OUT/call0015.safetensors --predict --causal --png call15.png

Example on a Hugging Face model (needs torch, transformers, safetensors; a GPU is optional):

    python3 Scripts/dump_attention.py --model HuggingFaceTB/SmolLM2-135M \\
        --calls 2,15 --out dumps --dtype float16 --device cuda \\
        --text-file some_english_text.txt --max-tokens 2048

    # With the SpargeAttn GPU kernel in place of SDPA (pip install spas_sage_attn): 'o' is
    # then the sparse kernel's output and 'o_dense' SDPA's, for the same inputs.
    python3 Scripts/dump_attention.py --model HuggingFaceTB/SmolLM2-135M --calls 15 \\
        --out dumps --device cuda --dtype float16 --sparge '{"topk": 0.5}'

From your own code (the model must call SDPA, e.g. ``attn_implementation="sdpa"`` in
transformers; ``torch.compile``d modules do not see the patch):

    from dump_attention import AttentionDumper
    with AttentionDumper("dumps", calls={0, 15}):
        model(**inputs)

Not run in CI (it needs PyTorch); ``python3 -m py_compile Scripts/dump_attention.py`` checks it.
"""

import argparse
import json
import os
import sys
import threading


class AttentionDumper:
    """Context manager that records chosen SDPA calls.

    calls: set of call indices to save (counted from 0 while the context is active), or
           None for every call (large!).
    out_dir: folder for the files (created).
    dtype: torch dtype to convert the saved tensors to, or None to keep the model's.
    sparge: None, or a dict of keyword arguments for spas_sage2_attn_meansim_topk_cuda: the
            sparse GPU kernel then replaces SDPA for every call (the model runs sparse).
    """

    def __init__(self, out_dir, calls=None, dtype=None, sparge=None, prefix="call", note=None):
        self.out_dir = out_dir
        self.calls = None if calls is None else set(calls)
        self.dtype = dtype
        self.sparge = sparge
        self.prefix = prefix
        self.note = note or {}
        self.count = 0
        self.saved = []
        self._lock = threading.Lock()
        self._patched = []

    # -- patching --------------------------------------------------------------------------

    def __enter__(self):
        import torch.nn.functional as F

        os.makedirs(self.out_dir, exist_ok=True)
        self._original = F.scaled_dot_product_attention
        wrapper = self._wrapper
        # Modules that did `from torch.nn.functional import scaled_dot_product_attention`
        # hold their own reference: patch those too, and restore all of them on exit.
        for module in list(sys.modules.values()):
            try:
                if getattr(module, "scaled_dot_product_attention", None) is self._original:
                    setattr(module, "scaled_dot_product_attention", wrapper)
                    self._patched.append(module)
            except Exception:
                pass
        return self

    def __exit__(self, *exc):
        for module in self._patched:
            setattr(module, "scaled_dot_product_attention", self._original)
        self._patched = []
        return False

    # -- the wrapper -----------------------------------------------------------------------

    def _wrapper(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        with self._lock:
            index = self.count
            self.count += 1
        dense = self._original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                               is_causal=is_causal, scale=scale, **kwargs)
        output = dense
        if self.sparge is not None:
            output = self._sparse(query, key, value, is_causal, scale, attn_mask, dropout_p)
        if self.calls is None or index in self.calls:
            self._save(index, query, key, value, output, dense if self.sparge is not None else None,
                       attn_mask, dict(dropout_p=dropout_p, is_causal=bool(is_causal), scale=scale,
                                       enable_gqa=bool(kwargs.get("enable_gqa", False))))
        return output

    def _sparse(self, q, k, v, is_causal, scale, attn_mask, dropout_p):
        from spas_sage_attn import spas_sage2_attn_meansim_topk_cuda

        if attn_mask is not None or dropout_p:
            raise ValueError("the SpargeAttn kernel takes no attn_mask or dropout; run without --sparge")
        # The official kernels have no grouped-query attention: repeat the K/V heads.
        if k.shape[-3] != q.shape[-3]:
            repeat = q.shape[-3] // k.shape[-3]
            k = k.repeat_interleave(repeat, dim=-3)
            v = v.repeat_interleave(repeat, dim=-3)
        kwargs = dict(self.sparge)
        kwargs.setdefault("output_dtype", q.dtype)
        return spas_sage2_attn_meansim_topk_cuda(q, k, v, is_causal=bool(is_causal), scale=scale,
                                                 tensor_layout="HND", **kwargs)

    def _save(self, index, q, k, v, o, o_dense, attn_mask, args):
        import torch
        from safetensors.torch import save_file

        def cpu(t):
            t = t.detach()
            if self.dtype is not None and t.is_floating_point():
                t = t.to(self.dtype)
            return t.to("cpu").contiguous()

        tensors = {"q": cpu(q), "k": cpu(k), "v": cpu(v), "o": cpu(o)}
        if o_dense is not None:
            tensors["o_dense"] = cpu(o_dense)
        if attn_mask is not None:
            # sparge ignores masks: compare only when the mask is causal or all-true.
            tensors["attn_mask"] = cpu(attn_mask)
        meta = dict(self.note, call=index, **args,
                    shapes={name: list(t.shape) for name, t in tensors.items()},
                    dtypes={name: str(t.dtype).replace("torch.", "") for name, t in tensors.items()},
                    torch=torch.__version__, sparge_kernel=self.sparge)
        path = os.path.join(self.out_dir, f"{self.prefix}{index:04d}.safetensors")
        save_file(tensors, path, metadata={"call": json.dumps(meta)})
        self.saved.append(path)
        print(f"saved call {index}: q {list(q.shape)} k {list(k.shape)} causal={args['is_causal']} -> {path}",
              file=sys.stderr)


# -- command line ----------------------------------------------------------------------------

def parse_calls(text):
    if text == "all":
        return None
    return {int(x) for x in text.split(",") if x.strip()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring for details.")
    parser.add_argument("--model", required=True, help="Hugging Face model id or local path (a causal LM)")
    parser.add_argument("--calls", default="0", help="comma-separated SDPA call indices, or 'all' (default 0)")
    parser.add_argument("--out", default="attention_dumps", help="output folder")
    parser.add_argument("--text", default=None, help="input text")
    parser.add_argument("--text-file", default=None, help="file with the input text")
    parser.add_argument("--max-tokens", type=int, default=2048, help="truncate the input to this many tokens")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"],
                        help="model and saved-tensor dtype (default: the model's)")
    parser.add_argument("--sparge", default=None, metavar="JSON",
                        help="run spas_sage2_attn_meansim_topk_cuda in place of SDPA with these keyword "
                             "arguments, e.g. '{\"topk\": 0.5}'; o is then its output, o_dense SDPA's")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, args.dtype) if args.dtype else None
    text = args.text
    if args.text_file:
        with open(args.text_file, encoding="utf-8") as f:
            text = f.read()
    if not text:
        text = "The quick brown fox jumps over the lazy dog. " * 200
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, attn_implementation="sdpa",
                                                 torch_dtype=dtype or "auto").to(args.device).eval()
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=args.max_tokens).to(args.device)
    note = {"model": args.model, "tokens": int(inputs["input_ids"].shape[1])}
    sparge = json.loads(args.sparge) if args.sparge else None
    with torch.no_grad(), AttentionDumper(args.out, parse_calls(args.calls), dtype=dtype, sparge=sparge, note=note) as dumper:
        model(**inputs, use_cache=False)
    print(f"{dumper.count} SDPA calls, {len(dumper.saved)} saved in {args.out}")
    if dumper.count == 0:
        print("no SDPA call was seen: load the model with attn_implementation='sdpa' and without torch.compile",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
