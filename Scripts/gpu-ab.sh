#!/usr/bin/env bash
# A/B of sparge binaries and/or SPARGE_CUDA_* settings on the GPU machine, from the repository
# root with .gpu/ carried. Each argument is one variant, "label=binary [NAME=VALUE ...]"; a
# binary ending in .xz or .gz is unpacked first. The agreement check runs once with the last
# variant (golden files in .gpu/golden, $RANDOM_CASES random cases, default 12; with CHECK_ALL=1
# for every variant); then
# `sparge bench --backend cuda` for every variant, interleaved for $ROUNDS rounds (default 2),
# P.V numerics $PVS (default "fp16 fp8"), N in $LENGTHS (default 16384), D 64 and 128, and
# $BENCH_ARGS appended (e.g. "--top-k 0.5 --profile"); last, a table of the ranges and of the
# medians against the first variant (ab_summary.py). Logs also go to $OUT when set. Each
# command is stopped after $STEP_TIMEOUT seconds (default 240), so that a variant that hangs
# the GPU costs one step, not the device call.
# Example: bash Scripts/gpu-ab.sh "old=.gpu/sparge-old.xz" "new=.gpu/sparge.gz" \
#              "unroll=.gpu/sparge.gz SPARGE_CUDA_WG_UNROLL2=1"
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: gpu-ab.sh 'label=binary [NAME=VALUE ...]' ..." >&2; exit 2; }
out=${OUT:-/tmp}
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
unpack() {   # prints the path of the runnable binary
    case "$1" in
        *.xz) [ -f "${1%.xz}" ] || python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.open(sys.argv[1]).read())" "$1" "${1%.xz}"; chmod +x "${1%.xz}"; echo "${1%.xz}" ;;
        *.gz) [ -f "${1%.gz}" ] || gunzip -kf "$1"; chmod +x "${1%.gz}"; echo "${1%.gz}" ;;
        *) chmod +x "$1"; echo "$1" ;;
    esac
}
labels=(); bins=(); envs=()
for spec in "$@"; do
    label=${spec%%=*}; rest=${spec#*=}
    read -r bin settings <<< "$rest"
    labels+=("$label"); bins+=("$(unpack "$bin")"); envs+=("${settings:-}")
done
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
last=$((${#labels[@]} - 1))
golden=${GOLDEN:-.gpu/golden}
first=$last; [ "${CHECK_ALL:-0}" = 1 ] && first=0
for v in $(seq "$first" "$last"); do
    echo "== cuda-check: ${labels[$v]} (${envs[$v]})"
    timeout "${STEP_TIMEOUT:-240}" env ${envs[$v]} "${bins[$v]}" cuda-check --golden "$golden" --random "${RANDOM_CASES:-12}" 2>&1 \
        | tee "$out/check_${labels[$v]}.log" | tail -4
done
for r in $(seq "${ROUNDS:-2}"); do
    for v in "${!labels[@]}"; do
        for pv in ${PVS:-fp16 fp8}; do
            echo "== round $r ${labels[$v]} pv=$pv"
            timeout "${STEP_TIMEOUT:-240}" env ${envs[$v]} "${bins[$v]}" bench --backend cuda --lengths "${LENGTHS:-16384}" --dims 64,128 --pv "$pv" --repeat 20 ${BENCH_ARGS:-} 2>&1 \
                | tee -a "$out/bench_${labels[$v]}.log" | grep -E "^ *[0-9]+ +[0-9]+ "
        done
    done
done
echo "== summary (medians against ${labels[0]})"
python3 "$(dirname "$0")/ab_summary.py" "$out" "${labels[@]}" | tee "$out/summary.txt"
