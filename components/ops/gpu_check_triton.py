"""The Triton part of the GPU check (components/ops/gpu_check.py): the model served by the nvidia-pytriton
wheel's Triton, python backend (backend_model.py) on a KIND_GPU instance (KIND_CPU in the dry run), checked
for readiness, parity with in-process scoring and rows/s over Triton's HTTP v2 protocol with binary tensors
(the standard library only: the GPU machine has no tritonclient)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCORE_TOLERANCE = 1e-4  # max |P(late) difference| per row, Triton vs in-process
MODEL_NAME = "delay_gpu_check"
ROWS_PER_REQUEST = 8192  # Triton requests (the cpu target's max_batch_size is 32768)
IN_FLIGHT = 4


def best_rate(fn, rows: int, repeats: int, sync=lambda: None) -> tuple[float, object]:
    """Rows/s of the fastest of `repeats` timed calls after one warm-up call, and the warm-up's result."""
    out = fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return rows / best, out


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """The wheel's files under dest (a site-packages-like folder), executable bits restored (zipfile drops them)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if not info.is_dir() and mode & stat.S_IXUSR:
                target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def triton_config(on_gpu: bool) -> str:
    """The cpu target's config as deploy writes it, with its instance group on KIND_GPU when asked."""
    from components.serving.triton import repository

    text = repository.config_pbtxt(MODEL_NAME, "cpu", [1])
    if on_gpu:
        if "kind: KIND_CPU" not in text:
            raise RuntimeError("the cpu target's config has no KIND_CPU instance group to put on the GPU")
        text = text.replace("kind: KIND_CPU", "kind: KIND_GPU")
    return text


class TritonHTTP:
    """Triton's HTTP/REST v2 inference protocol with binary tensors (no tritonclient needed)."""

    def __init__(self, port: int):
        self.port = port

    def get(self, path: str) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, (json.loads(body) if body else {})
        finally:
            conn.close()

    def wait_model_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.get(f"/v2/models/{MODEL_NAME}/versions/1/ready")[0] == 200:
                return True
            time.sleep(0.5)
        return False

    def infer(self, conn: http.client.HTTPConnection, numeric, categorical):
        import numpy as np

        from components.contracts import signature

        header = json.dumps({
            "inputs": [
                {"name": signature.INPUT_NUMERIC, "shape": list(numeric.shape), "datatype": "FP32",
                 "parameters": {"binary_data_size": numeric.nbytes}},
                {"name": signature.INPUT_CATEGORICAL, "shape": list(categorical.shape), "datatype": "INT64",
                 "parameters": {"binary_data_size": categorical.nbytes}},
            ],
            "outputs": [{"name": signature.OUTPUT, "parameters": {"binary_data": True}}],
        }).encode()
        conn.request("POST", f"/v2/models/{MODEL_NAME}/versions/1/infer", body=header + numeric.tobytes() + categorical.tobytes(),
                     headers={"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(len(header))})
        resp = conn.getresponse()
        body = resp.read()
        size = int(resp.getheader("Inference-Header-Content-Length") or len(body))
        meta = json.loads(body[:size])
        if resp.status != 200:
            raise RuntimeError(f"Triton refused the request ({resp.status}): {meta.get('error', meta)}")
        return np.frombuffer(body[size:], dtype=np.float32).reshape(-1).copy()

    def score(self, numeric, categorical):
        import numpy as np

        bounds = [(i, min(i + ROWS_PER_REQUEST, len(numeric))) for i in range(0, len(numeric), ROWS_PER_REQUEST)]
        out = np.empty(len(numeric), dtype=np.float32)

        def part(span):
            a, b = span
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                out[a:b] = self.infer(conn, numeric[a:b], categorical[a:b])
            finally:
                conn.close()

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(part, bounds))
        return out


def stub_missing_libraries(server) -> list[str]:
    """Shared libraries the python-backend stub would not find in the server's environment (ldd), [] if none."""
    from components.serving.triton.server import TritonDist

    stub = TritonDist.find(server.site_packages).stub
    try:
        out = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, timeout=30, env=server.environment())
    except (OSError, subprocess.TimeoutExpired):
        return []  # no ldd: the server's log will say what is missing
    return [line.split()[0] for line in out.stdout.splitlines() if "not found" in line]


def provide_libpython(server, fallback: Path | None, work: Path) -> dict:
    """The stub links libpython3.X.so.1.0; a Python built without it (Debian/Ubuntu's python3 without the
    libpython3.X package) leaves the stub unable to start. Then the fallback (a libpython of the same
    minor version, a later patch release; .xz allowed) is unpacked and put on LD_LIBRARY_PATH."""
    missing = [name for name in stub_missing_libraries(server) if name.startswith("libpython")]
    info = {"missing": missing, "fallback": None}
    if not missing:
        return info
    if fallback is None or not fallback.name.startswith(missing[0]):
        info["note"] = f"no fallback for {missing[0]} (--libpython): the stub cannot start"
        return info
    target = work / "libpython" / missing[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    if fallback.suffix == ".xz":
        import lzma

        target.write_bytes(lzma.decompress(fallback.read_bytes()))
    else:
        target.write_bytes(fallback.read_bytes())
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(target.parent), os.environ.get("LD_LIBRARY_PATH")]))
    info["fallback"] = str(fallback)
    return info


def check_triton(model_bytes: bytes, numeric, categorical, reference, on_gpu: bool, work: Path,
                 site: Path | None, repeats: int, libpython: Path | None = None) -> dict:
    import numpy as np

    from components.core.store import sha256_bytes
    from components.serving.triton import repository
    from components.serving.triton.server import TritonServer

    repo = work / "model_repository"
    model_dir = repo / MODEL_NAME / "1"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, data in repository.version_files("cpu", model_bytes).items():
        (model_dir / name).write_bytes(data)
    config = triton_config(on_gpu)
    (repo / MODEL_NAME / "config.pbtxt").write_text(config)
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    result = {"backend": "python (components/serving/triton/backend_model.py)",
              "instance_kind": "KIND_GPU" if on_gpu else "KIND_CPU", "model_sha256": sha256_bytes(model_bytes),
              "rows_per_request": ROWS_PER_REQUEST, "in_flight": IN_FLIGHT}
    server = TritonServer(str(repo), work_dir=work, load_models=(MODEL_NAME,), site_packages=site,
                          startup_timeout_s=180, **ports)
    result["log"] = str(work / "logs" / f"tritonserver-{ports['http_port']}.log")
    result["libpython"] = provide_libpython(server, libpython, work)
    with server:
        http_api = TritonHTTP(ports["http_port"])
        result["triton_version"] = http_api.get("/v2")[1].get("version")
        result["model_ready"] = http_api.wait_model_ready(120)
        if not result["model_ready"]:
            raise RuntimeError(f"model {MODEL_NAME} not ready in 120 s; log tail:\n{server.log_tail()}")
        rate, served = best_rate(lambda: http_api.score(numeric, categorical), len(numeric), repeats)
        log = Path(result["log"]).read_text(errors="replace")
    device_lines = [line.strip() for line in log.splitlines() if "model.pt runs on" in line]
    result.update({
        "rows": len(numeric),
        "rows_per_second": rate,
        "max_abs_diff": float(np.max(np.abs(served - reference))) if len(served) else 0.0,
        "tolerance": SCORE_TOLERANCE,
        "model_device_log": device_lines,
    })
    on_right_device = bool(device_lines) and all(("cuda" in line) == on_gpu for line in device_lines)
    result["passed"] = result["max_abs_diff"] <= SCORE_TOLERANCE and on_right_device
    return result
