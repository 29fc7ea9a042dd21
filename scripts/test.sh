#!/usr/bin/env bash
# Quickstart, part two: set up, then run every check CI runs: lint, types, import
# contracts, and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check reconciler tests bench
mypy
lint-imports
# The real kube-apiserver the controller tests run against: built once from Go modules and
# cached by version (a cold build takes tens of minutes on 2 cores; later runs take <1 s).
if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
  echo "test: kube-apiserver for the controller tests (built on first use, then cached)" >&2
  python -m tests.kubeapi --build-only >/dev/null || echo "test: the kube-apiserver build failed; its tests will say so" >&2
fi
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
