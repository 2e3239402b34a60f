"""Serving through Triton vs in-process TorchScript, measured in one run on the same rows.

- batch scoring rows/s: Triton (python-backend cpu target, gRPC, large requests, several in
  flight) vs the same TorchScript file called in this process; same torch thread count (target >= 0.8x)
- single-row latency p50/p99 from the Python gRPC client (one request at a time)
- resident memory of the Triton process and its python-backend stubs
- the online path (`<model>_online`: Feast online store + BLS), SQLite and Redis online stores, from
  the Python client and from wrk on Triton's HTTP endpoint (benchmarks/serving_online.py)

The model is the real DelayModel architecture (components.model) with vocabularies and
statistics from synthetic rows, exported to TorchScript, registered and deployed with the
deploy stage: the path production takes, on the local profile.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.harness import Context, Result, peak_rss_mb
from benchmarks.serving_online import online_results

AREA = "serving"
THREADS = 1  # the cpu target's torch threads per instance (repository.TargetOptions)


def _model_bytes(numeric: np.ndarray, categorical: np.ndarray) -> bytes:
    import torch

    from components import model as m

    torch.manual_seed(0)
    vocabs = m.build_vocabularies(torch.from_numpy(categorical), min_count=1)
    mean, std = m.numeric_statistics(torch.from_numpy(numeric))
    return m.export_bytes(m.DelayModel(vocabs, mean, std))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(ctx: Context) -> list[Result]:
    import io

    import torch

    from components.deploy import deploy, parity_sample
    from components.registry import Registry
    from components.stages import DeployParams
    from components.store import open_store
    from components.triton import repository
    from components.triton.client import TritonClient
    from components.triton.server import TritonServer
    from tests.conftest import free_port

    rows = 50_000 if ctx.quick else 400_000
    repeats = 2 if ctx.quick else 3
    numeric, categorical = parity_sample(rows, seed=1)
    data = _model_bytes(numeric, categorical)

    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    os.environ.update({"FLIGHTDECK_HOME": str(ctx.home), "FLIGHTDECK_PROFILE": "local",
                       "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}",
                       "FLIGHTDECK_TRITON_ADMIN_KEY": "bench-key"})
    registry = Registry(open_store(), "flight_delay")
    version = registry.create_version({"model.pt": data}, {"blessed": True})
    registry.promote(version)

    # In-process baseline: the same file, the same thread count.
    torch.set_num_threads(THREADS)
    module = torch.jit.load(io.BytesIO(data)).eval()
    num_t, cat_t = torch.from_numpy(numeric), torch.from_numpy(categorical)

    def in_process(chunk: int):
        with torch.inference_mode():
            for i in range(0, rows, chunk):
                module(num_t[i:i + chunk], cat_t[i:i + chunk])

    # The baseline is in-process at its own best chunk size (large chunks pay for fresh
    # activation buffers, small ones for per-call overhead).
    local = {}
    for chunk in (1024, 4096, 16384, 65536):
        in_process(chunk)  # warm
        local[chunk] = _best(lambda c=chunk: in_process(c), repeats)
    best_chunk = min(local, key=local.get)
    t_local = local[best_chunk]
    # For reference: in-process with every core (Triton overlaps gRPC decoding with the model's thread).
    torch.set_num_threads(os.cpu_count() or 1)
    t_all_cores = _best(lambda: in_process(best_chunk), repeats)
    torch.set_num_threads(THREADS)

    _, uri = repository.prepare_repository()
    results: list[Result] = []
    with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                      admin_key="bench-key") as server:
        t0 = time.perf_counter()
        deployed = deploy(DeployParams(online=False))
        deploy_s = time.perf_counter() - t0
        with TritonClient(server.endpoints["grpc"]) as client:
            configs = {}
            for per_request, in_flight in ((1024, 4), (4096, 4), (8192, 4), (16384, 4)):
                client.score("flight_delay", version, numeric[:50_000], categorical[:50_000], per_request, in_flight)
                configs[(per_request, in_flight)] = _best(
                    lambda p=per_request, f=in_flight: client.score("flight_delay", version, numeric, categorical, p, f),
                    repeats)
            served = client.score("flight_delay", version, numeric[:20_000], categorical[:20_000], 8192, 4)
            with torch.inference_mode():
                expected = module(num_t[:20_000], cat_t[:20_000])[:, 0].numpy()
            max_diff = float(np.abs(served - expected).max())

            one_n, one_c = numeric[:1], categorical[:1]
            for _ in range(50):
                client.infer("flight_delay", version, one_n, one_c)
            lat = []
            n_single = 300 if ctx.quick else 2000
            for i in range(n_single):
                j = i % rows
                t = time.perf_counter()
                client.infer("flight_delay", version, numeric[j:j + 1], categorical[j:j + 1])
                lat.append(time.perf_counter() - t)
            lat_ms = np.array(lat) * 1000
            rss_mb = server.rss_bytes() / 2**20
            rss_server_mb = server.rss_bytes(include_children=False) / 2**20

    results += online_results(ctx, ports, version)
    local_rps = rows / t_local
    best_cfg = min(configs, key=configs.get)
    for (per_request, in_flight), secs in configs.items():
        results.append(Result(
            AREA, f"batch scoring through Triton gRPC, {per_request}-row requests, {in_flight} in flight",
            rows / secs, "rows/s", f"in-process TorchScript, same rows and threads, best chunk ({best_chunk})", local_rps,
            target=">= 0.8x in-process" if (per_request, in_flight) == best_cfg else "",
            notes=f"{rows:,} rows, DelayModel (128-64 MLP + embeddings), torch threads {THREADS}; "
                  f"max |Triton - in-process| {max_diff:.1e}; in-process rows/s by chunk: "
                  + ", ".join(f"{c}: {rows / t:,.0f}" for c, t in local.items())
                  + f"; in-process on all {os.cpu_count()} cores: {rows / t_all_cores:,.0f}",
            peak_rss_mb=peak_rss_mb()))
    results += [
        Result(AREA, "single-row latency p50 (Python gRPC client, sequential)", float(np.percentile(lat_ms, 50)),
               "ms", higher_is_better=False, notes=f"{n_single} requests"),
        Result(AREA, "single-row latency p99 (Python gRPC client, sequential)", float(np.percentile(lat_ms, 99)),
               "ms", higher_is_better=False, target="p99 <= 10 ms (model only; the online path adds Feast)",
               notes=f"{n_single} requests; requests/s one at a time {1000 / lat_ms.mean():.0f}"),
        Result(AREA, "Triton resident memory (server + python-backend stub)", rss_mb, "MB", higher_is_better=False,
               notes=f"tritonserver alone {rss_server_mb:.0f} MB; one model version loaded"),
        Result(AREA, "deploy (publish, load, ready, parity, record)", deploy_s, "s", higher_is_better=False,
               notes=f"first deploy; parity max abs diff {deployed['parity_max_abs_diff']:.1e}"),
    ]
    return results
