#!/usr/bin/env bash
# Builds buildkitd, buildctl and rootlesskit from the pinned upstream Go modules in
# cluster/go/buildkit, into a cache outside the repo keyed by go.mod + go.sum, so later
# `cluster/up` runs reuse them. Static binaries (no cgo): the image has no libc of theirs.
# Usage: build-buildkit.sh   -> prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mod=$here/go/buildkit
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-12)
version=$(awk '$1 == "github.com/moby/buildkit" { print $2 }' "$mod/go.mod")
cache=${SNAPDEPLOY_CACHE:-$HOME/.cache/snapdeploy}
bin=$cache/buildkit-$version-$key
if [ -x "$bin/buildkitd" ] && [ -x "$bin/buildctl" ] && [ -x "$bin/rootlesskit" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin.tmp"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
ld="-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
(cd "$mod" && go build -trimpath -tags "osusergo netgo" -ldflags "$ld" -o "$bin.tmp/" \
  github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl \
  github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit) >&2
rm -rf "$bin"; mv "$bin.tmp" "$bin"
echo "$bin"
