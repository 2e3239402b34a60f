"""predict-batch: score every scheduled flight of one day and publish one prediction partition.

Features come from the Feast offline store as of the lead time (the same feature service as
training); scoring goes through Triton over gRPC in large requests with several in flight, with
the serving state's routing (shadow / canary challengers are scored and recorded too). The
partition is published atomically: a rerun for the same date replaces it, never duplicates.
If Triton cannot be reached the client retries with backoff, then the stage fails and writes
nothing. In-process scoring exists only behind --in-process.

The partition holds the scoring frame's columns plus probability, model_version (the version that
served the row), challenger_probability (only while a shadow or canary is active), feature_service,
scored_by (triton | in-process) and scored_at (UTC). The run's summary counts the flights with
missing features: a flight counts once when any model feature has no value as the model sees it
(numeric: NaN or +-inf, e.g. no weather observation in the lookback window or an unknown plane;
categorical: no value), and `missing_by_feature` counts each feature's missing values.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from components.contracts import layout, schema, signature
from components.contracts.errors import StageFailed
from components.contracts.results import PredictBatchResult
from components.contracts.stages import PredictBatchParams
from components.core.settings import load_settings
from components.core.store import ArtifactStore, open_store, parquet_bytes

log = logging.getLogger(__name__)


def predict_batch(params: PredictBatchParams, store: ArtifactStore | None = None) -> PredictBatchResult:
    """Score every scheduled flight of a day and publish the day's prediction partition.

    Inputs:
      validated/flights/date=<date>/ and the feature tables features/<view>.parquet (through Feast,
      as of the lead time); serving/<model>/state.json (the serving version and any challenger);
      the Triton server at FLIGHTDECK_TRITON_URL, or with --in-process the registry's champion.
    Outputs:
      predictions/date=<date>/predictions.parquet, published at once (a rerun replaces it); with a
      shadow or canary challenger, its outputs recorded under serving/<model>/challenger/.
    Returns:
      PredictBatchResult: rows, who scored them and with which versions, the missing-feature counts.
    Failures (nothing is written):
      StageFailed: a bad --date; no validated flights that day; nothing deployed; a row count or a
      probability that is not finite. TritonUnavailable: Triton unreachable after the retries.
      TritonRequestFailed: Triton refused the requests.
    """
    from components.features import feast_repo, retrieval

    settings = load_settings()
    store = store or open_store(settings)
    day = schema.parse_day(params.date, "--date")
    t0 = time.perf_counter()
    frame = retrieval.scoring_frame(day, settings, store)
    if frame.empty:
        raise StageFailed(f"no validated flights for {day}: ingest and validate that day before scoring it "
                          f"(looked under {store.uri(layout.validated_prefix('flights', day))})")
    feature_service = feast_repo.feature_service_name()
    challenger = None
    if params.in_process:
        probability, version = _score_in_process(frame, settings, store)
        served_by = np.full(len(frame), version, dtype=np.int64)
        how = "in-process"
    else:
        from components.serving.triton.client import RetryPolicy
        from components.serving.triton.scoring import score_frame_detailed

        scored = score_frame_detailed(frame, settings=settings, store=store, rows_per_request=params.rows_per_request,
                                      in_flight=params.in_flight, retry=RetryPolicy())
        probability, served_by, challenger = scored.probability, scored.version, scored.challenger_probability
        how = "triton"
    if len(probability) != len(frame):
        raise StageFailed(f"scoring returned {len(probability)} rows for {len(frame)} flights; nothing was written")
    if not np.isfinite(probability).all():
        raise StageFailed(f"{int((~np.isfinite(probability)).sum())} predictions are not finite; nothing was written")

    out = frame.copy()
    out["probability"] = probability.astype(np.float32)
    out["model_version"] = served_by.astype(np.int64)
    if challenger is not None:
        out["challenger_probability"] = challenger.astype(np.float32)
    out["feature_service"] = feature_service
    out["scored_by"] = how
    out["scored_at"] = pd.Timestamp(datetime.now(UTC)).as_unit("us")
    missing = missing_features(frame)
    prefix = layout.predictions_prefix(day)
    meta = {"date": day.isoformat(), "rows": len(out), "scored_by": how,
            "model_versions": sorted(int(v) for v in np.unique(served_by))}
    store.publish(prefix, {"predictions.parquet": parquet_bytes(out)}, meta=meta)
    result: PredictBatchResult = {
        **meta,
        "uri": store.uri(prefix),
        "flights_with_missing_features": int(missing.any(axis=1).sum()),
        "missing_by_feature": {c: int(n) for c, n in missing.sum().items() if n},
        "mean_probability": round(float(probability.mean()), 4),
        "challenger_scored": challenger is not None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("predict-batch %s: %s", day, result)
    return result


def missing_features(frame: pd.DataFrame) -> pd.DataFrame:
    """True where a model feature has no value as the model sees it (components.model.network: a numeric value
    that is NaN or +-inf is missing; a categorical one that is None/NaN maps to the unknown slot)."""
    numeric = frame[signature.NUMERIC].astype("float64")
    out = pd.DataFrame(~np.isfinite(numeric.to_numpy()), columns=signature.NUMERIC, index=frame.index)
    for c in signature.CATEGORICAL:
        out[c] = frame[c].isna()
    return out[signature.CATEGORICAL + signature.NUMERIC]


def _score_in_process(frame: pd.DataFrame, settings, store: ArtifactStore) -> tuple[np.ndarray, int]:
    """The champion's TorchScript, sha256-checked, in this process: the explicit fallback path."""
    from components.model.network import predict
    from components.model.registry import open_registry

    registry = open_registry(settings.model_name, store)
    version = registry.resolve("champion")
    return predict(registry.load_model(version), frame), version


def read_predictions(day, store: ArtifactStore | None = None) -> pd.DataFrame:
    import io

    store = store or open_store()
    data = store.read_published(layout.predictions_prefix(schema.parse_day(str(day))), "predictions.parquet")
    return pd.read_parquet(io.BytesIO(data))
