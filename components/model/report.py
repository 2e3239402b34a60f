"""The evaluation's report.md, and the slice and parity tables that the model card (components.model.card)
shows too."""

from __future__ import annotations

import json


def fmt(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _interval(lower, upper, signed: bool = False) -> str:
    if lower is None or upper is None:
        return ""
    return f"[{lower:+.4f}, {upper:+.4f}]" if signed else f"[{lower:.4f}, {upper:.4f}]"


def slice_table(slices: dict[str, dict[str, dict]], confidence: float) -> list[str]:
    """One markdown row per slice: rows, late rate, ROC AUC with its interval, the paired interval against the
    overall AUC, the calibration gap (mean prediction - late rate) with its interval, log loss, ECE."""
    pct = f"{confidence:.0%}"
    lines = [f"| slice | value | rows | late rate | roc_auc | {pct} interval | vs overall | {pct} interval | "
             f"calibration gap | {pct} interval | log_loss | ece |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for col, values in slices.items():
        for value, m in values.items():
            vs = m.get("vs_overall") or {}
            lines.append(
                f"| {col} | {value} | {m['rows']} | {fmt(m.get('positive_rate'))} | {fmt(m.get('roc_auc'))} | "
                f"{_interval(m.get('lower'), m.get('upper'))} | "
                f"{'' if vs.get('difference') is None else format(vs['difference'], '+.4f')} | "
                f"{_interval(vs.get('lower'), vs.get('upper'), signed=True)} | "
                f"{format(m['calibration_gap'], '+.4f') if m.get('calibration_gap') is not None else ''} | "
                f"{_interval(m.get('gap_lower'), m.get('gap_upper'), signed=True)} | "
                f"{fmt(m.get('log_loss'))} | {fmt(m.get('ece'))} |")
    return lines


def parity_lines(parity: dict[str, dict]) -> list[str]:
    """Per origin and carrier: the ROC AUC spread, the calibration-gap spread and the groups at either end."""
    lines = ["| across | groups | ROC AUC spread | lowest | highest | calibration gap spread | largest gap |",
             "|---|---|---|---|---|---|---|"]
    for col, p in parity.items():
        def who(g, key):
            return "" if g is None else f"{g['value']} {g[key]:+.4f} (n={g['rows']})" if key == "calibration_gap" \
                else f"{g['value']} {g[key]:.4f} (n={g['rows']})"
        lines.append(f"| {col} | {len(p['groups'])} | {fmt(p['auc_spread'])} | {who(p['auc_lowest'], 'roc_auc')} | "
                     f"{who(p['auc_highest'], 'roc_auc')} | {fmt(p['calibration_gap_spread'])} | "
                     f"{who(p['largest_calibration_gap'], 'calibration_gap')} |")
    return lines


def importance_lines(imp: dict) -> list[str]:
    """The permutation importance (components.model.importance): per feature view, then per feature, by drop."""
    if not imp.get("measured"):
        return [f"Not measured: {imp.get('why', 'evaluate did not measure it')}."]
    pct = f"{imp['confidence']:.0%}"
    lines = [f"ROC AUC drop when the values are shuffled across the holdout's flights (original "
             f"{imp['baseline_roc_auc']:.4f}; mean of {imp['repeats']} shuffles, their standard deviation and range; "
             f"the {pct} paired bootstrap interval of the mean drop over {imp['resamples']} resamples). Flagged: "
             f"{imp['rule']}. Reported, not gating.", ""]
    for kind, title in (("groups", "feature view"), ("features", "feature")):
        lines += [f"| {title} | ROC AUC drop | std over shuffles | min .. max | {pct} interval | costs AUC nothing |",
                  "|---|---|---|---|---|---|"]
        for name, e in sorted(imp[kind].items(), key=lambda kv: -kv[1]["drop"]):
            label = f"{name} ({', '.join(e['features'])})" if kind == "groups" else name
            lines.append(f"| {label} | {e['drop']:+.4f} | {e['std']:.4f} | {e['min']:+.4f} .. {e['max']:+.4f} | "
                         f"{_interval(e['lower'], e['upper'], signed=True)} | {'yes' if e['costs_nothing'] else ''} |")
        lines.append("")
    return lines[:-1]


def markdown_report(r: dict) -> str:
    cols = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "mean_prediction")
    d = r["decision"]
    lines = [f"# Evaluation of training run `{r['run_id']}`", "",
             f"**Decision: {'BLESSED' if d['blessed'] else 'NOT BLESSED'}**", ""]
    lines += [f"- failed: {f}" for f in d["failed"]] + [f"- ok: {f}" for f in d["reasons"]]
    lines += ["", f"Holdout: {r['holdout']['rows']} flights scheduled from {r['holdout']['start']} to "
              f"{r['holdout']['end']} (the end of the training window, never seen in training).", "",
              "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    rows = [("this model", r["model"]["overall"])] + list(r["baselines"].items())
    if r["champion"]:
        rows.append((f"champion (version {r['champion']['version']})", r["champion"]))
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(fmt(m.get(c)) for c in cols) + " |")
    whole = r["model"].get("roc_auc_interval") or {}
    if whole.get("lower") is not None:
        lines += ["", f"This model's ROC AUC {whole['roc_auc']:.4f}, {whole['confidence']:.0%} interval "
                  f"[{whole['lower']:.4f}, {whole['upper']:.4f}] ({whole['resamples']} bootstrap resamples of the "
                  "holdout)."]
    if r["gap_to_lightgbm"] is not None:
        lines += ["", f"ROC AUC gap to LightGBM: {r['gap_to_lightgbm']:+.4f} (goal: within 0.01)."]
    for name, m in r["baselines"].items():
        if m.get("skipped"):
            lines += ["", f"Baseline {name} skipped: {m['skipped']}."]
    lines += ["", "## The gate: paired bootstrap intervals of the ROC AUC difference (this model - other)", "",
              "| other | difference | lower | upper | resamples |", "|---|---|---|---|---|"]
    for name, c in d.get("comparisons", {}).items():
        lines.append(f"| {name} | {c['difference']:+.4f} | {c['lower']:+.4f} | {c['upper']:+.4f} | {c['resamples']} |")
    lines += ["", "## Behavioural checks", ""]
    lines += [f"- {'PASS' if c['passed'] else 'FAIL'}: {c['name']}" for c in r["checks"]]
    policy = d["policy"]
    lines += ["", "## Slices", "",
              f"Slices with {policy.get('min_slice_rows')}+ holdout flights. A slice whose ROC AUC interval lies "
              f"entirely below the slice floor {policy.get('slice_auc_floor')} refuses the blessing. \"vs overall\" "
              "is the paired interval of (slice AUC - overall AUC): within a slice the ranking between slices is "
              "gone, so it is reported, not gated (docs/MODEL.md).", ""]
    lines += slice_table(r["model"]["slices"], policy.get("confidence", 0.95))
    if r["model"].get("parity"):
        lines += ["", "## Parity across origins and carriers (reported, not gating)", ""]
        lines += parity_lines(r["model"]["parity"])
    if r.get("importance"):
        lines += ["", "## Feature importance (permutation, holdout)", ""] + importance_lines(r["importance"])
    lines += ["", f"Policy: {json.dumps(policy)}", ""]
    return "\n".join(lines)
