#!/usr/bin/env bash
# Compiles and runs the Swift code of the DocC articles against this checkout's library, so a
# changed API or a changed number cannot leave the articles behind:
# - whole programs (EmbeddingInAnInferenceEngine, HowSpargeAttnWorks): every ```swift block,
#   built and run in a scratch folder; every output block of the article must appear in what
#   the program prints (Scripts/doc_programs.py says the rule);
# - fragments (SpargeAttn.md, TuningForYourModel.md): type-checked after a prelude that
#   declares what they take as given.
# - the code in the DocC comments of the sources (every module but SpargeCUDA): each block
#   type-checked in a scope of its own after a prelude of the names the comments take as given.
# Not here: the GPU article, whose fragment .ci/run type-checks after its CUDA-trait build
# (SpargeCUDA exists only with the trait; SpargeCUDA's comments hold no code; cuda-check runs
# its calls on a GPU).
# Needs python3; builds what it links first (the release build with the test command's flags).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
catalog=Sources/SpargeAttn/SpargeAttn.docc
# The README's test build. `swift test list` builds exactly as `swift test` does (which adds its
# own -enable-testing), so after the README's test command nothing is rebuilt; `swift build`
# with the same arguments differs by that flag and would recompile every module (80-140 s).
swift test list -c release -Xswiftc -enable-testing >/dev/null
bin=$(swift build -c release -Xswiftc -enable-testing --show-bin-path)
work=$(mktemp -d "${TMPDIR:-/tmp}/sparge-doc-programs.XXXXXX")
status=0
# Kept when something failed: the messages point into it.
trap '[ $status -eq 0 ] && rm -rf "$work"' EXIT
objects=()
for t in SpargeAttn SpargeSIMD SpargeSIMDAVX2 SpargeSIMDAVX512 SpargeSIMDVNNI SpargeSIMDShuffles SpargeWorkloads SpargeFormats SpargeTuning; do
    [ -d "$bin/$t.build" ] && objects+=("$bin/$t.build"/*.o)
done

# Each whole-program article with the number of its output blocks (fenced, no language).
for entry in EmbeddingInAnInferenceEngine:1 HowSpargeAttnWorks:11; do
    article=${entry%%:*} blocks=${entry##*:}
    python3 Scripts/doc_programs.py program "$catalog/$article.md" "$work/$article.swift"
    if ! swiftc -O -swift-version 6 -I "$bin/Modules" "$work/$article.swift" "${objects[@]}" -o "$work/$article" 2> "$work/$article.build.log"; then
        grep -E "error" "$work/$article.build.log" | head -20 >&2
        echo "FAILED: the Swift code of $catalog/$article.md does not compile (program in $work/$article.swift)" >&2
        status=1; continue
    fi
    mkdir -p "$work/run-$article"
    if ! (cd "$work/run-$article" && "$work/$article" > "$work/$article.out"); then
        tail -20 "$work/$article.out" >&2
        echo "FAILED: the program of $catalog/$article.md stopped with an error" >&2
        status=1; continue
    fi
    python3 Scripts/doc_programs.py outputs "$catalog/$article.md" "$work/$article.out" "$blocks" || status=1
done

cat > "$work/prelude-SpargeAttn.swift" <<'SWIFT'
let q = [Float](repeating: 0, count: 8 * 4096 * 64), k = q, v = q
SWIFT
cat > "$work/prelude-TuningForYourModel.swift" <<'SWIFT'
let shape = AttentionShape(heads: 8, queryLength: 4096, headDim: 64)
let q = [Float](repeating: 0, count: shape.queryElements), k = q, v = q
let passages = [(q: q, k: k, v: v, shape: shape)]
SWIFT
# Type-checks FILE against the library; on failure prints its first errors and FAILED: WHAT.
typecheck() {
    local file=$1 what=$2 passed=$3
    if ! swiftc -typecheck -swift-version 6 -I "$bin/Modules" "$file" 2> "$file.log"; then
        grep -E "error" "$file.log" | head -20 >&2
        echo "FAILED: $what (in $file)" >&2
        status=1
    else
        echo "$passed"
    fi
}
for article in SpargeAttn TuningForYourModel; do
    python3 Scripts/doc_programs.py fragments "$catalog/$article.md" "$work/prelude-$article.swift" "$work/doc_$article.swift"
    typecheck "$work/doc_$article.swift" "the Swift fragments of $catalog/$article.md do not type-check" \
        "$catalog/$article.md: fragments type-check"
done
cat > "$work/prelude-comments.swift" <<'SWIFT'
import SpargeAttn
import SpargeTuning
import SpargeWorkloads
let n = 1370, h = 8, d = 64
let shape = AttentionShape(heads: h, queryLength: 4096, headDim: d)
let q = [Float](repeating: 0, count: shape.queryElements), k = q, v = q
let qkv = [Float16](repeating: 0, count: n * 3 * h * d)
let plan = try SpargePlan(shape: shape, parameters: .recommended)
let workspace = plan.makeWorkspace()
let layers = [(q, k, v), (q, k, v)]
SWIFT
sources=$(grep -rl '/// ```swift' Sources --include='*.swift' | grep -v '^Sources/SpargeCUDA/' | sort)
python3 Scripts/doc_programs.py comments "$work/prelude-comments.swift" "$work/doc_comments.swift" $sources
typecheck "$work/doc_comments.swift" "Swift code in the DocC comments of the sources does not type-check" \
    "the DocC comments' Swift code type-checks"
[ $status -eq 0 ] && echo "the articles' Swift code compiles, runs and prints what they show"
exit $status
