#!/usr/bin/env bash
# Builds and runs Examples/DependentPackage, an application package that depends on SpargeAttn
# by URL and version (`.package(url:from: "1.0.0")`, default traits), against the current
# commit: a throwaway clone of HEAD in a temporary folder, its tags replaced by 1.0.0, and the
# package URL mirrored to that clone (`swift package config set-mirror`) in a copy of the
# consumer. Nothing in the repository is edited and no network is needed. Only committed
# changes are checked (the clone is of HEAD).
#
# Usage: Scripts/check-dependent-package.sh [-c release|debug]   (release by default: the build
# takes a little longer than debug, but the scenarios run in a second instead of minutes)
# Exits non-zero, with a message saying which step failed, when the consumer does not resolve,
# build, or pass its four scenarios.
set -euo pipefail

configuration=release
if [ "${1:-}" = "-c" ]; then configuration="${2:?-c needs debug or release}"; fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
consumer_dir="Examples/DependentPackage"
version="1.0.0"
start=$SECONDS
say() { printf '=== %s (%ds)\n' "$*" "$((SECONDS - start))"; }
die() { printf '\nDEPENDENT PACKAGE CHECK FAILED: %s\n' "$*" >&2; exit 1; }

commit="$(git -C "$repo" rev-parse HEAD)" || die "$repo is not a git checkout"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "note: the working tree has uncommitted changes; only commit $commit is checked"
fi

# The URL the consumer's manifest names (one .package(url:) line).
url="$(sed -n 's/.*\.package(url: *"\([^"]*\)".*/\1/p' "$repo/$consumer_dir/Package.swift" | head -1)"
[ -n "$url" ] || die "no .package(url: ...) line in $consumer_dir/Package.swift"

work="$(mktemp -d "${TMPDIR:-/tmp}/sparge-dependent.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say "cloning $commit into $work/SpargeAttn, tagged $version"
git clone --quiet --no-checkout "$repo" "$work/SpargeAttn" || die "git clone of $repo failed"
(
    cd "$work/SpargeAttn"
    git checkout --quiet --detach "$commit"
    git tag -l | xargs -r git tag -d >/dev/null
    git tag "$version"
) || die "could not check out and tag $commit in the clone"

say "copying $consumer_dir and mirroring $url to the clone"
cp -R "$work/SpargeAttn/$consumer_dir" "$work/consumer"
swift package --package-path "$work/consumer" config set-mirror --original "$url" --mirror "file://$work/SpargeAttn" \
    || die "swift package config set-mirror failed"

say "swift build -c $configuration (the consumer and SpargeAttn $version, default traits)"
swift build --package-path "$work/consumer" --scratch-path "$work/build" --cache-path "$work/cache" -c "$configuration" \
    >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    die "Examples/DependentPackage does not build against SpargeAttn $commit by version (log above): a public API it uses changed, or the package cannot be used as a versioned dependency"
}
grep -E "warning:" "$work/build.log" | grep -v "/SpargeAttn/" | sort -u || true

say "running the scenarios (the default trait reached the dependent; four uses of the API)"
"$work/build/$configuration/DependentScenarios" \
    || die "a scenario of Examples/DependentPackage failed (output above)"
say "dependent package check passed"
