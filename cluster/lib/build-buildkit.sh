#!/usr/bin/env bash
# Builds buildkitd, buildctl and rootlesskit (cluster/go/buildkit) and runc (cluster/go/runc,
# the version BuildKit pins) from the pinned upstream Go modules, into a cache outside the
# repo keyed by their go.mod + go.sum, so later `cluster/up` runs reuse them. All static:
# the first three without cgo, runc with it (its nsenter part is C) and with seccomp
# (libseccomp-dev; BuildKit gives each step a seccomp profile), linked statically.
# Usage: build-buildkit.sh   -> prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mod=$here/go/buildkit
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/go/runc/go.mod" "$here/go/runc/go.sum" "$0" | sha256sum | cut -c1-12)
version=$(awk '$1 == "github.com/moby/buildkit" { print $2 }' "$mod/go.mod")
cache=${SNAPDEPLOY_CACHE:-$HOME/.cache/snapdeploy}
bin=$cache/buildkit-$version-$key
if [ -x "$bin/buildkitd" ] && [ -x "$bin/buildctl" ] && [ -x "$bin/rootlesskit" ] && [ -x "$bin/runc" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin.tmp"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
ld="-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
(cd "$mod" && go build -trimpath -tags "osusergo netgo" -ldflags "$ld" -o "$bin.tmp/" \
  github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl \
  github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit) >&2
(cd "$here/go/runc" && CGO_ENABLED=1 go build -trimpath -tags "seccomp netgo osusergo" \
  -ldflags "-s -w -extldflags -static" -o "$bin.tmp/runc" github.com/opencontainers/runc) >&2
rm -rf "$bin"; mv "$bin.tmp" "$bin"
echo "$bin"
