#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, with .gpu/ (or $GPU_BUNDLE) carried (make-gpu-bundle.sh):
# compares stage-2 kernel variants in one call. Each argument is one variant:
#   "ENV=VALUE ... -- sparge bench options", e.g. "SPARGE_CUDA_MT=1 -- --bq 128 --bk 64"
# With --check first, the agreement check runs once before the benchmarks ($CHECK_ENV: extra
# environment for it, e.g. a kernel variant).
set -uo pipefail
out=${OUT:-/tmp}
cd "${GPU_BUNDLE:-.gpu}" && { [ -x sparge ] || { { [ -f sparge.xz ] && xz -dkf sparge.xz; } || gunzip -kf sparge.gz; chmod +x sparge; }; }
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
if [ "${1:-}" = "--check" ]; then
    shift
    env ${CHECK_ENV:-} ./sparge cuda-check --golden golden --random "${RANDOM_CASES:-30}" 2>&1 | tee -a "$out/check.log" | grep -E "FAIL|cases pass"
fi
for variant in "$@"; do
    envs=${variant%%--*}; opts=${variant#*--}
    echo "== $envs | $opts" | tee -a "$out/sweep.log"
    env $envs ./sparge bench --backend cuda $opts 2>&1 | tail -n +2 | tee -a "$out/sweep.log"
done
