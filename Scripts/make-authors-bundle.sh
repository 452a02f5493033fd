#!/usr/bin/env bash
# Puts what Scripts/authors-compare.sh needs to build the authors' CUDA extension
# (github.com/thu-ml/SpargeAttn) on a GPU machine without network into $BUNDLE/authors
# (default .gpu/authors, ignored by git; carry .gpu with the device tool): their setup.py,
# csrc/ and spas_sage_attn/ from a local clone, and the ninja and einops wheels for Python 3.12.
# Their code is never committed here. Usage: make-authors-bundle.sh PATH_TO_SPARGEATTN_CLONE [REV]
set -euo pipefail
src=${1:?usage: make-authors-bundle.sh PATH_TO_SPARGEATTN_CLONE [REV]}
rev=${2:-HEAD}
cd "$(dirname "$0")/.."
dest=${BUNDLE:-.gpu}/authors
rm -rf "$dest" && mkdir -p "$dest/src" "$dest/whl"
# A bare mirror or a checkout: export the needed paths at REV.
git -C "$src" archive "$rev" setup.py LICENSE csrc spas_sage_attn | tar -x -C "$dest/src"
git -C "$src" rev-parse "$rev" > "$dest/REVISION"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest/whl" ninja einops
du -sh "$dest"
