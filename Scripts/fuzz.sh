#!/usr/bin/env bash
# libFuzzer targets of the file readers (safetensors, .npy, tuned-settings JSON, GGUF), built with
# AddressSanitizer. Each target is Fuzz/Targets/<Name>Fuzz.swift; its seed corpus is
# Fuzz/Corpus/<Name>/ and the JSON dictionary Fuzz/json.dict.
#
#   bash Scripts/fuzz.sh                 smoke run: 30 s per target (CI)
#   FUZZ_SECONDS=3600 bash Scripts/fuzz.sh SafeTensors
#                                        long run of one target (the corpus grows in
#                                        .build-fuzz/corpus/<Name>; crashes land in
#                                        .build-fuzz/crashes/<Name>/ with a reproducer)
#   bash Scripts/fuzz.sh --build-only    build the binaries only
#
# A crash reproduces with: .build-fuzz/fuzz-<Name> CRASH_FILE
# Needs a Swift toolchain for Linux with libFuzzer (the swift.org toolchains have it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="$repo/.build-fuzz"
seconds="${FUZZ_SECONDS:-30}"
build_only=0
targets=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=1 ;;
        *) targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(SafeTensors Numpy TunedSettings GGUF)

mkdir -p "$out/obj"
flags=(-O -sanitize=fuzzer,address -parse-as-library -swift-version 6 -g -package-name SpargeAttn)

# The package's library modules (the same sources as the package: the three kernel sets,
# SpargeAttn, SpargeFormats, SpargeTuning, and the SmolLM example's SpargeGGUF), instrumented for coverage and ASan; rebuilt only
# when a source is newer than the objects. The AVX2 / AVX-512 kernel sets are compiled without
# their instruction-set flags here, so the run-time choice never picks them (portable code).
stamp="$out/obj/complete.stamp"   # touched once every module has built
modules=(SpargeSIMD:Sources/SpargeSIMD: SpargeSIMDAVX2:Sources/SpargeSIMD:-DSPARGE_AVX2
         SpargeSIMDAVX512:Sources/SpargeSIMD:-DSPARGE_AVX512 SpargeAttn:Sources/SpargeAttn:
         SpargeFormats:Sources/SpargeFormats: SpargeTuning:Sources/SpargeTuning: SpargeGGUF:Examples/SpargeGGUF:)
objects=()
# One module: NAME:DIR:DEFINE (each compile is one single-threaded job, so independent modules
# run side by side).
build_module() {
    local name dir define
    IFS=: read -r name dir define <<< "$1"
    find "$dir" -name '*.swift' -print0 | xargs -0 \
        swiftc "${flags[@]}" -wmo -module-name "$name" ${define:+"$define"} -I "$out/obj" -emit-module \
        -emit-module-path "$out/obj/$name.swiftmodule" -c -o "$out/obj/$name.o"
}
# Waits for every pid given and fails if one failed.
wait_all() { local failed=0; for pid in "$@"; do wait "$pid" || failed=1; done; return $failed; }
if [ ! -f "$stamp" ] || [ -n "$(find Sources/SpargeSIMD Sources/SpargeAttn Sources/SpargeFormats Sources/SpargeTuning Examples/SpargeGGUF -name '*.swift' -newer "$stamp" | head -1)" ]; then
    echo "fuzz: building the instrumented library (a few minutes)"
    rm -f "$stamp"
    # SpargeGGUF needs nothing; the three kernel sets need nothing; SpargeAttn needs the kernel
    # sets, SpargeFormats SpargeAttn, SpargeTuning both.
    build_module "${modules[6]}" & gguf=$!
    pids=()
    for m in "${modules[@]:0:3}"; do build_module "$m" & pids+=($!); done
    wait_all "${pids[@]}" || { wait "$gguf"; echo "fuzz: a kernel set did not build" >&2; exit 1; }
    for m in "${modules[@]:3:3}"; do build_module "$m"; done
    wait "$gguf"
    touch "$stamp"
fi
for m in "${modules[@]}"; do objects+=("$out/obj/${m%%:*}.o"); done

# Build every target (side by side), then run them side by side (the smoke run takes about
# FUZZ_SECONDS in all). ld.gold's "Cannot export local symbol '__asan_...'" warnings are noise.
pids=()
for name in "${targets[@]}"; do
    src="Fuzz/Targets/${name}Fuzz.swift"
    [ -f "$src" ] || { echo "fuzz: no target $src" >&2; exit 2; }
    bin="$out/fuzz-$name"
    if [ ! -f "$bin" ] || [ "$src" -nt "$bin" ] || [ "$stamp" -nt "$bin" ]; then
        rm -f "$bin"
        { swiftc "${flags[@]}" -module-name "${name}Fuzz" -I "$out/obj" "$src" "${objects[@]}" -o "$bin" 2>&1 \
            | grep -v "warning: Cannot export local symbol '__asan" || true; [ -f "$bin" ]; } &
        pids+=($!)
    fi
done
[ ${#pids[@]} -eq 0 ] || wait_all "${pids[@]}" || { echo "fuzz: a target did not build" >&2; exit 1; }
[ "$build_only" = 1 ] && exit 0

pids=()
for name in "${targets[@]}"; do
    corpus="$out/corpus/$name"
    crashes="$out/crashes/$name"
    mkdir -p "$corpus" "$crashes"
    dict=()
    case "$name" in SafeTensors|TunedSettings) dict=(-dict=Fuzz/json.dict) ;; esac
    echo "fuzz: $name for ${seconds} s"
    # -rss_limit_mb: a reader that takes more than 2 GB on a small input is a finding too.
    ASAN_OPTIONS=detect_leaks=1 "$out/fuzz-$name" "$corpus" "Fuzz/Corpus/$name" "${dict[@]}" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 > "$out/$name.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

status=0
for name in "${targets[@]}"; do
    log="$out/$name.log"
    execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -n 1 || echo "cov: ?")
    if grep -qE "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY: |Test unit written|deadly signal" "$log"; then
        echo "fuzz: $name FAILED after $execs runs; reproducer in $out/crashes/$name (log $log):" >&2
        grep -E "ERROR|SUMMARY|Test unit written|Fatal error" "$log" | head -n 5 >&2
        status=1
    else
        echo "fuzz: $name ok: $execs runs, $cov"
    fi
done
exit $status
