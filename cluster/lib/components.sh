# Starts each part of the local cluster. Each function is idempotent: it returns
# at once when its part already runs. Sourced by `up`; needs common.sh.

PACKAGES=(containerd runc containernetworking-plugins docker.io docker-registry iptables conntrack
  socat openssl debootstrap apache2-utils rsync iproute2 kmod curl gcc libc6-dev ca-certificates libcap2-bin libseccomp-dev
  zstd)

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed'* ]] || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  # No init system runs here: keep package scripts from starting services.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

setup_network() {
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type bridge
  fi
  ip link set "$NODE_IF" up
  # (Captured first: with pipefail, `grep -q` closing the pipe early would read as "absent".)
  local addrs; addrs=$(ip addr show dev "$NODE_IF")
  [[ $addrs == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/32" dev "$NODE_IF"
  mkdir -p "$STATE/cni"
  write_config "$STATE/cni/10-snapdeploy.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "snapdeploy",
  "plugins": [
    {"type": "bridge", "bridge": "snapd-cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$STATE/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
CNI
}

start_etcd() {
  start_daemon etcd "$BIN/etcd" --name node --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380 --quota-backend-bytes 2147483648
  wait_for etcd 30 curl -fsS http://127.0.0.1:2379/health
}

start_apiserver() {
  start_daemon kube-apiserver "$BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --advertise-address "$NODE_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SVC_CIDR" --allow-privileged=true \
    --authorization-mode Node,RBAC --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --kubelet-preferred-address-types InternalIP --enable-admission-plugins NodeRestriction --profiling=false
  wait_for kube-apiserver 90 kc get --raw /readyz
}

start_controllers() {
  start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --leader-elect=false --bind-address 127.0.0.1 \
    --service-cluster-ip-range "$SVC_CIDR" --terminated-pod-gc-threshold 50
  start_daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
}

start_registry() {
  local name=$1 addr=$2 alias=$3 dir=$4 auth=${5:-}
  mkdir -p "$dir"
  local cfg=$STATE/$name.yml
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage: {filesystem: {rootdirectory: $dir}, delete: {enabled: true}}"
    echo "http: {addr: $addr, tls: {certificate: $PKI/registry.crt, key: $PKI/registry.key}}"
    if [ -n "$auth" ]; then echo "auth: {htpasswd: {realm: snapdeploy-local, path: $auth}}"; fi
  } | write_config "$cfg"
  start_daemon "$name" /usr/bin/docker-registry serve "$cfg"
  start_daemon "$name-loopback" socat "TCP-LISTEN:${alias##*:},bind=${alias%:*},fork,reuseaddr" "TCP:$addr"
  wait_for "$name" 20 curl -sS --cacert "$PKI/ca.crt" -o /dev/null "https://$alias/v2/"
}

start_registries() {
  # The main registry: no auth, data kept across `down` (cluster images live there).
  start_registry registry "$REGISTRY_NODE" "$REGISTRY" "$CACHE/registry"
  # A second registry that requires htpasswd auth, for credential tests.
  local a=$STATE/registry-auth
  mkdir -p "$a"
  if [ ! -f "$a/htpasswd" ]; then
    openssl rand -hex 16 > "$a/password"
    htpasswd -Bbc "$a/htpasswd" snapdeploy "$(cat "$a/password")" 2>/dev/null
  fi
  start_registry registry-auth "$AUTH_REGISTRY_NODE" "$AUTH_REGISTRY" "$a/data" "$a/htpasswd"
}

# The registries serve TLS with a certificate from the cluster CA (BuildKit in this
# Docker version reaches plain-HTTP registries only on loopback). Docker trusts it
# through certs.d; containerd through hosts.toml.
trust_registries() {
  local r
  for r in "$REGISTRY" "$REGISTRY_NODE" "$AUTH_REGISTRY" "$AUTH_REGISTRY_NODE"; do
    mkdir -p "/etc/docker/certs.d/$r"
    cp "$PKI/ca.crt" "/etc/docker/certs.d/$r/ca.crt"
  done
}

start_docker() {
  # The node's Docker daemon on /var/run/docker.sock, as nodes of the original
  # snapshot-deploy design had. It runs its own containerd, apart from the CRI one.
  trust_registries
  write_config "$STATE/dockerd.json" <<JSON
{"features": {"buildkit": true}}
JSON
  start_daemon dockerd dockerd --config-file "$STATE/dockerd.json" -H unix:///var/run/docker.sock
  wait_for dockerd 60 docker version
}

start_containerd() {
  local hosts=$STATE/containerd/certs.d r
  for r in "$REGISTRY" "$REGISTRY_NODE" "$AUTH_REGISTRY" "$AUTH_REGISTRY_NODE"; do
    mkdir -p "$hosts/$r"
    # containerd 1.6 wants a [host] table (without one the file is rejected) and
    # applies the CA from it; the top-level one covers the server entry.
    printf 'server = "https://%s"\nca = "%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
      "$r" "$PKI/ca.crt" "$r" "$PKI/ca.crt" > "$hosts/$r/hosts.toml"
  done
  # Public names (docker.io/moby/buildkit:..., docker.io/library/node:...) are pulled
  # from the local registry, which holds stand-ins built from source
  # (lib/public-images.sh); Docker Hub itself is never reached. containerd reads this
  # folder on each pull: no restart.
  mkdir -p "$hosts/docker.io"
  printf 'server = "https://registry-1.docker.io"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
    "$REGISTRY_NODE" "$PKI/ca.crt" | write_config "$hosts/docker.io/hosts.toml"
  write_config "$STATE/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY_NODE/$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$hosts"
TOML
  mkdir -p "$RUN/containerd"
  start_daemon containerd containerd --config "$STATE/containerd.toml"
  # Serving, not only the socket made: the kubelet checks the CRI API once at start and
  # exits if containerd is still loading its plugins.
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
}

start_kubelet() {
  mkdir -p "$STATE/kubelet"
  # Loopback inside the pod: lookups fail fast and never leave it (an empty file
  # would make containerd hand pods the host's resolver instead).
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' | write_config "$STATE/pod-resolv.conf"
  write_config "$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroups are v1 on this machine.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
# Keep image GC away from the pause and base images, and never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "100Mi"}
serializeImagePulls: false
maxPods: 60
# Pods resolve through their own loopback: no cluster DNS runs here, and no pod
# query may leave this machine through the host's resolver.
resolvConf: $STATE/pod-resolv.conf
YAML
  start_daemon kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --pod-infra-container-image "$REGISTRY_NODE/$PAUSE_IMAGE"
}

start_proxy() {
  write_config "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
# Leave the machine's conntrack table size alone.
conntrack: {maxPerCore: 0}
YAML
  start_daemon kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
}

# What stands between the node and Ready: its conditions, and the kubelet's and
# containerd's last words.
node_evidence() {
  echo "--- node $NODE_NAME conditions"
  kc get node "$NODE_NAME" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}' 2>&1 || true
  log_tail kubelet 25; log_tail containerd 10
}

# Ready as the API server says, and the kubelet alive and healthy now (a node object
# kept from a previous run still says Ready for a while after its kubelet died).
node_ready() {
  if ! pid_alive kubelet; then
    # It exits when containerd's CRI is still recovering its state ("server is not
    # initialized yet"): started again, as a service manager would, a few times.
    KUBELET_STARTS=$(( ${KUBELET_STARTS:-1} + 1 ))
    if [ "$KUBELET_STARTS" -gt 5 ]; then node_evidence >&7; die "the kubelet exited $((KUBELET_STARTS - 1)) times (log: $LOGS/kubelet.log)" 2>&7; fi
    log "the kubelet exited; starting it again" 2>&7
    sleep 1; start_kubelet
    return 1
  fi
  curl -fsS -o /dev/null http://127.0.0.1:10248/healthz || return 1
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
