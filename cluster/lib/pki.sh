# Creates the cluster's PKI with openssl (once) and one kubeconfig per client.
# Sourced by `up`; needs common.sh.

_cert() { # name CN O [SANs]
  local name=$1 cn=$2 o=$3 sans=${4:-}
  [ -f "$PKI/$name.crt" ] && return 0
  local ext; ext=$(mktemp)
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

_kubeconfig() { # file user-cert-name server
  local file=$1 name=$2 server=$3
  cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: snapdeploy-local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$name.crt")
    client-key-data: $(base64 -w0 < "$PKI/$name.key")
contexts:
- name: snapdeploy-local
  context: {cluster: snapdeploy-local, user: $name, namespace: default}
current-context: snapdeploy-local
KC
  chmod 600 "$file"
}

# _valid_now CERT: its validity period holds now and for another day (a machine whose
# clock moved back past the certificates' creation, or forward past their end, gets a
# new PKI instead of a kubelet that cannot talk to the API server).
_valid_now() {
  local from; from=$(date -d "$(openssl x509 -noout -startdate -in "$1" | cut -d= -f2)" +%s) || return 1
  [ "$from" -le "$(date +%s)" ] && openssl x509 -noout -checkend 86400 -in "$1" >/dev/null
}

make_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  local c
  for c in "$PKI"/*.crt; do
    [ -f "$c" ] || continue
    if ! _valid_now "$c"; then
      log "$(basename "$c") is not valid at $(date -u +%FT%TZ): making a new PKI"
      rm -f "$PKI"/*.crt "$PKI"/*.key "$PKI"/*.srl "$PKI"/sa.pub
      break
    fi
  done
  if [ ! -f "$PKI/ca.crt" ]; then
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=snapdeploy-local-ca" \
      -days 3650 -out "$PKI/ca.crt" 2>/dev/null
  fi
  local sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBE_SVC_IP"
  _cert apiserver kube-apiserver "" "$sans"
  _cert admin admin system:masters
  _cert controller-manager system:kube-controller-manager ""
  _cert scheduler system:kube-scheduler ""
  _cert kubelet "system:node:$NODE_NAME" system:nodes
  _cert kube-proxy system:kube-proxy ""
  _cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  _cert registry snapdeploy-registry "" "DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  [ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  local s=https://$NODE_IP:6443
  _kubeconfig "$KUBECONFIG_ADMIN" admin "https://127.0.0.1:6443"
  _kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager "$s"
  _kubeconfig "$STATE/scheduler.kubeconfig" scheduler "$s"
  _kubeconfig "$STATE/kubelet.kubeconfig" kubelet "$s"
  _kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy "$s"
}
