# Shared settings and helpers of the local cluster scripts (sourced, not run).
# Everything the cluster makes lives under $STATE (data) and $RUN (pids, sockets),
# so `down` can remove exactly what `up` made.
set -euo pipefail
# Debian's tools first: the docker CLI must be the one matching Debian's daemon
# (a newer client elsewhere on PATH needs buildx for BuildKit).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SNAPDEPLOY_CLUSTER_DIR:-/var/lib/snapdeploy-cluster}
RUN=/run/snapdeploy-cluster
LOGS=$STATE/logs
PKI=$STATE/pki
CACHE=${SNAPDEPLOY_CACHE:-$HOME/.cache/snapdeploy}
K8S_VERSION=v1.34.4
NODE_NAME=snapdeploy-node
# The node's address lives on a port-less bridge of our own (this kernel has no dummy
# devices): the kubelet refuses a loopback node IP, and traffic to it never leaves
# this machine.
NODE_IF=snapd0
NODE_IP=10.245.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24
KUBE_SVC_IP=10.96.0.1
# The registry answers on loopback for host tools and on the node IP for pods;
# both names reach the same storage.
REGISTRY=127.0.0.1:5000
REGISTRY_NODE=$NODE_IP:5000
AUTH_REGISTRY=127.0.0.1:5001
AUTH_REGISTRY_NODE=$NODE_IP:5001
BASE_IMAGE=snapdeploy/debian:bookworm
# Bump the tag when the tools image's package list (lib/images.sh) changes.
TOOLS_IMAGE=snapdeploy/debian-tools:bookworm-2
PAUSE_IMAGE=snapdeploy/pause:3.10
# The public images `server install` uses by default (src/server/images.ts names the
# same ones), served by the local registry through containerd's docker.io mirror.
BUILDKIT_IMAGE=moby/buildkit:$(awk '$1 == "github.com/moby/buildkit" { print $2 }' "$CLUSTER_DIR/go/buildkit/go.mod")-rootless
BUILDKIT_PRIVILEGED_IMAGE=${BUILDKIT_IMAGE%-rootless}
NODE_IMAGE=library/node:24.22.3-bookworm-slim
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# step NAME CMD...: runs a step and records how long it took.
STEP_REPORT=()
step() {
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  log "$name ..."
  "$@"
  local dt; dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  STEP_REPORT+=("$(printf '%-28s %6ss' "$name" "$dt")")
}
print_steps() { local l; for l in "${STEP_REPORT[@]}"; do printf '  %s\n' "$l" >&2; done; }

# write_config FILE: writes stdin to FILE only if the content differs, so a running
# daemon that watches its config (kube-proxy exits when the file is rewritten) is
# left alone by an idempotent `up`.
write_config() {
  local file=$1 tmp; tmp=$(mktemp "$file.XXXX")
  cat > "$tmp"
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv "$tmp" "$file"; fi
}

pid_alive() { local f=$RUN/$1.pid; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start_daemon NAME CMD...: starts CMD in its own session, logs to $LOGS/NAME.log,
# records its pid. Does nothing if it already runs.
start_daemon() {
  local name=$1; shift
  if pid_alive "$name"; then return 0; fi
  mkdir -p "$RUN" "$LOGS"
  # Daemons inherit no descriptor but stdio: not fd 9 (the `up` lock), nor a lock the
  # caller holds (`flock FILE cluster/up` would otherwise stay locked while they run).
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null
  ) &
  echo $! > "$RUN/$name.pid"
}

stop_daemon() {
  local name=$1 f=$RUN/$1.pid pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# wait_for DESC SECONDS CMD...: polls CMD until it succeeds.
# wait_for DESC SECS CMD...: retries CMD until it succeeds; on timeout runs the
# function named by $WAIT_EVIDENCE (if set) to print what the logs say, then fails.
# CMD's output is dropped, but fd 7 reaches stderr (for a check that gives up early).
wait_for() {
  local desc=$1 secs=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" 7>&2 >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      [ -n "${WAIT_EVIDENCE:-}" ] && "$WAIT_EVIDENCE" >&2
      die "timed out after ${secs}s waiting for $desc (logs: $LOGS)"
    fi
    sleep 0.5
  done
}

# log_tail NAME [LINES]: the end of a daemon's log, indented, for an error report.
log_tail() { [ -f "$LOGS/$1.log" ] && { echo "--- $LOGS/$1.log (last ${2:-15} lines)"; tail -n "${2:-15}" "$LOGS/$1.log" | cut -c1-400 | sed 's/^/  /'; } || true; }

bin_dir() { "$CLUSTER_DIR/lib/build-binaries.sh"; }
kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
