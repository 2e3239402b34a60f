"""model_card.md: the model card (components.model.card) for people, section by section, from its JSON alone."""

from __future__ import annotations

import json

from components.model.report import fmt, importance_lines, parity_lines, slice_table


def render(card: dict) -> str:
    m = card["model"]
    lines = [f"# Model card: {m['name']} version {m['version']}", "",
             f"- model.pt sha256: `{m['model_sha256']}`", f"- registered at: {m['registered_at']}",
             f"- architecture: {m['architecture']}", ""]
    for section, title, lines_of in SECTIONS:
        lines += [f"## {title}", ""] + lines_of(card[section]) + [""]
    return "\n".join(lines)


def _intended_use(u: dict) -> list[str]:
    return [f"- task: {u['task']}", f"- prediction time: {u['prediction_time']}", f"- users: {u['users']}",
            f"- use: {u['use']}", "- out of scope:"] + [f"  - {x}" for x in u["out_of_scope"]]


def _data(d: dict) -> list[str]:
    p = d["partitions"]
    lines = [f"- source: {d['source']}", f"- window: {d['window']['start']} .. {d['window']['end']}",
             f"- train: {p['train']['from']} .. {p['train']['to']}",
             f"- validation (early stopping, calibration slope): {p['validation']['from']} .. {p['validation']['to']}",
             f"- holdout (every metric below): {p['holdout']['from']} .. {p['holdout']['to']}, "
             f"{p['holdout']['rows']} flights"]
    ts = d.get("training_set") or {}
    if ts:
        lines.append(f"- training set: `{ts.get('key')}`, {ts.get('rows')} rows, sha256 `{ts.get('sha256')}`")
    if d["validated_partitions"]:
        lines += ["", "| validated table | partitions | rows | first day | last day |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {v['partitions']} | {v['rows']} | {v['first'] or ''} | {v['last'] or ''} |"
                  for t, v in d["validated_partitions"].items()]
    else:
        lines.append("- validated partitions: not recorded")
    return lines


def _features(f: dict) -> list[str]:
    lines = [f"- feature service: {f['feature_service'] or 'not recorded'}",
             f"- numeric ({len(f['numeric'] or [])}): {', '.join(f['numeric'] or [])}",
             f"- categorical ({len(f['categorical'] or [])}): {', '.join(f['categorical'] or [])}"]
    if f["views"]:
        lines += ["", "| feature view | join key | ttl | features |", "|---|---|---|---|"]
        lines += [f"| {n} | {v['join_key']} | {v['ttl']} | {', '.join(v['features'] or [])} |"
                  for n, v in f["views"].items()]
    return lines


def _holdout_metrics(h: dict) -> list[str]:
    if not h.get("evaluated"):
        return ["Not evaluated."]
    cols = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "mean_prediction", "positive_rate")
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols),
             "| this model | " + " | ".join(fmt(h["model"].get(c)) for c in cols) + " |"]
    lines += [f"| {name} | {fmt(b['roc_auc'])} |" + " |" * (len(cols) - 1) for name, b in h["baselines"].items()]
    whole = h.get("roc_auc_interval") or {}
    if whole.get("lower") is not None:
        lines += ["", f"ROC AUC {whole['roc_auc']:.4f}, {whole['confidence']:.0%} interval "
                  f"[{whole['lower']:.4f}, {whole['upper']:.4f}] ({whole['resamples']} bootstrap resamples)."]
    if h["comparisons"]:
        lines += ["", "Paired bootstrap intervals of ROC AUC (this model - other):", "",
                  "| other | difference | lower | upper |", "|---|---|---|---|"]
        lines += [f"| {n} | {c['difference']:+.4f} | {c['lower']:+.4f} | {c['upper']:+.4f} |"
                  for n, c in h["comparisons"].items()]
    lines += [f"- {n} not fitted: {b['skipped']}" for n, b in h["baselines"].items() if b.get("skipped")]
    return lines


def _slices(s: dict) -> list[str]:
    if not s.get("evaluated"):
        return ["Not evaluated."]
    lines = [f"Slices with {s['min_slice_rows']}+ holdout flights; a slice whose ROC AUC interval lies entirely "
             f"below {s['slice_auc_floor']} refuses the blessing.", ""]
    lines += slice_table(s["slices"], s["confidence"] or 0.95)
    if s.get("parity"):
        lines += ["", "Parity across origins and carriers (reported, not gating):", ""] + parity_lines(s["parity"])
    return lines


def _importance(i: dict) -> list[str]:
    if not i.get("computed"):
        return [f"{i['status']}: {i['why']}."]
    return importance_lines(i["importance"])


def _blessing(b: dict) -> list[str]:
    verdict = "not evaluated" if not b.get("evaluated") else "BLESSED" if b["blessed"] else "NOT BLESSED"
    lines = [f"**{verdict}**", ""] + [f"- failed: {f}" for f in b["failed"]] + [f"- ok: {r}" for r in b["reasons"]]
    if b.get("policy"):
        lines += ["", f"Policy: `{json.dumps(b['policy'], sort_keys=True)}`"]
    return lines


def _limitations(items: list[str]) -> list[str]:
    return [f"- {x}" for x in items]


def _lineage(li: dict) -> list[str]:
    lines = [f"- {k}: {li[k]}" for k in ("run_id", "evaluation_id", "code_version", "torch", "device", "seed",
                                         "feature_service", "validated_partitions")]
    ts = li.get("training_set") or {}
    lines.append(f"- training set sha256: {ts.get('sha256', 'not recorded')}")
    lines += [f"- {name} sha256: `{sha}`" for name, sha in li["files"].items()]
    if li.get("params"):
        lines.append(f"- training parameters: `{json.dumps(li['params'], sort_keys=True)}`")
    return lines


# (card section, markdown title, renderer), in the card's order.
SECTIONS = (("intended_use", "Intended use", _intended_use), ("data", "Data", _data),
            ("features", "Features", _features), ("holdout_metrics", "Holdout metrics", _holdout_metrics),
            ("slices", "Slices", _slices), ("importance", "Feature importance", _importance),
            ("blessing", "Blessing", _blessing), ("limitations", "Known limitations", _limitations),
            ("lineage", "Lineage", _lineage))
