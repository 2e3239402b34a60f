#!/usr/bin/env bash
# Re-resolves the image lock files in containers/locks/ from requirements/base.in, constrained
# by requirements/dev.lock so every image runs the versions the tests ran. `make container-locks`.
#   stage.lock  - CPU torch (torch==2.13.0+cpu, from pip's find-links here, the PyTorch CPU index in the build)
#   train.lock  - CUDA torch: the same pins minus the +cpu torch, so torch==2.13.0 resolves on PyPI,
#                 whose Linux x86_64 wheel is the CUDA build, with its nvidia-* runtime wheels pinned too
#   triton.lock - the online model's python-backend deps, for the Triton image's Python 3.12
#   airflow.lock - Airflow, its providers and the light part of the package (containers/locks/airflow.in)
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
PLATFORM=x86_64-manylinux_2_35   # glibc of both bases (bookworm 2.36, Ubuntu 24.04 2.39); nvidia-pytriton needs 2.35
FIND_LINKS=()
for d in ${PIP_FIND_LINKS:-}; do FIND_LINKS+=(--find-links "$d"); done
# A fixed, relative name (not mktemp): uv writes the constraint's path into the locks' comments,
# and a random name would change every line of them on each run.
no_cpu_torch=containers/locks/.dev-without-cpu-torch.txt
trap 'rm -f "$no_cpu_torch"' EXIT
grep -v '^torch==' requirements/dev.lock > "$no_cpu_torch"

compile() {
  "$UV" pip compile -q --no-emit-find-links --python-platform "$PLATFORM" \
    --custom-compile-command "containers/lock.sh (make container-locks)" "$@"
}
compile requirements/base.in --python-version 3.11 -c requirements/dev.lock "${FIND_LINKS[@]}" -o containers/locks/stage.lock
compile requirements/base.in --python-version 3.11 -c "$no_cpu_torch" -o containers/locks/train.lock
compile containers/locks/triton.in --python-version 3.12 -c "$no_cpu_torch" -o containers/locks/triton.lock
compile containers/locks/airflow.in --python-version 3.11 -c requirements/dev.lock -o containers/locks/airflow.lock
grep -q '^torch==2.13.0+cpu$' containers/locks/stage.lock
grep -q '^torch==2.13.0$' containers/locks/train.lock
echo "container locks written: $(ls containers/locks/*.lock | tr '\n' ' ')"
