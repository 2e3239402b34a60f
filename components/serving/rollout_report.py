"""A rollout's report in statistical terms, rewritten at every decision of components.serving.rollout_stage.

report.json: the rollout state's decisions, each with every guardrail's numbers; for outcomes, challenger
minus champion on the same labelled flights: log loss (mean paired difference, 95% normal CI, n) and ROC AUC
(paired bootstrap 95% CI), the n the sample-size rule required. report.md: the same as tables (rendered by the
Airflow plugin's rollout page). metrics.prom: flightdeck_rollout_rolled_back and flightdeck_rollout_step, also
pushed to the Pushgateway when one is configured (the RolloutRolledBack alert reads the former).
"""

from __future__ import annotations

import logging

from components.contracts import layout
from components.core import metrics as M
from components.core.store import ArtifactStore
from components.serving import rollout as R

log = logging.getLogger(__name__)
ROLLOUT_JOB = "flightdeck_rollout"


def _ci(ci) -> str:
    return f"{ci[0]:+.4f} .. {ci[1]:+.4f}" if ci else "n/a"


def outcome_rows(checks: list[dict]) -> list[str]:
    """Markdown table rows: each metric's champion, challenger, difference with its interval, and n."""
    out = next((c for c in checks if c["name"] == "outcomes"), None)
    nums = (out or {}).get("numbers") or {}
    rows = []
    for metric in ("log_loss", "roc_auc"):
        m = nums.get(metric)
        if m and m.get("champion") is not None:
            rows.append(f"| {metric} | {m['champion']:.4f} | {m['challenger']:.4f} | {m['diff']:+.4f} | "
                        f"{_ci(m.get('ci'))} | {nums.get('n')} | {nums.get('required_n', '')} |")
    return rows


def markdown(state: dict) -> str:
    lines = [f"# Rollout of {state['model']} v{state['challenger']} (champion v{state['champion']})", "",
             f"Status: **{state['status']}**, step **{R.step_name(state['step'])}**; steps: "
             + " -> ".join(R.step_name(i) for i in range(len(R.STEPS))) + ".", "",
             "Differences are challenger minus champion on the same flights (log loss: lower is better; "
             "ROC AUC: higher is better), with 95% intervals: paired normal for log loss, paired bootstrap for "
             "ROC AUC.", ""]
    for h in state["history"]:
        lines += [f"## {h['day'] or 'start'}: {h['step']}: {h['action'].upper()}", "", h["reason"], ""]
        rows = outcome_rows(h["checks"])
        if rows:
            lines += ["| metric | champion | challenger | difference | 95% CI | n | n required |",
                      "|---|---|---|---|---|---|---|", *rows, ""]
        for c in h["checks"]:
            if c["name"] != "outcomes":
                lines.append(f"- {c['name']}: {c['verdict']}: {c['reason']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_report(store: ArtifactStore, settings, state: dict) -> str:
    """Write report.json, report.md and metrics.prom for the rollout; push the metrics when configured.
    Returns the report.json key. A Pushgateway outage is logged, not raised: the decision is already recorded."""
    prefix = layout.rollout_report_prefix(state["model"], state["champion"], state["challenger"])
    report = {k: state[k] for k in ("model", "champion", "challenger", "status", "step", "history", "started_at")}
    report["step_name"] = R.step_name(state["step"])
    report["evidence"] = state.get("evidence", {})
    store.write_json(f"{prefix}/report.json", report)
    store.write_bytes(f"{prefix}/report.md", markdown(state).encode())
    writer = M.MetricsWriter()
    writer.set("flightdeck_rollout_rolled_back", 1 if state["status"] == "rolled_back" else 0,
               model=state["model"], challenger=str(state["challenger"]))
    writer.set("flightdeck_rollout_step", state["step"], model=state["model"], challenger=str(state["challenger"]))
    store.write_bytes(f"{prefix}/metrics.prom", writer.render())
    gateway = getattr(settings, "pushgateway_url", "")
    if gateway:
        try:
            M.push(writer, gateway, job=ROLLOUT_JOB, grouping_key={"model": state["model"]})
        except OSError as exc:
            log.error("the rollout's metrics could not be pushed to %s: %s", gateway, exc)
    return f"{prefix}/report.json"
