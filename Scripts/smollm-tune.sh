#!/usr/bin/env bash
# Per-layer SpargeAttn settings for SmolLM2-135M: dump every layer's rotated q, k, v on a
# tuning text, then `sparge tune` each layer into one settings file (30 layers).
#   Scripts/smollm-tune.sh [OUT.json]   (env: TEXT, CONTEXT, THREADS, SMOLLM_GGUF, DUMP)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-Examples/SmolLM/tuned-smollm2-135m.json}
text=${TEXT:-/usr/share/common-licenses/Apache-2.0,/usr/share/common-licenses/MPL-2.0}
context=${CONTEXT:-2048}
# A coarser search than sparge's defaults (4 thetas, fewer bisection steps): about 2.5 min a
# layer on one busy core instead of 10; set TUNE_FLAGS="" for the full search.
tune_flags=${TUNE_FLAGS---theta-grid 0,0.25,0.5,0.75 --tau-iterations 6 --lambda-iterations 4}
threads=${THREADS:-2}
dump=${DUMP:-$(mktemp -d)}
swift build -c release --product smollm
swift build -c release --product sparge
.build/release/smollm dump-qkv --text "$text" --context "$context" --output "$dump" --threads "$threads"
rm -f "$out"
layers=$(ls "$dump"/layer*.safetensors | wc -l)
for ((l = 0; l < layers; l++)); do
    update=(); [[ -f "$out" ]] && update=(--update)
    .build/release/sparge tune --input "$dump/layer$l.safetensors" --layer "model.layers.$l.self_attn" \
        --causal --attention-sink --threads "$threads" $tune_flags --output "$out" "${update[@]}" | tail -1
done
echo "wrote $out ($layers layers, tuned on $text, $context tokens)"
