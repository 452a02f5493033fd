#!/usr/bin/env bash
# Runs on the GPU machine from the repository root with .gpu/ carried (make-gpu-bundle.sh):
# Nsight Compute on the Hopper stage-2 kernel (`sparse_attention_wg`; another kernel, e.g. a
# preparation kernel such as prep_blocks_f16, by $KERNEL, its $SKIP-th launch, default 2), one
# launch per configuration (B=1 H=16 N=$LENGTH, default 16384, fp16 and FP8 P.V, D 64 and 128,
# top-k 0.5 and dense): the speed-of-light, warp-state, pipe and instruction sections as text,
# and for the first configuration the SASS with its stall samples (CSV). Everything goes to
# $OUT (default /tmp/gpu-profile). Extra `sparge bench` options for every run: $BENCH_EXTRA.
set -uo pipefail
out=${OUT:-/tmp/gpu-profile}; mkdir -p "$out"
cd "${GPU_BUNDLE:-.gpu}" && { [ -x sparge ] || { { [ -f sparge.xz ] && xz -dkf sparge.xz; } || gunzip -kf sparge.gz; chmod +x sparge; }; }
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
ncu=${NCU:-$(command -v ncu || echo /usr/local/cuda/bin/ncu)}
sections=(--section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis
          --section InstructionStats --section SchedulerStats --section Occupancy --section LaunchStats)
configs=${CONFIGS:-"fp16:64:0.5 fp8:64:0.5 fp16:128:0.5 fp8:128:0.5 fp16:64:1 fp16:128:1"}
first=1
for c in $configs; do
    IFS=: read -r pv d k <<< "$c"
    name="$pv-d$d-k$k"
    extra=(); [ "$first" = 1 ] && extra=(--set full --import-source no)
    "$ncu" --kernel-name "${KERNEL:-sparse_attention_wg}" --launch-skip "${SKIP:-2}" --launch-count 1 "${sections[@]}" "${extra[@]}" \
        -o "/tmp/prof-$name" -f ./sparge bench --backend cuda --lengths "${LENGTH:-16384}" --dims "$d" --top-k "$k" --pv "$pv" \
        --repeat 3 ${BENCH_EXTRA:-} > "$out/$name.run.log" 2>&1
    "$ncu" --import "/tmp/prof-$name.ncu-rep" --page details > "$out/$name.txt" 2>&1
    if [ "$first" = 1 ]; then
        "$ncu" --import "/tmp/prof-$name.ncu-rep" --page source --csv --print-source sass > "$out/$name.sass.csv" 2>&1
        first=0
    fi
    grep -E "Duration|Issue Slots Busy|Executed Ipc A|No Eligible|Registers Per|Achieved Occupancy" "$out/$name.txt" | sed "s/^/$name: /"
done
