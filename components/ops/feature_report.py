"""`flightdeck feature-report`: each feature view's cost (build time, storage, online lookup latency) beside what it
contributes to the model (its permutation importance on an evaluation's holdout), as JSON and a markdown table.

Imported by the CLI at start-up, so only argparse at the top. Costs: components.features.costs; importance:
evaluation.json's `importance` (components.model.importance), read as the evaluation published it.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--evaluation", default="", metavar="ID", help="the evaluation whose importance to show "
                        "(runs/evaluate/<ID>); default: the latest; 'none': costs only")
    parser.add_argument("--lookups", type=int, default=50, help="timed online lookups per view (0: skip the online "
                        "latency; it needs a materialized online store)")
    parser.add_argument("--entity-rows", type=int, default=5, help="entity rows per online lookup")
    parser.add_argument("--markdown", action="store_true", help="print the markdown table instead of the JSON")


def feature_report(store, evaluation: str = "", lookups: int = 50, entity_rows: int = 5) -> dict:
    """{"evaluation": id or None, "build": ..., "views": {view: cost + "importance": the view's entry or None},
    "markdown": the table}."""
    from components.contracts import layout
    from components.contracts.errors import StageFailed
    from components.features.costs import view_costs

    costs = view_costs(store, lookups=lookups, entity_rows=entity_rows)
    importance, eval_id = {}, None
    if evaluation != "none":
        try:
            eval_id = evaluation or store.read_json(layout.EVAL_LATEST)["eval_id"]
            report = json.loads(store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"))
        except KeyError:
            raise StageFailed(f"no evaluation {evaluation or '(latest)'} is published: run `flightdeck evaluate`, or "
                              "pass --evaluation none for the costs alone") from None
        importance = report.get("importance") or {}
        if not importance.get("measured"):
            raise StageFailed(f"evaluation {eval_id} has no permutation importance "
                              f"({importance.get('why', 'it predates it')}): evaluate the run again")
    views = {name: {**cost, "importance": (importance.get("groups") or {}).get(name)}
             for name, cost in costs["views"].items()}
    out = {"evaluation": eval_id, "build": costs["build"], "views": views}
    return {**out, "markdown": markdown(out)}


def markdown(r: dict) -> str:
    build = r["build"]
    lines = [f"# Feature views: cost and contribution (evaluation {r['evaluation'] or 'none'})", "",
             f"Build time: the latest features build ({build['start']}..{build['end']}, {build['days']} days)."
             if build else "Build time: not recorded (no features build has run since it was).", "",
             "| view | features | ROC AUC drop | interval | costs AUC nothing | build s | storage bytes | "
             "online p50 ms |", "|---|---|---|---|---|---|---|---|"]
    for name, v in r["views"].items():
        imp, online = v["importance"] or {}, v["online"] or {}
        lines.append(f"| {name} | {len(v['features'])} | {_f(imp.get('drop'), '+.4f')} | "
                     + (f"[{imp['lower']:+.4f}, {imp['upper']:+.4f}]" if imp else "") + f" | "
                     f"{'yes' if imp.get('costs_nothing') else ''} | {_f(v['build_seconds'], '.3f')} | "
                     f"{v['storage_bytes']} | {_f(online.get('p50_ms'), '.2f')} |")
    return "\n".join(lines) + "\n"


def _f(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def run(args: argparse.Namespace) -> int:
    from components.core.store import open_store

    result = feature_report(open_store(), args.evaluation, args.lookups, args.entity_rows)
    print(result["markdown"] if args.markdown else json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0
