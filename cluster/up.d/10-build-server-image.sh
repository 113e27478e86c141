#!/usr/bin/env bash
# Builds the snapdeploy build-server image from this checkout (FROM the cluster's
# Debian tools image) and pushes it to the local registry, tagged by content, so the
# tests and the demo can `snapdeploy server install --image ...`. The reference is
# written to $STATE/build-server-image.
source "$(dirname "$0")/../lib/common.sh"
ROOT=$(cd "$CLUSTER_DIR/.." && pwd)
cd "$ROOT"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
tag=$(cat dist/server/agent.cjs dist/server/Dockerfile | sha256sum | cut -c1-12)
ref=$REGISTRY/snapdeploy/build-server:$tag
if ! curl -fs --cacert "$PKI/ca.crt" -o /dev/null "https://$REGISTRY/v2/snapdeploy/build-server/manifests/$tag" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'; then
  DOCKER_BUILDKIT=1 docker build -q --build-arg "BASE=$REGISTRY/$TOOLS_IMAGE" -t "$ref" dist/server >/dev/null
  docker push -q "$ref" >/dev/null
fi
echo "$ref" > "$STATE/build-server-image"
log "build-server image: $ref"
