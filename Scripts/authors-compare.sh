#!/usr/bin/env bash
# Runs on the GPU machine (Hopper), with the bundle carried (make-gpu-bundle.sh and
# make-authors-bundle.sh; $GPU_BUNDLE, default .gpu): one run that
#   1. builds the authors' CUDA extension (their setup.py, sm90 only, the two instantiations
#      of the top-k / CDF entry points) in the background, while
#   2. `sparge cuda-check` compares our GPU backend with the CPU path (fp16 and FP8 P.V);
#   3. times ours (fp16 and FP8 P.V; FP8 also with --no-skip-counts, whose plans count no
#      filter skips, as the authors' kernel counts none), the authors' spas_sage2_attn_meansim_topk_cuda and
#      PyTorch SDPA on the same inputs (B=1 H=16 fp16, N 16384/32768, D 64/128, top-k 1/0.5/0.25);
#   4. runs `sparge check` on the authors' outputs (sage2-topk and sage2-cdf at sm90).
# Logs go to $OUT (when set), else /tmp/authors-compare.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bundle=$(cd "${GPU_BUNDLE:-.gpu}" && pwd)
out=${OUT:-/tmp/authors-compare}; mkdir -p "$out"
work=/tmp/authors-work; rm -rf "$work"; mkdir -p "$work/inputs" "$work/check"
cd "$bundle" && { [ -x sparge ] || { gunzip -kf sparge.gz && chmod +x sparge; }; }
export SPARGE_NVRTC=${SPARGE_NVRTC:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
# (At most 8 files come back from the device tool: 7 logs, the device's description in check.log.)
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
  grep -m1 "model name" /proc/cpuinfo; echo "$(nproc) CPUs"; } | tee "$out/check.log"

# 1. The authors' extension, built from a copy (their autogen scripts replaced by the two
# instantiation files; CUDA 13 + gcc 13 reject their `-include cassert` flag pair).
build_authors() {
    set -e
    cp -r "$bundle/authors/src" "$work/spargeattn" && cd "$work/spargeattn"
    python3 -c "import ninja, einops" 2>/dev/null || {
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$bundle"/authors/whl/*.whl
        export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" PATH="$work/site/bin:$PATH"; }
    echo "Sparse SageAttention (local build for a comparison)" > README.md
    local inst=csrc/qattn/instantiations_sm90
    (cd "$inst" && python3 autogen.py >/dev/null)
    find csrc/qattn/instantiations_sm80 csrc/qattn/instantiations_sm89 -type f -delete
    find "$inst" -type f ! -name '*_qkg1_pvth1_ohalf_causal0_fv1_retpv0.cu' -delete
    sed -i 's/"-Xcompiler", "-include,cassert",//' setup.py
    ls "$inst"
    TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 setup.py build_ext --inplace
}
start=$(date +%s)
( build_authors > "$out/authors-build.log" 2>&1; echo "exit $? after $(( $(date +%s) - start )) s" >> "$out/authors-build.log" ) &
build_pid=$!

# 2. Agreement with the CPU path (correctness only: it shares the CPU with the build).
./sparge cuda-check --golden golden --random "${RANDOM_CASES:-30}" >> "$out/check.log" 2>&1
grep -E "FAIL|cases pass" "$out/check.log" | tail -20

wait $build_pid; tail -2 "$out/authors-build.log"
[ -n "${PYTHONPATH:-}" ] || { [ -d "$work/site" ] && export PYTHONPATH="$work/site"; }

# 3. Timings, one after another on a quiet machine: ours (inputs dumped for the others), then
# the authors' and SDPA on the same files.
for d in 64 128; do
    ./sparge bench --backend cuda --lengths 16384,32768 --dims $d --repeat 20 --dump "$work/inputs" 2>&1 | tee -a "$out/ours-fp16.log"
    ./sparge bench --backend cuda --lengths 16384,32768 --dims $d --repeat 20 --pv fp8 2>&1 | tee -a "$out/ours-fp8.log"
    ./sparge bench --backend cuda --lengths 16384,32768 --dims $d --repeat 20 --pv fp8 --no-skip-counts 2>&1 | tee -a "$out/ours-fp8-nocount.log"
done
python3 "$here/authors_compare.py" time --authors "$work/spargeattn" --inputs "$work/inputs" \
    --ours "$out/ours-fp16.log" "$out/ours-fp8.log" "$out/ours-fp8-nocount.log" 2>&1 | tee "$out/compare.log"

# 4. `sparge check` on the authors' outputs (smaller shapes: the CPU recomputes them).
python3 "$here/authors_compare.py" dump --authors "$work/spargeattn" --inputs "$work/check" 2>&1 | tee "$out/sparge-check.log"
for f in "$work"/check/o_*.npy; do
    tag=$(basename "$f" .npy); tag=${tag#o_}; preset=${tag%%_*}; shape=${tag#*_}
    echo "== $preset $shape" | tee -a "$out/sparge-check.log"
    ./sparge check --q "$work/check/q_$shape.npy" --k "$work/check/k_$shape.npy" --v "$work/check/v_$shape.npy" \
        --gpu-output "$f" --preset "$preset" --arch sm90 2>&1 | grep -v '^$' | tee -a "$out/sparge-check.log"
done
