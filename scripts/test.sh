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
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
