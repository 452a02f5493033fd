#!/usr/bin/env bash
# A/B of one SPARGE_CUDA_* knob on the GPU machine, from the repository root with .gpu/ (or
# $GPU_BUNDLE) carried (make-gpu-bundle.sh): the agreement check with the knob set to 1, then
# `sparge bench --backend cuda` with the knob at 0 and at 1, interleaved for $ROUNDS rounds
# (default 2), fp16 and FP8 P.V, N in $LENGTHS (default 16384), D 64 and 128. Everything also
# goes to $OUT when set. Example: bash Scripts/gpu-knob-ab.sh SPARGE_CUDA_WG_PAIRS
set -uo pipefail
knob=${1:?usage: gpu-knob-ab.sh SPARGE_CUDA_NAME}
out=${OUT:-/tmp}
cd "${GPU_BUNDLE:-.gpu}" && { [ -f sparge ] || gunzip -kf sparge.gz; } && chmod +x sparge
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
env "$knob=1" ./sparge cuda-check --golden golden --random "${RANDOM_CASES:-12}" 2>&1 | tee "$out/check_$knob.log" | tail -4
for r in $(seq "${ROUNDS:-2}"); do
    for v in 0 1; do
        for pv in fp16 fp8; do
            echo "== round $r $knob=$v pv=$pv"
            env "$knob=$v" ./sparge bench --backend cuda --lengths "${LENGTHS:-16384}" --dims 64,128 --pv "$pv" --repeat 20 2>&1 \
                | tee -a "$out/bench_${knob}_$v.log" | grep -E "^ *[0-9]+ +[0-9]+ "
        done
    done
done
