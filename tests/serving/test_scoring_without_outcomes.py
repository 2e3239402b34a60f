"""Batch scoring needs only the schedule: a day whose outcomes batch was refused is still scored.

The schedule of a flight is known in advance, its outcome only once it happened; validation judges them
as two sources. Here the next day's outcomes arrive broken (an arrival of a flight that never departed):
validate quarantines them under quarantine/outcomes/, publishes the day's valid schedule, leaves the day's
flights product unpublished and everything validated before as it was; predict-batch then scores the
day from its validated schedule, and the champion is untouched.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from components.contracts import layout, schema
from components.contracts.errors import BadInput
from components.contracts.stages import IngestParams, PredictBatchParams, ValidateParams
from components.model.card import register_unevaluated
from components.model.registry import Registry
from tests.serving.conftest import DAY, START, copy_home
from tests.serving.fixture_models import scripted_bytes

MODEL = "flight_delay"
NEXT = (schema.parse_day(DAY) + timedelta(days=1)).isoformat()
pytestmark = pytest.mark.slow  # the shared days' ingest, validate and features build


def test_a_refused_outcomes_batch_does_not_stop_scoring(real_days, tmp_path, monkeypatch):
    from components.core.store import open_store
    from components.data.ingest import ingest
    from components.data.validate import read_validated, validate
    from components.features.feast_repo import apply
    from components.serving.batch_predict import predict_batch, read_predictions

    home = copy_home(real_days, tmp_path / "home")
    for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    store = open_store()
    apply(store=store)
    registry = Registry(store, MODEL)
    register_unevaluated(registry, {"model.pt": scripted_bytes(71)}, {"blessed": True},
                         "a hand-made model of a serving test (tests/serving), not evaluated")
    registry.promote(1)
    champion = store.read_bytes(registry.aliases_key)
    before = {t: {d: store.published(layout.validated_prefix(t, d)) for d in schema.day_range(START, DAY)}
              for t in (*schema.PARTITIONED, *schema.FLIGHT_SOURCES)}

    # The next day lands; its outcomes feed is broken: a cancelled flight with an arrival time.
    day = schema.parse_day(NEXT)
    ingest(IngestParams(start=NEXT, end=NEXT), store)
    outcomes = store.read_parquet(layout.raw_key("outcomes", day))
    cancelled = outcomes.index[outcomes["dep_time"].isna()][:3]
    assert len(cancelled) == 3
    outcomes.loc[cancelled, "arr_time"] = 1200.0
    store.write_parquet(layout.raw_key("outcomes", day), outcomes)
    with pytest.raises(BadInput) as err:
        validate(ValidateParams(start=NEXT, end=NEXT), store)
    assert f"outcomes {NEXT}" in str(err.value) and "arrived_without_departure" in str(err.value)
    assert f"schedule {NEXT}" not in str(err.value)
    assert store.list(f"quarantine/outcomes/date={NEXT}/") and not store.list(f"quarantine/schedule/date={NEXT}/")
    assert store.published(layout.validated_prefix("schedule", day)) is not None
    assert store.published(layout.validated_prefix("outcomes", day)) is None
    assert store.published(layout.validated_prefix("flights", day)) is None  # no labels from a refused batch
    assert {t: {d: store.published(layout.validated_prefix(t, d)) for d in schema.day_range(START, DAY)}
            for t in before} == before

    # The day is still scored, from its validated schedule.
    result = predict_batch(PredictBatchParams(date=NEXT, in_process=True), store)
    part = read_predictions(NEXT, store)
    schedule = read_validated(store, "schedule", day)
    assert len(part) == result["rows"] > 300
    assert set(part["flight_id"]) <= set(schedule["flight_id"])
    assert (part["model_version"] == 1).all() and part["probability"].between(0, 1).all()
    assert pd.Series(part["flight_id"]).is_unique
    assert store.read_bytes(registry.aliases_key) == champion  # the champion is untouched
