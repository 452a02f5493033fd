#!/usr/bin/env python3
"""Summarizes the Hopper kernel's per-CTA stamps (SPARGE_CUDA_WG_PROBE_TIMES=1 with
SPARGE_CUDA_PROBE_FILE=<prefix>: one <prefix>-N<N>-D<D>-k<percent kept>.u64 per timed call,
12 little-endian words a CTA). Stamps (thread 0's clock64): 0 entry, 1 first barrier, 2 visit
list written, 3 first step done, 4 loop done, 5 last P.V done, 6 end; words 7 and 8 the
globaltimer at entry and end (ns), 9 the SM, 10 the tiles visited.

    python3 Scripts/probe_times.py FILE.u64 [...]

Prints, per file, the median phases in microseconds (cycles converted at the clock that the
CTAs' clock64 and globaltimer imply), the steady time per tile, the part of each CTA's life
outside its tiles, and how full the SMs' two CTA slots were: the time with two, one and no CTA
resident, and the gap between a CTA's end and the next start on its SM."""
import sys
import numpy as np

def summarize(path):
    w = np.fromfile(path, dtype="<u8").reshape(-1, 12).astype(np.int64)
    c, g0, g1, sm, cnt = w[:, 0:7], w[:, 7], w[:, 8], w[:, 9], w[:, 10]
    life_ns = g1 - g0
    ghz = np.median((c[:, 6] - c[:, 0]) / np.maximum(life_ns, 1))
    us = lambda cycles: cycles / ghz / 1e3
    d = np.diff(c, axis=1)     # 6 phases
    names = ["list phase 1", "list phase 2", "first step", "other steps", "last P.V", "epilogue"]
    per_tile = us(d[:, 3] / np.maximum(cnt - 1, 1))
    steady = np.median(per_tile)
    print(f"{path}: {len(w)} CTAs on {len(np.unique(sm))} SMs, tiles a CTA median {np.median(cnt):.0f}, clock {ghz:.2f} GHz")
    print("  phases, median us: " + ", ".join(f"{n} {np.median(us(d[:, k])):.2f}" for k, n in enumerate(names)))
    print(f"  steady step {steady * 1e3:.0f} ns a tile; life median {np.median(life_ns) / 1e3:.2f} us; "
          f"outside the tiles (life - tiles x steady step) median {np.median(life_ns / 1e3 - cnt * steady):.2f} us")
    span = (g0.min(), g1.max())
    both = one = none = 0.0
    gaps = []
    for s in np.unique(sm):
        k = sm == s
        ev = sorted([(t, 1) for t in g0[k]] + [(t, -1) for t in g1[k]])
        level, last = 0, span[0]
        acc = {0: 0.0, 1: 0.0, 2: 0.0}
        for t, e in ev:
            acc[min(level, 2)] += t - last
            level += e
            last = t
        acc[min(level, 2)] += span[1] - last
        both += acc[2]; one += acc[1]; none += acc[0]
        starts, ends = np.sort(g0[k]), np.sort(g1[k])
        for t in starts[2:]:     # a refill: the latest end before this start
            prev = ends[ends <= t]
            if len(prev):
                gaps.append(t - prev[-1])
    total = both + one + none
    print(f"  slots over the kernel's {(span[1] - span[0]) / 1e3:.1f} us: two CTAs {both / total:.1%}, one {one / total:.1%}, "
          f"none {none / total:.1%}; refill gap median {np.median(gaps) if gaps else 0:.0f} ns, "
          f"90th percentile {np.percentile(gaps, 90) if gaps else 0:.0f} ns")

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        summarize(p)
