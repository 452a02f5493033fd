#!/usr/bin/env bash
# Inspects the object code of the release build's three kernel sets (SpargeSIMD: baseline
# x86-64; SpargeSIMDAVX2; SpargeSIMDAVX512) and of SpargeAttn's per-tile code, and fails if a
# hot-loop object calls a per-lane libm routine (fmaf, expf, rintf, ...) or an unspecialised
# standard-library SIMD generic, or if a specialised set lacks its instructions (AVX2: ymm
# FMA; AVX-512: zmm FMA, VNNI vpdpbusd in the score tile and vpdpwssd in the fixed-point P.V
# tile). Run by .ci/run; works on x86-64 Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
# OBJECT_CHECK_SCRATCH names a release build folder that already holds the objects (CI passes
# its static build: linking the standard library statically does not change the objects).
if [ -n "${OBJECT_CHECK_SCRATCH:-}" ]; then
    scratch=$OBJECT_CHECK_SCRATCH
    [ -d "$scratch/release/SpargeSIMDAVX2.build" ] || { echo "no release objects in $scratch" >&2; exit 1; }
else
    scratch=.build-portable-check
    swift build -c release --scratch-path "$scratch" --product sparge >/dev/null
fi
objects=("$scratch"/release/SpargeSIMD.build/*.o "$scratch"/release/SpargeSIMDAVX2.build/*.o "$scratch"/release/SpargeSIMDAVX512.build/*.o)
for f in SparseKernel DenseKernel GroupedDecodeKernel DecodeKernel OnlineSoftmax SparseOperands BlockSummary BlockQuantizer; do
    objects+=("$scratch/release/SpargeAttn.build/$f.swift.o")
done
require() {  # object, pattern, what
    # No `objdump | grep -q` here: under pipefail, grep's early exit can kill objdump with
    # SIGPIPE and fail the check at random.
    local listing
    listing=$(objdump -d --no-show-raw-insn "$scratch/release/$1")
    if grep -qE "$2" <<<"$listing"; then
        echo "ok   $1 uses $3"
    else
        echo "FAIL $1 has no $3: the kernel set was not compiled for its instruction set"
        status=1
    fi
}
banned='[[:space:]](fmaf|expf|exp2f|rintf|roundf|floorf|truncf|ceilf|fmaxf|fminf)([@-]|$)|\$ss(5SIMD8|6SIMD16|5SIMD4)V'
status=0
require SpargeSIMDAVX2.build/FloatScoreKernel.swift.o 'vfmadd[0-9]+ps[[:space:]].*%ymm' "256-bit FMA"
require SpargeSIMDAVX512.build/FloatScoreKernel.swift.o 'vfmadd[0-9]+ps[[:space:]].*%zmm' "512-bit FMA"
require SpargeSIMDAVX512.build/Int8ScoreKernel.swift.o 'vpdpbusd.*%zmm' "512-bit VNNI vpdpbusd"
require SpargeSIMDAVX512.build/FixedPointValueKernel.swift.o 'vpdpwssd.*%zmm' "512-bit VNNI vpdpwssd"
for o in "${objects[@]}"; do
    hits=$(objdump -dr --no-show-raw-insn "$o" | grep -E 'R_X86_64_(PLT32|GOTPCREL|PC32)' | grep -E "$banned" || true)
    if [ -n "$hits" ]; then
        echo "FAIL $(basename "$o") calls per-lane or generic routines:"
        echo "$hits" | sed 's/^/    /' | head -20
        status=1
    else
        echo "ok   $(basename "$o")"
    fi
done
if [ $status -ne 0 ]; then
    echo "object-code check failed: the portable build has per-lane libm / generic SIMD calls in hot code" >&2
else
    echo "object-code check passed: ${#objects[@]} objects free of per-lane libm and generic SIMD calls"
fi
exit $status
