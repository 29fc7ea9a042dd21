#!/usr/bin/env bash
# Quickstart, part one: install only what the demo needs (the project, no test tools), then
# reconcile the bundled examples into a new local config repository, show its history and
# say where it is. DEMO_REPO=PATH picks the place (default: ./demo/config-repo).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v git >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null
  else
    echo "demo: git is missing; install it first" >&2; exit 1
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c 'import reconciler.cli' 2>/dev/null || [ ! -x .venv/bin/reconciler ]; then
  echo "demo: installing gitops-reconciler into .venv (log: .venv/demo-install.log)" >&2
  .venv/bin/python -m pip install --disable-pip-version-check -q -e . >.venv/demo-install.log 2>&1 ||
    { cat .venv/demo-install.log >&2; exit 1; }
fi
repo=${DEMO_REPO:-$PWD/demo/config-repo}
set +e
.venv/bin/reconciler run --source examples --repo "$repo" --once
rc=$?
set -e
echo
git -C "$repo" log --stat --format='%n%h %an  %s%n%(trailers:only,unfold)' | sed '/^$/N;/^\n$/D'
echo
echo "== the config repo is $repo (bare). Look around:"
echo "   git -C $repo log --oneline"
echo "   .venv/bin/reconciler history customer/acme --repo $repo"
echo "   edit examples/, then run: .venv/bin/reconciler run --source examples --repo $repo --once"
exit $rc
