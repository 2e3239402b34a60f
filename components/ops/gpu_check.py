"""gpu-check: the GPU path checked on one machine, with one JSON result.

On a CUDA machine it
1. trains the delay MLP (the train stage's parameters, split and seed) on CPU and on CUDA and compares
   their holdout ROC AUC (within AUC_TOLERANCE);
2. scores the holdout with the CUDA-trained TorchScript export on the GPU and on CPU (max |diff| within
   SCORE_TOLERANCE), with rows/s for both;
3. serves that model from the nvidia-pytriton wheel's Triton, python backend (backend_model.py) on a
   KIND_GPU instance, and checks readiness, parity with in-process scoring and rows/s (HTTP, binary tensors).
Without CUDA (`--device auto` on a CPU machine, or `--device cpu`) the same run is a dry run on CPU with a
KIND_CPU instance: that is how `make test` covers it (tests/model/test_gpu_check.py).

It needs torch, numpy, pandas, pyarrow, scikit-learn and the wheel (installed, or `--triton-wheel`, unpacked
here): no Feast, boto3 or tritonclient, so it runs on a machine that only has PyTorch
(scripts/gpu_check_device.sh). The production `gpu` target (platform pytorch_libtorch) needs the Triton
container's libtorch backend, which the wheel lacks: this check does not cover it. Exit code 1 when a check
fails, 2 on bad arguments. Results and how to run it: docs/BENCHMARKS.md, "GPU check".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from components.ops.gpu_check_triton import SCORE_TOLERANCE, best_rate, check_triton, unpack_wheel

AUC_TOLERANCE = 0.005  # holdout ROC AUC, CUDA-trained vs CPU-trained
NOT_COVERED = ("the production `gpu` target (platform pytorch_libtorch, components/serving/triton/repository.py): "
               "the nvidia-pytriton wheel's Triton has only the python backend; that target runs in the Triton "
               "container (containers/) in the cluster")


# -- inputs ---------------------------------------------------------------------------------------
def load_frame(path: Path):
    """The training set (a `features training-set` parquet), checked and ordered as the train stage does."""
    import pandas as pd

    from components.contracts import layout, schema
    from components.core.store import LocalStore
    from components.model.train import load_training_set

    data = path.read_bytes()
    # The window: from the file's name as the features stage writes it (<start>_<end>.parquet), else the UTC days.
    named = re.fullmatch(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})\.parquet", path.name)
    if named:
        start, end = named.groups()
    else:
        days = pd.to_datetime(pd.read_parquet(path, columns=["sched_dep_utc"])["sched_dep_utc"], utc=True)
        start, end = str(days.min().date()), str(days.max().date())
    for day in (start, end):
        schema.parse_day(day, "training set day")
    # Through the train stage's own loader (column and label checks, sort order), from a throwaway store.
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp))
        store.write_bytes(layout.training_set_key(start, end), data)
        frame, _, sha = load_training_set(store, start, end)
    return frame, {"path": str(path), "sha256": sha, "bytes": len(data), "rows": len(frame),
                   "window": [start, end]}


# -- 1. training on both devices ------------------------------------------------------------------
def train_on(device_name: str, params, frame, split):
    """fit() of the train stage on one device, seeded and deterministic; (TorchScript bytes, metrics)."""
    import torch

    from components.model.network import export_bytes
    from components.model.train import deterministic, fit

    note = None
    try:
        with deterministic(params.seed, params.threads):
            model, metrics = fit(params, frame, split, torch.device(device_name))
    except RuntimeError as exc:
        if "deterministic" not in str(exc):
            raise
        # An op without a deterministic CUDA kernel: record it, and train anyway to still compare the AUC.
        note = f"deterministic algorithms refused an op ({exc}); trained again with warn_only=True"
        with deterministic(params.seed, params.threads):
            torch.use_deterministic_algorithms(True, warn_only=True)
            model, metrics = fit(params, frame, split, torch.device(device_name))
    keep = ("epochs_run", "best_epoch", "val_auc", "seconds_per_epoch", "train_rows_per_second", "device", "threads")
    return export_bytes(model), {**{k: metrics[k] for k in keep}, "deterministic_note": note}


def holdout_auc(model_bytes: bytes, numeric, categorical, labels) -> float:
    import io

    import torch

    from components.model.fitting import auc
    from components.model.network import predict_arrays

    module = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    return auc(labels, predict_arrays(module, numeric, categorical))


# -- 2. scoring on both devices -------------------------------------------------------------------
def score_on_device(module, numeric, categorical, device, batch: int):
    """P(late) [N] on `device`, inputs copied there and the output back (both copies in the timing)."""
    import numpy as np
    import torch

    out = np.empty(len(numeric), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(numeric), batch):
            num = torch.from_numpy(numeric[i:i + batch]).to(device, non_blocking=False)
            cat = torch.from_numpy(categorical[i:i + batch]).to(device, non_blocking=False)
            out[i:i + batch] = module(num, cat)[:, 0].cpu().numpy()
    return out


# -- the run --------------------------------------------------------------------------------------
def versions(cuda: bool) -> dict:
    import numpy as np
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   gpu_count=torch.cuda.device_count(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            out["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            out["driver"] = None
    return out


def run_check(name: str, results: dict, fn, save) -> None:
    """One check: its result, or its error (and passed=False): a failing check does not stop the others.
    The result file is rewritten after each check, so a run cut short still tells how far it got."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # the result file must say what failed, and the remaining checks still run
        results[name] = {"passed": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=8)}
    results[name]["seconds"] = round(time.perf_counter() - t0, 2)
    save()
    print(f"gpu-check: {name}: {'passed' if results[name]['passed'] else 'FAILED'} "
          f"({results[name]['seconds']} s)", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m components.ops.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--training-set", type=Path, required=True, help="a `features training-set` parquet file")
    ap.add_argument("--out", type=Path, required=True, help="where the JSON result is written")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                    help="the device compared with CPU; auto: CUDA when available, else a dry run on CPU")
    ap.add_argument("--quick", action="store_true", help="2 epochs and 2 timed repeats: a smoke run (tests)")
    ap.add_argument("--max-epochs", type=int, default=None, help="override the train stage's max_epochs")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per rate (best kept; default 5)")
    ap.add_argument("--device-batch", type=int, default=65536, help="rows per forward pass on the device")
    ap.add_argument("--triton-wheel", type=Path, default=None,
                    help="the nvidia-pytriton wheel, unpacked into the work dir (default: the installed one)")
    ap.add_argument("--libpython", type=Path, default=None,
                    help="libpython3.X.so.1.0 (or .xz) for the Triton stub, used only when this Python has none")
    ap.add_argument("--work", type=Path, default=None, help="work dir: Triton's repository and log (default: temp)")
    args = ap.parse_args(argv)
    if not args.training_set.is_file():
        ap.error(f"--training-set {args.training_set} is not a file (make gpu-check-prepare builds it)")
    for name in ("triton_wheel", "libpython"):
        if getattr(args, name) and not getattr(args, name).is_file():
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not a file")
    from components.contracts.errors import StageFailed
    from components.model.train import pick_device

    try:
        args.device = pick_device(args.device)
    except StageFailed as exc:
        ap.error(str(exc))
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def check_training(params, frame, split, holdout, device, models: dict[str, bytes]) -> dict:
    """Train on CPU, then on the device (CPU again in the dry run); holdout AUC of each and their difference."""
    other = "cuda" if device.type == "cuda" else "cpu_again"
    out: dict = {"tolerance": AUC_TOLERANCE}
    for name in ("cpu", other):
        models[name], out[name] = train_on("cuda" if name == "cuda" else "cpu", params, frame, split)
        out[name]["holdout_auc"] = holdout_auc(models[name], *holdout)
    out["auc_difference"] = abs(out[other]["holdout_auc"] - out["cpu"]["holdout_auc"])
    out["identical_weights"] = models["cpu"] == models[other]
    out["passed"] = out["auc_difference"] <= AUC_TOLERANCE
    return out


