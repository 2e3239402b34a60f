"""Online prediction through Triton: the `<model>_online` python-backend model and its client.

deploy puts the online model beside the scoring model (it does not change with versions: it
routes by the serving state), and `flightdeck predict online` calls it over gRPC.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from components.contracts.errors import StageFailed
from components.contracts.results import PredictOnlineResult
from components.contracts.stages import PredictOnlineParams
from components.core.store import ArtifactStore
from components.serving.triton import repository

ONLINE_MODEL = Path(__file__).with_name("online_model.py")
FLIGHT_FIELDS = "carrier, origin, dest, distance, sched_dep_utc (ISO 8601), optional tailnum and flight_id"


class OnlineRefusal(Exception):
    """What the online model answers a client: a message naming the problem, never internals."""


class BadFlight(OnlineRefusal):
    """The request is not a flight the online model can score; the message names the field."""


def parse_flight(raw: bytes) -> dict:
    """The flight of one online request (UTF-8 JSON), checked field by field before any lookup."""
    from datetime import datetime

    try:
        flight = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        flight = None
    if not isinstance(flight, dict):
        raise BadFlight(f"bad input: the request must be one flight as a UTF-8 JSON object ({FLIGHT_FIELDS})")
    problems = [f"{name} is missing" for name in ("carrier", "origin", "dest", "distance", "sched_dep_utc")
                if flight.get(name) in (None, "")]
    for name in ("carrier", "origin", "dest", "tailnum", "sched_dep_utc"):
        if flight.get(name) not in (None, "") and not isinstance(flight[name], str):
            problems.append(f"{name} must be a string")
    distance = flight.get("distance")
    if distance not in (None, ""):
        try:
            ok = not isinstance(distance, bool) and math.isfinite(float(distance)) and float(distance) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append("distance must be a non-negative number of miles")
    if isinstance(flight.get("sched_dep_utc"), str) and flight["sched_dep_utc"]:
        try:
            datetime.fromisoformat(flight["sched_dep_utc"])
        except ValueError:
            problems.append("sched_dep_utc must be an ISO 8601 time (e.g. 2013-01-01T10:00:00+00:00)")
    if problems:
        raise BadFlight(f"bad input: {'; '.join(problems)} (a flight has {FLIGHT_FIELDS})")
    return flight


def online_name(model: str) -> str:
    return f"{model}_online"


def online_config(model: str, instances: int = 1) -> str:
    return (
        f'name: "{online_name(model)}"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "flight" data_type: TYPE_UINT8 dims: [ -1 ] } ]\n'
        'output [ { name: "probability" data_type: TYPE_FP32 dims: [ 1 ] },\n'
        '         { name: "model_version" data_type: TYPE_INT64 dims: [ 1 ] } ]\n'
        f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
        f'parameters: {{ key: "target_model" value: {{ string_value: "{model}" }} }}\n'
    )


def publish_online_model(repo_store: ArtifactStore, model: str) -> bool:
    """Write the online model (version 1) if it differs; True when something changed."""
    name = online_name(model)
    changed = repository.write_if_changed(repo_store, f"{name}/1/model.py", ONLINE_MODEL.read_bytes())
    changed |= repository.write_if_changed(repo_store, f"{name}/1/__pycache__", b"")  # see repository.version_files
    changed |= repository.write_config(repo_store, name, online_config(model))
    return changed


def ensure_online_model(repo_store: ArtifactStore, model: str, clients, timeout_s: float) -> str:
    """Publish and load the online model on every replica; a failure is reported, not raised."""
    name = online_name(model)
    try:
        changed = publish_online_model(repo_store, model)
        for c in clients:
            if changed or not c.model_ready(name, 1):
                c.load(name)
            if not c.wait_model_ready(name, 1, timeout_s):
                return f"{name} not ready on {c.url} within {timeout_s:.0f} s"
    except StageFailed as exc:
        return f"{name} failed to load: {exc}"
    return "ready"


def row_tensors(row: dict) -> tuple[np.ndarray, np.ndarray]:
    """One feature row (components.features.retrieval.online_features) -> the model's (numeric, categorical) [1, n] arrays.

    The same values as signature.to_tensors(pd.DataFrame([row])), without building a DataFrame: that
    was a large share of the online model's time per request (docs/BENCHMARKS.md, Figures the code
    relies on).
    """
    from components.contracts import signature
    missing = [c for c in signature.NUMERIC + signature.CATEGORICAL if c not in row]
    if missing:
        raise KeyError(f"feature row lacks: {', '.join(missing)}")
    numeric = np.array([[np.nan if row[c] is None else row[c] for c in signature.NUMERIC]], dtype=np.float32)
    categorical = np.array([[_category_code(c, row[c]) for c in signature.CATEGORICAL]], dtype=np.int64)
    return numeric, categorical


def _category_code(column: str, value) -> int:
    """As signature.to_tensors: strings packed (missing -> 0), numbers as ints (missing or not a number -> -1)."""
    from components.contracts import signature
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if column in signature.STRING_CATEGORICAL:
        return 0 if missing else signature.encode_category(value)
    if missing:
        return -1
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -1
    return -1 if math.isnan(number) else int(number)


def predict_one(flight: dict, client, model: str) -> dict:
    """One flight through `<model>_online`: {probability, model_version, latency_ms}."""
    import tritonclient.grpc as g

    payload = np.frombuffer(json.dumps(flight, default=str).encode(), dtype=np.uint8)
    tensor = g.InferInput("flight", [len(payload)], "UINT8")
    tensor.set_data_from_numpy(payload)
    t0 = time.perf_counter()
    out = client._call(f"online prediction with {online_name(model)!r}", client.client.infer, online_name(model),
                       [tensor], client_timeout=client.timeout_s)
    return {"probability": float(out.as_numpy("probability")[0]), "model_version": int(out.as_numpy("model_version")[0]),
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3)}


def predict_online(params: PredictOnlineParams) -> PredictOnlineResult:
    """The `flightdeck predict online` entry: one scheduled flight -> its late probability.

    Inputs:
      `<model>_online` on the Triton server at FLIGHTDECK_TRITON_URL (deployed by deploy), which reads
      the flight's features from the Feast online store and calls the serving version (or the canary).
    Outputs:
      none here; in shadow and canary modes the online model records both versions' outputs under
      serving/<model>/challenger/.
    Returns:
      PredictOnlineResult: the flight as asked, its probability, the version that served it, the latency.
    Failures:
      TritonUnavailable: Triton unreachable after the retries. TritonRequestFailed: the online model
      is not loaded, or refused the flight (the message says why; the server keeps serving).
    """
    from components.core.settings import load_settings
    from components.serving.triton.client import TritonClient

    settings = load_settings()
    flight = {"flight_id": params.flight_id, "carrier": params.carrier, "origin": params.origin,
              "dest": params.dest, "tailnum": params.tailnum or None, "distance": params.distance,
              "sched_dep_utc": params.sched_dep_utc}
    with TritonClient(settings.triton_url) as client:
        result = predict_one(flight, client, settings.model_name)
    return {**flight, **result}
