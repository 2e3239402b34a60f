"""predict-batch: score the flights whose prediction time falls in one scoring interval, and publish them.

A flight's prediction time is its scheduled departure minus the lead time, floored to the scoring
interval (components.contracts.prediction_time, the rule training sets and online prediction use too).
A run scores the interval [start, end) (--start/--end on the interval grid; --date: the whole local day
as one interval, for the local replay): exactly the flights whose prediction time falls in it, each with
its features from the Feast offline store as of its prediction time (the same feature service as
training), so nothing a run uses was observed after the moment its predictions are for. Scoring goes
through Triton over gRPC in large requests with several in flight, with the serving state's routing
(shadow / canary challengers are scored and recorded too).

Rows go to the prediction partition of their flight's scheduled (local) day, as this interval's own
part of it (components.core.partitions): each part is published atomically; a rerun of the interval
replaces its part only, and runs of other intervals of the day (concurrent or not) never touch it. A
day's predictions are read whole with `read_predictions`. If Triton cannot be reached the client
retries with backoff, then the stage fails and writes nothing. In-process scoring exists only behind
--in-process.

Each part holds the scoring frame's columns plus prediction_time (data time: the moment the prediction
is made for, = event_timestamp of the feature lookup), probability, model_version (the version that
served the row), challenger_probability (only while a shadow or canary is active), feature_service,
scored_by (triton | in-process) and scored_at (the machine's UTC clock when the run scored it: an
operational record, not the data time). The run's summary counts the flights with missing features: a
flight counts once when any model feature has no value as the model sees it (numeric: NaN or +-inf,
e.g. no weather observation in the lookback window or an unknown plane; categorical: no value), and
`missing_by_feature` counts each feature's missing values.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from components.contracts import layout, schema, signature
from components.contracts import prediction_time as pt
from components.contracts.errors import StageFailed
from components.contracts.results import PredictBatchResult
from components.contracts.stages import PredictBatchParams
from components.core import partitions
from components.core.settings import Settings, load_settings
from components.core.store import ArtifactStore, open_store, parquet_bytes

log = logging.getLogger(__name__)

PART_FILE = "predictions.parquet"


def scoring_interval(params: PredictBatchParams, settings: Settings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's interval [start, end) from --date or --start/--end; StageFailed when it is not on the grid."""
    minutes = settings.scoring_interval_minutes
    if params.date and (params.start or params.end):
        raise StageFailed("give either --date (the whole day as one interval) or --start/--end, not both")
    if params.date:
        try:
            return pt.day_bounds(schema.parse_day(params.date, "--date"))
        except ValueError as exc:
            raise StageFailed(str(exc)) from exc
    if not params.start:
        raise StageFailed("predict-batch needs --date, or --start (and --end) of the scoring interval")
    try:
        start = pt.parse_instant(params.start, "--start")
        end = pt.parse_instant(params.end, "--end") if params.end else pt.interval_end(start, minutes)
    except ValueError as exc:
        raise StageFailed(str(exc)) from exc
    for what, ts in (("--start", start), ("--end", end)):
        if not pt.is_aligned(ts, minutes):
            raise StageFailed(f"{what} {ts.isoformat()} is not on the scoring interval's grid ({minutes} min from "
                              f"local midnight, FLIGHTDECK_SCORING_INTERVAL_MINUTES): prediction times are "
                              f"{pt.floor_to_interval(pd.Series([ts]), minutes).iloc[0].isoformat()}, "
                              f"+{minutes} min, ...")
    if end <= start:
        raise StageFailed(f"--end {end.isoformat()} is not after --start {start.isoformat()}")
    if pt.interval_day(start) != pt.interval_day(end - pd.Timedelta(microseconds=1)):
        raise StageFailed(f"the interval {start.isoformat()} .. {end.isoformat()} crosses local midnight: score "
                          "each local day's intervals in runs of their own")
    return start, end


def interval_flights(store: ArtifactStore, start: pd.Timestamp, end: pd.Timestamp, settings: Settings
                     ) -> tuple[pd.DataFrame, list[date], list[date]]:
    """The validated scheduled flights whose prediction time falls in [start, end), the schedule days read and
    those missing. Scoring needs only the schedule (known in advance), never the outcomes: a day whose outcomes
    were refused (or have not arrived) is still scored. The interval's own day must be validated; a later day
    (the next day's first departures, whose prediction time falls on this day) that is not validated yet is
    reported, not refused."""
    from components.features.validated import read_days

    days = pt.schedule_days(start, end, settings.lead_time_hours)
    present = [d for d in days if store.published(layout.validated_prefix("schedule", d)) is not None]
    missing = [d for d in days if d not in present]
    own = pt.interval_day(start)
    if any(d <= own for d in missing):
        shown = ", ".join(d.isoformat() for d in missing)
        raise StageFailed(f"no validated flights for {shown}: ingest and validate those days before scoring the "
                          f"interval {start.isoformat()} .. {end.isoformat()} (looked under "
                          f"{store.uri(layout.validated_prefix('schedule', missing[0]))})")
    flights = read_days(store, "schedule", present, required=True) if present else pd.DataFrame()
    if flights.empty:
        return flights, present, missing
    when = pt.prediction_times(flights["sched_dep_utc"], settings.lead_time_hours, settings.scoring_interval_minutes)
    keep = ((when >= start) & (when < end)).to_numpy()
    return flights.loc[keep].reset_index(drop=True), present, missing


