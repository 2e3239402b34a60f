"""validate: the data gate between raw/ and everything downstream.

For each date in the range and each partitioned table (flights, weather), and for the reference
tables (planes, airlines), the raw partition is checked with its Great Expectations suite
(components.data.expectations). A passing partition is published, byte for byte, to validated/ with
its sha256, row count and the GX result summary; features read only from there. A failing one is
published to quarantine/<table>/date=<d>/<batch>/ with the raw bytes and a report (report.json,
report.md), validated/ is left as it was, and after every partition has been looked at the stage
raises BadInput naming each failed partition and expectation.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import BadInput, StageFailed
from components.contracts.stages import ValidateParams
from components.core.store import ArtifactNotFound, ArtifactStore, open_store, sha256_bytes
from components.data import expectations

log = logging.getLogger(__name__)

PART = "part.parquet"
SAMPLES = 5  # sample values per failed expectation in a report
BATCH_DAYS = 31  # days of one table validated together when they all pass (bounds memory)


@dataclass
class Outcome:
    table: str
    day: date | None
    raw_key: str
    sha256: str
    rows: int
    failures: list[dict]  # one per failed expectation; empty when the partition passed
    summary: dict  # GX statistics
    where: str = ""  # the validated or quarantine prefix it was published to
    report: str = ""  # URI of report.md when quarantined
    changed: bool = True  # False when validated/ already held these exact bytes

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def label(self) -> str:
        return f"{self.table} {expectations.day_str(self.day)}"


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
        for table in schema.TABLE_COLUMNS:
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
def validate(params: ValidateParams, store: ArtifactStore | None = None) -> dict:
    store = store or open_store()
    days = schema.day_range(params.start, params.end)
    if params.min_flight_rows > params.max_flight_rows:
        raise StageFailed(f"--min-flight-rows {params.min_flight_rows} is above --max-flight-rows {params.max_flight_rows}")
    _require_raw(store, days)
    t0 = time.perf_counter()
    gx = suites()
    outcomes: list[Outcome] = []
    # Reference tables first: the carrier set of the flights suite comes from validated airlines.
    for table in schema.REFERENCE:
        if store.exists(layout.raw_key(table)):
            outcomes.append(_check_one(store, gx, _load(store, table, None), {}))
    carriers = known_carriers(store)
    bounds = {
        "flights": (params.min_flight_rows, params.max_flight_rows),
        # every origin, every hour, plus the DST fall-back day's extra hour
        "weather": (params.min_weather_rows, len(schema.ORIGINS) * 25),
    }
    for table in schema.PARTITIONED:
        for i in range(0, len(days), BATCH_DAYS):
            outcomes += _check_days(store, gx, table, days[i:i + BATCH_DAYS], bounds[table], carriers)
    seconds = round(time.perf_counter() - t0, 3)
    failed = [o for o in outcomes if not o.passed]
    result = {
        "start": params.start,
        "end": params.end,
        "passed": sum(o.passed for o in outcomes),
        "failed": len(failed),
        "republished": sum(o.passed and o.changed for o in outcomes),
        "rows": {t: sum(o.rows for o in outcomes if o.table == t and o.passed) for t in schema.TABLE_COLUMNS},
        "quarantined": [o.report for o in failed],
        "seconds": seconds,
        "great_expectations": gx.gx_version,
        "uri": store.uri("validated"),  # validated/<table>/date=<day>/ for every day of the range (the KFP Dataset)
    }
    log.info("validate %s..%s: %s passed, %s failed in %.1f s", params.start, params.end,
             result["passed"], result["failed"], seconds)
    if failed:
        raise BadInput(_failure_paragraph(store, failed))
    return result


def _require_raw(store: ArtifactStore, days: list[date]) -> None:
    missing = [layout.raw_key(t, d) for d in days for t in schema.PARTITIONED if not store.exists(layout.raw_key(t, d))]
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


def _check_days(store: ArtifactStore, gx: _Suites, table: str, days: list[date], bounds: tuple[int, int],
                carriers: list[str]) -> list[Outcome]:
    """Validate the partitions of some days. Non-empty partitions that share one schema are first run
    through the suite as one batch: every rule is row-wise or computed per partition, so the batch
    passing proves each partition passes (and costs one GX run instead of one per day). Anything
    else, and every partition of a batch that failed, is judged alone, so reports stay per partition."""
    raws = [_load(store, table, day) for day in days]
    outcomes: dict[date, Outcome] = {}
    readable = [r for r in raws if r.df is not None and len(r.df)]
    if len(readable) > 1:
        common = Counter(r.dtypes for r in readable).most_common(1)[0][0]
        batch = [r for r in readable if r.dtypes == common]
        if len(batch) > 1:
            frame = pd.concat([expectations.prepare_batch(table, r.df, r.day) for r in batch], ignore_index=True)
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
                table, min_rows=bounds[0], max_rows=bounds[1], carriers=carriers))
    return [outcomes[r.day] for r in raws]


def _check_one(store: ArtifactStore, gx: _Suites, raw: _Raw, parameters: dict) -> Outcome:
    if raw.df is None:
        failure = {"expectation": "readable parquet file", "column": "", "rows": None, "of_rows": None,
                   "why": "the partition must be a readable parquet file", "sample": [], "kwargs": {},
                   "error": raw.error}
        outcome = Outcome(raw.table, raw.day, raw.key, raw.sha256, 0, [failure], {"evaluated_expectations": 0})
        return _quarantine(store, outcome, raw.data)
    result = gx.run(raw.table, expectations.prepare_batch(raw.table, raw.df, raw.day), parameters)
    outcome = Outcome(raw.table, raw.day, raw.key, raw.sha256, len(raw.df), _failures(result),
                      dict(result.statistics))
    if outcome.passed:
        return _publish_validated(store, outcome, raw.data, gx.gx_version)
    return _quarantine(store, outcome, raw.data)


def _failures(result) -> list[dict]:
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        res = r.result or {}
        error = _exception_message(r.exception_info)
        sample = res.get("partial_unexpected_list")
        if sample is None and "observed_value" in res:
            sample = [res["observed_value"]]
        out.append({
            "expectation": cfg.type,
            "column": kw.get("column") or kw.get("column_list") or
            ([kw["column_A"], kw["column_B"]] if "column_A" in kw else ""),
            "why": cfg.description or "",
            "rows": res.get("unexpected_count"),
            "of_rows": res.get("element_count"),
            "sample": [_jsonable(v) for v in (sample or [])[:SAMPLES]],
            "kwargs": {k: _jsonable(v) for k, v in kw.items()},
            "error": error,
        })
    return out


def _exception_message(info) -> str:
    """GX reports an expectation that could not run either flat or keyed by metric id."""
    if not isinstance(info, dict):
        return ""
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for c in candidates:
        if c.get("raised_exception") and c.get("exception_message"):
            return (str(c["exception_message"]).strip().splitlines() or [""])[0][:300]
    return ""


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def _publish_validated(store: ArtifactStore, outcome: Outcome, data: bytes, gx_version: str) -> Outcome:
    prefix = layout.validated_prefix(outcome.table, outcome.day)
    outcome.where = prefix
    suite = expectations.suite_name(outcome.table)
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


def _quarantine(store: ArtifactStore, outcome: Outcome, data: bytes) -> Outcome:
    # The batch id is the content hash: validating the same bad bytes again refreshes that batch's
    # report instead of piling up copies; different bad data for the same date gets its own batch.
    batch = f"sha256-{outcome.sha256[:16]}"
    prefix = layout.quarantine_prefix(outcome.table, outcome.day, batch)
    outcome.where = prefix
    report = {
        "table": outcome.table,
        "date": outcome.day.isoformat() if outcome.day else None,
        "raw_key": outcome.raw_key,
        "raw_uri": store.uri(outcome.raw_key),
        "sha256": outcome.sha256,
        "rows": outcome.rows,
        "suite": expectations.suite_name(outcome.table),
        "statistics": outcome.summary,
        "failed_expectations": outcome.failures,
        "validated_left_in_place": store.published(layout.validated_prefix(outcome.table, outcome.day)) is not None,
        "quarantined_at": _now(),
    }
    store.publish(prefix, {
        PART: data,
        "report.json": json.dumps(report, indent=2, default=str).encode(),
        "report.md": _report_md(report).encode(),
    }, meta={"table": outcome.table, "date": report["date"], "sha256": outcome.sha256,
             "failed": [f["expectation"] for f in outcome.failures]})
    outcome.report = store.uri(store.published_key(prefix, "report.md"))
    log.warning("quarantined %s at %s: %s", outcome.label, store.uri(prefix), _short(outcome.failures))
    return outcome


def _report_md(report: dict) -> str:
    when = report["date"] or "reference table"
    lines = [
        f"# Quarantined: {report['table']} {when}",
        "",
        f"- raw partition: `{report['raw_uri']}` ({report['rows']} rows, sha256 `{report['sha256']}`)",
        f"- suite: `{report['suite']}`; {len(report['failed_expectations'])} expectation(s) failed "
        f"of {report['statistics'].get('evaluated_expectations', 0)} evaluated",
        "- validated data for this date was "
        + ("left in place: features keep reading the last good version." if report["validated_left_in_place"]
           else "never published, so nothing downstream reads this date."),
        "",
        "| expectation | column | failing rows | sample values | rule |",
        "|---|---|---|---|---|",
    ]
    for f in report["failed_expectations"]:
        rows = "" if f["rows"] is None else f"{f['rows']} of {f['of_rows']}"
        sample = ", ".join(f"`{v}`".replace("|", "\\|") for v in f["sample"]) or (f"could not run: {f['error']}" if f["error"] else "")
        column = ", ".join(f["column"]) if isinstance(f["column"], list) else f["column"]
        lines.append(f"| {f['expectation']} | {column} | {rows} | {sample} | {f['why']} |")
    lines += ["", "Fix the source, then re-run `flightdeck ingest` and `flightdeck validate` for this date.", ""]
    return "\n".join(lines)


def _short(failures: list[dict]) -> str:
    """The failed expectations of one partition, in a few words each."""
    parts = []
    evaluated = [f for f in failures if not f["error"]]
    for f in evaluated or failures:
        column = ", ".join(f["column"]) if isinstance(f["column"], list) else f["column"]
        if f["rows"] is not None:
            what = f"{f['rows']} row(s)"
        elif f["error"]:
            what = f"could not run ({f['error'][:80]})"
        else:
            what = f"observed {f['sample'][0] if f['sample'] else '?'}"
            if "min_value" in f["kwargs"] or "max_value" in f["kwargs"]:
                what += f" (expected {f['kwargs'].get('min_value')}..{f['kwargs'].get('max_value')})"
        sample = f"; e.g. {', '.join(str(v) for v in f['sample'][:3])}" if f["sample"] and f["rows"] else ""
        parts.append(f"{f['expectation']} on {column or 'the table'} [{f['why']}]: {what}{sample}")
    if evaluated and len(evaluated) < len(failures):
        parts.append(f"and {len(failures) - len(evaluated)} check(s) that could not run on the broken columns")
    return "; ".join(parts)


def _failure_paragraph(store: ArtifactStore, failed: list[Outcome]) -> str:
    items = [f"{o.label} ({_short(o.failures)}; report: {o.report})" for o in failed]
    return (f"validate refused {len(failed)} partition(s): " + " | ".join(items) + ". Each refused batch was "
            "quarantined with its raw bytes and a report; validated data for these dates was left unchanged, so "
            "nothing downstream reads the bad data. Fix the source, then re-run ingest and validate for these dates.")


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
