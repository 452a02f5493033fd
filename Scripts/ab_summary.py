#!/usr/bin/env python3
"""Summarizes a gpu-ab.sh run: for each shape (N, D, top-k, P.V numerics) and variant, the range
over rounds of stage 1 + quantization, kernel and total ms, and each variant's median kernel and
total time against the first variant's (the first label on the command line, else the first
log found).

  python3 Scripts/ab_summary.py OUT_DIR [label ...]

Reads OUT_DIR/bench_<label>.log (the lines `sparge bench --backend cuda` prints) and the last
line of each OUT_DIR/check_<label>.log."""
import glob, os, re, statistics, sys

HEADER = re.compile(r"P\.V (\w+)")
ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def read(path):
    """{(N, D, top-k, pv): [(prep, kernel, total), ...]} in file order."""
    runs, pv = {}, "?"
    for line in open(path):
        h = HEADER.search(line)
        if h:
            pv = h.group(1)
            continue
        m = ROW.match(line)
        if m:
            key = (int(m.group(1)), int(m.group(2)), m.group(3), pv)
            runs.setdefault(key, []).append(tuple(float(m.group(i)) for i in (4, 5, 6)))
    return runs


def span(values):
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if lo == hi else f"{lo:.3f}-{hi:.3f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    labels = sys.argv[2:] or sorted(os.path.basename(p)[6:-4] for p in glob.glob(os.path.join(folder, "bench_*.log")))
    data = {label: read(os.path.join(folder, f"bench_{label}.log")) for label in labels}
    for label in labels:
        check = os.path.join(folder, f"check_{label}.log")
        if os.path.exists(check):
            lines = [l.strip() for l in open(check) if l.strip()]
            print(f"check {label}: {lines[-1] if lines else '(empty)'}")
    base = labels[0]
    shapes = sorted({k for runs in data.values() for k in runs})
    print(f"{'N':>6} {'D':>4} {'top-k':>5} {'pv':>4}  {'variant':<10} {'prep ms':>13} {'kernel ms':>13} {'total ms':>13}"
          f"  kernel/{base}  total/{base}")
    for key in shapes:
        ref = data[base].get(key)
        for label in labels:
            runs = data[label].get(key)
            if not runs:
                continue
            prep, kernel, total = zip(*runs)
            ratio = ""
            if ref and label != base:
                rk = statistics.median(kernel) / statistics.median(r[1] for r in ref)
                rt = statistics.median(total) / statistics.median(r[2] for r in ref)
                ratio = f"  {rk:12.4f}  {rt:11.4f}"
            print(f"{key[0]:>6} {key[1]:>4} {key[2]:>5} {key[3]:>4}  {label:<10} {span(prep):>13} {span(kernel):>13} "
                  f"{span(total):>13}{ratio}")


main()
