"""The online path of bench_serving: one flight per request through `<model>_online` (Feast online store
+ BLS to the serving version inside Triton), on the real flights and features of one day, with that
day's outcomes pushed (push-outcomes, the whole day), so each request's lookup reads the pushed
day-so-far views at its prediction time as well as the materialized daily views (issue 16, item 7).

Measured for each online store, the local one (SQLite) and the production one (Redis, on a real
redis-server on loopback, configured with the aws profile's online-store section):
  - the Python gRPC client, one request at a time: p50/p99 (Redis is compared with SQLite)
  - wrk, a load generator outside the project, on Triton's HTTP endpoint: p50/p99 with one
    connection, requests/s with several connections
  - where a request's time goes: Triton's own per-model counters (the online model's execute, the
    BLS'd scoring model) and the same Feast lookup and tensor building timed in this process
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.harness import Context, Result
from benchmarks.loadgen import WrkRun, ensure_wrk, kserve_infer_body, run_wrk

AREA = "serving"
DAY = "2013-01-02"
MODEL = "flight_delay"


@dataclass
class StoreRun:
    """What one online store's run measured."""

    store: str
    client_ms: np.ndarray  # Python gRPC client, sequential
    sdk_ms: np.ndarray  # Feast lookup alone (components.features.retrieval.online_features), in this process
    tensors_ms: np.ndarray  # row -> tensors (components.serving.triton.online.row_tensors), in this process
    frame_tensors_ms: np.ndarray  # the same through a one-row DataFrame (what the online model did before)
    server: dict  # per-request means from Triton's counters during the client run
    rss_mb: float
    wrk: dict[int, WrkRun] = field(default_factory=dict)  # by connection count
    wrk_cpu_ms_per_request: dict[int, float] = field(default_factory=dict)  # Triton's CPU (server + stubs)
    pushed: str = ""  # what push-outcomes wrote before the run, and how many sampled lookups found it

    def pct(self, q: float, which: str = "client_ms") -> float:
        return float(np.percentile(getattr(self, which), q))


def _prepare(ctx: Context) -> list[dict]:
    """One real day ingested, validated and turned into feature tables; its flights as online requests."""
    import pandas as pd

    from components.contracts.stages import FeaturesBuildParams, IngestParams, ValidateParams
    from components.core.store import open_store
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build

    store = open_store()
    ingest(IngestParams(start=DAY, end=DAY), store)
    validate(ValidateParams(start=DAY, end=DAY), store)
    build(FeaturesBuildParams(start=DAY, end=DAY), store)
    keys = [k for k in store.list(f"validated/flights/date={DAY}/") if k.endswith(".parquet")]
    flights = pd.concat([store.read_parquet(k) for k in keys], ignore_index=True)
    return [{"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
             "tailnum": f.tailnum if isinstance(f.tailnum, str) else None, "distance": float(f.distance),
             "sched_dep_utc": pd.Timestamp(f.sched_dep_utc).isoformat()} for f in flights.itertuples()]


