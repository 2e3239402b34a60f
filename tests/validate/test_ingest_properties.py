"""Property: whatever flights file lands, ingest + validate either succeed or stop with a clear
StageFailed/BadInput, never a traceback, and never leave a partial write.

Hypothesis generates flights frames from real rows of one day with mutations (columns dropped, added
or retyped, nulls, extreme and unicode values, time stamps naive, aware in other zones or garbage,
duplicated rows, empty frames), written as CSV or parquet into the landing folder; the real ingest
and the real validate stage (Great Expectations) run on them against one small store. After each
example: raw/ holds either the old or the new partition of that day and nothing else changed, the
day's validated/ version is either the old one or a complete new one holding exactly the raw bytes,
and the validated data of another day is byte for byte as it was.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.stages import IngestParams, ValidateParams
from components.core.store import LocalStore
from components.data.ingest import ingest
from components.data.quarantine import PART
from components.data.validate import validate

DAY = "2013-04-01"  # every example's day
OTHER = "2013-04-02"  # validated once, must never change
COLUMNS = [c for c in schema.TABLE_COLUMNS["flights"]
           if c not in ("flight_id", "sched_dep_utc", "known_at")]  # as shipped
BASE_ROWS = 30
# 25 keeps the file within ~90 s on busy cores; raise it for a longer hunt (FLIGHTDECK_PROPERTY_EXAMPLES=500).
EXAMPLES = int(os.environ.get("FLIGHTDECK_PROPERTY_EXAMPLES", "25"))
_counter = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with DAY and OTHER ingested and validated from the packaged data, and its landing folder.
    The reference tables' raw files are then dropped (their validated versions stand in), so each
    example judges only the day's flights and weather."""
    home = tmp_path_factory.mktemp("fd-props")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        store = LocalStore(home / "artifacts")
        ingest(IngestParams(start=DAY, end=OTHER), store)
        validate(ValidateParams(start=DAY, end=OTHER), store)
        for table in schema.REFERENCE:
            store.delete(layout.raw_key(table))
        from components.data.sources import nycflights13

        f = nycflights13.load("flights")
        day = schema.parse_day(DAY)
        real = f[(f.month == day.month) & (f.day == day.day)].head(BASE_ROWS).reset_index(drop=True)
        landing = home / "landing"
        landing.mkdir()
        yield {"store": store, "landing": landing, "real": real}


# -- generated frames ------------------------------------------------------------------------------
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),  # any unicode (surrogates excluded: not encodable in a UTF-8 file)
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                 timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-5))])),
)
MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("extra"), st.text(min_size=1, max_size=8), VALUES),
    st.tuples(st.just("nulls"), st.sampled_from(COLUMNS), st.integers(0, BASE_ROWS)),
    st.tuples(st.just("values"), st.sampled_from(COLUMNS), st.lists(VALUES, min_size=1, max_size=4)),
    st.tuples(st.just("retype"), st.sampled_from(COLUMNS), st.sampled_from(["str", "float", "Int64", "category"])),
    st.tuples(st.just("time_hour"), st.sampled_from(["naive", "aware-utc", "aware-local", "aware-tokyo", "garbage",
                                                     "epoch-ns", "mixed"])),
    st.tuples(st.just("duplicate"), st.integers(1, 5)),
    st.tuples(st.just("shuffle"), st.integers(0, 2**16)),
)


@st.composite
def cases(draw):
    return {"rows": draw(st.integers(0, BASE_ROWS)), "mutations": draw(st.lists(MUTATION, max_size=4)),
            "fmt": draw(st.sampled_from(["csv", "parquet"]))}


