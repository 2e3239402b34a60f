"""The measured backtest committed under docs/backtest/ is what the README reports, and it is whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
NAMES = {"static": "static", "scheduled:30": "scheduled, 30 days", "scheduled:7": "scheduled, 7 days",
         "trigger": "value trigger"}


def test_the_readme_held_out_table_is_the_committed_summary():
    summary = pd.read_csv(REPO / "docs/backtest/summary.csv")
    assert set(summary["period"]) == {"all", "calibration", "held out"}
    held = summary[summary["period"] == "held out"].set_index("policy")
    assert set(held.index) == set(NAMES) and (held["first_day"] == "2013-08-01").all()
    readme = (REPO / "README.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip().strip("*") for c in line.split("|")[2:-1]]
            for line in readme.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in NAMES.values()}
    for policy, name in NAMES.items():
        r = held.loc[policy]
        cells = rows[name]
        assert cells[0] == f"{r['roc_auc']:.3f}" and cells[1] == f"{r['mean_daily_auc']:.3f}", (policy, cells)
        assert cells[5] == f"{r['retrains']} ({r['promoted']})", (policy, cells)
        assert cells[6].split(" ")[0].strip("*") == f"{r['compute_seconds']:,.0f}", (policy, cells)
    monthly = pd.read_csv(REPO / "docs/backtest/monthly.csv")
    assert len(monthly) == 11 * 4 and monthly["roc_auc"].between(0.5, 1).all()
    calibration = pd.read_csv(REPO / "docs/backtest/calibration/summary.csv")
    assert (calibration["last_day"] == "2013-07-31").all() and len(calibration) == 7
    # docs/BACKTEST.md's back-off table is the calibration months' summary
    backoff = calibration.set_index("policy").loc["trigger:refusal_backoff=2"]
    row = next(line for line in (REPO / "docs/BACKTEST.md").read_text().splitlines() if "back-off 2 |" in line)
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")][1:]
    assert cells[:5] == [f"{backoff[k]:.3f}" for k in ("roc_auc", "mean_daily_auc", "worst_week_auc", "log_loss", "ece")]
    assert cells[5:] == [f"{backoff['retrains']} ({backoff['promoted']})", f"{backoff['compute_seconds']:.0f}"]


def test_the_shipped_default_replay_is_the_table_docs_backtest_shows():
    """docs/BACKTEST.md's "shipped default" table is docs/backtest/shipped-default/summary.csv, and its
    30-day schedule is the committed backtest's (the replay is deterministic: same seed, same scores)."""
    shipped = pd.read_csv(REPO / "docs/backtest/shipped-default/summary.csv")
    assert set(shipped["policy"]) == {"scheduled:30", "scheduled:30+drift"}
    text = (REPO / "docs/BACKTEST.md").read_text()
    section = text[text.index("## The shipped default"):]
    for _, r in shipped[shipped["period"].isin(["all", "held out"])].iterrows():
        row = f"| {r['period']} | {r['policy']} |"
        line = next(line for line in section.splitlines() if line.startswith(row))
        cells = [c.strip() for c in line.strip("|").split("|")][2:]
        assert cells == [f"{r['roc_auc']:.4f}", f"{r['mean_daily_auc']:.4f}", f"{r['retrains']} ({r['promoted']})",
                         f"{r['monitor_seconds']:.0f}", f"{r['compute_seconds']:.0f}"], (row, cells)
    committed = pd.read_csv(REPO / "docs/backtest/summary.csv").set_index(["period", "policy"])
    for _, r in shipped[shipped["policy"] == "scheduled:30"].iterrows():
        before = committed.loc[(r["period"], "scheduled:30")]
        assert (r["roc_auc"], r["mean_daily_auc"], r["retrains"]) == (before["roc_auc"], before["mean_daily_auc"],
                                                                    before["retrains"])
