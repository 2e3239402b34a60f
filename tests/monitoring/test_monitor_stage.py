"""The monitor stage end to end on real days: published outputs, late labels, the drift streak that
triggers a retrain, a new model that does not retrigger itself, missing and empty days."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import MonitorResult
from components.contracts.stages import MonitorParams
from components.core import partitions, runlog
from components.core.store import parquet_bytes
from components.monitoring import calibration as mb
from components.monitoring.decision_log import decisions
from components.monitoring.drift import drift_statistics
from components.monitoring.monitor import load_reference, monitor
from components.monitoring.render import render_report

from .conftest import REPO_ROOT


def _publish_days(store, frame, scorer, version, first, last, labels_until=None):
    for day in pd.date_range(first, last):
        d = str(day.date())
        mb.publish_predictions(store, frame, d, version, scorer)
        if labels_until and d <= labels_until:
            mb.publish_labels(store, frame, d)


def _metrics(store, day):
    text = store.read_published(layout.monitoring_prefix(schema.parse_day(day)), "metrics.prom").decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_monitor_publishes_report_summary_metrics_and_waits_for_late_labels(local_store, frame, jan_mar_model,
                                                                             jan_mar_scorer):
    runlog.record_run("batch_prediction", "success", {"date": "2013-07-14"}, store=local_store)
    runlog.record_run("continuous_training", "failed", {"error": "validation"}, store=local_store)
    # The flights of July 14 have not landed yet: its labels are missing, the six days before have them.
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-08", "2013-07-14",
                  labels_until="2013-07-13")
    result = monitor(MonitorParams(date="2013-07-14"), local_store)

    assert set(result) == set(MonitorResult.__annotations__)  # the declared result, key for key
    assert result["drift_status"] == "ok" and result["drift_share"] >= 0.2
    assert {"temp", "dewp"} <= set(result["drifted_features"])
    assert result["labels_pending"] == ["2013-07-14"]
    assert 0.5 < result["auc"] < 0.9 and result["holdout_auc"] == 0.70
    assert result["prediction_drift"] > 0.2  # a winter model's scores in July

    prefix = layout.monitoring_prefix(schema.parse_day("2013-07-14"))
    # No HTML on the hot path: the rows the drift statistics compared are published with the numbers,
    # and `flightdeck monitor-report` draws Evidently's report from them (test_report_render.py).
    assert set(local_store.published(prefix)["files"]) == {"summary.json", "metrics.prom", "drift_reference.parquet",
                                                            "drift_current.parquet"}
    summary = json.loads(local_store.read_published(prefix, "summary.json"))
    day_rows = len(mb.days(frame, "2013-07-14", "2013-07-14"))
    assert summary["prediction_count"] == day_rows
    assert summary["performance"]["labelled_days"] == [f"2013-07-{d:02d}" for d in range(8, 14)]
    perf = summary["performance"]
    assert perf["rows"] == len(mb.days(frame, "2013-07-08", "2013-07-13"))
    assert abs(perf["observed_late_rate"] - mb.days(frame, "2013-07-08", "2013-07-13")["label"].mean()) < 1e-9
    assert 0 <= perf["calibration_error"] < 1 and perf["log_loss"] > 0 and perf["calibration"]

    metrics = _metrics(local_store, "2013-07-14")
    assert metrics["flightdeck_drift_share"][0][1] == pytest.approx(result["drift_share"])
    temp = [v for labels, v in metrics["flightdeck_feature_drift_score"] if labels["feature"] == "temp"]
    assert temp and temp[0] >= 1.0
    assert metrics["flightdeck_prediction_count"][0][1] == day_rows
    assert metrics["flightdeck_model_auc"][0][1] == pytest.approx(result["auc"])
    assert metrics["flightdeck_serving_model_version"][0][1] == jan_mar_model
    # The policy in force travels with the numbers (the alerts compare against it) ...
    assert metrics["flightdeck_policy_drift_share_threshold"][0][1] == 0.2
    assert metrics["flightdeck_policy_auc_drop"][0][1] == 0.10
    # ... pipeline-run gauges do not: the run log exports them at each run (a copy here would go stale).
    assert not [name for name in metrics if name.startswith("flightdeck_pipeline_")]
    assert b'flightdeck_pipeline_last_run_failed{pipeline="continuous_training"} 1.0' in \
        local_store.read_bytes("runlog/continuous_training/metrics.prom")

    # The labels land; monitoring the day again now includes it.
    mb.publish_labels(local_store, frame, "2013-07-14")
    again = monitor(MonitorParams(date="2013-07-14"), local_store)
    assert again["labels_pending"] == []
    assert again["drift_share"] == pytest.approx(result["drift_share"])  # same inputs, same drift
    summary = json.loads(local_store.read_published(prefix, "summary.json"))
    assert "2013-07-14" in summary["performance"]["labelled_days"]


def test_a_drift_streak_triggers_one_retrain_and_the_new_model_does_not_retrigger(local_store, frame,
                                                                                   jan_mar_model, jan_mar_scorer):
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-10", "2013-07-14")
    verdicts = {d: monitor(MonitorParams(date=d), local_store) for d in ("2013-07-12", "2013-07-13", "2013-07-14")}
    assert [v["retrain"] for v in verdicts.values()] == [False, False, True]
    assert verdicts["2013-07-14"]["trigger"] == "drift"
    recorded = {e["date"]: e for e in decisions(local_store)}
    assert recorded["2013-07-14"]["retrain"] and recorded["2013-07-14"]["inputs"]["drift_streak_days"] == 3

    # The retrain produces version 2 with a reference from the weeks before: it serves from July 15.
    recent = mb.days(frame, "2013-06-15", "2013-07-14")
    scorer2 = mb.Scorer(recent)
    v2 = mb.register_reference_model(local_store, mb.reference_sample(frame, "2013-06-15", "2013-07-14", n=5000),
                                     scorer2, ("2013-06-15", "2013-07-14"), holdout_auc=0.70)
    _publish_days(local_store, frame, scorer2, v2, "2013-07-15", "2013-07-15")
    after = monitor(MonitorParams(date="2013-07-15"), local_store)
    assert after["model_version"] == v2
    assert after["drift_share"] < 0.2, after["drifted_features"]
    assert after["retrain"] is False and after["trigger"] is None

    # The window mixes v1's and v2's scores: prediction drift (in the Evidently report) is v2's alone,
    # and equals the PSI computed with scipy on v2's rows against v2's reference.
    reference, _ = load_reference(local_store, v2)
    v2_rows = mb.days(frame, "2013-07-15", "2013-07-15").copy()
    v2_rows["probability"] = scorer2(v2_rows).astype("float32")
    expected = drift_statistics(reference, v2_rows, columns=["probability"], engine="scipy")["prediction"]
    summary = json.loads(local_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-15")),
                                                    "summary.json"))
    assert summary["window"]["rows"] > 2 * len(v2_rows)
    assert summary["drift"]["prediction"]["n_current"] == len(v2_rows)
    assert after["prediction_drift"] == pytest.approx(expected["score"], rel=1e-9)
    html = render_report("2013-07-15", local_store)["report"]
    page = local_store.read_published(layout.monitoring_report_prefix(schema.parse_day("2013-07-15")), "report.html")
    assert html.endswith("report.html") and "Drift in column 'probability'" in page.decode()
    assert "Drift detection method: PSI" in page.decode()
    drawn = json.loads(local_store.read_published(layout.monitoring_report_prefix(schema.parse_day("2013-07-15")),
                                                  "report_values.json"))
    assert drawn["columns"]["probability"]["score"] == after["prediction_drift"]  # v2's rows only, as monitored


def test_missing_days_are_listed_and_a_small_sample_gets_no_verdict(local_store, frame, jan_mar_model,
                                                                     jan_mar_scorer):
    for d in ("2013-07-20", "2013-07-22"):
        mb.publish_predictions(local_store, frame, d, jan_mar_model, jan_mar_scorer)
    result = monitor(MonitorParams(date="2013-07-22", min_rows=5000), local_store)
    assert set(result) == set(MonitorResult.__annotations__)  # the same keys without a drift verdict
    assert result["drift_status"] == "insufficient_sample" and result["drift_share"] is None
    assert result["retrain"] is False
    summary = json.loads(local_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-22")),
                                                    "summary.json"))
    assert summary["window"]["missing_days"] == ["2013-07-16", "2013-07-17", "2013-07-18", "2013-07-19",
                                                 "2013-07-21"]
    assert "fewer than 5000" in summary["drift"]["message"]
    metrics = _metrics(local_store, "2013-07-22")
    assert "flightdeck_drift_share" not in metrics  # unknown is left out, not exported as 0
    assert metrics["flightdeck_prediction_count"][0][1] > 0


def test_an_empty_day_and_a_missing_day_fail_with_a_clear_message(local_store, frame, jan_mar_model,
                                                                   jan_mar_scorer):
    rows = mb.publish_predictions(local_store, frame, "2013-07-20", jan_mar_model, jan_mar_scorer)
    partitions.publish_part(local_store, layout.predictions_prefix(schema.parse_day("2013-07-21")),  # a run, 0 rows
                            "interval=20130721T040000Z_20130722T040000Z", {"predictions.parquet": parquet_bytes(rows.iloc[:0])})
    with pytest.raises(StageFailed, match="the predictions of 2013-07-21 are empty"):
        monitor(MonitorParams(date="2013-07-21"), local_store)
    with pytest.raises(StageFailed, match="no predictions are published for 2013-07-25"):
        monitor(MonitorParams(date="2013-07-25"), local_store)

    proc = subprocess.run([sys.executable, "-m", "components.ops.cli", "monitor", "--date", "2013-07-25"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode != 0
    assert "no predictions are published for 2013-07-25" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rerunning_a_day_replaces_its_decision_and_does_not_request_a_second_retrain(local_store, frame,
                                                                                     jan_mar_model, jan_mar_scorer,
                                                                                     monkeypatch):
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-10", "2013-07-15")
    for d in ("2013-07-12", "2013-07-13"):
        monitor(MonitorParams(date=d), local_store)
    # As shipped the retrain is recommended, recorded and exported, but nothing is requested.
    warned = monitor(MonitorParams(date="2013-07-14"), local_store)
    assert warned["retrain"] is True and warned["requested"] is False and warned["already_requested"] is None
    assert "retrain recommended, not started" in warned["reasons"][-1]
    assert {e["date"]: e for e in decisions(local_store)}["2013-07-14"]["requested_at"] is None
    assert _metrics(local_store, "2013-07-14")["flightdeck_retrain_recommended"][0][1] == 1
    # The operator turns the action on: the day's rerun requests the retrain the warning recommended.
    monkeypatch.setenv("FLIGHTDECK_RETRAIN_ACTION", "train")
    first = monitor(MonitorParams(date="2013-07-14"), local_store)
    assert first["retrain"] is True and first["requested"] is True and first["already_requested"] is None
    requested_at = {e["date"]: e for e in decisions(local_store)}["2013-07-14"]["requested_at"]
    assert requested_at

    # The same day again (a cleared task, a backfill): same evidence, same decision for the day, but
    # the retrain was requested by the first run and is not requested again.
    again = monitor(MonitorParams(date="2013-07-14"), local_store)
    assert again["retrain"] is True and again["trigger"] == "drift"
    assert again["already_requested"] == requested_at
    assert again["drift_share"] == pytest.approx(first["drift_share"])
    recorded = [e for e in decisions(local_store) if e["date"] == "2013-07-14"]
    assert len(recorded) == 1 and recorded[0]["requested_at"] == requested_at  # replaced, not added
    assert any("already requested" in r for r in recorded[0]["reasons"])
    summary = json.loads(local_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-14")),
                                                    "summary.json"))
    assert summary["decision"]["already_requested"] == requested_at

    # The day counts once: the next drifted day is in the cooldown of July 14's retrain.
    nxt = monitor(MonitorParams(date="2013-07-15"), local_store)
    assert nxt["retrain"] is False and nxt["blocked_by"] == "cooldown"
    assert nxt["already_requested"] is None
    assert {e["date"]: e for e in decisions(local_store)}["2013-07-15"]["inputs"]["previous_retrains"] == \
        ["2013-07-14"]


def test_cooldown_then_cap_hold_back_retrains_through_the_monitor_stage(local_store, frame, jan_mar_model,
                                                                        jan_mar_scorer, monkeypatch):
    """Every July day drifts from the winter model; each drifted day triggers (consecutive_days 1), and
    the recorded retrains hold the next ones back: cooldown 2 days, at most 2 retrains per 30 days."""
    for name, value in (("CONSECUTIVE_DAYS", "1"), ("COOLDOWN_DAYS", "2"), ("MAX_RETRAINS", "2")):
        monkeypatch.setenv(f"FLIGHTDECK_RETRAIN_{name}", value)
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-08", "2013-07-16")
    days = [f"2013-07-{d}" for d in range(12, 17)]
    results = {d: monitor(MonitorParams(date=d), local_store) for d in days}
    assert all(r["trigger"] == "drift" for r in results.values()), {d: r["reasons"] for d, r in results.items()}
    outcome = {d: (r["retrain"], r["blocked_by"]) for d, r in results.items()}
    assert outcome == {
        "2013-07-12": (True, None),  # the serving model dates from March 31: no cooldown
        "2013-07-13": (False, "cooldown"),  # 1 day after July 12's retrain
        "2013-07-14": (True, None),  # 2 days after: the cooldown is over
        "2013-07-15": (False, "cooldown"),
        "2013-07-16": (False, "cap"),  # out of cooldown, but July 12 and 14 are 2 retrains in 30 days
    }
    log = {e["date"]: e for e in decisions(local_store)}
    assert [log[d]["blocked_by"] for d in days] == [None, "cooldown", None, "cooldown", "cap"]
    assert log["2013-07-16"]["inputs"]["previous_retrains"] == ["2013-07-12", "2013-07-14"]
    assert any("cooldown 2 days" in r for r in log["2013-07-13"]["reasons"])
    assert any("cap 2" in r for r in log["2013-07-16"]["reasons"])
    metrics = _metrics(local_store, "2013-07-16")
    assert metrics["flightdeck_retrain_recommended"][0][1] == 0.0


def test_the_value_trigger_rule_decides_from_pooled_labels_and_drift_only_shortens_its_window(
        local_store, frame, jan_mar_model, jan_mar_scorer, monkeypatch):
    """FLIGHTDECK_RETRAIN_RULE=trigger: a winter model serving July misjudges the level of risk; the decision
    pools the labels of the week before the morning (drift is high, so the watch window), leaves out storm
    days, and fires (on ranking or calibration). Its recorded evidence equals a computation done here from the frame."""
    from sklearn.metrics import roc_auc_score

    from components.monitoring.trigger import load_trigger, unusual_day

    monkeypatch.setenv("FLIGHTDECK_RETRAIN_RULE", "trigger")
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-08", "2013-07-21",
                  labels_until="2013-07-21")
    result = monitor(MonitorParams(date="2013-07-21"), local_store)
    event = {e["date"]: e for e in decisions(local_store)}["2013-07-21"]
    inputs = event["inputs"]
    assert inputs["rule"] == "trigger" and inputs["watching"] and result["drift_share"] >= 0.2

    policy = load_trigger(env={})
    rows = mb.days(frame, "2013-07-15", "2013-07-21").copy()  # the watch window: the 7 days before July 22
    unarrived = rows.groupby(rows["day"].astype(str))["arr_delay"].apply(lambda s: s.isna().mean())
    usual = [d for d, share in unarrived.items()
             if unusual_day(policy, schema.parse_day(d), float(share)) is None]
    assert sorted(inputs["skipped_days"]) == sorted(set(unarrived.index) - set(usual))
    rows = rows[rows["day"].astype(str).isin(usual)]
    p = jan_mar_scorer(rows).astype("float32").astype(float)
    assert inputs["pooled"]["rows"] == len(rows)
    assert inputs["pooled"]["auc"] == pytest.approx(roc_auc_score(rows["label"], p), abs=1e-9)
    assert inputs["pooled"]["observed_rate"] == pytest.approx(rows["label"].mean(), abs=1e-12)
    assert inputs["calibration_offset"] >= policy.calibration_gap  # July is later than the winter model thinks
    ranking_lost = 0.70 - inputs["pooled"]["auc"] >= policy.auc_drop  # the fixture's holdout AUC is 0.70
    assert result["retrain"] and result["trigger"] == ("performance" if ranking_lost else "calibration")
    assert any("logit gap" in r for r in result["reasons"]) and any("pooled AUC" in r for r in result["reasons"])


def _publish_evaluation(store, run_id, champion, blessed, holdout_end):
    """runs/evaluate/<id>/ as the evaluate stage publishes it, with the fields the monitor reads."""
    report = {"run_id": run_id, "champion": {"version": champion}, "decision": {"blessed": blessed, "failed": []},
              "holdout": {"start": "2013-06-01", "end": holdout_end}}
    store.publish(layout.eval_run_prefix(f"{run_id}__x"), {"evaluation.json": json.dumps(report).encode()},
                  meta={"stage": "evaluate", "run_id": run_id, "blessed": blessed})


def test_candidates_refused_since_the_serving_model_are_summarised_and_exported(local_store, frame, jan_mar_model,
                                                                                jan_mar_scorer):
    """Refused candidates are not registered: the published evaluations are their trace. Counted are those
    compared with the serving version, not blessed, trained on data after the serving model's window and
    up to the monitored day; the count is the gauge the RetrainingRefused alert reads."""
    _publish_days(local_store, frame, jan_mar_scorer, jan_mar_model, "2013-07-08", "2013-07-14")
    _publish_evaluation(local_store, "2013-04-01_2013-07-10_a", jan_mar_model, False, "2013-07-10")
    _publish_evaluation(local_store, "2013-04-01_2013-07-12_b", jan_mar_model, False, "2013-07-12")
    _publish_evaluation(local_store, "2013-04-01_2013-07-11_c", jan_mar_model, True, "2013-07-11")  # blessed
    _publish_evaluation(local_store, "2013-04-01_2013-07-11_d", jan_mar_model + 1, False, "2013-07-11")  # other
    _publish_evaluation(local_store, "2013-04-01_2013-07-20_e", jan_mar_model, False, "2013-07-20")  # later data
    monitor(MonitorParams(date="2013-07-14"), local_store)
    summary = json.loads(local_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-14")),
                                                    "summary.json"))
    assert summary["refused_candidates"] == ["2013-04-01_2013-07-10_a", "2013-04-01_2013-07-12_b"]
    assert _metrics(local_store, "2013-07-14")["flightdeck_refused_candidates"][0][1] == 2.0
    monitor(MonitorParams(date="2013-07-11"), local_store)  # a backfilled morning: only what existed then
    earlier = json.loads(local_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-11")),
                                                    "summary.json"))
    assert earlier["refused_candidates"] == ["2013-04-01_2013-07-10_a"]
