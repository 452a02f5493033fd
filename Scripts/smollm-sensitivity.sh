#!/usr/bin/env bash
# Layer-sensitivity sweep of SmolLM2 tuned settings: for every layer and option (see
# Scripts/smollm_layer_options.py) the mean KL(exact || sparse) per token and the layer's
# density, with every other layer dense, on a tuning text. Scripts/smollm_select_layers.py
# then picks one option per layer.
#   Scripts/smollm-sensitivity.sh OUTDIR   (env: TUNED, TEXT, CONTEXT, JOBS, THREADS, SMOLLM, SMOLLM_GGUF,
#                                            SMOOTH_Q=1: every sparse layer with Q smoothing)
# About 113 runs of ~30 CPU-seconds at 4096 tokens (one exact pass, kept in OUTDIR/exact.bin):
# half an hour on 2 cores, 6 minutes on 16 (JOBS=8).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: Scripts/smollm-sensitivity.sh OUTDIR}
tuned=${TUNED:-Examples/SmolLM/tuned-smollm2-135m.json}
l=/usr/share/common-licenses
text=${TEXT:-$l/GPL-2,$l/LGPL-2.1,$l/Apache-2.0,$l/MPL-2.0}
context=${CONTEXT:-4096}
jobs=${JOBS:-1}
threads=${THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}
smollm=${SMOLLM:-.build/release/smollm}
smooth=""; [[ ${SMOOTH_Q:-0} == 1 ]] && smooth=--smooth-q
[[ -n ${SMOLLM:-} ]] || swift build -c release --product smollm
[[ -e $out ]] && { echo "$out exists: name a new folder" >&2; exit 1; }
mkdir -p "$out/variants"
python3 Scripts/smollm_layer_options.py variants "$tuned" "$out/variants"
run() {  # NAME [THREADS]
    "$smollm" perplexity --text "$text" --context "$context" --attention "tuned=$out/variants/$1.json" $smooth \
        --threads "${2:-$threads}" --kl --exact-hidden "$out/exact.bin" > "$out/$1.txt" 2> /dev/null
}
export -f run; export out text context threads smollm smooth
run allD "$(nproc)"   # also writes the exact pass for the others
ls "$out/variants" | sed -n 's/\.json$//p' | grep -v '^allD$' | xargs -P "$jobs" -I{} bash -c 'run {}'
echo "wrote $out (KL and per-layer density of $(ls "$out"/*.txt | wc -l) settings, $context tokens of $text)"
