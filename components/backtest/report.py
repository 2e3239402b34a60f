"""The backtest's results: daily and monthly tables (markdown + CSV), a per-policy summary, a chart.

Metrics use the monitor's definitions (monitoring.performance); monthly ones are pooled over every
scored flight of the month. Compute seconds, the only numbers that differ between two runs with
the same seed, live in the summary only. Details: docs/BACKTEST.md, "The report".
"""

from __future__ import annotations

import io
import json
from datetime import date

import numpy as np
import pandas as pd

DAILY_COLUMNS = ["date", "policy", "model_version", "rows", "labelled", "roc_auc", "log_loss", "ece",
                 "observed_late_rate", "predicted_late_rate", "retrained", "promoted", "drift_share"]


def daily_table(records: dict[str, list[dict]]) -> pd.DataFrame:
    rows = []
    for days in records.values():
        for r in days:
            event, mon = r.get("retrain") or {}, r.get("monitor") or {}
            rows.append({**{k: r.get(k) for k in DAILY_COLUMNS[:10]}, "retrained": bool(event),
                         "promoted": bool(event.get("promoted")), "drift_share": mon.get("drift_share")})
    return pd.DataFrame(rows, columns=DAILY_COLUMNS)


def retrain_events(records: dict[str, list[dict]]) -> pd.DataFrame:
    rows = [{"policy": p, "date": r["date"], **{k: r["retrain"].get(k) for k in
             ("reason", "window", "version", "blessed", "promoted", "holdout_auc", "champion_auc", "promotion")},
             "seconds": r["seconds"]["retrain"]}
            for p, days in records.items() for r in days if r.get("retrain")]
    out = pd.DataFrame(rows, columns=["policy", "date", "reason", "window", "version", "blessed", "promoted",
                                      "holdout_auc", "champion_auc", "promotion", "seconds"])
    out["window"] = out["window"].map(lambda w: f"{w[0]}..{w[1]}" if isinstance(w, list) else w)
    return out


def _pooled(frame: pd.DataFrame) -> dict:
    from components.monitoring.performance import performance

    perf = performance(frame["label"].to_numpy(), frame["probability"].to_numpy())
    return {"rows": perf["rows"], "roc_auc": perf.get("roc_auc"), "log_loss": perf.get("log_loss"),
            "ece": perf.get("calibration_error")}


