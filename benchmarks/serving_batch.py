"""The batch half of bench_serving, alone and quick: Triton (cpu target) vs in-process TorchScript rows/s.

  .venv/bin/python -m benchmarks.serving_batch [--rows 200000] [--repeats 3] [--instances 1]
      [--forward-chunk 4096] [--queue-delay-us 200] [--config 8192x4 ...] [--backend-file old_model.py]

Same rows, same torch threads, the same DelayModel file, deployed with the real deploy stage onto a
real local Triton. The in-process baseline is taken at its best chunk size (as bench_serving does);
each Triton configuration is per-request rows x requests in flight. Triton's own statistics (queue and
compute time per request and per execution) say where the Triton side's time goes. Prints one JSON
object; bench_serving uses `measure` for its table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from components.model.card import register_unevaluated

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "the serving benchmark's model (benchmarks/serving_batch.py), not evaluated"

MODEL = "flight_delay"
THREADS = 1  # the cpu target's torch threads per instance (repository.TargetOptions)
IN_PROCESS_CHUNKS = (1024, 4096, 16384, 65536)
CONFIGS = ((1024, 4), (4096, 4), (8192, 4), (16384, 4))


@dataclass
class BatchRun:
    rows: int
    in_process: dict[int, float]  # rows/s by chunk
    triton: dict[tuple[int, int], float]  # rows/s by (rows per request, in flight)
    max_abs_diff: float
    all_cores_rps: float = 0.0
    stats: dict[tuple[int, int], dict] = field(default_factory=dict)  # Triton's statistics per config
    deploy_s: float = 0.0
    deployed: dict = field(default_factory=dict)
    # From CPU time alone, what a quiet machine would give: in-process rows per CPU second, and Triton's rows
    # per second with the stub on one core and client + server on the other (several requests in flight).
    in_process_cpu: dict[int, float] = field(default_factory=dict)
    triton_cpu_bound: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def cpu_ratio(self) -> float:
        return max(self.triton_cpu_bound.values()) / max(self.in_process_cpu.values())

    @property
    def best_chunk(self) -> int:
        return max(self.in_process, key=self.in_process.get)

    @property
    def best_config(self) -> tuple[int, int]:
        return max(self.triton, key=self.triton.get)

    @property
    def ratio(self) -> float:
        return self.triton[self.best_config] / self.in_process[self.best_chunk]

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "in_process_rows_per_s": {str(k): round(v) for k, v in self.in_process.items()},
            "best_chunk": self.best_chunk, "in_process_all_cores": round(self.all_cores_rps),
            "triton_rows_per_s": {f"{p}x{f}": round(v) for (p, f), v in self.triton.items()},
            "best_config": "x".join(map(str, self.best_config)), "ratio": round(self.ratio, 3),
            "max_abs_diff": self.max_abs_diff,
            "in_process_cpu_rows_per_s": {str(k): round(v) for k, v in self.in_process_cpu.items()},
            "triton_cpu_bound_rows_per_s": {f"{p}x{f}": round(v) for (p, f), v in self.triton_cpu_bound.items()},
            "cpu_ratio": round(self.cpu_ratio, 3),
            "triton_stats": {f"{p}x{f}": s for (p, f), s in self.stats.items()},
        }


def forward_chunk() -> int:
    """Rows per forward pass the deploy writes into the cpu target's config."""
    from components.serving.triton import repository

    return repository.forward_chunk(repository.DEFAULT_OPTIONS)


def model_bytes(numeric: np.ndarray, categorical: np.ndarray) -> bytes:
    """The real DelayModel architecture, vocabularies and statistics from the rows, as TorchScript."""
    import torch

    from components.model import network as m
    torch.manual_seed(0)
    vocabs = m.build_vocabularies(torch.from_numpy(categorical), min_count=1)
    mean, std = m.numeric_statistics(torch.from_numpy(numeric))
    return m.export_bytes(m.DelayModel(vocabs, mean, std, **m.shipped_architecture()))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _stats(client, version: int) -> dict:
    """Triton's cumulative inference statistics of the model version (counts and nanoseconds)."""
    got = client.client.get_inference_statistics(MODEL, str(version), as_json=True)
    s = got["model_stats"][0]
    inf = s["inference_stats"]
    return {
        "requests": int(inf["success"].get("count", 0)), "executions": int(s.get("execution_count", 0)),
        "inferences": int(s.get("inference_count", 0)),
        **{k: int(inf[k].get("ns", 0)) for k in ("success", "queue", "compute_input", "compute_infer", "compute_output")},
    }


