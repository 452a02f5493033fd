#!/usr/bin/env bash
# A/B of one SPARGE_CUDA_* knob on the GPU machine (from the repository root with .gpu/
# carried, make-gpu-bundle.sh): Scripts/gpu-ab.sh with the bundle's binary at knob=0 and
# knob=1, so the agreement check runs with the knob set. Example:
# bash Scripts/gpu-knob-ab.sh SPARGE_CUDA_WG_PAIRS
set -uo pipefail
knob=${1:?usage: gpu-knob-ab.sh SPARGE_CUDA_NAME}
bundle=${GPU_BUNDLE:-.gpu}
GOLDEN=${GOLDEN:-$bundle/golden} exec bash "$(dirname "$0")/gpu-ab.sh" "off=$bundle/sparge.gz $knob=0" "on=$bundle/sparge.gz $knob=1"
