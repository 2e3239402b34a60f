"""predict-batch per scoring interval on real days (ingest, validate and features build for real, Feast's
point-in-time join, the registry's TorchScript in-process): every flight of the day is scored exactly once
over the day's interval runs, in the run whose interval holds its prediction time; the union equals one
whole-day run; a rerun replaces only its own part; concurrent runs of two intervals both survive; and the
weather each prediction used is, recomputed from the validated observations with pandas (not Feast), the
latest observed at or before its prediction time: nothing observed later."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from components.contracts import layout, schema, signature
from components.contracts import prediction_time as pt
from components.contracts.errors import StageFailed
from components.contracts.stages import PredictBatchParams
from components.core import partitions
from components.model.card import register_unevaluated
from components.model.registry import Registry
from tests.serving.conftest import DAY, START, copy_home
from tests.serving.fixture_models import scripted_bytes

pytestmark = pytest.mark.slow  # the shared days' ingest, validate and features build
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"
WEATHER = ["temp", "dewp", "humid", "wind_speed", "pressure", "visib"]


@pytest.fixture(scope="module")
def env(real_days, tmp_path_factory):
    from components.core.store import open_store
    from components.features.feast_repo import apply

    home = copy_home(real_days, tmp_path_factory.mktemp("fd-intervals"))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local"}.items():
            mp.setenv(k, v)
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        mp.delenv("FLIGHTDECK_SCORING_INTERVAL_MINUTES", raising=False)
        store = open_store()
        apply(store=store)
        registry = Registry(store, "flight_delay")
        register_unevaluated(registry, {"model.pt": scripted_bytes(71)}, {"blessed": True}, HAND_MADE)
        registry.promote(1)
        yield store


def score(**kw):
    from components.serving.batch_predict import predict_batch

    return predict_batch(PredictBatchParams(in_process=True, **kw))


def raw_parts(store, day=DAY) -> dict[str, pd.DataFrame]:
    import io
    prefix = layout.predictions_prefix(schema.parse_day(day))
    return {p: pd.read_parquet(io.BytesIO(store.read_published(f"{prefix}/{p}", "predictions.parquet")))
            for p in partitions.parts(store, prefix)}


@pytest.fixture(scope="module")
def runs(env):
    """The day scored once whole, then (after removing it) as its 24 hourly runs."""
    from components.serving.batch_predict import read_predictions

    store = env
    t0 = time.perf_counter()
    whole_result = score(date=DAY)
    whole_s = time.perf_counter() - t0
    whole = read_predictions(DAY, store)
    store.delete_prefix("predictions/")
    results, t0 = [], time.perf_counter()
    for start, end in pt.day_intervals(schema.parse_day(DAY), 60):
        results.append(score(start=start.isoformat(), end=end.isoformat()))
    hourly_s = time.perf_counter() - t0
    print(f"\nwhole day as one run: {whole_s:.1f} s; as 24 hourly runs: {hourly_s:.1f} s "
          f"({len(whole)} flights)")
    return {"whole": whole, "whole_result": whole_result, "results": results, "store": store}


def test_every_flight_is_scored_once_in_the_run_of_its_prediction_time(runs):
    from components.serving.batch_predict import read_predictions

    store, whole = runs["store"], runs["whole"]
    parts = raw_parts(store)
    assert len(parts) == 24  # one part per hourly run, each published (empty ones too)
    assert sum(r["rows"] for r in runs["results"]) == len(whole)
    union = pd.concat(parts.values(), ignore_index=True)
    assert union["flight_id"].is_unique  # no flight scored twice
    assert sorted(union["flight_id"]) == sorted(whole["flight_id"]) and len(whole) > 300
    assert sum(r["rows_by_day"].get(DAY, 0) for r in runs["results"]) == len(whole)
    # Each row lies in the run whose interval holds its prediction time, and that prediction time is, recomputed
    # independently (departure - 2 h, floored to the hour), what the record carries.
    for name, rows in parts.items():
        start, end = (pd.Timestamp(x) for x in name.removeprefix("interval=").split("_"))
        expected = (pd.to_datetime(rows["sched_dep_utc"], utc=True) - pd.Timedelta(hours=2)).dt.floor("h")
        assert (rows["prediction_time"] == expected).all(), name
        assert ((rows["prediction_time"] >= start) & (rows["prediction_time"] < end)).all(), name
        assert (rows["prediction_time"] == rows["event_timestamp"]).all()
    # The day read whole equals the whole-day run: same flights, same features, same probabilities.
    day = read_predictions(DAY, store)
    cols = ["flight_id", "prediction_time", *signature.NUMERIC, "probability"]
    pd.testing.assert_frame_equal(day[cols].reset_index(drop=True), whole[cols].reset_index(drop=True))
    assert str(day["prediction_time"].dtype) == "datetime64[us, UTC]"
    assert (day["scored_at"] >= day["prediction_time"]).all()  # the machine's clock, beside the data time


def test_a_rerun_of_an_interval_replaces_only_its_part(runs):
    from components.serving.batch_predict import read_predictions

    store = runs["store"]
    prefix = layout.predictions_prefix(schema.parse_day(DAY))
    busiest = max(runs["results"], key=lambda r: r["rows"])
    before = partitions.parts(store, prefix)
    again = score(start=busiest["start"], end=busiest["end"])
    after = partitions.parts(store, prefix)
    name = pt.part_name(busiest["start"], busiest["end"])
    assert again["rows"] == busiest["rows"] > 0
    assert after[name]["version"] != before[name]["version"]
    assert {k: v["version"] for k, v in after.items() if k != name} == \
           {k: v["version"] for k, v in before.items() if k != name}
    assert len(read_predictions(DAY, store)) == len(runs["whole"])  # no duplicates


def test_two_intervals_published_concurrently_both_survive(runs):
    """Two runs of different intervals of the day at the same time, as two processes (two Airflow tasks or
    pods): both parts are published, neither drops the other's rows."""
    import subprocess
    import sys

    from components.serving.batch_predict import read_predictions
    from tests.conftest import REPO

    store = runs["store"]
    prefix = layout.predictions_prefix(schema.parse_day(DAY))
    two = sorted(runs["results"], key=lambda r: -r["rows"])[:2]
    for r in two:
        store.unpublish(f"{prefix}/{pt.part_name(r['start'], r['end'])}")
    assert len(read_predictions(DAY, store)) == len(runs["whole"]) - sum(r["rows"] for r in two)
    procs = [subprocess.Popen([sys.executable, "-m", "components.ops.cli", "predict", "batch", "--start", r["start"],
                               "--end", r["end"], "--in-process"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in two]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    day = read_predictions(DAY, store)
    assert sorted(day["flight_id"]) == sorted(runs["whole"]["flight_id"])
    assert all(partitions.parts(store, prefix)[pt.part_name(r["start"], r["end"])] for r in two)


def test_the_weather_used_is_the_latest_observed_at_or_before_the_prediction_time(runs):
    """Recomputed from the validated observations with pandas, for a sample of flights: the values the run
    scored are those of the latest observation at or before the prediction time (the view bridges gaps of
    up to 6 h), so no value observed after the prediction time was used."""
    from components.features.validated import read_days

    store = runs["store"]
    weather = read_days(store, "weather", schema.day_range(START, DAY), required=True)
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    scored = pd.concat(raw_parts(store).values(), ignore_index=True)
    sample = scored.sample(n=min(80, len(scored)), random_state=3)
    checked = 0
    for _, row in sample.iterrows():
        obs = weather[(weather["origin"] == row["origin"]) & (weather["time_hour"] <= row["prediction_time"])]
        latest = obs.sort_values("time_hour").drop_duplicates("time_hour", keep="last").iloc[-1]
        assert latest["time_hour"] <= row["prediction_time"]
        if row["prediction_time"] - latest["time_hour"] > pd.Timedelta(hours=6):
            assert np.isnan(row["temp"]), row["flight_id"]
            continue
        for col in WEATHER:
            got, want = float(row[col]), float(latest[col])
            assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want), (row["flight_id"], col)
        checked += 1
    assert checked >= 50
    # And across the whole day: no prediction used an observation newer than its prediction time, i.e. the
    # scored temperature never equals only a later observation's (the latest at or before matches every row).
    assert (scored["prediction_time"] <= scored["sched_dep_utc"] - pd.Timedelta(hours=2)).all()


def test_intervals_off_the_grid_or_across_midnight_are_refused(env):
    with pytest.raises(StageFailed, match="not on the scoring interval's grid"):
        score(start="2013-01-03T15:30:00Z", end="2013-01-03T16:00:00Z")
    with pytest.raises(StageFailed, match="crosses local midnight"):
        score(start="2013-01-03T23:00:00Z", end="2013-01-04T06:00:00Z")
    with pytest.raises(StageFailed, match="either --date"):
        score(date=DAY, start="2013-01-03T15:00:00Z")
    with pytest.raises(StageFailed, match="no validated flights"):
        score(start="2013-01-09T15:00:00Z")
