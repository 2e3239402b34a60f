#!/usr/bin/env bash
# Runs ON the GPU machine: a copy of this repo with .gpu-check/carry/ beside it (scripts/gpu_check_prepare.sh
# builds it), a Python with PyTorch (CUDA), numpy, pandas, pyarrow and scikit-learn, no network.
# Unpacks nothing into that Python: the wheel goes to a temp dir. Writes into $OUT: gpu_check.json (the
# result, rewritten after each check), gpu_check.log (the run's output), the Triton server log, nvidia-smi.txt.
# Exit code: the check's (0 all passed, 1 a check failed, 2 no CUDA or bad inputs).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
CARRY=${GPU_CHECK_CARRY:-.gpu-check/carry}
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}  # cpu: the same run without a GPU (how this script is tried on a CPU machine)
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")

{ nvidia-smi; echo; nvidia-smi -L; } > "$OUT/nvidia-smi.txt" 2>&1 || true
wheel=$(ls "$CARRY"/nvidia_pytriton-*.whl 2>/dev/null | head -1)
training_set=$(ls "$CARRY"/*.parquet 2>/dev/null | head -1)
libpython=$(ls "$CARRY"/libpython*.so.1.0.xz 2>/dev/null | head -1)
if [ -z "$wheel" ] || [ -z "$training_set" ]; then
  echo "gpu_check_device: $CARRY lacks the wheel or the training set (carry .gpu-check/carry; make gpu-check-prepare)" >&2
  ls -la "$CARRY" >&2
  exit 2
fi
echo "gpu_check_device: $("$PY" --version) at $(command -v "$PY"), inputs: $(du -sh "$CARRY" | cut -f1)"

"$PY" -m components.ops.gpu_check --device "$DEVICE" --training-set "$training_set" --triton-wheel "$wheel" \
  ${libpython:+--libpython "$libpython"} --work "$work" --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
for f in "$work"/logs/tritonserver-*.log; do [ -f "$f" ] && cp "$f" "$OUT/"; done
echo "gpu_check_device: exit $rc; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
