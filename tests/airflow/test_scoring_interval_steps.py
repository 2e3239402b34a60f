"""batch_prediction's own decisions (components.orchestration.steps), run on the context Airflow gives a task:
the scoring interval of a run (its logical date on the grid, or the `day` param as one interval) and the
predictions asset event, recorded only by the day's last interval (monitoring runs once a day)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from components.orchestration import steps


class FakeTI:
    def __init__(self, values: dict):
        self.values = values

    def xcom_pull(self, task_ids: str):
        return self.values.get(task_ids)


class Events(dict):
    def __missing__(self, key):
        self[key] = type("Event", (), {"extra": None})()
        return self[key]


def test_a_scheduled_run_scores_the_interval_its_logical_date_starts(monkeypatch):
    monkeypatch.delenv("FLIGHTDECK_SCORING_INTERVAL_MINUTES", raising=False)
    plan = steps.plan_interval(logical_date=datetime(2013, 4, 2, 14, 0, tzinfo=UTC), params={"day": ""})
    assert plan == {"day": "2013-04-02", "start": "2013-04-02T14:00:00+00:00", "end": "2013-04-02T15:00:00+00:00",
                    "push_until": "2013-04-02T14:00:00+00:00",  # one interval: its start is its only prediction time
                    "first": "2013-04-02", "last": "2013-04-02", "ends_day": False}
    # The day's last hour (23:00 local, EDT: 03:00 UTC) predicts the next day's first departures and ends the day.
    last = steps.plan_interval(logical_date=datetime(2013, 4, 3, 3, 0, tzinfo=UTC), params={})
    assert (last["day"], last["first"], last["last"], last["ends_day"]) == ("2013-04-02", "2013-04-03", "2013-04-03", True)
    # A logical date off the grid (a manual trigger at 14:25) is floored to its interval: idempotent per interval.
    assert steps.plan_interval(logical_date=datetime(2013, 4, 2, 14, 25, tzinfo=UTC), params={})["start"] == plan["start"]


def test_the_day_param_scores_the_whole_day_and_stays_inside_the_data(monkeypatch):
    plan = steps.plan_interval(logical_date=datetime(2013, 3, 1, tzinfo=UTC), params={"day": "2013-12-31"})
    assert plan["start"] == "2013-12-31T05:00:00+00:00" and plan["end"] == "2014-01-01T05:00:00+00:00"
    assert plan["first"] == plan["last"] == "2013-12-31" and plan["ends_day"]  # 2014 is not in the data
    assert plan["push_until"] == "2014-01-01T04:00:00+00:00"  # the day's last prediction time: its last hour
    monkeypatch.setenv("FLIGHTDECK_SCORING_INTERVAL_MINUTES", "360")
    six = steps.plan_interval(logical_date=datetime(2013, 4, 2, 14, 0, tzinfo=UTC), params={})
    assert (six["start"], six["end"]) == ("2013-04-02T10:00:00+00:00", "2013-04-02T16:00:00+00:00")  # 06:00-12:00 EDT
    assert six["push_until"] == six["start"]  # flights are predicted at the interval's start only


def test_the_asset_event_only_for_the_day_s_last_interval():
    from airflow.sdk.exceptions import AirflowSkipException

    from components.orchestration.runtime import PREDICTIONS

    result = {"rows": 40, "date": "2013-04-02", "scored_by": "triton"}
    early = {"day": "2013-04-02", "start": "a", "end": "b", "ends_day": False}
    with pytest.raises(AirflowSkipException, match="not the last of 2013-04-02"):
        steps.publish_predictions(ti=FakeTI({"predict_batch": result, "plan_interval": early}), outlet_events=Events())
    events = Events()
    extra = steps.publish_predictions(ti=FakeTI({"predict_batch": result, "plan_interval": {**early, "ends_day": True}}),
                                      outlet_events=events)
    assert extra["date"] == "2013-04-02" and events[PREDICTIONS].extra == extra