def _stats_delta(before: dict, after: dict) -> dict:
    d = {k: after[k] - before[k] for k in after}
    n, e = max(d["requests"], 1), max(d["executions"], 1)
    return {
        "requests": d["requests"], "executions": d["executions"],
        "rows_per_execution": round(d["inferences"] / e),
        "request_ms": round(d["success"] / n / 1e6, 3), "queue_ms": round(d["queue"] / n / 1e6, 3),
        "compute_input_ms": round(d["compute_input"] / n / 1e6, 3),
        "compute_infer_ms": round(d["compute_infer"] / n / 1e6, 3),
        "compute_output_ms": round(d["compute_output"] / n / 1e6, 3),
    }


def _runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat)."""
    from pathlib import Path

    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def _cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: this process (the client, or the in-process model), tritonserver, its stubs;
    and the stubs' seconds spent waiting for a CPU while runnable (another process had it)."""
    import psutil

    server = psutil.Process(server_pid)
    out = {"client": sum(psutil.Process().cpu_times()[:2]), "tritonserver": sum(server.cpu_times()[:2]), "stubs": 0.0,
           "stubs_waiting": 0.0}
    for child in server.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out["stubs"] += sum(child.cpu_times()[:2])
            out["stubs_waiting"] += _runqueue_wait_s(child.pid)
    return out


def measure(numeric: np.ndarray, categorical: np.ndarray, repeats: int, ports: dict, *, configs=CONFIGS,
            options=None, all_cores: bool = True, keep_server=None) -> BatchRun:
    """Register and deploy the model (the real stage) on a fresh local Triton, then time both sides.

    The two sides are timed in alternation, `repeats` rounds, best of each kept: on a shared machine
    a burst of other work then hits both alike. Needs FLIGHTDECK_HOME, FLIGHTDECK_PROFILE=local,
    FLIGHTDECK_TRITON_URL and FLIGHTDECK_TRITON_ADMIN_KEY set. keep_server: called with
    (server, client, version) before the server stops (bench_serving's latency part).
    """
    import torch

    from components.contracts.stages import DeployParams
    from components.core.store import open_store
    from components.model.registry import Registry
    from components.serving.deploy import deploy
    from components.serving.triton import repository
    from components.serving.triton.client import TritonClient
    from components.serving.triton.server import TritonServer

    data = model_bytes(numeric, categorical)
    registry = Registry(open_store(), MODEL)
    version = register_unevaluated(registry, {"model.pt": data}, {"blessed": True}, HAND_MADE)
    registry.promote(version)
    rows = len(numeric)
    module = torch.jit.load(io.BytesIO(data)).eval()
    num_t, cat_t = torch.from_numpy(numeric), torch.from_numpy(categorical)

    def in_process(chunk: int):
        with torch.inference_mode():
            for i in range(0, rows, chunk):
                module(num_t[i:i + chunk], cat_t[i:i + chunk])

    _, uri = repository.prepare_repository()
    saved, threads = repository.DEFAULT_OPTIONS, torch.get_num_threads()
    if options is not None:
        repository.DEFAULT_OPTIONS = options
    local = {c: float("inf") for c in IN_PROCESS_CHUNKS}
    local_cpu = dict(local)
    remote_cpu = {c: (float("inf"), float("inf")) for c in configs}
    remote = {c: float("inf") for c in configs}
    cpu: dict = {}
    all_cores_s = float("inf")
    try:
        with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key=os.environ["FLIGHTDECK_TRITON_ADMIN_KEY"]) as server:
            t0 = time.perf_counter()
            deployed = deploy(DeployParams(online=False, target="cpu"))
            deploy_s = time.perf_counter() - t0
            with TritonClient(server.endpoints["grpc"]) as client:
                torch.set_num_threads(THREADS)
                for chunk in IN_PROCESS_CHUNKS:
                    in_process(chunk)  # warm
                for per_request, in_flight in configs:  # warm
                    client.score(MODEL, version, numeric[:50_000], categorical[:50_000], per_request, in_flight)
                stats = {}
                for _ in range(repeats):
                    torch.set_num_threads(THREADS)
                    for chunk in IN_PROCESS_CHUNKS:
                        t0 = time.thread_time()
                        local[chunk] = min(local[chunk], _best(lambda c=chunk: in_process(c), 1))
                        local_cpu[chunk] = min(local_cpu[chunk], time.thread_time() - t0)
                    for cfg in configs:
                        s0, c0 = _stats(client, version), _cpu_split(server.pid)
                        secs = _best(lambda p=cfg[0], f=cfg[1]: client.score(MODEL, version, numeric, categorical, p, f), 1)
                        c1 = _cpu_split(server.pid)
                        used = {k: c1[k] - c0[k] for k in c1}
                        # CPU seconds of the model's stub, and of the rest (client + server), fewest seen
                        remote_cpu[cfg] = (min(remote_cpu[cfg][0], used["stubs"]),
                                           min(remote_cpu[cfg][1], used["client"] + used["tritonserver"]))
                        if secs < remote[cfg]:
                            remote[cfg] = secs
                            stats[cfg] = _stats_delta(s0, _stats(client, version))
                            cpu[cfg] = {k: round(v / secs, 2) for k, v in used.items()}  # cores busy, on average
                    if all_cores:  # for reference: in-process on every core
                        torch.set_num_threads(os.cpu_count() or 1)
                        best_chunk = min(local, key=local.get)
                        all_cores_s = min(all_cores_s, _best(lambda c=best_chunk: in_process(c), 1))
                torch.set_num_threads(THREADS)
                served = client.score(MODEL, version, numeric[:20_000], categorical[:20_000], 8192, 4)
                with torch.inference_mode():
                    expected = module(num_t[:20_000], cat_t[:20_000])[:, 0].numpy()
                max_diff = float(np.abs(served - expected).max())
                if keep_server is not None:
                    keep_server(server, client, version)
    finally:
        repository.DEFAULT_OPTIONS = saved
        torch.set_num_threads(threads)
    for cfg, busy in cpu.items():
        stats[cfg]["cores_busy"] = busy
        # What a quiet machine would give, from CPU time alone: the stub on one core, client and server
        # on the other (they overlap, several requests being in flight), against in-process CPU time.
        stats[cfg]["stub_cpu_rows_per_s"] = round(rows / remote_cpu[cfg][0])
    return BatchRun(rows, {c: rows / s for c, s in local.items()}, {c: rows / s for c, s in remote.items()},
                    max_diff, rows / all_cores_s if all_cores else 0.0, stats, deploy_s, deployed,
                    {c: rows / t for c, t in local_cpu.items()}, {c: rows / max(t) for c, t in remote_cpu.items()})


