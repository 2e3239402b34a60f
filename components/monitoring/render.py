"""Evidently's HTML drift report of a monitored day, rendered off the monitor's hot path.

    flightdeck monitor-report --date 2013-07-14 [--force] [--out report.html]

The monitor stage computes its drift statistics with Evidently's stat tests, without the report's
figures, and publishes the rows it compared (drift_reference.parquet, drift_current.parquet) with
summary.json under monitoring/date=<D>/. Here Evidently's Report (one ValueDrift per column, with its
plotly figures) runs on exactly those rows, not on a new sample: every number it draws is checked
equal to the summary's before report.html (the day's summary on top) and report_values.json are
published under monitoring/reports/date=<D>/. Idempotent: a report drawn from the day's current
monitoring results is kept as it is (force draws it again); one drawn from an earlier run of the day
(monitored again since) is replaced. docs/MONITORING.md, "The HTML report".
"""

from __future__ import annotations

import html
import io
import json
import math
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import MonitorReportResult
from components.core.store import ArtifactNotFound, ArtifactStore, open_store, sha256_bytes
from components.monitoring.drift import SCORE, evidently_report, report_scores
from components.monitoring.report import COMPARED_FILES

REPORT_FILE = "report.html"
VALUES_FILE = "report_values.json"
# Relative difference allowed between a drawn number and the summary's: the same code on the same rows
# gives the same float; this only absorbs a numpy/scipy upgrade between the monitor run and the render.
REL_TOL = 1e-9


def render_report(day: str | date, store: ArtifactStore | None = None, force: bool = False,
                  out: str = "") -> MonitorReportResult:
    """Render (or find) the Evidently HTML report of monitored day `day`; optionally copy it to `out`.

    Reads monitoring/date=<D>/ (summary.json and the compared rows, one published version); publishes
    monitoring/reports/date=<D>/ (report.html, report_values.json; meta: the monitoring version drawn).
    Fails with StageFailed when the day was never monitored, when its compared rows are gone (the
    backtest prunes old days'), or when a drawn number differs from the summary's.
    """
    return render_page(day, store, force, out)[0]


def render_page(day: str | date, store: ArtifactStore | None = None, force: bool = False,
                out: str = "") -> tuple[MonitorReportResult, bytes]:
    """render_report's result and the HTML itself (what the KFP monitor step shows as its HTML artifact)."""
    t0 = time.perf_counter()
    store = store or open_store()
    day = schema.parse_day(day) if isinstance(day, str) else day
    target = layout.monitoring_report_prefix(day)
    record, summary, compared = read_monitoring(store, day)
    existing = store.published(target)
    if existing and not force and (existing.get("meta") or {}).get("monitoring_version") == record["version"]:
        page, rendered, where = store.read_published(target, REPORT_FILE), False, target
    elif compared is None and summary["drift"].get("status") == "ok":
        if REPORT_FILE not in record["files"]:
            raise StageFailed(f"the monitoring results of {day} ({store.uri(layout.monitoring_prefix(day))}) hold a "
                              "drift verdict but not the rows it compared: run `flightdeck monitor --date "
                              f"{day}` again, then render")
        # Monitored before the report moved off the hot path: the stage drew report.html itself.
        page, rendered, where = store.read_published(layout.monitoring_prefix(day), REPORT_FILE), False, None
    else:
        page, values = draw(summary, compared, record["version"])
        store.publish(target, {REPORT_FILE: page, VALUES_FILE: json.dumps(values, indent=2, sort_keys=True).encode()},
                      meta={"monitoring_version": record["version"], "date": day.isoformat()})
        rendered, where = True, target
    prefix = where or layout.monitoring_prefix(day)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(page)
    result: MonitorReportResult = {
        "date": day.isoformat(), "uri": store.uri(prefix), "report": store.uri(store.published_key(prefix, REPORT_FILE)),
        "rendered": rendered, "monitoring_version": record["version"], "out": out or None, "bytes": len(page),
        "seconds": round(time.perf_counter() - t0, 3)}
    return result, page


def read_monitoring(store: ArtifactStore, day: date) -> tuple[dict, dict, tuple[pd.DataFrame, pd.DataFrame] | None]:
    """The published monitoring results of `day`: its pointer record, summary and compared rows (None
    when the run had no drift verdict), all from one version, each checked against its sha256."""
    prefix = layout.monitoring_prefix(day)
    for _attempt in range(5):
        record = store.published(prefix)
        if record is None:
            raise StageFailed(
                f"no monitoring results are published for {day} ({store.uri(prefix)}): the monitor has not run "
                f"for that day, so there is no report to render. Run `flightdeck monitor --date {day}` first.")
        try:
            summary = json.loads(_read(store, prefix, record, "summary.json"))
            names = [COMPARED_FILES[side] for side in ("reference", "current")]
            if not all(n in record["files"] for n in names):
                return record, summary, None
            ref, cur = (pd.read_parquet(io.BytesIO(_read(store, prefix, record, n))) for n in names)
            return record, summary, (ref, cur)
        except ArtifactNotFound:
            if (store.published(prefix) or {}).get("version") != record["version"]:
                continue  # the day was monitored again while we read: read the new version
            raise StageFailed(
                f"the compared rows of {day} are gone from {store.uri(prefix)} (the backtest keeps them for the "
                "last week and retrain days only, unless --keep-reports): the report cannot be drawn from the "
                f"rows the statistics were computed on. Run `flightdeck monitor --date {day}` again to recompute "
                "them, then render.") from None
    raise StageFailed(f"the monitoring results of {day} kept changing while being read ({store.uri(prefix)}); "
                      "try again once the monitor runs of that day have finished")


