"""What validation found for one partition (Outcome), the failure records read from a Great
Expectations result, and the quarantine of a refused partition with its reports.

A refused partition is published to quarantine/<table>/date=<d>/<batch>/ with its raw bytes,
report.json and report.md; the stage's error message names each failed expectation in a few words.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from components.contracts import layout
from components.core.store import ArtifactStore
from components.data import expectations

log = logging.getLogger(__name__)

PART = "part.parquet"  # the partition's file name, in validated/ and in quarantine/
SAMPLES = 5  # sample values per failed expectation in a report


@dataclass
class Outcome:
    table: str
    day: date | None
    raw_key: str
    sha256: str
    rows: int
    failures: list[dict]  # one per failed expectation; empty when the partition passed
    summary: dict  # GX statistics
    where: str = ""  # the validated or quarantine prefix it was published to
    report: str = ""  # URI of report.md when quarantined
    changed: bool = True  # False when validated/ already held these exact bytes

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def label(self) -> str:
        return f"{self.table} {expectations.day_str(self.day)}"



def failures_of(result) -> list[dict]:
    """One record per failed expectation of a GX validation result (JSON-able, with sample values)."""
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        res = r.result or {}
        error = _exception_message(r.exception_info)
        sample = res.get("partial_unexpected_list")
        if sample is None and "observed_value" in res:
            sample = [res["observed_value"]]
        out.append({
            "expectation": cfg.type,
            "column": kw.get("column") or kw.get("column_list") or
            ([kw["column_A"], kw["column_B"]] if "column_A" in kw else ""),
            "why": cfg.description or "",
            "rows": res.get("unexpected_count"),
            "of_rows": res.get("element_count"),
            "sample": [_jsonable(v) for v in (sample or [])[:SAMPLES]],
            "kwargs": {k: _jsonable(v) for k, v in kw.items()},
            "error": error,
        })
    return out


def _exception_message(info) -> str:
    """GX reports an expectation that could not run either flat or keyed by metric id."""
    if not isinstance(info, dict):
        return ""
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for c in candidates:
        if c.get("raised_exception") and c.get("exception_message"):
            return (str(c["exception_message"]).strip().splitlines() or [""])[0][:300]
    return ""


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def quarantine(store: ArtifactStore, outcome: Outcome, data: bytes) -> Outcome:
    """Publish a refused partition with its report to quarantine/; validated/ is left as it was."""
    # The batch id is the content hash: validating the same bad bytes again refreshes that batch's
    # report instead of piling up copies; different bad data for the same date gets its own batch.
    batch = f"sha256-{outcome.sha256[:16]}"
    prefix = layout.quarantine_prefix(outcome.table, outcome.day, batch)
    outcome.where = prefix
    report = {
        "table": outcome.table,
        "date": outcome.day.isoformat() if outcome.day else None,
        "raw_key": outcome.raw_key,
        "raw_uri": store.uri(outcome.raw_key),
        "sha256": outcome.sha256,
        "rows": outcome.rows,
        "suite": expectations.suite_name(outcome.table),
        "statistics": outcome.summary,
        "failed_expectations": outcome.failures,
        "validated_left_in_place": store.published(layout.validated_prefix(outcome.table, outcome.day)) is not None,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    store.publish(prefix, {
        PART: data,
        "report.json": json.dumps(report, indent=2, default=str).encode(),
        "report.md": _report_md(report).encode(),
    }, meta={"table": outcome.table, "date": report["date"], "sha256": outcome.sha256,
             "failed": [f["expectation"] for f in outcome.failures]})
    outcome.report = store.uri(store.published_key(prefix, "report.md"))
    log.warning("quarantined %s at %s: %s", outcome.label, store.uri(prefix), short_failures(outcome.failures))
    return outcome


def _report_md(report: dict) -> str:
    when = report["date"] or "reference table"
    lines = [
        f"# Quarantined: {report['table']} {when}",
        "",
        f"- raw partition: `{report['raw_uri']}` ({report['rows']} rows, sha256 `{report['sha256']}`)",
        f"- suite: `{report['suite']}`; {len(report['failed_expectations'])} expectation(s) failed "
        f"of {report['statistics'].get('evaluated_expectations', 0)} evaluated",
        "- validated data for this date was "
        + ("left in place: features keep reading the last good version." if report["validated_left_in_place"]
           else "never published, so nothing downstream reads this date."),
        "",
        "| expectation | column | failing rows | sample values | rule |",
        "|---|---|---|---|---|",
    ]
    for f in report["failed_expectations"]:
        rows = "" if f["rows"] is None else f"{f['rows']} of {f['of_rows']}"
        sample = ", ".join(f"`{v}`".replace("|", "\\|") for v in f["sample"]) or (f"could not run: {f['error']}" if f["error"] else "")
        column = ", ".join(f["column"]) if isinstance(f["column"], list) else f["column"]
        lines.append(f"| {f['expectation']} | {column} | {rows} | {sample} | {f['why']} |")
    lines += ["", "Fix the source, then re-run `flightdeck ingest` and `flightdeck validate` for this date.", ""]
    return "\n".join(lines)


def short_failures(failures: list[dict]) -> str:
    """The failed expectations of one partition, in a few words each."""
    parts = []
    evaluated = [f for f in failures if not f["error"]]
    for f in evaluated or failures:
        column = ", ".join(f["column"]) if isinstance(f["column"], list) else f["column"]
        if f["rows"] is not None:
            what = f"{f['rows']} row(s)"
        elif f["error"]:
            what = f"could not run ({f['error'][:80]})"
        else:
            what = f"observed {f['sample'][0] if f['sample'] else '?'}"
            if "min_value" in f["kwargs"] or "max_value" in f["kwargs"]:
                what += f" (expected {f['kwargs'].get('min_value')}..{f['kwargs'].get('max_value')})"
        sample = f"; e.g. {', '.join(str(v) for v in f['sample'][:3])}" if f["sample"] and f["rows"] else ""
        parts.append(f"{f['expectation']} on {column or 'the table'} [{f['why']}]: {what}{sample}")
    if evaluated and len(evaluated) < len(failures):
        parts.append(f"and {len(failures) - len(evaluated)} check(s) that could not run on the broken columns")
    return "; ".join(parts)


def failure_paragraph(failed: list[Outcome]) -> str:
    """The stage's error message: every refused partition, why, and where its report is."""
    items = [f"{o.label} ({short_failures(o.failures)}; report: {o.report})" for o in failed]
    return (f"validate refused {len(failed)} partition(s): " + " | ".join(items) + ". Each refused batch was "
            "quarantined with its raw bytes and a report; validated data for these dates was left unchanged, so "
            "nothing downstream reads the bad data. Fix the source, then re-run ingest and validate for these dates.")

