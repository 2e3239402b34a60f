"""Measure batch prediction per scoring interval on one real day (local profile, in-process scoring with a
hand-made TorchScript model, a throwaway FLIGHTDECK_HOME): the day as one run vs as its 6 h replay runs vs
its 24 hourly runs, and the rows whose weather was observed after the prediction was made, under the old
04:00 UTC rule and now (components.ops.demo.observed_after).

    PYTHONPATH=. FLIGHTDECK_HOME=/tmp/fd-measure .venv/bin/python scripts/measure_interval_scoring.py 2013-04-03
"""

from __future__ import annotations

import sys
import time
from datetime import date, timedelta

from components.contracts import prediction_time as pt
from components.contracts.stages import FeaturesBuildParams, IngestParams, PredictBatchParams, ValidateParams
from components.core.settings import load_settings
from components.core.store import open_store


def main(day: str) -> None:
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build
    from components.features.feast_repo import apply
    from components.model.card import register_unevaluated
    from components.model.registry import Registry
    from components.ops.demo import observed_after
    from components.serving.batch_predict import predict_batch, read_predictions
    from tests.serving.fixture_models import scripted_bytes

    d = date.fromisoformat(day)
    store, settings = open_store(), load_settings()
    first, last = (d - timedelta(days=7)).isoformat(), (d + timedelta(days=1)).isoformat()
    ingest(IngestParams(start=first, end=last), store)
    validate(ValidateParams(start=first, end=last), store)
    build(FeaturesBuildParams(start=first, end=last), store)
    apply(store=store)
    registry = Registry(store, settings.model_name)
    if not registry.versions():
        register_unevaluated(registry, {"model.pt": scripted_bytes(71)}, {"blessed": True}, "measurement model")
        registry.promote(1)

    def runs(hours: int) -> tuple[float, int, int]:
        store.delete_prefix("predictions/")
        grid = pt.day_intervals(d, settings.scoring_interval_minutes)
        per = max(1, hours * 60 // settings.scoring_interval_minutes)
        t0, n = time.perf_counter(), 0
        for i in range(0, len(grid), per):
            start, end = grid[i][0], grid[min(i + per, len(grid)) - 1][1]
            predict_batch(PredictBatchParams(start=start.isoformat(), end=end.isoformat(), in_process=True), store)
            n += 1
        return time.perf_counter() - t0, n, len(read_predictions(d, store))

    for hours in (24, 6, 1, 24):  # the whole day again at the end: the first run pays Feast's start-up
        seconds, n, rows = runs(hours)
        print(f"{day}: {n:2d} run(s) of {hours:2d} h: {seconds:6.1f} s, {rows} flights in the day's partition")
    old, now, rows, changed = observed_after(day, read_predictions(d, store), settings.lead_time_hours)
    print(f"{day}: rows with weather observed after the prediction was made: old 04:00 rule {old} of {rows} "
          f"({changed} with a temperature other than the one known at 04:00 UTC), now {now}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "2013-04-03")
