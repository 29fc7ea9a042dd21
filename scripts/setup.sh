#!/usr/bin/env bash
# Idempotent set-up: Debian packages the tests need (when root and missing), a project
# virtualenv in .venv, and the project installed into it with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_debs=()
for pair in "git:git" "gpg:gnupg" "sshd:openssh-server" "ssh:openssh-client" "lighttpd:lighttpd" \
            "promtool:prometheus"; do
  bin=${pair%%:*}; deb=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then need_debs+=("$deb"); fi
done
# The connection-pool test (tests/pool/) runs the real PostgreSQL server and pgbouncer.
for deb in postgresql pgbouncer; do
  if ! dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'ok installed'; then need_debs+=("$deb"); fi
done
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need_debs[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
  else
    echo "setup: missing ${need_debs[*]} (install them; tests that need them will fail)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]'; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (log above, also in $log)" >&2
    exit 1
  fi
  .venv/bin/python -c 'import reconciler, pygit2, yaml, pydantic, apscheduler, kubernetes' 
  rm -f .venv/.installed-*; touch "$stamp"
fi
# the package's bytecode, as a regular (non-editable) install has it: otherwise, with
# PYTHONDONTWRITEBYTECODE set (CI images often set it), every command compiles the ~100
# modules it imports again (0.2 s of each `reconciler history`); stale files are ignored
.venv/bin/python -m compileall -q reconciler >/dev/null
