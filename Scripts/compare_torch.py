#!/usr/bin/env python3
"""Side-by-side CPU benchmark: PyTorch's scaled_dot_product_attention against `sparge`.

The same inputs (a built-in video-like workload written by `sparge generate`) go through
torch SDPA in fp32 and bf16 and through `sparge run` (dense, top-k 0.5, top-k 0.25, top-k
0.5 on the bf16 file, and top-k 0.5 and 0.25 with fixed-point P.V), interleaved round by round so that a change in the machine's load
hits every contender alike. Reports per-contender median times, GFLOP/s (dense-equivalent:
4 B H N^2 D) and the median over rounds of each contender's time ratio against torch.

  python3 Scripts/compare_torch.py --sparge .build/release/sparge --threads 2 \
      --shape 1,8,4096,64 --shape 1,4,4096,128 --rounds 7

Installs torch (CPU wheel from PyPI) and safetensors with pip when they are missing (without
safetensors it reads the files itself).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time


def ensure(module, package, required=True):
    try:
        __import__(module)
        return True
    except ImportError:
        print(f"installing {package} with pip ...", file=sys.stderr)
        quick = [] if required else ["--retries", "0", "--timeout", "10"]  # optional: give up fast offline
        done = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + quick + [package]) == 0
        if required and not done:
            sys.exit(f"could not install {package}")
        return done


def load_safetensors(path):
    """The tensors of a safetensors file (F32 and BF16, what `sparge generate` writes), read
    with torch alone: for machines without the safetensors package and without a network."""
    import torch
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    kinds = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    unknown = {e["dtype"] for k, e in header.items() if k != "__metadata__"} - set(kinds)
    if unknown:
        sys.exit(f"{path}: element types {sorted(unknown)} not supported (F32, BF16, F16)")
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        buf = bytearray(data[8 + n + start:8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sparge", default=".build/release/sparge", help="path of the sparge binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", action="append", help="B,H,N,D (repeatable); default 1,8,4096,64 and 1,4,4096,128")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (medians over rounds)")
    ap.add_argument("--calls", type=int, default=3, help="timed calls per contender per round (median)")
    ap.add_argument("--workload", default="medium")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--isa", action="append", default=[],
                    help="also time dense and top-k 0.5 with SPARGE_ISA=LEVEL (repeatable: baseline, avx2, avx512)")
    args = ap.parse_args()
    ensure("torch", "torch")
    import torch
    if ensure("safetensors", "safetensors", required=False):
        from safetensors.torch import load_file
    else:
        load_file = load_safetensors
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split(",")) for s in (args.shape or ["1,8,4096,64", "1,4,4096,128"])]
    version = subprocess.run([args.sparge, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    print(f"CPU: {cpu}; threads {args.threads}; torch {torch.__version__}; {version}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for (b, h, n, d) in shapes:
            files = {}
            for dtype in ("f32", "bf16"):
                path = os.path.join(tmp, f"in_{b}_{h}_{n}_{d}_{dtype}.safetensors")
                subprocess.check_call([args.sparge, "generate", "--output", path, "--workload", args.workload,
                                       "--batch", str(b), "--heads", str(h), "--n", str(n), "--d", str(d), "--dtype", dtype],
                                      stdout=subprocess.DEVNULL)
                files[dtype] = path
            t = load_file(files["f32"])
            q32, k32, v32 = t["q"].contiguous(), t["k"].contiguous(), t["v"].contiguous()
            tb = load_file(files["bf16"])
            q16, k16, v16 = tb["q"].contiguous(), tb["k"].contiguous(), tb["v"].contiguous()
            flops = 4.0 * b * h * n * n * d

            def torch_time(q, k, v):
                torch.nn.functional.scaled_dot_product_attention(q, k, v)  # warm-up
                times = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    times.append(time.perf_counter() - t0)
                return statistics.median(times)

            def sparge_time(extra, dtype="f32", isa=None):
                env = {k: v for k, v in os.environ.items() if k != "SPARGE_ISA"}  # the default level...
                if isa:
                    env["SPARGE_ISA"] = isa  # ...or the forced one
                out = subprocess.run([args.sparge, "run", "--input", files[dtype], "--threads", str(args.threads),
                                      "--repeat", str(args.calls), "--json"] + extra, capture_output=True, text=True, check=True,
                                     env=env).stdout
                return json.loads(out)["seconds"]

            contenders = [
                ("torch fp32", lambda: torch_time(q32, k32, v32)),
                ("torch bf16", lambda: torch_time(q16, k16, v16)),
                ("sparge dense", lambda: sparge_time(["--dense"])),
                ("sparge top-k 0.5", lambda: sparge_time(["--top-k", "0.5"])),
                ("sparge top-k 0.25", lambda: sparge_time(["--top-k", "0.25"])),
                ("sparge top-k 0.5 bf16-in", lambda: sparge_time(["--top-k", "0.5"], "bf16")),
                ("sparge top-k 0.5 fxp", lambda: sparge_time(["--top-k", "0.5", "--fixed-point-pv"])),
                ("sparge top-k 0.25 fxp", lambda: sparge_time(["--top-k", "0.25", "--fixed-point-pv"])),
            ]
            for isa in args.isa:  # forced kernel levels (the default picks the best the CPU has)
                contenders += [(f"sparge dense [{isa}]", lambda isa=isa: sparge_time(["--dense"], isa=isa)),
                               (f"sparge top-k 0.5 [{isa}]", lambda isa=isa: sparge_time(["--top-k", "0.5"], isa=isa))]
            rounds = {name: [] for name, _ in contenders}
            for r in range(args.rounds):
                for name, fn in contenders:
                    rounds[name].append(fn())
            print(f"\nB={b} H={h} N={n} D={d} ({flops / 1e9:.1f} GFLOP dense-equivalent), {args.rounds} rounds x {args.calls} calls")
            print(f"{'contender':<27} {'median ms':>10} {'GFLOP/s':>9} {'vs torch fp32':>14} {'vs torch bf16':>14}")
            for name, _ in contenders:
                med = statistics.median(rounds[name])
                r32 = statistics.median([a / s for a, s in zip(rounds["torch fp32"], rounds[name])])
                r16 = statistics.median([a / s for a, s in zip(rounds["torch bf16"], rounds[name])])
                print(f"{name:<27} {med * 1e3:>10.1f} {flops / med / 1e9:>9.1f} {r32:>13.2f}x {r16:>13.2f}x")
                results.append({"shape": [b, h, n, d], "contender": name, "median_seconds": med,
                                 "gflops": flops / med / 1e9, "vs_torch_fp32": r32, "vs_torch_bf16": r16})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "threads": args.threads, "torch": torch.__version__, "sparge": version,
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
