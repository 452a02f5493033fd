#!/usr/bin/env bash
# Issue 14's many-core rows, run on a machine without a Swift toolchain (the GPU machine's
# Xeon host) from the repository root, with a static `sparge` (default traits) carried at
# $SPARGE (build: swift build -c release --static-swift-stdlib --scratch-path .build-static
# --product sparge). Prints, and writes to $OUT when set:
#   1. Scripts/compare_torch.py at 16 threads (and 2) on the two issue shapes;
#   2. the sparse path (top-k 0.5) at B=1 H=16 N=16384 D=64 on 1 thread and on 16, and the
#      ratio (issue 14 asks for >= 12x): $PAIRS interleaved pairs (default 5; each side the
#      median of its calls through one plan: 3 on 1 thread, 5 on 16), the median of
#      the pairs' ratios, so that a change in the shared host's load hits both sides alike;
#   3. `sparge bench --scaling --threads 16`: the same ratio at B=1 H=8 N=4096 D=64 beside the
#      host's own fp32 multiply-add loop on 1 and 16 threads in the same pairs (what the cores'
#      clocks under load leave: a loop with no memory traffic scales no better).
# THREADS (default "16 2") picks the thread counts of part 1, ROUNDS (default 5) its rounds.
set -euo pipefail
sparge=${SPARGE:-.build-static/release/sparge}
out=${OUT:-/tmp}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200
"$sparge" --version
for t in ${THREADS:-16 2}; do
    python3 Scripts/compare_torch.py --sparge "$sparge" --threads "$t" --rounds "${ROUNDS:-5}" --json "$out/compare_t$t.json" 2>&1 | tee "$out/compare_t$t.log"
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
input=$scratch/h16.safetensors
"$sparge" generate --output "$input" --workload medium --heads 16 --n 16384 --d 64 > /dev/null
# "seconds:preparation:kernel" of one run (its phases: medians over its calls, wall clock)
seconds() { "$sparge" run --input "$input" --top-k 0.5 --json "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin); t=r.get("timings", {}); print(r["seconds"], t.get("preparation_seconds", 0), t.get("kernel_seconds", 0), sep=":")'; }
pairs=""
for i in $(seq "${PAIRS:-5}"); do
    pairs="$pairs $(seconds --threads 1 --repeat 3),$(seconds --threads 16 --repeat 5)"
done
python3 - $pairs <<'PY' | tee "$out/scaling.log"
import statistics, sys
runs = [[tuple(map(float, side.split(":"))) for side in p.split(",")] for p in sys.argv[1:]]
pairs = [(one[0], many[0]) for one, many in runs]
ratios = [one / many for one, many in pairs]
print(f"sparse top-k 0.5, B=1 H=16 N=16384 D=64, {len(pairs)} interleaved pairs: 1 thread "
      f"{statistics.median(p[0] for p in pairs) * 1e3:.1f} ms, 16 threads {statistics.median(p[1] for p in pairs) * 1e3:.1f} ms; "
      f"median ratio {statistics.median(ratios):.2f}x (pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
for i, side in enumerate(("1 thread", "16 threads")):
    prep = statistics.median(r[i][1] for r in runs) * 1e3
    kernel = statistics.median(r[i][2] for r in runs) * 1e3
    print(f"  {side}: preparation (stage 1 + quantization) {prep:.1f} ms, kernel {kernel:.1f} ms (medians of the last calls)")
if all(r[0][1] > 0 and r[1][1] > 0 for r in runs):
    print(f"  phase scaling: preparation {statistics.median(r[0][1] / r[1][1] for r in runs):.2f}x, "
          f"kernel {statistics.median(r[0][2] / r[1][2] for r in runs):.2f}x")
PY
"$sparge" bench --scaling --threads 16 --repeat 5 2>&1 | tail -4 | tee "$out/bench_scaling.log"