def mutate(real: pd.DataFrame, case: dict) -> pd.DataFrame:
    df = real.head(case["rows"]).copy()
    for m in case["mutations"]:
        kind, args = m[0], m[1:]
        if kind == "drop" and args[0] in df.columns:
            df = df.drop(columns=[args[0]])
        elif kind == "extra":
            df[args[0]] = [args[1]] * len(df)
        elif kind == "nulls" and args[0] in df.columns:
            df[args[0]] = df[args[0]].astype(object)
            df.loc[df.index[: args[1]], args[0]] = None
        elif kind == "values" and args[0] in df.columns and len(df):
            df[args[0]] = df[args[0]].astype(object)
            for i, v in zip(df.index, itertools.cycle(args[1])):
                df.at[i, args[0]] = v
        elif kind == "retype" and args[0] in df.columns:
            df[args[0]] = df[args[0]].astype(args[1], errors="ignore") if args[1] != "float" else \
                pd.to_numeric(df[args[0]], errors="coerce")
        elif kind == "time_hour" and "time_hour" in df.columns:
            df["time_hour"] = retime(pd.to_datetime(df["time_hour"], utc=True, errors="coerce"), args[0])
        elif kind == "duplicate" and len(df):
            df = pd.concat([df, df.head(args[0])], ignore_index=True)
        elif kind == "shuffle":
            df = df.sample(frac=1.0, random_state=args[0]).reset_index(drop=True)
    return df


def retime(utc: pd.Series, how: str) -> pd.Series:
    """time_hour written another way: naive, in another zone, as epoch numbers, garbage or mixed."""
    if how == "naive":
        return utc.dt.tz_localize(None)
    if how == "aware-local":
        return utc.dt.tz_convert(schema.LOCAL_TZ)
    if how == "aware-tokyo":
        return utc.dt.tz_convert("Asia/Tokyo")
    if how == "garbage":
        return pd.Series(["not a time"] * len(utc), index=utc.index, dtype=object)
    if how == "epoch-ns":
        return utc.astype("int64")
    if how == "mixed":
        return pd.Series([str(v) if i % 2 else v for i, v in enumerate(utc)], index=utc.index, dtype=object)
    return utc


def write_drop(landing, df: pd.DataFrame, fmt: str) -> str:
    """The frame as a landing drop; a frame pyarrow cannot store (mixed object columns) goes as CSV."""
    folder = landing / f"drop-{next(_counter)}"
    folder.mkdir()
    if fmt == "parquet":
        try:
            df.to_parquet(folder / "flights.parquet", index=False)
            return str(folder)
        except Exception:
            (folder / "flights.parquet").unlink(missing_ok=True)
    df.to_csv(folder / "flights.csv", index=False)
    return str(folder)


# -- the property ----------------------------------------------------------------------------------
def rows_dated(frame: pd.DataFrame, day: dt.date) -> tuple[int, int]:
    """(rows whose year/month/day are the numbers of `day`, rows where one of them is not a number)."""
    if not {"year", "month", "day"} <= set(frame.columns):
        return 0, len(frame)
    parts = {p: pd.to_numeric(frame[p], errors="coerce").astype("float64") for p in ("year", "month", "day")}
    on_day = (parts["year"] == day.year) & (parts["month"] == day.month) & (parts["day"] == day.day)
    return int(on_day.sum()), int(pd.concat(parts, axis=1).isna().any(axis=1).sum())


def state(store: LocalStore) -> dict:
    return {
        "raw": {k: store.read_bytes(k) for k in store.list("raw/")},
        "day": store.published(layout.validated_prefix("flights", schema.parse_day(DAY))),
        "other": {t: store.published(layout.validated_prefix(t, schema.parse_day(OTHER))) for t in schema.PARTITIONED},
        "other_bytes": {t: store.read_published(layout.validated_prefix(t, schema.parse_day(OTHER)), PART)
                        for t in schema.PARTITIONED},
    }


def run_stages(store, source: str) -> tuple[str, str]:
    """ingest then validate; ("ok" | the stage that refused, its message). Any other exception propagates:
    that is a traceback, which the property forbids."""
    try:
        ingest(IngestParams(start=DAY, end=DAY, source=source), store)
    except StageFailed as exc:
        return "ingest", str(exc)
    try:
        validate(ValidateParams(start=DAY, end=DAY, min_flight_rows=1), store)
    except StageFailed as exc:
        return "validate", str(exc)
    return "ok", ""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=cases())
