"""ingest: raw data for a date range -> date-partitioned parquet in the artifact store.

Flights are two sources, each with its own time: the schedule (known in advance) and the outcomes
(departures, arrivals, cancellations; each row stamped with `known_at`, when it became known:
components.contracts.outcomes). A combined flights file (the packaged data, a landing folder's
flights.*) is split into the two; a landing folder may also deliver them as schedule.* and outcomes.*.
Both are partitioned by scheduled-departure date (local time at the origin), weather by
its local date; planes and airlines are reference tables. Every date in the range gets a
partition, empty when the source has no rows for it, so that validation sees (and refuses)
a missing day instead of silently skipping it. Days outside what the source holds at all
(nycflights13: 2013 only, schema.NYCFLIGHTS13_DAYS) are refused before anything is written. Re-ingesting rewrites the same partitions
with the same bytes: no duplicates, ever.

The source adapter only loads and types data; it does not judge it. Judging is the
validate stage's job, so a bad file still lands in raw/ and is quarantined there.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import BadInput
from components.contracts.outcomes import outcome_known_at
from components.contracts.results import IngestResult
from components.contracts.stages import IngestParams
from components.core.settings import Settings, load_settings
from components.core.store import ArtifactStore, open_store, sha256_bytes
from components.data import expectations
from components.data.landing import Source, SourceFile

log = logging.getLogger(__name__)

PARTITION_KEYS = ("year", "month", "day")


def ingest(params: IngestParams, store: ArtifactStore | None = None) -> IngestResult:
    """Write the source's tables for the date range to raw/, one parquet partition per table and day.

    Inputs:
      params.source  "nycflights13" (the packaged data), or, inside a landing location (FLIGHTDECK_LANDING:
          <home>/landing locally, s3://<data bucket>/landing/ on aws), a folder, file:// URI or s3:// prefix
          holding <table>.parquet / .csv / .csv.zip files (flights, or schedule and outcomes; weather, planes,
          airlines), or a single flights file.
    Outputs (store keys):
      raw/<table>/date=<d>/part.parquet  schedule, outcomes (with known_at) and weather, for every day d of
          [start, end], flights split by the schedule's local date (an empty
          partition when the source has no rows for d), sorted by key: the same source gives the same bytes.
      raw/<table>/part.parquet  the reference tables (planes, airlines) the source has.
      quarantine/<table>/unreadable/<time>/  an unusable source file (up to FLIGHTDECK_QUARANTINE_MAX_MB;
          above it only recorded by path, size and sha256) with a report.md.
    Returns:
      IngestResult: the source and range, rows and partitions per table written, seconds, the raw/ URI.
    Failures:
      OutsideSourceRange (a BadInput): a day of [start, end] lies outside the days the source holds
          (nycflights13: schema.NYCFLIGHTS13_DAYS, 2013 only), refused before anything is read or written.
      BadInput: the source is outside the landing locations after resolving symlinks and `..` (refused
          before anything is read or written), is not an existing file or folder there, has no flights
          file (nor schedule and outcomes files), or a file cannot be read or lacks the year/month/day columns (that file is quarantined first).
    """
    days = schema.day_range(params.start, params.end)
    # The data's clock: a day the source does not hold (today, on the 2013 data) would only make empty
    # partitions that validation then quarantines. Refused first: nothing is written, not even planes/airlines.
    schema.check_source_range(params.source, days[0], days[-1])
    store = store or open_store()
    settings = load_settings()
    t0 = time.perf_counter()
    # Confined before anything is read or written: a source outside the landing locations is refused.
    opened = None if params.source == "nycflights13" else Source(params.source, settings)
    # The flights first (an unreadable flights file is refused before anything is written), split into
    # its two sources: the schedule, known in advance, and the outcomes, each stamped with when it became known.
    tables = _flight_tables(params.source, store, settings, opened)
    tables.update({name: load_source(params.source, name, store, settings, opened)
                   for name in ("weather", *schema.REFERENCE)})
    written: dict[str, dict[str, int]] = {}
    for name, df in tables.items():
        if df is None:
            continue
        if name in schema.REFERENCE:
            df = df.sort_values(list(df.columns[:1])).reset_index(drop=True)
            store.write_parquet(layout.raw_key(name), df)
            written[name] = {"rows": len(df), "partitions": 1}
            continue
        if name == "weather":
            df = _derive(name, _dated(store, params.source, name, df, settings))
        local_day = _local_day(df)
        rows = 0
        for day in days:
            part = df[local_day == pd.Timestamp(day)]
            part = part.sort_values(_sort_keys(name, part)).reset_index(drop=True)
            store.write_parquet(layout.raw_key(name, day), part)
            rows += len(part)
        written[name] = {"rows": rows, "partitions": len(days)}
    log.info("ingest %s..%s from %s: %s", params.start, params.end, params.source, written)
    return {"source": params.source, "start": params.start, "end": params.end, "tables": written,
            "seconds": round(time.perf_counter() - t0, 3),
            "uri": store.uri("raw")}  # raw/<table>/date=<day>/ for every day of the range (the KFP Dataset)


def _flight_tables(source: str, store: ArtifactStore, settings: Settings, opened: Source | None
                   ) -> dict[str, pd.DataFrame]:
    """The schedule and outcomes of the source. One flights file (the packaged data, a landing folder's
    flights.*, a single file) is split in two; a landing folder without one must hold schedule.* and
    outcomes.* (in production they come from different feeds). Each outcome row carries known_at: the
    feed's own when it has one, else the one rule of components.contracts.outcomes."""
    if source == "nycflights13" or opened.file("flights") is not None:
        flights = _derive("flights", _dated(store, source, "flights", load_source(source, "flights", store, settings,
                                                                                    opened), settings))
        if "known_at" not in flights.columns:
            flights["known_at"] = stamp_known_at(flights)
        facts = [c for c in (*schema.OUTCOME_FACTS, "known_at") if c in flights.columns]
        keys = [c for c in ("flight_id", *PARTITION_KEYS) if c in flights.columns]
        return {"schedule": flights.drop(columns=facts), "outcomes": flights[keys + facts]}
    schedule = load_source(source, "schedule", store, settings, opened)
    outcomes = load_source(source, "outcomes", store, settings, opened)
    if schedule is None or outcomes is None:
        raise BadInput(f"source {source!r} has no flights file (flights.csv or flights.parquet), nor both a "
                       "schedule and an outcomes file (schedule.* and outcomes.*)")
    schedule = _derive("flights", _dated(store, source, "schedule", schedule, settings))
    outcomes = _derive("flights", _dated(store, source, "outcomes", outcomes, settings))
    if "known_at" not in outcomes.columns and "flight_id" in outcomes.columns and "flight_id" in schedule.columns:
        # A feed without its own stamps: the rule, from the same delivery's scheduled departures.
        sched = schedule.drop_duplicates("flight_id").set_index("flight_id")["sched_dep_utc"]
        outcomes["known_at"] = stamp_known_at(outcomes.assign(sched_dep_utc=outcomes["flight_id"].map(sched)))
    return {"schedule": schedule, "outcomes": outcomes}


