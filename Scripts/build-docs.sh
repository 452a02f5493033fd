#!/usr/bin/env bash
# Builds the SpargeAttn documentation (the DocC catalog with the API reference) into
# .build/docs (or $1, relative to the repository root; a folder that exists must be empty or an
# earlier documentation build, which is replaced). The public symbol graphs come from the
# compiler (the library and its extensions of standard-library types); `docc convert` then
# renders the catalog. Fails when DocC reports a warning (a broken symbol link, a missing
# article), so CI catches them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/docs}
if [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -f "$out/metadata.json" ]; then
    echo "$out exists and is not an earlier documentation build (no metadata.json): choose an empty or new folder" >&2; exit 1
fi
command -v docc >/dev/null || { echo "docc not found: it ships with the Swift toolchain (swift.org); put the toolchain's bin folder on PATH" >&2; exit 1; }
# A build folder of its own (.build-docs), holding its graphs: the compiler writes them only when
# it compiles the module, so they must live and go with the objects they came from. DocC reads
# the library's graphs only, staged beside them.
scratch=.build-docs graphs=.build-docs/symbol-graphs staged=.build-docs/docs-symbols
rm -rf "$staged" && mkdir -p "$staged"
swift build --scratch-path "$scratch" --target SpargeAttn -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$PWD/$graphs"
cp "$graphs"/SpargeAttn.symbols.json "$staged"/
for f in "$graphs"/SpargeAttn@*.symbols.json; do [ -e "$f" ] && cp "$f" "$staged"/; done   # extensions of other modules' types
log=$(mktemp); trap 'rm -f "$log"' EXIT
docc convert Sources/SpargeAttn/SpargeAttn.docc --output-path "$out" \
    --additional-symbol-graph-dir "$staged" 2>&1 | tee "$log"
if grep -q "warning:" "$log"; then
    echo "DocC reported $(grep -c 'warning:' "$log") warning(s) above" >&2; exit 1
fi
echo "documentation written to $out"
