"""The GPU check (components/ops/gpu_check.py) run as the GPU machine runs it, here as its dry run: on a machine
without CUDA both trainings and both scorings are on CPU, and Triton's python backend serves on KIND_CPU. The
training set is the model tests' two weeks of real flights; --quick trains 2 epochs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from components.contracts import layout
from components.ops import gpu_check_triton
from tests.conftest import REPO
from tests.model.conftest import WINDOW

NO_CUDA = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the same test on a machine with a GPU


@pytest.fixture(scope="module")
def dry_run(model_home, tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu-check")
    training_set = work / f"{WINDOW[0]}_{WINDOW[1]}.parquet"
    training_set.write_bytes(model_home["store"].read_bytes(layout.training_set_key(*WINDOW)))
    out = work / "result" / "gpu_check.json"
    # The dry run is the CPU path wherever the suite runs: CUDA hidden, so --device auto picks the CPU.
    proc = subprocess.run([sys.executable, "-m", "components.ops.gpu_check", "--device", "auto", "--quick",
                           "--training-set", str(training_set), "--out", str(out), "--work", str(work / "work")],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=NO_CUDA)
    return proc, out


def test_dry_run_writes_one_passing_result(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["passed"] and result["complete"]
    assert set(result["checks"]) == {"training", "scoring", "triton"}
    assert all(check["passed"] for check in result["checks"].values())
    assert result["inputs"]["window"] == list(WINDOW) and result["inputs"]["holdout_rows"] > 0
    assert result["params"]["max_epochs"] == 2 and result["params"]["seed"] == 13
    assert result["versions"]["torch"] and "pytorch_libtorch" in result["not_covered"][0]


def test_training_twice_on_cpu_gives_the_same_model(dry_run):
    """Both runs on CPU with one seed: the train stage's determinism makes them bit-identical, AUC difference 0."""
    result = json.loads(dry_run[1].read_text())
    assert result["dry_run"] is True
    training = result["checks"]["training"]
    assert training["identical_weights"] is True and training["auc_difference"] == 0.0
    assert training["cpu"]["holdout_auc"] == training["cpu_again"]["holdout_auc"] > 0.5
    assert training["cpu"]["device"] == "cpu" and training["cpu"]["deterministic_note"] is None


def test_scoring_and_triton_agree_with_in_process_scoring(dry_run):
    result = json.loads(dry_run[1].read_text())
    scoring, triton = result["checks"]["scoring"], result["checks"]["triton"]
    assert scoring["rows"] == triton["rows"] == result["inputs"]["holdout_rows"]
    assert scoring["max_abs_diff"] <= 1e-4 and triton["max_abs_diff"] <= 1e-4
    assert scoring["cpu"]["rows_per_second"] > 0 and scoring["device"]["rows_per_second"] > 0
    assert triton["rows_per_second"] > 0 and triton["model_ready"] and triton["triton_version"]
    on_gpu = not result["dry_run"]
    assert triton["instance_kind"] == ("KIND_GPU" if on_gpu else "KIND_CPU")
    # backend_model.py says where model.pt runs: the instance's device.
    assert triton["model_device_log"] and all(("cuda" in line) == on_gpu for line in triton["model_device_log"])
    assert triton["libpython"]["missing"] == []


def test_gpu_config_is_the_cpu_target_on_a_gpu_instance():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    gpu = text_format.Parse(gpu_check_triton.triton_config(on_gpu=True), mc.ModelConfig())
    cpu = text_format.Parse(gpu_check_triton.triton_config(on_gpu=False), mc.ModelConfig())
    assert gpu.backend == cpu.backend == "python"
    assert [g.kind for g in gpu.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert [g.kind for g in cpu.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    gpu.ClearField("instance_group")
    cpu.ClearField("instance_group")
    assert gpu == cpu


def test_unpacked_wheel_keeps_its_executables_executable(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, mode in (("pkg/bin/server", 0o100755), ("pkg/lib.so", 0o100644)):
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, b"x")
    site = gpu_check_triton.unpack_wheel(wheel, tmp_path / "site")
    assert (site / "pkg/bin/server").stat().st_mode & stat.S_IXUSR
    assert not (site / "pkg/lib.so").stat().st_mode & stat.S_IXUSR


def test_cuda_asked_for_without_cuda_is_a_clear_refusal(tmp_path):
    training_set = tmp_path / "set.parquet"
    training_set.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "components.ops.gpu_check", "--device", "cuda", "--training-set",
                           str(training_set), "--out", str(tmp_path / "r.json")], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=NO_CUDA)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "r.json").exists()
