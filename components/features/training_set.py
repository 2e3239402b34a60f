"""The training-set stage: validated flights of a window as entity rows (event_timestamp = scheduled
departure - lead time), joined point-in-time through the feature service (retrieval.model_frame)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from components.contracts import schema, signature
from components.contracts.errors import StageFailed
from components.contracts.results import TrainingSetResult
from components.contracts.stages import TrainingSetParams
from components.core.settings import load_settings
from components.core.store import ArtifactStore, LocalStore, open_store, parquet_bytes
from components.features.retrieval import model_frame
from components.features.validated import read_days


def _output_target(store: ArtifactStore, out: str, default_key: str) -> tuple[str, Path | None]:
    """(store key, None) for keys and URIs inside the store; (uri, local path) for other local files."""
    if not out:
        return default_key, None
    parsed = urlparse(out)
    if not parsed.scheme:
        return out.lstrip("/"), None
    root = store.uri().rstrip("/") + "/"
    if out.startswith(root):
        return out[len(root):], None
    if parsed.scheme == "file":
        return out, Path(parsed.path)
    raise StageFailed(f"--out {out!r} is neither a key of the artifact store ({store.uri()}) nor a file:// URI")


def training_set(params: TrainingSetParams, store: ArtifactStore | None = None) -> TrainingSetResult:
    """The point-in-time correct training set of the days start..end, one row per validated flight.

    Inputs: validated/flights/date=<d>/ for every day start..end (required); the feature tables
      features/<view>.parquet through the Feast offline store and the feature service (the features
      build stage must have covered the window).
    Outputs: one parquet with signature.KEYS + CATEGORICAL + NUMERIC + LABEL, in scheduled-departure
      order: at `params.out` (a store key, a URI inside the store, or a file:// URI), by default
      training_sets/<start>_<end>.parquet. Returns its URI (as `out` and `uri`), rows, columns and
      shape, the label rate, the missing rate of each numeric column that has missing values, seconds.
    Failures: StageFailed when a flights partition of the window is not validated, the window has no
      flights, `out` is neither in the store nor a file:// URI, or a date is malformed.
    """
    settings = load_settings()
    store = store or open_store(settings)
    days = schema.day_range(params.start, params.end)
    t0 = time.perf_counter()
    flights = read_days(store, "flights", days, required=True)
    if flights.empty:
        raise StageFailed(f"no validated flights between {params.start} and {params.end}: nothing to train on")
    frame = model_frame(flights, settings)
    target, local = _output_target(store, params.out, f"training_sets/{params.start}_{params.end}.parquet")
    data = parquet_bytes(frame)
    if local is None:
        store.write_bytes(target, data)
        uri = store.uri(target)
    else:
        LocalStore(local.parent).write_bytes(local.name, data)
        uri = target
    seconds = time.perf_counter() - t0
    return {
        "out": uri, "uri": uri, "rows": len(frame), "columns": len(frame.columns), "shape": list(frame.shape),
        "label_rate": round(float(frame[signature.LABEL].mean()), 4),
        "missing_rate": {c: round(float(frame[c].isna().mean()), 4) for c in signature.NUMERIC if frame[c].isna().any()},
        "seconds": round(seconds, 3),
    }