def monthly_table(scored: dict[str, pd.DataFrame], daily: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for policy, frame in scored.items():
        frame = frame.assign(month=frame["date"].str[:7])
        for month, part in frame.groupby("month", sort=True):
            days = daily[(daily["policy"] == policy) & (daily["date"].str[:7] == month)]
            rows.append({"month": month, "policy": policy, **_pooled(part),
                         "mean_daily_auc": float(days["roc_auc"].mean()),
                         "retrains": int(days["retrained"].sum()), "promoted": int(days["promoted"].sum())})
    return pd.DataFrame(rows)


def summary_table(scored: dict[str, pd.DataFrame], records: dict[str, list[dict]], daily: pd.DataFrame,
                  periods: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """Per policy (and per named period of days, first..last inclusive): pooled and mean daily metrics, the
    worst week (pooled ROC AUC of the worst Monday-Sunday week with 5+ days), retrains and compute by part."""
    rows = []
    for period, (lo, hi) in (periods or {"all": ("0000", "9999")}).items():
        for policy, frame in scored.items():
            frame = frame[frame["date"].between(lo, hi)]
            days = daily[(daily["policy"] == policy) & daily["date"].between(lo, hi)]
            recs = [r for r in records[policy] if lo <= r["date"] <= hi]
            if not recs:
                continue
            secs = pd.DataFrame([r["seconds"] for r in recs]).sum()
            initial = int(recs[0]["date"] == records[policy][0]["date"])  # each policy's first model
            rows.append({"period": period, "first_day": recs[0]["date"], "last_day": recs[-1]["date"],
                         "policy": policy, "days": len(days), **_pooled(frame),
                         "mean_daily_auc": float(days["roc_auc"].mean()),
                         "worst_daily_auc": float(days["roc_auc"].min()),
                         "worst_week_auc": worst_week(frame),
                         "retrains": int(days["retrained"].sum()) - initial,
                         "promoted": int(days["promoted"].sum()) - initial,
                         "retrain_seconds": round(float(secs["retrain"]), 1),
                         "monitor_seconds": round(float(secs["monitor"]), 1),
                         "score_seconds": round(float(secs["score"]), 1),
                         "compute_seconds": round(float(secs.sum()), 1)})
    return pd.DataFrame(rows)


def worst_week(frame: pd.DataFrame) -> float | None:
    from components.monitoring.performance import performance

    when = pd.to_datetime(frame["date"])
    weeks = when.dt.to_period("W-SUN")
    worst = None
    for _, part in frame.groupby(weeks):
        if part["date"].nunique() >= 5:
            auc = performance(part["label"].to_numpy(), part["probability"].to_numpy()).get("roc_auc")
            worst = auc if worst is None or (auc is not None and auc < worst) else worst
    return worst


def report_periods(params, days: list[str]) -> dict[str, tuple[str, str]]:
    """all, and when --held-out-from splits the replay: calibration (before it) and held out (from it)."""
    periods = {"all": (days[0], days[-1])}
    cut = getattr(params, "held_out_from", "")
    if cut and days[0] < cut <= days[-1]:
        before = (pd.Timestamp(cut) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        periods |= {"calibration": (days[0], before), "held out": (cut, days[-1])}
    return periods


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4f}"
    return str(v)


def markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def monthly_pivot(monthly: pd.DataFrame, value: str) -> pd.DataFrame:
    return monthly.pivot(index="month", columns="policy", values=value).reset_index().rename_axis(None, axis=1)


def chart_png(daily: pd.DataFrame, events: pd.DataFrame, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5))
    colors = dict(zip(daily["policy"].unique(), ("tab:gray", "tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown"), strict=False))
    for policy, part in daily.groupby("policy", sort=False):
        x = pd.to_datetime(part["date"])
        auc = part["roc_auc"].astype(float)
        ax.plot(x, auc, color=colors[policy], alpha=0.25, linewidth=0.8)
        smooth = auc.rolling(7, min_periods=1).mean()
        ax.plot(x, smooth, color=colors[policy], linewidth=2, label=f"{policy} (7-day mean)")
        ev = events[events["policy"] == policy]
        at = part.set_index("date")["roc_auc"].rolling(7, min_periods=1).mean()
        for _, e in ev.iterrows():
            y = at.get(e["date"], np.nan)
            ax.scatter(pd.to_datetime(e["date"]), y, color=colors[policy], zorder=3, s=60,
                       marker="^" if e["promoted"] else "x", edgecolors="black" if e["promoted"] else None)
    ax.scatter([], [], marker="^", color="white", edgecolors="black", label="retrain, promoted")
    ax.scatter([], [], marker="x", color="black", label="retrain, not promoted")
    ax.set(xlabel="day (simulated clock)", ylabel="daily ROC AUC", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def report_markdown(params, summary: pd.DataFrame, monthly: pd.DataFrame, events: pd.DataFrame,
                    partial_through: str | None = None, refused: list[dict] | None = None) -> str:
    shown = summary.drop(columns=["first_day", "last_day"])
    status = f" (PARTIAL: days {params.start} .. {partial_through} only)" if partial_through else ""
    gaps = []
    if refused:
        names = ", ".join(f"{r['table']} {r['date']}" for r in refused)
        gaps = [f"Refused by validation, replayed without them: {names} (flights with missing features are "
                "scored with the model's missing-value handling).", ""]
    return "\n".join([
        f"# Backtest {params.start} .. {params.end}: {params.policies}{status}", "",
        f"Training window {params.train_window_days} days, `scheduled` retrains every {params.retrain_every} days, "
        f"seed {params.seed}, max {params.max_epochs} epochs, promotion rule `{params.promote}`. "
        "Metrics pooled over every scored flight; retrains exclude each policy's first model; compute = wall-clock "
        "seconds of retraining + monitoring + scoring (each also shown); worst week = the pooled ROC AUC of the "
        "worst Monday-Sunday week with 5+ days." + (f" Days from {params.held_out_from} on are held out: nothing "
                                                    "was tuned on them." if getattr(params, "held_out_from", "")
                                                    else ""), "", *gaps,
        "## Per policy", "", markdown(shown), "",
        "## Monthly ROC AUC (pooled)", "", markdown(monthly_pivot(monthly, "roc_auc")), "",
        "## Monthly log loss", "", markdown(monthly_pivot(monthly, "log_loss")), "",
        "## Monthly calibration error (ECE)", "", markdown(monthly_pivot(monthly, "ece")), "",
        "## Retrains per month", "", markdown(monthly_pivot(monthly, "retrains")), "",
        "## Retrain events", "", markdown(events.drop(columns=["seconds"])), "",
    ])


def publish(store, root: str, params, records: dict[str, list[dict]], runs: dict,
            partial_through: str | None = None, refused: list[dict] | None = None) -> dict:
    days = [date.fromisoformat(r["date"]) for r in next(iter(records.values()))]
    scored = {p: pd.concat([run.scored_frame(d) for d in days], ignore_index=True) for p, run in runs.items()}
    daily = daily_table(records)
    events = retrain_events(records)
    monthly = monthly_table(scored, daily)
    summary = summary_table(scored, records, daily, report_periods(params, [r["date"] for r in
                                                                             next(iter(records.values()))]))
    md = report_markdown(params, summary, monthly, events, partial_through, refused)
    files = {
        "report.md": md.encode(),
        "daily.md": markdown(daily).encode(),
        "daily.csv": daily.to_csv(index=False).encode(),
        "monthly.csv": monthly.to_csv(index=False).encode(),
        "summary.csv": summary.to_csv(index=False).encode(),
        "retrains.csv": events.to_csv(index=False).encode(),
        "auc.png": chart_png(daily, events, f"Daily ROC AUC per retraining policy, {params.start} .. {params.end}"),
        "result.json": json.dumps({"params": params.identity(), "partial_through": partial_through,
                                   "refused_by_validation": refused or [],
                                   "summary": summary.to_dict("records")},
                                  indent=2, sort_keys=True, default=str).encode(),
    }
    prefix = f"{root}/report"
    store.publish(prefix, files, meta={"params": params.identity(), "partial_through": partial_through})
    return {"uri": store.uri(prefix), "summary": summary.to_dict("records"), "markdown": md}


EXPORTED = ("summary.csv", "monthly.csv", "retrains.csv", "daily.csv", "report.md", "auc.png")


def export(store, root: str, folder: str) -> list[str]:
    """Copy the published report's tables, markdown and chart into a folder (a program reads the CSVs)."""
    from pathlib import Path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in EXPORTED:
        (out / name).write_bytes(store.read_published(f"{root}/report", name))
    return [str(out / n) for n in EXPORTED]
