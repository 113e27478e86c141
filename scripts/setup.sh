# Sourced by the demo and test scripts: installs the npm packages and builds the
# project, brings the local cluster up, and points this shell at it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
"$ROOT/cluster/up"
eval "$("$ROOT/cluster/env")"
