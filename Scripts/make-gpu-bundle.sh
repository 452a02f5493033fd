#!/usr/bin/env bash
# Builds what a GPU machine without a Swift toolchain needs into $BUNDLE (default .gpu/, ignored
# by git; carry it with the device tool; other content there, e.g. authors/, stays): a static, stripped, gzipped `sparge` with the CUDA trait, and the
# golden cases that fit the 64 MiB per-call limit: those of $GOLDEN_DIR (default Tests/Golden,
# the compact set; point it at the full set's folder when you have it), or the names given.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --traits default,CUDA --static-swift-stdlib --scratch-path .build-cuda-static --product sparge
bundle=${BUNDLE:-.gpu}
rm -rf "$bundle/golden" "$bundle/sparge" "$bundle/sparge.gz" && mkdir -p "$bundle/golden"
strip -o "$bundle/sparge" .build-cuda-static/release/sparge
gzip -9 "$bundle/sparge"
golden_dir=${GOLDEN_DIR:-Tests/Golden}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(gauss_1000_d64 minilm_l2_512_d32 video_2048_d64 lm_2048_d128_causal)
for c in "${cases[@]}"; do
    if [ -f "$golden_dir/$c.safetensors" ]; then cp "$golden_dir/$c.safetensors" "$bundle/golden/"; fi
done
du -sh "$bundle"
