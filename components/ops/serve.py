"""`flightdeck serve`: run the local Triton Inference Server until interrupted.

Same code as the test fixtures (components.serving.triton.server.TritonServer). Explicit model-control
mode: the deployed model (if any) is loaded at startup from the repository's config.pbtxt,
later versions arrive through `flightdeck deploy`.
"""

from __future__ import annotations

import argparse

from components.serving.triton.server import DEFAULT_PORTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    for name, port in DEFAULT_PORTS.items():
        p.add_argument(f"--{name}-port", type=int, default=port, help=f"{name} port (default {port})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--no-load", action="store_true", help="do not load the deployed model at startup")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for readiness")


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from components.core.settings import load_settings
    from components.serving.triton import repository
    from components.serving.triton.server import TritonServer, admin_key

    settings = load_settings()
    repo_store, repo_uri = repository.prepare_repository(settings)
    model = settings.model_name
    load = () if args.no_load or repository.read_config(repo_store, model) is None else (model,)
    server = TritonServer(
        repo_uri, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
        host=args.host, admin_key=admin_key(settings, create=True), load_models=load,
        startup_timeout_s=args.startup_timeout,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        print(json.dumps({"status": "ready", "model_repository": repo_uri, "loaded": list(load),
                          "pid": server.pid, "log": str(server.log_path), **server.endpoints}, indent=2), flush=True)
        while not stop.wait(1.0):
            if server.proc is None or server.proc.poll() is not None:
                print(f"tritonserver exited unexpectedly; see {server.log_path}")
                return 1
    print("stopped", flush=True)
    return 0


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--champion", type=int, default=0, help="default: the serving version")
    p.add_argument("--challenger", type=int, default=0, help="default: the active shadow/canary challenger")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for the flip rate")


def run_compare(args: argparse.Namespace) -> int:
    """Champion vs challenger on the traffic both scored (shadow/canary records), with labels where landed."""
    import json

    from components.contracts.errors import StageFailed
    from components.core.settings import load_settings
    from components.core.store import open_store
    from components.serving.triton.routing import comparison_report, read_state

    settings = load_settings()
    store = open_store(settings)
    state, _ = read_state(store, settings.model_name)
    champion = args.champion or (state.serving if state else 0)
    challenger = args.challenger or (state.challenger.version if state and state.challenger else 0)
    if not champion or not challenger:
        raise StageFailed("no challenger is active: pass --champion and --challenger, or deploy one with "
                          "`flightdeck deploy --mode shadow|canary --version N`")
    report = comparison_report(store, settings.model_name, champion, challenger, labels=_labels(store, settings),
                               threshold=args.threshold)
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def _labels(store, settings):
    """Labels of the flights that have landed, from the validated partitions (None when there are none)."""
    import pandas as pd

    from components.features import tables as ft
    keys = [k for k in store.list("validated/flights/") if k.endswith(".parquet")]
    if not keys:
        return None
    flights = pd.concat([store.read_parquet(k) for k in keys], ignore_index=True)
    return pd.DataFrame({"flight_id": flights["flight_id"].astype(str), "label": ft.label(flights)})
