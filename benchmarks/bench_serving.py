"""Serving through Triton vs in-process TorchScript, measured in one run on the same rows.

- batch scoring rows/s: Triton (python-backend cpu target, gRPC, large requests, several in
  flight) vs the same TorchScript file called in this process; same torch thread count (target >= 0.8x)
- single-row latency p50/p99 from the Python gRPC client (one request at a time)
- resident memory of the Triton process and its python-backend stubs
- the online path (`<model>_online`: Feast online store + BLS), SQLite and Redis online stores, from
  the Python client and from wrk on Triton's HTTP endpoint (benchmarks/serving_online.py)

The model is the real DelayModel architecture (components.model.network) with vocabularies and
statistics from synthetic rows, exported to TorchScript, registered and deployed with the
deploy stage: the path production takes, on the local profile.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks import serving_batch
from benchmarks.harness import Context, Result, peak_rss_mb
from benchmarks.serving_online import online_results

AREA = "serving"
THREADS = serving_batch.THREADS


def run(ctx: Context) -> list[Result]:
    from components.serving.parity import parity_sample
    from tests.conftest import free_port

    rows = 50_000 if ctx.quick else 400_000
    repeats = 2 if ctx.quick else 3
    numeric, categorical = parity_sample(rows, seed=1)

    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    os.environ.update({"FLIGHTDECK_HOME": str(ctx.home), "FLIGHTDECK_PROFILE": "local",
                       "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}",
                       "FLIGHTDECK_TRITON_ADMIN_KEY": "bench-key"})
    latency: dict = {}

    def single_rows(server, client, version):
        """Single-row latency and memory, on the server the batch comparison used."""
        for _ in range(50):
            client.infer("flight_delay", version, numeric[:1], categorical[:1])
        lat = []
        n_single = 300 if ctx.quick else 2000
        for i in range(n_single):
            j = i % rows
            t = time.perf_counter()
            client.infer("flight_delay", version, numeric[j:j + 1], categorical[j:j + 1])
            lat.append(time.perf_counter() - t)
        latency.update(ms=np.array(lat) * 1000, n=n_single, version=version, rss_mb=server.rss_bytes() / 2**20,
                       rss_server_mb=server.rss_bytes(include_children=False) / 2**20)

    # In-process and Triton timed in alternation (benchmarks/serving_batch.py), best of `repeats` rounds.
    batch = serving_batch.measure(numeric, categorical, repeats, ports, keep_server=single_rows)
    results: list[Result] = online_results(ctx, ports, latency["version"])
    best_cfg, best_chunk = batch.best_config, batch.best_chunk
    local_rps = batch.in_process[best_chunk]
    for (per_request, in_flight), rps in batch.triton.items():
        st = batch.stats.get((per_request, in_flight), {})
        results.append(Result(
            AREA, f"batch scoring through Triton gRPC, {per_request}-row requests, {in_flight} in flight",
            rps, "rows/s", f"in-process TorchScript, same rows and threads, best chunk ({best_chunk})", local_rps,
            target=">= 0.8x in-process" if (per_request, in_flight) == best_cfg else "",
            notes=f"{rows:,} rows, DelayModel as shipped (5 x 128-64 MLP + a linear head, embeddings), torch threads {THREADS}, forward passes of "
                  f"{serving_batch.forward_chunk()} rows; max |Triton - in-process| {batch.max_abs_diff:.1e}; "
                  "in-process rows/s by chunk: " + ", ".join(f"{c}: {v:,.0f}" for c, v in batch.in_process.items())
                  + f"; in-process on all {os.cpu_count()} cores: {batch.all_cores_rps:,.0f}; from CPU time alone "
                  f"(stub on one core, client + server on the other): {batch.triton_cpu_bound[(per_request, in_flight)]:,.0f}"
                  f" vs in-process {max(batch.in_process_cpu.values()):,.0f} rows/s; Triton per request: queue "
                  f"{st.get('queue_ms')} ms, compute {st.get('compute_infer_ms')} ms, {st.get('rows_per_execution')} "
                  f"rows per execution; cores busy {st.get('cores_busy')}",
            peak_rss_mb=peak_rss_mb()))
    lat_ms = latency["ms"]
    results += [
        Result(AREA, "single-row latency p50 (Python gRPC client, sequential)", float(np.percentile(lat_ms, 50)),
               "ms", higher_is_better=False, notes=f"{latency['n']} requests"),
        Result(AREA, "single-row latency p99 (Python gRPC client, sequential)", float(np.percentile(lat_ms, 99)),
               "ms", higher_is_better=False, target="p99 <= 10 ms (model only; the online path adds Feast)",
               notes=f"{latency['n']} requests; requests/s one at a time {1000 / lat_ms.mean():.0f}"),
        Result(AREA, "Triton resident memory (server + python-backend stub)", latency["rss_mb"], "MB",
               higher_is_better=False,
               notes=f"tritonserver alone {latency['rss_server_mb']:.0f} MB; one model version loaded"),
        Result(AREA, "deploy (publish, load, ready, parity, record)", batch.deploy_s, "s", higher_is_better=False,
               notes=f"first deploy; parity max abs diff {batch.deployed['parity_max_abs_diff']:.1e}"),
    ]
    return results
