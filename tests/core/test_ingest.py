"""ingest on the real nycflights13 data: partitions, idempotency, file sources."""

from __future__ import annotations

import subprocess
import sys

from components.contracts import layout, schema
from components.contracts.results import IngestResult
from components.contracts.stages import IngestParams
from components.data.ingest import ingest


def test_ingest_partitions_real_days_and_is_idempotent(local_store):
    result = ingest(IngestParams(start="2013-03-09", end="2013-03-11"), local_store)
    assert set(result) == set(IngestResult.__annotations__)  # the declared result, key for key
    assert result["tables"]["flights"]["partitions"] == 3
    day = schema.parse_day("2013-03-10")  # the US DST switch: local hours still map to one UTC instant each
    flights = local_store.read_parquet(layout.raw_key("flights", day))
    assert 600 < len(flights) < 1100
    assert flights["flight_id"].is_unique
    assert (flights[["year", "month", "day"]].drop_duplicates().values.tolist() == [[2013, 3, 10]])
    assert str(flights["sched_dep_utc"].dtype) == "datetime64[us, UTC]"
    weather = local_store.read_parquet(layout.raw_key("weather", day))
    assert set(weather["origin"]) == set(schema.ORIGINS)

    before = {k: local_store.read_bytes(k) for k in local_store.list("raw/")}
    ingest(IngestParams(start="2013-03-09", end="2013-03-11"), local_store)
    after = {k: local_store.read_bytes(k) for k in local_store.list("raw/")}
    assert before == after, "re-ingesting the same range must rewrite the same bytes"


def test_sched_dep_utc_matches_time_hour(local_store):
    ingest(IngestParams(start="2013-07-04", end="2013-07-04"), local_store)
    f = local_store.read_parquet(layout.raw_key("flights", schema.parse_day("2013-07-04")))
    # time_hour is the scheduled hour in UTC, as published in the data set.
    assert (f["sched_dep_utc"].dt.floor("h") == f["time_hour"]).all()


def test_file_source_with_a_missing_day_gets_an_empty_partition(local_store, home):
    from components.data.sources import nycflights13

    flights = nycflights13.load("flights")
    flights = flights[(flights.month == 5) & (flights.day == 1)]
    src = home / "landing" / "drop"  # the default landing location (FLIGHTDECK_LANDING)
    src.mkdir(parents=True)
    flights.to_csv(src / "flights.csv", index=False)
    result = ingest(IngestParams(start="2013-05-01", end="2013-05-02", source=str(src)), local_store)
    assert result["tables"]["flights"]["rows"] == len(flights)
    assert len(local_store.read_parquet(layout.raw_key("flights", schema.parse_day("2013-05-02")))) == 0
    assert "weather" not in result["tables"]


def test_cli_help_names_every_stage():
    out = subprocess.run([sys.executable, "-m", "components.ops.cli", "--help"], capture_output=True, text=True, check=True)
    for word in ("ingest", "validate", "features"):
        assert word in out.stdout


def test_cli_bad_date_is_a_clear_failure(home):
    proc = subprocess.run([sys.executable, "-m", "components.ops.cli", "ingest", "--start", "2013-13-01", "--end", "2013-01-02"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "is not a date of the form YYYY-MM-DD" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ingesting_a_file_source_twice_rewrites_the_same_bytes(local_store, home):
    """CSV and parquet drops: a second ingest of the same files leaves raw/ byte for byte as it was,
    and a changed file does change it (so the comparison can fail)."""
    from components.data.sources import nycflights13

    flights = nycflights13.load("flights")
    flights = flights[(flights.month == 6) & (flights.day.isin([1, 2]))]
    weather = nycflights13.load("weather")
    weather = weather[(weather.month == 6) & (weather.day.isin([1, 2]))]
    landing = home / "landing"
    for fmt in ("csv", "parquet"):
        src = landing / fmt
        src.mkdir(parents=True)
        for name, df in (("flights", flights), ("weather", weather)):
            if fmt == "csv":
                df.to_csv(src / f"{name}.csv", index=False)
            else:
                df.to_parquet(src / f"{name}.parquet", index=False)
        params = IngestParams(start="2013-06-01", end="2013-06-02", source=str(src))
        first = ingest(params, local_store)
        before = {k: local_store.read_bytes(k) for k in local_store.list("raw/")}
        assert first["tables"]["flights"]["rows"] == len(flights) and first["tables"]["weather"]["rows"] == len(weather)
        again = ingest(params, local_store)
        assert again["tables"] == first["tables"]
        after = {k: local_store.read_bytes(k) for k in local_store.list("raw/")}
        assert after == before, f"re-ingesting the same {fmt} files must rewrite the same bytes"
        day = schema.parse_day("2013-06-02")
        part = local_store.read_parquet(layout.raw_key("flights", day))
        assert part["flight_id"].is_unique and len(part) == (flights.day == 2).sum()  # no duplicates, ever
    changed = flights[flights.day == 2].iloc[1:]
    changed.to_csv(landing / "csv" / "flights.csv", index=False)
    ingest(IngestParams(start="2013-06-02", end="2013-06-02", source=str(landing / "csv")), local_store)
    assert local_store.read_bytes(layout.raw_key("flights", day)) != before[layout.raw_key("flights", day)]