def main(argv=None) -> int:
    from components.serving.parity import parity_sample
    from components.serving.triton import repository
    from tests.conftest import free_port

    ap = argparse.ArgumentParser(prog="python -m benchmarks.serving_batch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--instances", type=int, default=None, help="cpu target instance count (default: TargetOptions)")
    ap.add_argument("--forward-chunk", type=int, default=None, help="rows per forward pass in the backend")
    ap.add_argument("--queue-delay-us", type=int, default=None)
    ap.add_argument("--config", action="append", default=[], help="ROWSxIN_FLIGHT, repeatable")
    ap.add_argument("--backend-file", help="another model.py for the cpu target (an A/B against an older backend)")
    args = ap.parse_args(argv)
    if args.backend_file:
        from pathlib import Path

        repository.BACKEND_MODEL = Path(args.backend_file)
    configs = tuple(tuple(int(x) for x in c.split("x")) for c in args.config) or CONFIGS
    changes = {k: v for k, v in {"instances": args.instances, "forward_chunk": args.forward_chunk,
                                 "max_queue_delay_us": args.queue_delay_us}.items() if v is not None}
    import dataclasses

    options = dataclasses.replace(repository.DEFAULT_OPTIONS, **changes) if changes else None
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    home = tempfile.mkdtemp(prefix="fd-bench-batch-")
    os.environ.update({"FLIGHTDECK_HOME": home, "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local",
                       "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}", "FLIGHTDECK_TRITON_ADMIN_KEY": "bench-key"})
    numeric, categorical = parity_sample(args.rows, seed=1)
    run = measure(numeric, categorical, args.repeats, ports, configs=configs, options=options)
    out = run.as_dict()
    out["options"] = dataclasses.asdict(options or repository.DEFAULT_OPTIONS)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
