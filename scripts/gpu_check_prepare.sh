#!/usr/bin/env bash
# Builds what the GPU check carries to a GPU machine that has only PyTorch and no network, into
# .gpu-check/carry/ (ignored by git; carry it as the one path `.gpu-check/carry`):
#   - the full-year training set, made here by the project's own stages (ingest, validate, features build,
#     features training-set) in their own FLIGHTDECK_HOME, .gpu-check/home;
#   - the nvidia-pytriton wheel of requirements/dev.lock (its Triton server, python backend and stubs);
#   - when this machine has one, a libpython3.12.so.1.0 (xz) for the Triton stub, used there only when the
#     GPU machine's Python was installed without its shared library (components/ops/gpu_check.py).
# Re-runnable: what is already there is kept. Fails when the carry would exceed 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
# Dec 31 2013 has no weather rows: validation refuses that day, so the year ends on Dec 30 (as `make backtest`).
START=${GPU_CHECK_START:-2013-01-01}
END=${GPU_CHECK_END:-2013-12-30}
# The GPU machine's Python (the stub for it comes from the wheel; a libpython fallback must match it).
TARGET_PY=${GPU_CHECK_TARGET_PYTHON:-3.12}
CARRY=.gpu-check/carry
LIMIT_MIB=60
mkdir -p "$CARRY"

set_file="$CARRY/${START}_${END}.parquet"
if [ ! -s "$set_file" ]; then
  export FLIGHTDECK_HOME=$PWD/.gpu-check/home FLIGHTDECK_PROFILE=local FLIGHTDECK_RUNTIME=local
  unset FLIGHTDECK_FEAST_YAML
  log=.gpu-check/prepare.log
  echo "gpu-check-prepare: building the training set $START..$END in $FLIGHTDECK_HOME (log: $log)"
  : > "$log"
  for stage in ingest validate "features build" "features training-set"; do
    # shellcheck disable=SC2086  # "features build" is two words of the CLI
    if ! "$PY" -m components.ops.cli $stage --start "$START" --end "$END" >> "$log" 2>&1; then
      tail -5 "$log" >&2
      echo "gpu-check-prepare: \`flightdeck $stage --start $START --end $END\` failed (log: $log)" >&2
      exit 1
    fi
  done
  "$PY" - "$START" "$END" "$set_file" <<'PYEOF'
import sys
from pathlib import Path

from components.contracts import layout
from components.core.store import open_store

start, end, out = sys.argv[1:]
Path(out).write_bytes(open_store().read_bytes(layout.training_set_key(start, end)))
PYEOF
fi

version=$(sed -n 's/^nvidia-pytriton==\([^ ]*\).*/\1/p' requirements/dev.lock)
if ! ls "$CARRY"/nvidia_pytriton-"$version"-*.whl >/dev/null 2>&1; then
  echo "gpu-check-prepare: downloading nvidia-pytriton==$version (the wheel of the lock)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps "nvidia-pytriton==$version" -d "$CARRY"
fi

lib="$CARRY/libpython$TARGET_PY.so.1.0.xz"
if [ ! -s "$lib" ]; then
  # A shared libpython of the target's minor version and a patch release >= 3 (the GPU machine has 3.12.3;
  # an older one can lack symbols its stdlib extensions use). GPU_CHECK_LIBPYTHON names one directly.
  src=${GPU_CHECK_LIBPYTHON:-}
  if [ -z "$src" ]; then
    for py in "python$TARGET_PY" /usr/lib/google-cloud-sdk/platform/bundledpythonunix/bin/python3; do
      command -v "$py" >/dev/null 2>&1 || continue
      src=$("$py" - "$TARGET_PY" <<'PYEOF' 2>/dev/null || true
import sys, sysconfig
from pathlib import Path

want = tuple(int(p) for p in sys.argv[1].split("."))
name = sysconfig.get_config_var("INSTSONAME") or "-"
# LIBDIR is the build's; a relocated build (python-build-standalone) keeps it under its own prefix.
libs = [Path(d, name) for d in (sysconfig.get_config_var("LIBDIR") or "/", Path(sys.base_prefix, "lib"))]
if sys.version_info[:2] == want and sys.version_info[2] >= 3 and sysconfig.get_config_var("Py_ENABLE_SHARED"):
    print(next((lib for lib in libs if lib.is_file()), ""))
PYEOF
)
      [ -n "$src" ] && break
    done
  fi
  if [ -n "$src" ]; then
    echo "gpu-check-prepare: compressing $src (a fallback for the Triton stub)"
    xz -6 -T2 -c "$src" > "$lib.tmp" && mv "$lib.tmp" "$lib"
  else
    echo "gpu-check-prepare: no shared libpython$TARGET_PY (>= $TARGET_PY.3) here; the GPU machine's Python must have its own"
  fi
fi

total=$(du -cb "$CARRY"/* | tail -1 | cut -f1)
du -b "$CARRY"/* | awk '{printf "  %6.1f MiB  %s\n", $1 / 1048576, $2}'
awk -v t="$total" -v c="$CARRY" -v l="$LIMIT_MIB" 'BEGIN {printf "gpu-check-prepare: carry %s: %.1f MiB (limit %s MiB)\n", c, t / 1048576, l}' 
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu-check-prepare: $CARRY is over $LIMIT_MIB MiB: it would not travel to the GPU machine" >&2
  exit 1
fi
