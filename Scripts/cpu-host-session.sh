#!/usr/bin/env bash
# Issue 14's many-core rows, run on a machine without a Swift toolchain (the GPU machine's
# Xeon host) from the repository root, with a static `sparge` (default traits) carried at
# $SPARGE (build: swift build -c release --static-swift-stdlib --scratch-path .build-static
# --product sparge). Prints, and writes to $OUT when set:
#   1. Scripts/compare_torch.py at 16 threads (and 2) on the two issue shapes;
#   2. the sparse path (top-k 0.5) at B=1 H=16 N=16384 D=64 on 1 thread and on 16, and the
#      ratio (issue 14 asks for >= 12x).
set -euo pipefail
sparge=${SPARGE:-.build-static/release/sparge}
out=${OUT:-/tmp}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200
"$sparge" --version
for t in 16 2; do
    python3 Scripts/compare_torch.py --sparge "$sparge" --threads "$t" --rounds 5 --json "$out/compare_t$t.json" 2>&1 | tee "$out/compare_t$t.log"
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
input=$scratch/h16.safetensors
"$sparge" generate --output "$input" --workload medium --heads 16 --n 16384 --d 64 > /dev/null
one=$("$sparge" run --input "$input" --threads 1 --repeat 3 --top-k 0.5 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
many=$("$sparge" run --input "$input" --threads 16 --repeat 9 --top-k 0.5 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
python3 -c "print(f'sparse top-k 0.5, B=1 H=16 N=16384 D=64: 1 thread {$one*1e3:.1f} ms, 16 threads {$many*1e3:.1f} ms: {$one/$many:.2f}x')" | tee "$out/scaling.log"
