"""The report pages behind the stage tasks' links in the Airflow UI (report_links.py), read from the
artifact store the settings select (components.core.store.open_store: the local folder or S3 alike).

  evaluation_page   runs/evaluate/<eval-id>/report.md, with the blessing decision of evaluation.json
  model_card_page   model_card.md of the registry version registered from that evaluation
  monitoring_page   monitoring/reports/date=<D>/report.html, Evidently's drift report, drawn on demand
                    from the rows the monitor compared by the function `flightdeck monitor-report` runs
  quarantine_page   report.md of every batch quarantined in a date range (quarantine/<table>/date=<d>/)
  rollout_page      serving/<model>/rollouts/v<champion>-vs-v<challenger>/report.md: the challenger vs the
                    champion on the same flights, each decision with its guardrails' numbers

Each returns a Page; what is not there raises Missing, naming what is missing and the command that
produces it (the plugin answers 404 with it). Markdown is rendered with markdown-it-py, raw HTML in it
escaped. report_app.py serves these pages; nothing here imports Airflow.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore, open_store

MODEL_CARD = "model_card.md"  # written by register into each registry version
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


@dataclass
class Page:
    title: str
    body: str = ""  # HTML inside <body>, wrapped by `document`
    document: bytes | None = None  # a whole HTML document served as it is (Evidently's report)


class Missing(LookupError):
    """A report that is not there: what is missing, where it was looked for, and the command that makes it."""

    def __init__(self, what: str, where: str, produce: str):
        super().__init__(f"{what} ({where}): {produce}")
        self.what, self.where, self.produce = what, where, produce


def _identifier(value: str, what: str) -> str:
    if not _ID.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not an identifier flightdeck writes")
    return value


def render_markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _verdict(ok: bool, text: str) -> str:
    return f"<p class='verdict {'ok' if ok else 'bad'}'>{html.escape(text)}</p>"


def _source(store: ArtifactStore, prefix: str) -> str:
    return f"<p class='source'>from <code>{html.escape(store.uri(prefix))}</code></p>"


# -- evaluate ---------------------------------------------------------------------------------------
def _evaluation(store: ArtifactStore, eval_id: str) -> dict:
    prefix = layout.eval_run_prefix(_identifier(eval_id, "evaluation id"))
    if store.published(prefix) is None:
        run_id = eval_id.split("__", 1)[0]
        raise Missing(f"no evaluation {eval_id} is published", store.uri(prefix),
                      f"`flightdeck evaluate --run-id {run_id}` (the continuous_training DAG's evaluate task) "
                      "publishes it")
    return json.loads(store.read_published(prefix, "evaluation.json"))


def evaluation_verdict(evaluation: dict) -> tuple[bool, str]:
    decision = evaluation["decision"]
    if decision["blessed"]:
        return True, "Verdict: BLESSED (every gate passed)"
    return False, "Verdict: NOT BLESSED (" + "; ".join(decision.get("failed") or ["no reason recorded"]) + ")"


def evaluation_page(eval_id: str, store: ArtifactStore | None = None) -> Page:
    store = store or open_store()
    evaluation = _evaluation(store, eval_id)
    prefix = layout.eval_run_prefix(eval_id)
    ok, verdict = evaluation_verdict(evaluation)
    body = (_verdict(ok, verdict) + render_markdown(store.read_published(prefix, "report.md").decode())
            + _source(store, prefix))
    return Page(f"Evaluation {eval_id}", body)


def model_card_page(eval_id: str, model: str = "", store: ArtifactStore | None = None) -> Page:
    from components.core.settings import load_settings
    from components.model.registry import Registry

    store = store or open_store()
    evaluation = _evaluation(store, eval_id)
    registry = Registry(store, model or load_settings().model_name)
    version = registry.find(evaluation_id=eval_id)
    if version is None:
        blessed = evaluation["decision"]["blessed"]
        why = ("it was blessed: the DAG's register task registers it once it runs" if blessed else
               "it was not blessed, and the DAG registers only a blessed evaluation")
        raise Missing(f"evaluation {eval_id} is not registered in model {registry.name}, so it has no model card "
                      f"({why})", store.uri(registry.prefix),
                      f"`flightdeck register --evaluation {eval_id}` registers it and writes its card")
    record = registry.get(version)
    if MODEL_CARD not in record["files"]:
        raise Missing(f"version {version} of {registry.name} (evaluation {eval_id}) has no {MODEL_CARD}: it was "
                      "registered before register wrote model cards", store.uri(registry.version_prefix(version)),
                      "register writes one into each version it creates; this evaluation's report is the task's "
                      "Evaluation report link")
    aliases, _ = registry.aliases()
    roles = [a for a in ("champion", "previous") if aliases.get(a) == version]
    ok = bool(record.get("blessed"))
    verdict = (f"Verdict: version {version} of {registry.name}, " + ("blessed" if ok else "not blessed")
               + (f", {' and '.join(roles)}" if roles else ", not serving"))
    body = (_verdict(ok, verdict) + render_markdown(registry.read_file(version, MODEL_CARD).decode())
            + _source(store, registry.version_prefix(version)))
    return Page(f"Model card: {registry.name} version {version}", body)


# -- monitor --------------------------------------------------------------------------------------
def monitoring_page(day: str, store: ArtifactStore | None = None) -> Page:
    """Evidently's report of a monitored day: the one published when it is current, else drawn now by
    components.monitoring.render (what `flightdeck monitor-report` runs) and published for next time."""
    store = store or open_store()
    when = schema.parse_day(day)
    monitored = store.published(layout.monitoring_prefix(when))
    if monitored is None:
        raise Missing(f"no monitoring results are published for {when}", store.uri(layout.monitoring_prefix(when)),
                      f"`flightdeck monitor --date {when}` (the monitoring DAG's monitor task) publishes them; the "
                      "report is drawn from them")
    target = layout.monitoring_report_prefix(when)
    drawn = store.published(target)
    title = f"Drift report {when}"
    if drawn and (drawn.get("meta") or {}).get("monitoring_version") == monitored["version"]:
        return Page(title, document=store.read_published(target, "report.html"))  # no Evidently needed
    try:
        from components.monitoring.render import render_page

        _, document = render_page(when, store)
    except StageFailed as exc:
        raise Missing(f"the drift report of {when} cannot be drawn: {exc}", store.uri(target),
                      f"`flightdeck monitor-report --date {when}` draws it") from None
    except ImportError as exc:  # the Airflow image ships without Evidently (containers/locks/airflow.lock)
        raise Missing(f"the drift report of {when} is not drawn yet, and this Airflow cannot draw it ({exc})",
                      store.uri(target), f"`flightdeck monitor-report --date {when}` draws it") from None
    return Page(title, document=document)


# -- validate -------------------------------------------------------------------------------------
def quarantined(store: ArtifactStore, start: str, end: str) -> list[tuple[str, dict, str]]:
    """(prefix, report.json, report.md) of every batch quarantined for a day of [start, end] and of the
    reference tables, newest first."""
    days = {f"date={d.isoformat()}" for d in schema.day_range(start, end)}
    found = []
    for key in store.list("quarantine/"):
        parts = key.split("/")  # quarantine/<table>/<date=d | reference>/<batch>/_PUBLISHED.json
        if len(parts) == 5 and parts[-1] == "_PUBLISHED.json" and (parts[2] in days or parts[2] == "reference"):
            prefix = "/".join(parts[:4])
            report = json.loads(store.read_published(prefix, "report.json"))
            found.append((prefix, report, store.read_published(prefix, "report.md").decode()))
    return sorted(found, key=lambda f: f[1].get("quarantined_at") or "", reverse=True)


def quarantine_page(start: str, end: str, store: ArtifactStore | None = None) -> Page:
    store = store or open_store()
    span = start if start == end else f"{start}..{end}"
    batches = quarantined(store, start, end)
    if not batches:
        raise Missing(f"no batch was quarantined for {span}: validation refused nothing there (a validate task "
                      "that failed for another reason says why in its log)", store.uri("quarantine"),
                      f"`flightdeck validate --start {start} --end {end}` quarantines what it refuses")
    names = [f"{r['table']} {r.get('date') or 'reference'} ({len(r['failed_expectations'])} failed "
             "expectation(s))" for _, r, _ in batches]
    body = _verdict(False, f"Verdict: REFUSED by validation: {len(batches)} batch(es) quarantined: "
                    + "; ".join(names))
    for prefix, report, md in batches:
        body += (f"<section><p class='meta'>quarantined {html.escape(str(report.get('quarantined_at')))}</p>"
                 + render_markdown(md) + _source(store, prefix) + "</section>")
    return Page(f"Quarantine report {span}", body)


# -- rollout ---------------------------------------------------------------------------------------
def rollout_page(champion: str, challenger: str, model: str = "", store: ArtifactStore | None = None) -> Page:
    from components.core.settings import load_settings

    store = store or open_store()
    model = _identifier(model or load_settings().model_name, "model")
    if not (champion.isdigit() and challenger.isdigit()):
        raise ValueError(f"versions {champion!r} and {challenger!r} must be version numbers")
    prefix = layout.rollout_report_prefix(model, int(champion), int(challenger))
    if not store.exists(f"{prefix}/report.json"):
        raise Missing(f"no rollout of {model} version {challenger} against champion {champion} has a report",
                      store.uri(prefix), "`flightdeck rollout start` (continuous_training's rollout_start task) "
                      "starts one; `flightdeck rollout advance --date D` decides its steps")
    report = store.read_json(f"{prefix}/report.json")
    status = report["status"]
    ok = status in ("active", "promoted")
    verdict = f"Verdict: {status.upper().replace('_', ' ')} at step {report['step_name']}"
    if report["history"]:
        verdict += f" ({report['history'][-1]['action']}: {report['history'][-1]['reason'][:300]})"
    body = (_verdict(ok, verdict) + render_markdown(store.read_bytes(f"{prefix}/report.md").decode())
            + _source(store, prefix))
    return Page(f"Rollout: {model} v{challenger} vs champion v{champion}", body)


# -- the HTML around a page -----------------------------------------------------------------------
STYLE = """body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 48px;color:#1a202c}
header{border-bottom:1px solid #cbd5e0;padding:12px 0;color:#4a5568;font-size:14px}
table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #cbd5e0;padding:4px 8px;text-align:left}
code{background:#edf2f7;padding:1px 4px;border-radius:3px}section{border-top:1px solid #e2e8f0;margin-top:24px}
.verdict{font-weight:700;font-size:18px;padding:10px 14px;border-radius:6px}
.ok{background:#c6f6d5;color:#22543d}.bad{background:#fed7d7;color:#742a2a}.source,.meta{color:#718096;font-size:13px}"""


def document(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><header>flightdeck &middot; {html.escape(title)}</header>{body}"
            "</body></html>").encode()


def missing_document(missing: Missing) -> bytes:
    return document("Report not found", (
        "<h1>Report not found</h1>" + _verdict(False, missing.what)
        + f"<p>Looked in <code>{html.escape(missing.where)}</code>.</p>"
        + f"<p>{render_markdown(missing.produce).strip().removeprefix('<p>').removesuffix('</p>')}.</p>"))
