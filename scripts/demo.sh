#!/usr/bin/env bash
# The demo: brings the local cluster up and shows how to use snapdeploy with it.
source "$(dirname "$0")/setup.sh"
cat <<MSG

The local cluster is up. To use it from this shell:
  eval "\$($ROOT/cluster/env)"
  kubectl get nodes
  $ROOT/bin/snapdeploy.js --help
Stop it with: $ROOT/cluster/down
MSG