def _read(store: ArtifactStore, prefix: str, record: dict, name: str) -> bytes:
    data = store.read_bytes(store.published_key(prefix, name, record))
    if sha256_bytes(data) != record["files"][name]["sha256"]:
        raise StageFailed(f"{store.uri(prefix)}/{record['version']}/{name} does not match the sha256 its "
                          "publication recorded: the file was changed after it was published")
    return data


def draw(summary: dict, compared: tuple[pd.DataFrame, pd.DataFrame] | None, version: str) -> tuple[bytes, dict]:
    """report.html and its numbers, drawn by Evidently from the compared rows (the summary header alone
    when the run had no drift verdict)."""
    drift = summary["drift"]
    if compared is None:
        return report_html(summary, None, version).encode(), {"date": summary["date"], "monitoring_version": version,
                                                             "columns": {}}
    ref, cur = compared
    entries = {**drift.get("features", {}), **({SCORE: drift["prediction"]} if drift.get("prediction") else {})}
    if set(ref.columns) != set(entries) or set(cur.columns) != set(entries):
        raise StageFailed(f"the compared rows of {summary['date']} hold columns {sorted(ref.columns)}, the summary "
                          f"scores {sorted(entries)}: they do not belong together; monitor the day again")
    tests = {c: (entries[c]["method"], entries[c]["threshold"]) for c in ref.columns}  # the monitor's order
    snapshot = evidently_report(ref, cur, tests)
    drawn = report_scores(snapshot)
    differ = {c: (drawn.get(c), entries[c]["score"]) for c in tests
              if drawn.get(c) is None or not math.isclose(drawn[c], entries[c]["score"], rel_tol=REL_TOL, abs_tol=0.0)}
    if differ:
        raise StageFailed(f"Evidently's report of {summary['date']} draws other drift scores than the monitor "
                          f"computed on the same rows (column: drawn vs monitored): {differ}. Was Evidently "
                          "upgraded since? Monitor the day again, then render.")
    values = {"date": summary["date"], "monitoring_version": version,
              "rows": {"reference": len(ref), "current": len(cur)},
              "columns": {c: {"method": tests[c][0], "threshold": tests[c][1], "score": drawn[c],
                              "monitored_score": entries[c]["score"]} for c in tests}}
    return report_html(summary, snapshot, version).encode(), values


def report_html(summary: dict, snapshot, version: str = "") -> str:
    """Evidently's drift report with a plain summary of the day on top (or the summary alone)."""
    drift, perf, decision = summary["drift"], summary["performance"], summary["decision"]
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{e['method']}</td><td>{e['score']:.3f}</td><td>{e['threshold']}</td>"
        f"<td>{'DRIFT' if e['drifted'] else ''}</td></tr>"
        for c, e in sorted(drift.get("features", {}).items(), key=lambda kv: -kv[1]["score"]))
    share = drift.get("drift_share")
    auc = perf.get("roc_auc")
    compared = drift.get("compared") or {}
    drawn_from = (f"<p>Drawn {datetime.now(UTC).isoformat(timespec='seconds')} by Evidently from the rows the monitor "
                  f"compared (monitoring run {html.escape(version)}: {compared['reference']['rows']} reference rows, "
                  f"{compared['current']['rows']} current rows).</p>" if snapshot is not None and compared else "")
    head = (
        "<section style='font-family:sans-serif;margin:16px'>"
        f"<h1>flightdeck monitoring: {summary['date']} (model {summary['model']} v{summary['model_version']})</h1>"
        f"<p>Window {html.escape(', '.join(summary['window']['days']))}; {summary['window']['rows']} scored rows; "
        f"missing days: {html.escape(', '.join(summary['window']['missing_days']) or 'none')}.</p>"
        f"<p><b>Drift</b>: {drift['status']}"
        + (f", share {share:.2f} ({drift['n_drifted']}/{drift['n_tested']} features)" if share is not None else "")
        + (f" &mdash; {html.escape(drift['message'])}" if drift.get("message") else "") + "</p>"
        f"<p><b>Performance</b>: {perf.get('status')}"
        + (f", ROC AUC {auc:.3f} (holdout {summary.get('holdout_auc')}), log loss {perf['log_loss']:.3f}, "
           f"ECE {perf['calibration_error']:.3f}, observed late rate {perf['observed_late_rate']:.3f} vs predicted "
           f"{perf['predicted_late_rate']:.3f} on {perf['rows']} flights" if auc is not None else "")
        + f"; labels pending for: {html.escape(', '.join(perf['pending_days']) or 'none')}</p>"
        f"<p><b>Retrain</b>: {decision['retrain']} &mdash; {html.escape('; '.join(decision['reasons']))}</p>"
        f"{drawn_from}"
        f"<table border=1 cellpadding=3><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th><th></th></tr>"
        f"{rows}</table></section>")
    if snapshot is None:
        return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>flightdeck {summary['date']}</title></head><body>{head}</body></html>"
    page = snapshot.get_html_str(as_iframe=False)
    body = page.find("<body")
    at = page.find(">", body) + 1 if body >= 0 else 0
    return page[:at] + head + page[at:]
