#!/usr/bin/env bash
# The whole test suite: unit tests, then end-to-end tests against the real local
# cluster (which this script brings up first). Extra arguments select test files.
source "$(dirname "$0")/setup.sh"
npm run --silent check
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  # Unit tests first; the cluster restart test last, since it takes the cluster down.
  files=(test/unit/*.test.ts test/e2e/*.test.ts test/e2e/zz-restart/*.test.ts)
fi
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
