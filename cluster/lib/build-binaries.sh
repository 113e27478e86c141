#!/usr/bin/env bash
# Builds the local cluster's Kubernetes and etcd binaries from the pinned upstream Go
# modules in cluster/go/{k8s,etcd}, into a cache outside the repo keyed by the pinned
# versions (go.mod + go.sum), so later `cluster/up` runs reuse them.
# Usage: build-binaries.sh   -> prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=v1.34.4
key=$(cat "$here"/go/k8s/go.mod "$here"/go/k8s/go.sum "$here"/go/etcd/go.mod "$here"/go/etcd/go.sum "$here"/go/etcd/main.go | sha256sum | cut -c1-12)
cache=${SNAPDEPLOY_CACHE:-$HOME/.cache/snapdeploy}
bin=$cache/bin-$K8S_VERSION-$key
if [ -x "$bin/kubelet" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kubectl" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin.tmp"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
pkg=k8s.io/component-base/version
ld="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34 -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
ld="$ld -X $pkg/verflag.programName=kubernetes"
(cd "$here/go/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp/etcd" . ) >&2
(cd "$here/go/k8s" && go build -trimpath -ldflags "$ld" -o "$bin.tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl) >&2
rm -rf "$bin"; mv "$bin.tmp" "$bin"
echo "$bin"
