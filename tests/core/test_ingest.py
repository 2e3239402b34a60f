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
    assert result["tables"]["schedule"]["partitions"] == result["tables"]["outcomes"]["partitions"] == 3
    day = schema.parse_day("2013-03-10")  # the US DST switch: local hours still map to one UTC instant each
    flights = local_store.read_parquet(layout.raw_key("schedule", day))
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
    f = local_store.read_parquet(layout.raw_key("schedule", schema.parse_day("2013-07-04")))
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
    assert result["tables"]["schedule"]["rows"] == result["tables"]["outcomes"]["rows"] == len(flights)
    for table in schema.FLIGHT_SOURCES:
        assert len(local_store.read_parquet(layout.raw_key(table, schema.parse_day("2013-05-02")))) == 0
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
        assert first["tables"]["schedule"]["rows"] == len(flights) and first["tables"]["weather"]["rows"] == len(weather)
        again = ingest(params, local_store)
        assert again["tables"] == first["tables"]
        after = {k: local_store.read_bytes(k) for k in local_store.list("raw/")}
        assert after == before, f"re-ingesting the same {fmt} files must rewrite the same bytes"
        day = schema.parse_day("2013-06-02")
        part = local_store.read_parquet(layout.raw_key("outcomes", day))
        assert part["flight_id"].is_unique and len(part) == (flights.day == 2).sum()  # no duplicates, ever
    changed = flights[flights.day == 2].iloc[1:]
    changed.to_csv(landing / "csv" / "flights.csv", index=False)
    ingest(IngestParams(start="2013-06-02", end="2013-06-02", source=str(landing / "csv")), local_store)
    for table in schema.FLIGHT_SOURCES:
        assert local_store.read_bytes(layout.raw_key(table, day)) != before[layout.raw_key(table, day)]


# -- the two sources: the schedule, known in advance, and the outcomes, each stamped when it became known --
def test_ingest_splits_the_schedule_from_the_outcomes_each_outcome_stamped_when_known(local_store):
    """The packaged flights of a real day become two raw tables, the contract's columns each, one row per
    flight in both; known_at equals an independent computation from the source's own rows (sampled), and is
    never before the event it reports."""
    import numpy as np
    import pandas as pd

    from components.data.sources import nycflights13

    day = schema.parse_day("2013-07-04")
    result = ingest(IngestParams(start=str(day), end=str(day)), local_store)
    schedule = local_store.read_parquet(layout.raw_key("schedule", day))
    outcomes = local_store.read_parquet(layout.raw_key("outcomes", day))
    assert list(schedule.columns) == [c for c in ["year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier",
                                                  "flight", "tailnum", "origin", "dest", "distance", "hour", "minute",
                                                  "time_hour", "flight_id", "sched_dep_utc"]]
    assert set(schedule.columns) == set(schema.SCHEDULE_COLUMNS)
    assert list(outcomes.columns) == ["flight_id", "year", "month", "day", "dep_time", "dep_delay", "arr_time",
                                      "arr_delay", "air_time", "known_at"]
    assert set(outcomes.columns) == set(schema.OUTCOMES_COLUMNS)
    assert str(outcomes["known_at"].dtype) == "datetime64[us, UTC]" and outcomes["known_at"].notna().all()
    assert list(schedule["flight_id"]) == list(outcomes["flight_id"])  # one outcome per scheduled flight
    assert result["tables"]["schedule"]["rows"] == result["tables"]["outcomes"]["rows"] == len(schedule) == 737

    # Independently, from the CSV as shipped: scheduled departure from the local clock; arrived -> departure
    # (delay clipped at 0) + air time + 60 min; departed, no arrival -> departure + 12 h; cancelled -> scheduled.
    src = nycflights13.load("flights")
    src = src[(src.month == 7) & (src.day == 4)].reset_index(drop=True)
    rng = np.random.default_rng(16)
    sample = src.iloc[np.concatenate([rng.choice(len(src), 40, replace=False),
                                      np.flatnonzero(src["dep_time"].isna().to_numpy())[:5],
                                      np.flatnonzero((src["dep_time"].notna() & src["air_time"].isna()).to_numpy())[:5]])]
    by_id = outcomes.set_index("flight_id")
    kinds = set()
    for _, row in sample.iterrows():
        fid = f"{day}_{row['carrier']}{int(row['flight'])}_{row['origin']}"
        sched = pd.Timestamp(int(row["year"]), int(row["month"]), int(row["day"]), int(row["hour"]),
                             int(row["minute"])).tz_localize("America/New_York").tz_convert("UTC")
        if pd.isna(row["dep_time"]):
            expected, kind = sched, "cancelled"
        elif pd.isna(row["air_time"]):
            expected, kind = sched + pd.Timedelta(minutes=max(float(row["dep_delay"]), 0)) + pd.Timedelta(hours=12), \
                "diverted"
        else:
            expected = sched + pd.Timedelta(minutes=max(float(row["dep_delay"]), 0) + float(row["air_time"]) + 60)
            kind = "arrived"
        kinds.add(kind)
        known = by_id.loc[fid, "known_at"]
        assert known == expected, (fid, kind, known, expected)
        if kind != "cancelled":  # never before the departure it reports (early departures included)
            assert known >= sched + pd.Timedelta(minutes=float(row["dep_delay"])), fid
    assert kinds == {"arrived", "diverted", "cancelled"}  # the sample holds every kind of outcome


def test_a_landing_folder_may_deliver_the_schedule_and_the_outcomes_separately(local_store, home):
    """In production the two come from different feeds: schedule.csv and outcomes.parquet in one folder give
    the same raw partitions as the combined flights file (the outcomes feed named by flight_id; without its
    own known_at, ingest stamps it from the delivery's schedule by the same rule)."""
    from components.data.sources import nycflights13

    flights = nycflights13.load("flights")
    flights = flights[(flights.month == 5) & (flights.day == 1)]
    day = schema.parse_day("2013-05-01")
    combined, split = home / "landing" / "combined", home / "landing" / "split"
    combined.mkdir(parents=True)
    split.mkdir(parents=True)
    flights.to_csv(combined / "flights.csv", index=False)
    ingest(IngestParams(start=str(day), end=str(day), source=str(combined)), local_store)
    expected = {t: local_store.read_parquet(layout.raw_key(t, day)) for t in schema.FLIGHT_SOURCES}

    facts = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
    flights.drop(columns=facts).to_csv(split / "schedule.csv", index=False)
    feed = expected["outcomes"].drop(columns=["known_at"])  # the feed: flight key, partition keys, facts
    feed.to_parquet(split / "outcomes.parquet", index=False)
    result = ingest(IngestParams(start=str(day), end=str(day), source=str(split)), local_store)
    assert result["tables"]["schedule"]["rows"] == result["tables"]["outcomes"]["rows"] == len(flights)
    import pandas as pd

    for table in schema.FLIGHT_SOURCES:
        pd.testing.assert_frame_equal(local_store.read_parquet(layout.raw_key(table, day)), expected[table])
