#!/usr/bin/env bash
# Quickstart, part one: set up, then reconcile the bundled examples into a fresh local
# config repository and show its history.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
repo=${DEMO_REPO:-$(mktemp -d)/config-repo}
. .venv/bin/activate
set +e
reconciler run --source examples --repo "$repo" --once
rc=$?
set -e
echo
echo "== config repo: $repo"
git -C "$repo" log --stat --format='%n%h %an  %s%n%(trailers:only,unfold)' | sed '/^$/N;/^\n$/D'
exit $rc
