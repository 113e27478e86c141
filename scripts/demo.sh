#!/usr/bin/env bash
# The demo: brings the local cluster up, installs the build server, deploys
# examples/hello-http, shows its page through snapdeploy's port-forward, edits a file,
# deploys again and shows the new page and both deploys' timings. Safe to run again.
#
# Settings (environment): SNAPDEPLOY_DEMO_NAMESPACE (the app's, default snapdeploy-demo),
# SNAPDEPLOY_DEMO_SERVER_NAMESPACE (the build server's, default snapdeploy),
# SNAPDEPLOY_DEMO_DIR (the copy of the example that is edited, default
# ${TMPDIR:-/tmp}/snapdeploy-demo/hello-http), SNAPDEPLOY_DEMO_BUILDER (default buildkit).

source "$(dirname "$0")/setup.sh"

NS=${SNAPDEPLOY_DEMO_NAMESPACE:-snapdeploy-demo}
SERVER_NS=${SNAPDEPLOY_DEMO_SERVER_NAMESPACE:-snapdeploy}
APP=${SNAPDEPLOY_DEMO_DIR:-${TMPDIR:-/tmp}/snapdeploy-demo/hello-http}
BUILDER=${SNAPDEPLOY_DEMO_BUILDER:-buildkit}
CA=/var/lib/snapdeploy-cluster/pki/ca.crt
snapdeploy() { node "$ROOT/bin/snapdeploy.cjs" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
LOGS=$(mktemp -d)
PF_PID=
cleanup() {
  if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
  rm -rf "$LOGS"
}
trap cleanup EXIT

step "Build server: snapdeploy server install (namespace $SERVER_NS, builder $BUILDER)"
"$ROOT/cluster/volumes" 4 # the local cluster has no volume provisioner: keep a few volumes free
install=(server install -n "$SERVER_NS" --builder "$BUILDER"
  --registry-ca "10.245.0.1:5000=$CA" --registry-ca "10.245.0.1:5001=$CA")
# The Docker builders run the build-server image cluster/up built from this checkout;
# buildkit needs no image of its own.
if [ "$BUILDER" != buildkit ]; then install+=(--image "$(cat /var/lib/snapdeploy-cluster/build-server-image)"); fi
snapdeploy "${install[@]}"

step "A copy of examples/hello-http to edit: $APP"
rm -rf "$APP"
mkdir -p "$(dirname "$APP")"
cp -r "$ROOT/examples/hello-http" "$APP"
cd "$APP"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
echo "its snapdeploy.yaml:"
sed 's/^/  | /' snapdeploy.yaml

# One deploy, its output shown as it comes (of the build server's lines, only the build's
# steps) and kept whole for the summary.
deploy() {
  snapdeploy deploy -n "$NS" --server-namespace "$SERVER_NS" 2>&1 | tee "$LOGS/deploy-$1.log" |
    awk '!/^REMOTE: / || /^REMOTE: #[0-9]+ \[/ { print; fflush() }'
}

step "snapdeploy deploy (-n $NS): sync the tree, build on the build server, apply deploy/, wait for the rollout"
deploy 1

step "snapdeploy port-forward 0:8080 (a free local port to the app's ready pod)"
# Not through the function: $! must be the port-forward itself, which cleanup stops.
node "$ROOT/bin/snapdeploy.cjs" port-forward 0:8080 -n "$NS" >"$LOGS/pf.out" 2>"$LOGS/pf.err" &
PF_PID=$!
for _ in $(seq 100); do
  if [ -s "$LOGS/pf.out" ] || ! kill -0 "$PF_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
ADDR=$(head -n1 "$LOGS/pf.out")
if [ -z "$ADDR" ]; then
  cat "$LOGS/pf.err" >&2
  echo "demo: port-forward did not start" >&2
  exit 1
fi
echo "forwarding $ADDR -> deployment/hello-http:8080"

# The page at the forwarded port; with an argument, waits (up to 20 s) until it is that text:
# each new connection goes to the newest ready pod, so the new page comes once it is ready.
page() {
  node -e '
    const [url, want] = process.argv.slice(1);
    const end = Date.now() + 20000;
    (async () => {
      let last = "";
      for (;;) {
        try { last = await (await fetch(url)).text(); } catch (e) { last = `(${e.message})`; }
        if (want === undefined || last === want || Date.now() > end) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      process.stdout.write(last);
      process.exitCode = want === undefined || last === want ? 0 : 1;
    })();' "http://$ADDR/" "$@"
}

step "The page (http://$ADDR/)"
FIRST=$(page "$(cat greeting.txt)"$'\n') || {
  echo "demo: the page is not the example's greeting: $FIRST" >&2
  exit 1
}
echo "page 1: $FIRST"

step "Edit greeting.txt in $APP"
EDITED="hello again from snapdeploy, edited at $(date -u +%H:%M:%S)"
echo "$EDITED" >greeting.txt
echo "greeting.txt: $EDITED"

step "snapdeploy deploy again: only greeting.txt is sent, only its layer is built"
deploy 2

step "The new page (same port-forward)"
SECOND=$(page "$EDITED"$'\n') || {
  echo "demo: the page did not change: $SECOND" >&2
  exit 1
}
echo "page 2: $SECOND"

step "Timings"
for n in 1 2; do
  echo "deploy $n:"
  grep -E '^(built and pushed|skipped build|synced|deployed in)' "$LOGS/deploy-$n.log" | sed 's/^/  /' || true
done

# The build server's namespace, when it is not the CLI's default (the dev line needs it).
SERVER_FLAG=
if [ "$SERVER_NS" != snapdeploy ]; then SERVER_FLAG=" --server-namespace $SERVER_NS"; fi
cat <<MSG

Done. The app runs in namespace $NS, its edited copy is in $APP. Try next:
  eval "\$($ROOT/cluster/env)"; alias snapdeploy=$ROOT/bin/snapdeploy.cjs; cd $APP
  snapdeploy history -n $NS                     # both deploys: revision, snapshot, user, time
  snapdeploy rollback -n $NS                    # back to the first page
  snapdeploy dev -n $NS --port 8080:8080$SERVER_FLAG        # edit greeting.txt: live update, no rebuild
  snapdeploy logs -f -n $NS
  snapdeploy server status -n $SERVER_NS        # the build server's disk and workspaces
Clean up: snapdeploy server uninstall -n $SERVER_NS --purge; kubectl delete namespace $NS; $ROOT/cluster/down
MSG
