#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, with .gpu/ (or $GPU_BUNDLE) carried (make-gpu-bundle.sh):
# the agreement check, the benchmark of every shape of issue 7 and PyTorch's SDPA on the same
# inputs. Everything also goes to $OUT (when set) for later reading.
set -uo pipefail
out=${OUT:-/tmp}
here=$(cd "$(dirname "$0")" && pwd)
cd "${GPU_BUNDLE:-.gpu}" && gunzip -f sparge.gz && chmod +x sparge
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
./sparge cuda-check --golden golden --random 30 2>&1 | tee "$out/check.log" | tail -3
mkdir -p /tmp/sparge-inputs
for d in 64 128; do
    ./sparge bench --backend cuda --lengths 16384,32768 --dims $d --repeat 20 --dump /tmp/sparge-inputs 2>&1 | tee -a "$out/bench.log"
done
python3 "$here/bench_sdpa.py" /tmp/sparge-inputs 2>&1 | tee "$out/sdpa.log"
