#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need on a fresh machine:
# the project venv from the lock file, the tools venv, and Debian packages.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
LOCK=requirements/dev.lock
STAMP=.venv/.lock-sha256

# pip on these machines finds the CPU build of torch in a local folder of wheels;
# uv does not read pip's configuration, so pass it on (else torch resolves to the CUDA build).
FIND_LINKS=()
if [ -n "${PIP_FIND_LINKS:-}" ]; then
  for d in $PIP_FIND_LINKS; do FIND_LINKS+=(--find-links "$d"); done
fi

want=$(sha256sum "$LOCK" pyproject.toml | sha256sum | cut -c1-64)
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing .venv from $LOCK"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
  .venv/bin/uv pip sync -q --python .venv/bin/python "${FIND_LINKS[@]}" "$LOCK"
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  echo "$want" > "$STAMP"
fi

# checkov pins old versions of half the ecosystem: it lives in its own venv.
if [ "${BOOTSTRAP_TOOLS:-1}" = 1 ]; then
  want_tools=$(sha256sum requirements/tools.lock | cut -c1-64)
  if [ ! -x .venv-tools/bin/checkov ] || [ "$(cat .venv-tools/.lock-sha256 2>/dev/null)" != "$want_tools" ]; then
    echo "bootstrap: installing .venv-tools from requirements/tools.lock"
    [ -x .venv-tools/bin/python ] || "$PY" -m venv .venv-tools
    .venv/bin/uv pip sync -q --python .venv-tools/bin/python requirements/tools.lock
    echo "$want_tools" > .venv-tools/.lock-sha256
  fi
fi

# Debian packages the tests use for real servers: redis-server (Feast's Redis
# online store), prometheus (promtool), prometheus-pushgateway (the monitor's push), chromium (Airflow UI browser test).
if [ "${BOOTSTRAP_APT:-1}" = 1 ]; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
  command -v chromium >/dev/null || missing+=(chromium chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      echo "bootstrap: apt-get install ${missing[*]}"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "bootstrap: missing ${missing[*]} and no root apt-get; tests that need them will fail" >&2
    fi
  fi
fi