def check_scoring(model_bytes: bytes, numeric, categorical, device, args, reference: dict) -> dict:
    """The holdout scored in-process on CPU (the project's path, one thread) and on the device; reference["cpu"]."""
    import io

    import numpy as np
    import torch

    from components.model.network import FORWARD_CHUNK, predict_arrays

    torch.set_num_threads(1)  # as the cpu target and batch scoring run it
    on_cpu = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    on_device = torch.jit.load(io.BytesIO(model_bytes), map_location=device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cpu_rate, reference["cpu"] = best_rate(lambda: predict_arrays(on_cpu, numeric, categorical),
                                           len(numeric), args.repeats)
    dev_rate, on_dev = best_rate(lambda: score_on_device(on_device, numeric, categorical, device, args.device_batch),
                                 len(numeric), args.repeats, sync)
    diff = float(np.max(np.abs(on_dev - reference["cpu"]))) if len(numeric) else 0.0
    return {"rows": len(numeric), "max_abs_diff": diff, "tolerance": SCORE_TOLERANCE,
            "cpu": {"rows_per_second": cpu_rate, "threads": 1, "rows_per_pass": FORWARD_CHUNK},
            "device": {"name": str(device), "rows_per_second": dev_rate, "rows_per_pass": args.device_batch,
                       "includes_copies": True},
            "passed": diff <= SCORE_TOLERANCE}


def main(argv: list[str] | None = None) -> int:
    # Deterministic cuBLAS needs this before its first handle (the train stage sets it too, at its first run).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    args = parse_args(argv)
    import numpy as np

    from components.contracts.signature import LABEL, to_tensors
    from components.contracts.stages import TrainParams
    from components.model.train import assign_split, time_split

    device, t_start = args.device, time.perf_counter()
    cuda = device.type == "cuda"
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    frame, inputs = load_frame(args.training_set)
    params = TrainParams(train_start=inputs["window"][0], train_end=inputs["window"][1], device=device.type)
    overrides = {"max_epochs": 2, "patience": 1} if args.quick else {}
    params = replace(params, **{**overrides, **({"max_epochs": args.max_epochs} if args.max_epochs else {})})
    bounds = time_split(frame["sched_dep_utc"], params.val_fraction, params.test_fraction)
    split = assign_split(frame, bounds)
    rows = frame[split == "test"]
    numeric, categorical = (np.ascontiguousarray(a) for a in to_tensors(rows))
    holdout = (numeric, categorical, rows[LABEL].to_numpy(dtype=np.float32))
    inputs.update(split=bounds, holdout_rows=len(rows))
    result = {"check": "gpu-check", "device": str(device), "dry_run": not cuda, "versions": versions(cuda),
              "inputs": inputs, "params": asdict(params), "not_covered": [NOT_COVERED], "checks": {}}
    checks, models, reference = result["checks"], {}, {}

    def save():
        result["passed"] = bool(checks) and all(c["passed"] for c in checks.values())
        result["seconds"] = round(time.perf_counter() - t_start, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str, allow_nan=True) + "\n")

    def triton():
        site = unpack_wheel(args.triton_wheel, work / "triton-site") if args.triton_wheel else None
        return check_triton(served, numeric, categorical, reference["cpu"], cuda, work, site, args.repeats,
                            args.libpython)

    run_check("training", checks, lambda: check_training(params, frame, split, holdout, device, models), save)
    # Scoring and serving use the model trained on the device (the CPU-trained one when that training failed).
    served = models.get("cuda") or models.get("cpu_again") or models.get("cpu")
    if served is None:
        checks["scoring"] = checks["triton"] = {"passed": False, "error": "no model: training failed"}
    else:
        run_check("scoring", checks, lambda: check_scoring(served, numeric, categorical, device, args, reference),
                  save)
        if "cpu" in reference:
            run_check("triton", checks, triton, save)
        else:
            checks["triton"] = {"passed": False, "error": "no in-process reference: the scoring check failed"}
    result["complete"] = True
    save()
    print(f"gpu-check: {'passed' if result['passed'] else 'FAILED'} on {device} "
          f"({'dry run, no CUDA' if not cuda else result['versions'].get('gpu')}) -> {args.out}", file=sys.stderr)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