def predict_batch(params: PredictBatchParams, store: ArtifactStore | None = None) -> PredictBatchResult:
    """Score the flights whose prediction time falls in the run's interval and publish them.

    Inputs:
      validated/schedule/date=<d>/ for the days whose flights may be predicted in the interval, and the
      feature tables features/<view>.parquet (through Feast, as of each flight's prediction time);
      serving/<model>/state.json (the serving version and any challenger); the Triton server at
      FLIGHTDECK_TRITON_URL, or with --in-process the registry's champion.
    Outputs:
      predictions/date=<d>/interval=<start>_<end>/predictions.parquet for each schedule day d read and the
      interval's own day (an empty part when none of its flights falls in the interval), each published at once (a rerun of the
      interval replaces its parts, nothing else); with a shadow or canary challenger, its outputs recorded
      under serving/<model>/challenger/.
    Returns:
      PredictBatchResult: the interval, rows (per day), who scored them and with which versions, the
      missing-feature counts.
    Failures (nothing is written):
      StageFailed: a bad --date or interval; the interval's day not validated; nothing deployed; a row
      count or a probability that is not finite. TritonUnavailable: Triton unreachable after the retries.
      TritonRequestFailed: Triton refused the requests.
    """
    from components.features import feast_repo, retrieval

    settings = load_settings()
    store = store or open_store(settings)
    start, end = scoring_interval(params, settings)
    day = pt.interval_day(start)
    t0 = time.perf_counter()
    flights, present, missing_days = interval_flights(store, start, end, settings)
    if missing_days:
        log.warning("predict-batch %s .. %s: %s not validated yet; their flights predicted in this interval are "
                    "scored when the interval is rerun after they are", start, end,
                    ", ".join(d.isoformat() for d in missing_days))
    if flights.empty:
        frame = pd.DataFrame(columns=signature.KEYS + signature.CATEGORICAL + signature.NUMERIC)
    else:
        frame = retrieval.model_frame(flights, settings, with_label=False)
    feature_service = feast_repo.feature_service_name()
    challenger = None
    how = "in-process" if params.in_process else "triton"
    if frame.empty:
        probability, served_by = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    elif params.in_process:
        probability, version = _score_in_process(frame, settings, store)
        served_by = np.full(len(frame), version, dtype=np.int64)
    else:
        from components.serving.triton.client import RetryPolicy
        from components.serving.triton.scoring import score_frame_detailed

        scored = score_frame_detailed(frame, settings=settings, store=store, rows_per_request=params.rows_per_request,
                                      in_flight=params.in_flight, retry=RetryPolicy())
        probability, served_by, challenger = scored.probability, scored.version, scored.challenger_probability
    if len(probability) != len(frame):
        raise StageFailed(f"scoring returned {len(probability)} rows for {len(frame)} flights; nothing was written")
    if not np.isfinite(probability).all():
        raise StageFailed(f"{int((~np.isfinite(probability)).sum())} predictions are not finite; nothing was written")

    out = frame.copy()
    # The data time of each prediction: the feature lookup's as-of moment (components.contracts.prediction_time).
    out["prediction_time"] = pd.to_datetime(out["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    out["probability"] = np.asarray(probability, dtype=np.float32)
    out["model_version"] = np.asarray(served_by, dtype=np.int64)
    if challenger is not None:
        out["challenger_probability"] = challenger.astype(np.float32)
    out["feature_service"] = feature_service
    out["scored_by"] = how
    out["scored_at"] = pd.Timestamp(datetime.now(UTC)).as_unit("us")  # the machine's clock, not data time
    missing = missing_features(frame)
    part = pt.part_name(start, end)
    sched_day = (pd.to_datetime(out["sched_dep_utc"], utc=True).dt.tz_convert(schema.LOCAL_TZ).dt.date
                 if len(out) else pd.Series([], dtype=object))
    rows_by_day = {}
    versions = sorted(int(v) for v in np.unique(served_by))
    # Every schedule day read gets this interval's part, empty or not (it was scored), and so does the interval's
    # own day (an interval late in the day predicts only the next day's first departures).
    for d in sorted(set(present) | {day}):
        rows = out.loc[(sched_day == d).to_numpy()].reset_index(drop=True)
        meta = {"date": d.isoformat(), "start": start.isoformat(), "end": end.isoformat(), "rows": len(rows),
                "scored_by": how, "model_versions": versions}
        partitions.publish_part(store, layout.predictions_prefix(d), part, {PART_FILE: parquet_bytes(rows)}, meta=meta)
        rows_by_day[d.isoformat()] = len(rows)
    result: PredictBatchResult = {
        "date": day.isoformat(), "start": start.isoformat(), "end": end.isoformat(), "rows": len(out),
        "rows_by_day": rows_by_day, "scored_by": how, "model_versions": versions,
        "uri": store.uri(f"{layout.predictions_prefix(day)}/{part}"),
        "flights_with_missing_features": int(missing.any(axis=1).sum()),
        "missing_by_feature": {c: int(n) for c, n in missing.sum().items() if n},
        "mean_probability": round(float(probability.mean()), 4) if len(probability) else 0.0,
        "challenger_scored": challenger is not None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("predict-batch %s .. %s: %s", start, end, result)
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
    """A day's predictions: every interval's part of its partition, one row per flight (where parts of
    runs of different intervals overlap, the part published last wins), in departure order."""
    store = store or open_store()
    out = partitions.read_parts(store, layout.predictions_prefix(schema.parse_day(str(day))), PART_FILE,
                                key="flight_id")
    if out.empty:
        return out
    return out.sort_values(["sched_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)
