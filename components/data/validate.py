"""validate: the data gate between raw/ and everything downstream.

Each raw partition is checked with its Great Expectations suite (components.data.expectations): a
passing one is published byte for byte to validated/, where features read; a failing one goes to
quarantine/ with a report (components.data.quarantine), and validated/ is left as it was.

Flights are two sources with their own suites and quarantines: the schedule and the outcomes (each
outcome row stamped with known_at; its suite checks the stamps against the same day's raw schedule).
Downstream reads one product, validated/flights/date=<d>: the day's schedule left-joined with its
outcomes, published only when both passed in this run. A refused schedule or outcomes batch leaves the
day's flights as they were (the last good version, or never published), exactly as a refused flights
batch did; a refused outcomes batch does not stop the schedule, so batch scoring (which reads only
validated/schedule) goes on.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import BadInput, StageFailed
from components.contracts.results import ValidateResult
from components.contracts.stages import ValidateParams
from components.core.store import ArtifactNotFound, ArtifactStore, open_store, parquet_bytes, sha256_bytes
from components.data import expectations
from components.data.quarantine import (
    PART,
    SAMPLES,
    Outcome,
    failure_paragraph,
    failures_of,
    quarantine,
)

log = logging.getLogger(__name__)

BATCH_DAYS = 31  # days of one table validated together when they all pass (bounds memory)


# -- the Great Expectations side, built once per process ------------------------------------------
class _Suites:
    """An ephemeral GX context with one pandas dataframe asset and one suite per table."""

    def __init__(self):
        # GX logs its own setup at INFO (hundreds of lines); keep only its warnings.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx_version = gx.__version__
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("raw")
        self.batches = {}
        self.suites = {}
        for table in schema.RAW_COLUMNS:
            self.batches[table] = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("partition")
            suite = gx.ExpectationSuite(
                name=expectations.suite_name(table),
                expectations=[getattr(gxe, c.expectation)(**c.kwargs, description=c.why)
                              for c in expectations.checks(table)],
            )
            self.suites[table] = self.context.suites.add(suite)

    def run(self, table: str, prepared: pd.DataFrame, parameters: dict):
        """Validate a frame already passed through expectations.prepare_batch."""
        batch = self.batches[table].get_batch(batch_parameters={"dataframe": prepared})
        return batch.validate(self.suites[table], expectation_parameters=parameters,
                              result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLES})


_SUITES: _Suites | None = None


def suites() -> _Suites:
    global _SUITES
    if _SUITES is None:
        _SUITES = _Suites()
    return _SUITES


# -- the stage ----------------------------------------------------------------------------------
def validate(params: ValidateParams, store: ArtifactStore | None = None) -> ValidateResult:
    """Check every raw partition of the date range (and the reference tables) with its GX suite.

    Inputs (store keys):
      raw/<table>/date=<d>/part.parquet  schedule, outcomes and weather of every day d of [start, end], written
          by ingest
      raw/<table>/part.parquet  the reference tables (planes, airlines); an earlier validated version of a
          reference table stands in when its raw file is absent
      validated/airlines/  the carrier set the schedule suite accepts (raw airlines if never validated)
    Outputs:
      validated/<table>/date=<d>/ (and validated/<table>/ for reference tables): each passing partition,
          published byte for byte with its sha256, row count, suite and GX statistics; left unchanged
          when it already holds the same bytes checked by the same suite.
      validated/flights/date=<d>/  the day's schedule left-joined with its outcomes (FLIGHTS_COLUMNS), when
          both passed in this run (meta: the two sources' sha256); unchanged when either was refused.
      quarantine/<table>/date=<d>/sha256-<hash>/  each refused partition: its raw bytes, report.json and
          report.md; its validated/ version is left in place.
    Returns:
      ValidateResult: counts of passed, refused and republished partitions, rows per table, seconds, the
      GX version and the validated/ URI (the KFP Dataset).
    Failures:
      StageFailed: --min-flight-rows above --max-flight-rows, or raw data of the range missing (nothing
          was validated or changed), or no airlines table to take the carrier set from.
      BadInput: some partition failed its suite; raised after every partition was judged, naming each
          refused partition, its failed expectations and its quarantine report.
    """
    store = store or open_store()
    days = schema.day_range(params.start, params.end)
    bounds = row_bounds(params)
    _require_raw(store, days)
    t0 = time.perf_counter()
    gx = suites()
    outcomes: list[Outcome] = []
    # Reference tables first: the carrier set of the flights suite comes from validated airlines.
    for table in schema.REFERENCE:
        if store.exists(layout.raw_key(table)):
            outcomes.append(_check_one(store, gx, _load(store, table, None), {}))
    carriers = known_carriers(store)
    products: list[Outcome] = []
    for i in range(0, len(days), BATCH_DAYS):
        chunk = days[i:i + BATCH_DAYS]
        schedules = [_load(store, "schedule", day) for day in chunk]
        checked = {"schedule": _check_days(store, gx, schedules, bounds["schedule"], carriers)}
        results = [_load(store, "outcomes", day) for day in chunk]
        checked["outcomes"] = _check_days(store, gx, results, bounds["outcomes"], carriers,
                                          schedules={r.day: r.df for r in schedules})
        outcomes += checked["schedule"] + checked["outcomes"]
        # The flights product of a day: published only from this run's passing schedule and outcomes.
        for sched, sched_ok, result, result_ok in zip(schedules, checked["schedule"], results, checked["outcomes"],
                                                      strict=True):
            if sched_ok.passed and result_ok.passed:
                products.append(publish_flights(store, sched, result, gx.gx_version))
    for i in range(0, len(days), BATCH_DAYS):
        weather = [_load(store, "weather", day) for day in days[i:i + BATCH_DAYS]]
        outcomes += _check_days(store, gx, weather, bounds["weather"], carriers)
    seconds = round(time.perf_counter() - t0, 3)
    # validated/<table>/date=<day>/ for every day of the range (the KFP Dataset)
    result = stage_result(params, outcomes, seconds, gx.gx_version, store.uri("validated"), products)
    log.info("validate %s..%s: %s passed, %s failed in %.1f s", params.start, params.end,
             result["passed"], result["failed"], seconds)
    failed = [o for o in outcomes if not o.passed]
    if failed:
        raise BadInput(failure_paragraph(failed))
    return result


def row_bounds(params: ValidateParams) -> dict[str, tuple[int, int]]:
    """Fewest and most rows a daily partition of each partitioned table may have."""
    if params.min_flight_rows > params.max_flight_rows:
        raise StageFailed(f"--min-flight-rows {params.min_flight_rows} is above --max-flight-rows {params.max_flight_rows}")
    return {
        "schedule": (params.min_flight_rows, params.max_flight_rows),
        "outcomes": (params.min_flight_rows, params.max_flight_rows),
        # every origin, every hour, plus the DST fall-back day's extra hour
        "weather": (params.min_weather_rows, len(schema.ORIGINS) * 25),
    }


def stage_result(params: ValidateParams, outcomes: list[Outcome], seconds: float, gx_version: str,
                 uri: str, products: list[Outcome] = ()) -> ValidateResult:
    """The stage's result from the outcome of every partition (and the flights products published)."""
    failed = [o for o in outcomes if not o.passed]
    published = [*outcomes, *products]
    return {
        "start": params.start,
        "end": params.end,
        "passed": sum(o.passed for o in outcomes),
        "failed": len(failed),
        "republished": sum(o.passed and o.changed for o in published),
        "rows": {t: sum(o.rows for o in published if o.table == t and o.passed) for t in schema.TABLE_COLUMNS},
        "quarantined": [o.report for o in failed],
        "seconds": seconds,
        "great_expectations": gx_version,
        "uri": uri,
    }


def _require_raw(store: ArtifactStore, days: list[date]) -> None:
    missing = [layout.raw_key(t, d) for d in days for t in schema.RAW_PARTITIONED
               if not store.exists(layout.raw_key(t, d))]
    for table in schema.REFERENCE:
        if not store.exists(layout.raw_key(table)) and store.published(layout.validated_prefix(table)) is None:
            missing.append(layout.raw_key(table))
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise StageFailed(f"validate found no raw data for {shown} in {store.uri()}: run `flightdeck ingest` "
                          "for that date range first. Nothing was validated or changed.")


def known_carriers(store: ArtifactStore) -> list[str]:
    """Carrier codes of the validated airlines table (raw if none was ever validated)."""
    try:
        airlines = read_validated(store, "airlines")
    except ArtifactNotFound:
        try:
            airlines = store.read_parquet(layout.raw_key("airlines"))
        except Exception as exc:
            raise StageFailed(f"no airlines reference table to check carriers against ({exc}); "
                              "ingest it first") from exc
    if "carrier" not in airlines.columns:
        raise StageFailed("the airlines reference table has no carrier column; re-ingest it")
    return sorted(str(c) for c in airlines["carrier"].dropna().unique())


@dataclass
class _Raw:
    table: str
    day: date | None
    key: str
    data: bytes
    sha256: str
    df: pd.DataFrame | None
    error: str = ""

    @property
    def dtypes(self) -> tuple:
        return tuple((c, str(t)) for c, t in self.df.dtypes.items())


def _load(store: ArtifactStore, table: str, day: date | None) -> _Raw:
    key = layout.raw_key(table, day)
    data = store.read_bytes(key)
    try:
        return _Raw(table, day, key, data, sha256_bytes(data), pd.read_parquet(io.BytesIO(data)))
    except Exception as exc:  # pyarrow raises several types for truncated or corrupt files
        return _Raw(table, day, key, data, sha256_bytes(data), None, f"{type(exc).__name__}: {exc}")


def _check_days(store: ArtifactStore, gx: _Suites, raws: list[_Raw], bounds: tuple[int, int],
                carriers: list[str], schedules: dict[date, pd.DataFrame | None] | None = None) -> list[Outcome]:
    """Validate the partitions of some days. Non-empty partitions that share one schema are first run
    through the suite as one batch: every rule is row-wise or computed per partition, so the batch
    passing proves each partition passes (and costs one GX run instead of one per day). Anything
    else, and every partition of a batch that failed, is judged alone, so reports stay per partition."""
    table = raws[0].table
    schedules = schedules or {}
    outcomes: dict[date, Outcome] = {}
    readable = [r for r in raws if r.df is not None and len(r.df)]
    if len(readable) > 1:
        common = Counter(r.dtypes for r in readable).most_common(1)[0][0]
        batch = [r for r in readable if r.dtypes == common]
        if len(batch) > 1:
            frame = pd.concat([expectations.prepare_batch(table, r.df, r.day, schedules.get(r.day)) for r in batch],
                              ignore_index=True)
            result = gx.run(table, frame, expectations.parameters(
                table, min_rows=bounds[0], max_rows=bounds[1], single=False, carriers=carriers))
            if result.success:
                summary = {**dict(result.statistics), "batch_partitions": len(batch),
                           "batch": f"{batch[0].day}..{batch[-1].day}"}
                for r in batch:
                    outcomes[r.day] = _publish_validated(store, Outcome(table, r.day, r.key, r.sha256, len(r.df), [],
                                                                        summary), r.data, gx.gx_version)
    for r in raws:
        if r.day not in outcomes:
            outcomes[r.day] = _check_one(store, gx, r, expectations.parameters(
                table, min_rows=bounds[0], max_rows=bounds[1], carriers=carriers), schedules.get(r.day))
    return [outcomes[r.day] for r in raws]


def _check_one(store: ArtifactStore, gx: _Suites, raw: _Raw, parameters: dict,
               schedule: pd.DataFrame | None = None) -> Outcome:
    if raw.df is None:
        failure = {"expectation": "readable parquet file", "column": "", "rows": None, "of_rows": None,
                   "why": "the partition must be a readable parquet file", "sample": [], "kwargs": {},
                   "error": raw.error}
        outcome = Outcome(raw.table, raw.day, raw.key, raw.sha256, 0, [failure], {"evaluated_expectations": 0})
        return quarantine(store, outcome, raw.data)
    result = gx.run(raw.table, expectations.prepare_batch(raw.table, raw.df, raw.day, schedule), parameters)
    outcome = Outcome(raw.table, raw.day, raw.key, raw.sha256, len(raw.df), failures_of(result),
                      dict(result.statistics))
    if outcome.passed:
        return _publish_validated(store, outcome, raw.data, gx.gx_version)
    return quarantine(store, outcome, raw.data)


def _publish_validated(store: ArtifactStore, outcome: Outcome, data: bytes, gx_version: str) -> Outcome:
    prefix = layout.validated_prefix(outcome.table, outcome.day)
    outcome.where = prefix
    suite = expectations.suite_name(outcome.table) if outcome.table != "flights" else \
        "+".join(expectations.suite_name(t) for t in schema.FLIGHT_SOURCES)
    current = store.published(prefix)
    if current and current["meta"].get("sha256") == outcome.sha256 and current["meta"].get("suite") == suite:
        outcome.changed = False  # same bytes, same suite: re-running leaves the version as it was
        return outcome
    store.publish(prefix, {PART: data}, meta={
        "table": outcome.table,
        "date": outcome.day.isoformat() if outcome.day else None,
        "sha256": outcome.sha256,
        "rows": outcome.rows,
        "suite": suite,
        "great_expectations": gx_version,
        "gx_statistics": outcome.summary,
        "raw_key": outcome.raw_key,
        "validated_at": _now(),
    })
    return outcome


def publish_flights(store: ArtifactStore, schedule: _Raw, outcomes: _Raw, gx_version: str) -> Outcome:
    """Publish the day's flights product: its validated schedule left-joined with its validated outcomes
    (the outcomes suite proved one outcome per scheduled flight), FLIGHTS_COLUMNS first, by flight_id.
    Left unchanged when it already holds the same bytes from the same suites."""
    facts = ["flight_id", *(c for c in (*schema.OUTCOME_FACTS, "known_at") if c in outcomes.df.columns)]
    joined = schedule.df.drop(columns=[c for c in facts[1:] if c in schedule.df.columns]).merge(
        outcomes.df[facts], on="flight_id", how="left", validate="one_to_one")
    order = [c for c in schema.FLIGHTS_COLUMNS if c in joined.columns]
    joined = joined[order + [c for c in joined.columns if c not in order]]
    joined = joined.sort_values("flight_id", kind="stable").reset_index(drop=True)
    data = parquet_bytes(joined)
    outcome = Outcome("flights", schedule.day, f"{schedule.key} + {outcomes.key}", sha256_bytes(data), len(joined),
                      [], {"schedule_sha256": schedule.sha256, "outcomes_sha256": outcomes.sha256})
    return _publish_validated(store, outcome, data, gx_version)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- readers for downstream stages and lineage ----------------------------------------------------
def read_validated(store: ArtifactStore, table: str, day: date | None = None) -> pd.DataFrame:
    """One validated partition (or reference table), checked against its published sha256."""
    data = store.read_published(layout.validated_prefix(table, day), PART)
    return pd.read_parquet(io.BytesIO(data))


def validated_partitions(store: ArtifactStore, start: str | date, end: str | date,
                         tables: tuple[str, ...] = schema.PARTITIONED) -> list[dict]:
    """The content hash of every validated partition in the range (what lineage records).

    Returns [{table, date, sha256, rows}], partitions that were never validated left out. The
    reference tables can be asked for too (tables=schema.TABLE_COLUMNS); their date is None.
    """
    out = []
    for table in tables:
        days = [None] if table in schema.REFERENCE else schema.day_range(start, end)
        for day in days:
            record = store.published(layout.validated_prefix(table, day))
            if record is None:
                continue
            out.append({"table": table, "date": day.isoformat() if day else None,
                        "sha256": record["meta"]["sha256"], "rows": record["meta"]["rows"]})
    return out