@example(case={"rows": BASE_ROWS, "mutations": [], "fmt": "parquet"})  # the untouched rows: published
@example(case={"rows": 0, "mutations": [], "fmt": "csv"})  # an empty file
@example(case={"rows": 3, "mutations": [("values", "air_time", [5.069790013486611e16, 60.0, None])], "fmt": "csv"})
# ^ minutes beyond any timestamp (found by this property on 2026-12-06: ingest raised OutOfBoundsDatetime)
def test_ingest_and_validate_never_crash_nor_write_partially(world, case):
    store, day = world["store"], schema.parse_day(DAY)
    frame = mutate(world["real"], case)
    source = write_drop(world["landing"], frame, case["fmt"])
    before = state(store)
    stage, message = run_stages(store, source)
    after = state(store)
    assert stage == "ok" or message.strip(), f"{stage} refused without a message"
    # The other day's validated data, and every raw partition but this day's schedule and outcomes, are untouched.
    assert after["other"] == before["other"] and after["other_bytes"] == before["other_bytes"]
    raw_keys = [layout.raw_key(t, day) for t in schema.FLIGHT_SOURCES]
    assert {k: v for k, v in after["raw"].items() if k not in raw_keys} == \
        {k: v for k, v in before["raw"].items() if k not in raw_keys}
    if stage == "ingest":
        assert after["raw"] == before["raw"], "a refused ingest must leave raw/ as it was"
    else:
        # Nothing lost: every row of the day is in its partition, and no row without a date was dropped.
        on_day, undated = rows_dated(frame, day)
        assert undated == 0, f"ingest accepted {undated} rows that belong to no day"
        for key in raw_keys:
            assert len(pd.read_parquet(store.local_path(key))) == on_day
    if stage == "ok":
        # Fully published: each source holds exactly its raw bytes, the flights product their join.
        assert after["day"] is not None
        for table, key in zip(schema.FLIGHT_SOURCES, raw_keys, strict=True):
            assert store.read_published(layout.validated_prefix(table, day), PART) == after["raw"][key]
        data = store.read_published(layout.validated_prefix("flights", day), PART)
        assert after["day"]["meta"]["sha256"] == __import__("hashlib").sha256(data).hexdigest()
        assert after["day"]["meta"]["rows"] == on_day == len(pd.read_parquet(__import__("io").BytesIO(data)))
    else:
        assert after["day"] == before["day"], f"the {stage} refusal changed validated/ ({message[:200]})"
    if before["day"] is not None and after["day"] is not None:
        assert np.isfinite(after["day"]["meta"]["rows"])


# -- regressions, each named by what the property found ----------------------------------------------
def test_an_hour_too_big_for_a_timestamp_is_refused_not_a_traceback(world):
    """hour = 10**18 made pandas raise OutOfBoundsTimedelta (a ValueError) from pd.to_datetime(..., errors=
    "coerce") in ingest's sched_dep_utc and in validate's local clock: a traceback, not a refusal."""
    from components.data import expectations

    frame = mutate(world["real"], {"rows": BASE_ROWS, "mutations": [("values", "hour", [10**18, 5])], "fmt": "csv"})
    stage, message = run_stages(world["store"], write_drop(world["landing"], frame, "parquet"))
    assert stage == "validate" and "sched_dep_utc" in message, message
    clock = expectations.prepare_batch("schedule", frame, schema.parse_day(DAY))["local_clock"]
    assert clock.isna().sum() == (frame["hour"] == 10**18).sum() > 0


def test_rows_whose_year_month_day_are_not_a_date_are_refused_not_dropped(world):
    """A row with month 13 (or year 2**62, day 'x', a null year) belongs to no day: ingest used to drop it
    silently and publish the rest. Now ingest refuses the file naming such rows, and raw/ is unchanged."""
    store = world["store"]
    for bad in (13, "x", None):
        frame = world["real"].copy()
        frame["month"] = frame["month"].astype(object)
        frame.loc[frame.index[:2], "month"] = bad
        before = state(store)
        stage, message = run_stages(store, write_drop(world["landing"], frame, "csv"))
        assert stage == "ingest" and "2 of 30 flights rows have a year/month/day that is not a date" in message
        assert state(store) == before