IMPOSSIBLE_MINUTES = 10 * 365 * 24 * 60  # ten years: far beyond any delay or flight, far inside pandas' range


def stamp_known_at(flights: pd.DataFrame) -> pd.Series:
    """known_at of each outcome row (components.contracts.outcomes); NaT where its inputs are missing or
    malformed, for validation to refuse (ingest does not judge)."""
    needed = ("sched_dep_utc", "dep_time", "dep_delay", "air_time")
    if not set(needed) <= set(flights.columns) or not isinstance(flights["sched_dep_utc"].dtype, pd.DatetimeTZDtype):
        return pd.Series(pd.NaT, index=flights.index, dtype="datetime64[us, UTC]")
    numeric = pd.DataFrame({c: pd.to_numeric(flights[c], errors="coerce").astype("float64") for c in needed[1:]})
    # Minutes no flight can take (a corrupt value such as 5e16) cannot become a timestamp at all
    # (pandas raises OutOfBoundsDatetime): NaT as for any malformed input; validation names the value.
    durations = ["dep_delay", "air_time"]
    numeric[durations] = numeric[durations].where(numeric[durations].abs() <= IMPOSSIBLE_MINUTES)
    known = outcome_known_at(numeric.assign(sched_dep_utc=flights["sched_dep_utc"]))
    return known.astype("datetime64[us, UTC]")