def _counters(metrics_url: str) -> dict[tuple[str, str], float]:
    """Triton's nv_inference_* counters per (metric, model), summed over versions."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    out: dict[tuple[str, str], float] = {}
    for metric, model, value in re.findall(r'^(nv_inference_\w+)\{model="([^"]+)",[^}]*\}\s+(\S+)$', text, re.M):
        out[(metric, model)] = out.get((metric, model), 0.0) + float(value)
    return out


def _per_request(before: dict, after: dict) -> dict:
    """Mean microseconds per request of each Triton stage, for the online model and the BLS'd model."""
    out = {}
    for model in (f"{MODEL}_online", MODEL):
        n = after.get(("nv_inference_request_success", model), 0) - before.get(("nv_inference_request_success", model), 0)
        out[model] = {"requests": int(n)}
        for stage in ("request", "queue", "compute_input", "compute_infer", "compute_output"):
            key = (f"nv_inference_{stage}_duration_us", model)
            out[model][stage] = (after.get(key, 0) - before.get(key, 0)) / n / 1000 if n else float("nan")
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants (Triton's server and stubs)."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _time_each(fn, items: list, n: int) -> np.ndarray:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(items[i % len(items)])
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def _measure_store(store_name: str, ctx: Context, ports: dict, version: int, requests: list[dict],
                   wrk: str | None) -> StoreRun:
    """Materialize this store, start Triton with the online model, measure client, wrk and breakdown."""
    import pandas as pd

    from components.contracts import signature
    from components.contracts.stages import DeployParams, MaterializeParams, PushOutcomesParams
    from components.features import feast_repo, retrieval
    from components.features.materialize import materialize
    from components.features.push import push_outcomes
    from components.serving.deploy import deploy
    from components.serving.triton import repository
    from components.serving.triton.client import TritonClient
    from components.serving.triton.online import online_name, predict_one, row_tensors
    from components.serving.triton.server import TritonServer

    n = 300 if ctx.quick else 1500
    wrk_s = 3 if ctx.quick else 10
    materialize(MaterializeParams(end=DAY))
    if feast_repo.feature_store().config.online_store.type != store_name.lower():
        raise RuntimeError(f"expected the {store_name} online store, Feast has "
                           f"{feast_repo.feature_store().config.online_store.type}")
    pushed = push_outcomes(PushOutcomesParams(date=DAY))
    # The lookups must really find the pushed rows, or the benchmark would time empty reads.
    sample = [retrieval.online_features(r) for r in requests[:: max(1, len(requests) // 100)]]
    found = sum(all(not np.isnan(row[c]) for c in ("origin_deps_so_far", "origin_waiting_so_far")) for row in sample)
    if found < 0.9 * len(sample):
        raise RuntimeError(f"only {found} of {len(sample)} sampled flights read their origin's pushed day so far")

    # The in-process floor: the same lookup and tensor building the online model does per request.
    _time_each(retrieval.online_features, requests, 30)
    sdk_ms = _time_each(retrieval.online_features, requests, min(n, 500))
    rows = [retrieval.online_features(r) for r in requests[:200]]
    tensors_ms = _time_each(row_tensors, rows, 2000)
    frame_tensors_ms = _time_each(lambda row: signature.to_tensors(pd.DataFrame([row])), rows, 500)

    _, uri = repository.prepare_repository()
    with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                      admin_key="bench-key") as server:
        deployed = deploy(DeployParams(version=str(version), online=True))
        if deployed.get("online_model") != "ready":
            raise RuntimeError(f"the online model is not ready: {deployed.get('online_model')}")
        with TritonClient(server.endpoints["grpc"]) as client:
            _time_each(lambda r: predict_one(r, client, MODEL), requests, 50)
            before = _counters(server.endpoints["metrics"])
            client_ms = _time_each(lambda r: predict_one(r, client, MODEL), requests, n)
            after = _counters(server.endpoints["metrics"])

        path = f"/v2/models/{online_name(MODEL)}/infer"
        bodies = [kserve_infer_body("flight", json.dumps(r).encode()) for r in requests]
        _check_http(server.endpoints["http"], path, bodies[0])
        run = StoreRun(store_name, client_ms, sdk_ms, tensors_ms, frame_tensors_ms, _per_request(before, after), 0.0)
        run.pushed = (f"day so far pushed first: {pushed['events']} outcome events, {pushed['online_pushes']} online "
                      f"pushes in {pushed['online_seconds']} s; {found} of {len(sample)} sampled lookups found their "
                      f"origin's row")
        if wrk:
            for threads, connections in ((1, 1), (2, 4)):
                cpu0 = _cpu_seconds(server.pid)
                result = run_wrk(wrk, f"http://{server.endpoints['http']}", path, bodies,
                                 ctx.home / f"wrk-{store_name}", threads, connections, wrk_s)
                run.wrk[connections] = result
                run.wrk_cpu_ms_per_request[connections] = (
                    (_cpu_seconds(server.pid) - cpu0) * 1000 / max(result.requests, 1))
        run.rss_mb = server.rss_bytes() / 2**20
    return run


def _check_http(host_port: str, path: str, body: str) -> None:
    """The request wrk sends, sent once: Triton must answer it with a probability."""
    req = urllib.request.Request(f"http://{host_port}{path}", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    answer = json.loads(urllib.request.urlopen(req, timeout=30).read())
    probability = next(o["data"][0] for o in answer["outputs"] if o["name"] == "probability")
    if not 0 < probability < 1:
        raise RuntimeError(f"unexpected online answer over HTTP: {answer}")


@contextlib.contextmanager
def _redis_server(work: Path):
    """The tests' throwaway redis-server on a free loopback port; None if it is not installed."""
    from tests.conftest import redis_server

    if shutil.which("redis-server") is None:
        print("bench: redis-server is not installed (scripts/bootstrap.sh installs it): the Redis online "
              "store measurements are left out", file=sys.stderr)
        yield None
        return
    with redis_server(work) as url:
        yield url


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def online_results(ctx: Context, ports: dict, version: int) -> list[Result]:
    load0 = os.getloadavg()
    requests = _prepare(ctx)
    wrk = ensure_wrk()
    # The Redis run gets its own home, a copy of this one before materialization (same data, same
    # registry and serving state), so each store is materialized from scratch by the features stage.
    redis_home = Path(tempfile.mkdtemp(prefix="fd-bench-redis-"))
    shutil.copytree(ctx.home, redis_home, dirs_exist_ok=True,
                    ignore=lambda d, names: ["feast"] if Path(d) == ctx.home else [])
    os.environ.pop("FLIGHTDECK_FEAST_YAML", None)
    try:
        runs = [_measure_store("SQLite", ctx, ports, version, requests, wrk)]
        with _redis_server(redis_home) as redis_url:
            if redis_url:
                from tests.conftest import redis_feast_yaml

                yaml_path = redis_feast_yaml(redis_home / "feature_store_redis.yaml")
                with _env(FLIGHTDECK_HOME=str(redis_home), FLIGHTDECK_FEAST_YAML=str(yaml_path),
                          FLIGHTDECK_REDIS_URL=redis_url):
                    runs.append(_measure_store("Redis", ctx, ports, version, requests, wrk))
    finally:
        shutil.rmtree(redis_home, ignore_errors=True)
    load1 = os.getloadavg()
    return _results(runs, len(requests), load0, load1, wrk is not None)


def _breakdown(run: StoreRun) -> str:
    """Where one request's time goes (means, ms), from Triton's counters and in-process timings."""
    online, scoring = run.server[f"{MODEL}_online"], run.server[MODEL]
    client_mean = float(run.client_ms.mean())
    return (f"mean per request {client_mean:.2f} ms = Triton request {online['request']:.2f} "
            f"(queue {online['queue']:.2f}, online model execute {online['compute_infer']:.2f}: "
            f"Feast lookup ~{run.sdk_ms.mean():.2f} in-process, row->tensors {run.tensors_ms.mean() * 1000:.0f} us "
            f"(through a one-row DataFrame, as before: {run.frame_tensors_ms.mean() * 1000:.0f} us), "
            f"BLS to {MODEL} {scoring['request']:.2f} of which its compute {scoring['compute_infer']:.2f}, "
            f"rest (stub IPC, JSON, DLPack) ~{online['compute_infer'] - run.sdk_ms.mean() - scoring['request']:.2f}) "
            f"+ gRPC and client ~{client_mean - online['request']:.2f}")


def _results(runs: list[StoreRun], n_flights: int, load0, load1, have_wrk: bool) -> list[Result]:
    load = f"load average 1-min {load0[0]:.1f} before, {load1[0]:.1f} after, {os.cpu_count()} cores (shared)"
    out: list[Result] = []
    base = runs[0]
    for run in runs:
        sdk50, sdk99 = run.pct(50, "sdk_ms"), run.pct(99, "sdk_ms")
        common = (f"{len(run.client_ms)} sequential requests over {n_flights} real flights of {DAY}; "
                  f"Feast {run.store} online store, one lookup of every view of the feature service (daily and "
                  f"pushed day so far); {run.pushed}; one online-model instance")
        vs_sqlite = run is not base
        out += [
            Result(AREA, f"online prediction p50, Feast {run.store} (Python gRPC client -> {MODEL}_online: Feast + BLS)",
                   run.pct(50), "ms",
                   "same, Feast SQLite" if vs_sqlite else "Feast SDK online lookup alone, in-process (p50)",
                   base.pct(50) if vs_sqlite else sdk50, higher_is_better=False,
                   notes=f"{common}; Feast SDK lookup alone in-process p50 {sdk50:.2f} / p99 {sdk99:.2f} ms",
                   extra={"server_per_request_ms": run.server}),
            Result(AREA, f"online prediction p99, Feast {run.store} (Python gRPC client -> {MODEL}_online: Feast + BLS)",
                   run.pct(99), "ms",
                   "same, Feast SQLite" if vs_sqlite else "Feast SDK online lookup alone, in-process (p99)",
                   base.pct(99) if vs_sqlite else sdk99, higher_is_better=False, target="p99 <= 10 ms on loopback",
                   notes=f"{_breakdown(run)}; requests/s one at a time {1000 / run.client_ms.mean():.0f}; {load}"),
        ]
        if not have_wrk:
            continue
        one, many = run.wrk[1], run.wrk[4]
        for q, value in ((50, one.p50_ms), (99, one.p99_ms)):
            out.append(Result(
                AREA, f"online prediction p{q}, Feast {run.store} (wrk, HTTP JSON, 1 connection)", value, "ms",
                f"Python gRPC client, same store (p{q})", run.pct(q), higher_is_better=False,
                target="p99 <= 10 ms on loopback" if q == 99 else "",
                notes=f"{one.describe()}; Triton CPU {run.wrk_cpu_ms_per_request[1]:.2f} ms per request"
                      + (f"; {load}" if q == 99 else "")))
        out.append(Result(
            AREA, f"online requests/s, Feast {run.store} (wrk, HTTP JSON, 2 threads, 4 connections)",
            many.requests_per_s, "req/s", "wrk, 1 connection, same store", one.requests_per_s,
            notes=f"{many.describe()}; Triton CPU {run.wrk_cpu_ms_per_request[4]:.2f} ms per request "
                  f"(server + stubs); one online-model instance serves requests one at a time; wrk shares the "
                  f"{os.cpu_count()} cores; {load}"))
    out.append(Result(AREA, "Triton resident memory with the online model (server + 2 stubs)", runs[0].rss_mb, "MB",
                      higher_is_better=False,
                      notes="scoring model + online model (Feast, pandas, torch in its stub); after the SQLite run"
                            + (f"; after the Redis run {runs[1].rss_mb:.0f} MB" if len(runs) > 1 else "")))
    return out
