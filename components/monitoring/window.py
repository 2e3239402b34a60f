"""Which scored rows one monitoring run compares: the planning of the monitor stage, without I/O.

The drift window is the last `window_days` days ending at the monitored day; performance is pooled
over the last `auc_window_days` days (usually longer: labels are noisier than features). Both read
the same loaded days, so the stage loads the longer span once. Prediction drift and performance
count only the rows scored by the version that scored the monitored day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from components.monitoring.policy import RetrainPolicy

DAY = "_day"  # the column that tags each loaded row with its scored day


@dataclass(frozen=True)
class WindowPlan:
    day: date
    drift_days: list[date]  # oldest first, ending at day
    load_days: list[date]  # every day either window needs, oldest first
    auc_days: list[date]  # the performance window, oldest first


def plan_window(day: date, policy: RetrainPolicy) -> WindowPlan:
    """The days the monitor of `day` loads, compares for drift and pools for performance."""
    span = max(policy.window_days, policy.auc_window_days)
    load_days = [day - timedelta(days=i) for i in range(span - 1, -1, -1)]
    return WindowPlan(day=day, drift_days=load_days[-policy.window_days:], load_days=load_days,
                      auc_days=load_days[-policy.auc_window_days:])


@dataclass(frozen=True)
class WindowRows:
    current: pd.DataFrame  # every scored row of the drift window
    same_model: pd.DataFrame  # the drift window's rows scored by the monitored day's version
    auc_rows: pd.DataFrame  # the performance window's rows scored by that version
    missing_days: list[str]  # drift-window days with no (or empty) predictions, ISO dates


def select_rows(plan: WindowPlan, loaded: dict[date, pd.DataFrame | None], version: int | None) -> WindowRows:
    """Split the loaded days' predictions (None: not published) into the rows each comparison uses.

    The monitored day itself must be among the loaded frames and non-empty (the stage checks it first).
    """
    frames = [df.assign(**{DAY: d}) for d, df in sorted(loaded.items()) if df is not None and len(df)]
    scored = pd.concat(frames, ignore_index=True)
    current = scored[scored[DAY] >= plan.drift_days[0]]
    auc_rows = scored[scored[DAY] >= plan.auc_days[0]]
    return WindowRows(
        current=current,
        same_model=of_version(current, version),
        auc_rows=of_version(auc_rows, version),
        missing_days=[d.isoformat() for d in plan.drift_days if loaded.get(d) is None or len(loaded[d]) == 0],
    )


def versions(df: pd.DataFrame) -> pd.Series:
    """The model version that scored each row (missing when the predictions do not say)."""
    if "model_version" not in df.columns:
        return pd.Series([None] * len(df), index=df.index)
    return pd.to_numeric(df["model_version"], errors="coerce").astype("Int64")


def of_version(df: pd.DataFrame, version: int | None) -> pd.DataFrame:
    """The rows scored by `version` (all rows when the version is unknown)."""
    return df[versions(df) == version] if version is not None else df


def mode_version(df: pd.DataFrame) -> int | None:
    """The version that scored most of the rows: the one a day is monitored against."""
    found = versions(df).dropna()
    return int(found.mode().iloc[0]) if len(found) else None