def _dated(store: ArtifactStore, source: str, name: str, df: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The table, refused (its file quarantined) when its rows cannot all be assigned to a local day."""
    missing = [c for c in PARTITION_KEYS if c not in df.columns]
    if missing:
        raise _refuse_file(store, source, name, f"the {name} data has no {', '.join(missing)} column(s), "
                           "so its rows cannot be assigned to dates", settings)
    local_day = _local_day(df)
    undated = df[local_day.isna()]
    if len(undated):
        # They belong to no day, so no partition would hold them: dropping them silently would lose them.
        sample = ", ".join("/".join(str(v) for v in r) for r in
                           undated[list(PARTITION_KEYS)].astype(object).head(3).itertuples(index=False))
        raise _refuse_file(store, source, name, f"{len(undated)} of {len(df)} {name} rows have a "
                           f"year/month/day that is not a date (e.g. {sample}), so they cannot be assigned to "
                           "a day", settings)
    return df


def load_source(source: str, table: str, store: ArtifactStore, settings: Settings | None = None,
                opened: Source | None = None) -> pd.DataFrame | None:
    """One table from the source, typed but unjudged; None when a file source lacks that table.
    A file source is confined to the landing locations first (components.data.landing)."""
    if source == "nycflights13":
        from components.data.sources import nycflights13

        return _canonical_types(table, nycflights13.load(table))
    settings = settings or load_settings()
    opened = opened or Source(source, settings)
    file = opened.file(table)
    if file is None:
        return None
    try:
        return file.read_table()
    except pd.errors.EmptyDataError:
        return pd.DataFrame({c: [] for c in schema.TABLE_COLUMNS[table]})
    except Exception as exc:
        kind = file.name.rsplit(".", 1)[-1] if "." in file.name else "a table"
        raise _refuse_file(store, source, table, f"{file.uri} cannot be read as {kind}: {_first_line(exc)}",
                           settings, file=file) from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _refuse_file(store: ArtifactStore, source: str, table: str, reason: str, settings: Settings,
                 file: SourceFile | None = None) -> BadInput:
    """Keep an unusable source file aside with a report, and build the error that stops the run.

    Only a file of a landing location gets here (Source confines them), and only up to
    settings.quarantine_max_mb is copied: a bigger one is recorded by path, size and sha256."""
    batch = time.strftime("%Y%m%dT%H%M%S")
    prefix = f"quarantine/{table}/unreadable/{batch}"
    report = f"# Quarantined at ingest\n\nsource: {source}\n\n{reason}\n"
    files: dict[str, bytes] = {}
    meta = {"source": source, "reason": reason}
    if file is not None:
        size = file.size()
        cap = int(settings.quarantine_max_mb * 1024 * 1024)
        if size <= cap:
            data = file.read_bytes()
            files[file.name] = data
            digest, kept = sha256_bytes(data), "copied here"
        else:
            digest, kept = file.sha256(), f"not copied: above the {settings.quarantine_max_mb:g} MB cap " \
                                         "(FLIGHTDECK_QUARANTINE_MAX_MB)"
        report += f"\nfile: {file.uri}\n\nsize: {size} bytes\n\nsha256: {digest}\n\nthe file was {kept}\n"
        meta.update(file=file.uri, size=size, sha256=digest, copied=size <= cap)
        reason += f" (sha256 {digest[:12]})"
    files["report.md"] = report.encode()
    store.publish(prefix, files, meta=meta)
    return BadInput(f"ingest refused the {table} data: {reason}. The report was kept at {store.uri(prefix)}; "
                    "nothing was written to raw/ and no features changed.")


def _canonical_types(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """The packaged data's types, made to match the raw contract (ints, floats with NaN, UTC timestamps)."""
    out = df.copy()
    for col, kind in schema.TABLE_COLUMNS[table].items():
        if col not in out.columns:
            continue
        if kind == "int":
            out[col] = out[col].astype("int64")
        elif kind == "float":
            out[col] = out[col].astype("float64")
        elif kind == "string":
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif kind == "utc":
            out[col] = pd.to_datetime(out[col], utc=True).astype("datetime64[us, UTC]")
    return out


def _derive(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Add the flight key and the UTC scheduled departure; leave anything odd for validation to find."""
    df = df.copy()
    if "time_hour" in df.columns and not pd.api.types.is_datetime64_any_dtype(df["time_hour"]):
        parsed = pd.to_datetime(df["time_hour"], errors="coerce", format="ISO8601")
        df["time_hour"] = parsed
    if isinstance(df.get("time_hour", pd.Series(dtype=object)).dtype, pd.DatetimeTZDtype):
        df["time_hour"] = df["time_hour"].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if table != "flights":
        return df
    if "flight_id" in df.columns:  # an outcomes feed names its flights by the key
        return df
    day = _local_day(df).dt.strftime("%Y-%m-%d")
    if {"carrier", "flight", "origin"} <= set(df.columns):
        key = day + "_" + df["carrier"].astype(str) + df["flight"].astype(str).str.replace(r"\.0$", "", regex=True) \
            + "_" + df["origin"].astype(str)
        df["flight_id"] = key.where(df["carrier"].notna() & df["flight"].notna() & df["origin"].notna(), None)
    if {"hour", "minute"} <= set(df.columns):
        local = expectations.assemble_local(df, ("year", "month", "day", "hour", "minute"))
        df["sched_dep_utc"] = (
            local.dt.tz_localize(schema.LOCAL_TZ, ambiguous="NaT", nonexistent="NaT")
            .dt.tz_convert("UTC")
            .astype("datetime64[us, UTC]")
        )
    return df


def _local_day(df: pd.DataFrame) -> pd.Series:
    return expectations.assemble_local(df, PARTITION_KEYS)


def _sort_keys(table: str, df: pd.DataFrame) -> list[str]:
    keys = ["flight_id"] if table in schema.FLIGHT_SOURCES else ["origin", "time_hour"]
    return [k for k in keys if k in df.columns] or list(df.columns[:1])
