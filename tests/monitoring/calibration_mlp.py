"""The drift/AUC calibration of docs/MONITORING.md, with the real model instead of a stand-in.

    python -m tests.monitoring.calibration_mlp

`python -m components.monitoring.calibration` builds the calibration table with a logistic-regression
stand-in. This builds the same table (same frames, reference samples, windows, drift statistics,
summary) with the delay MLP trained the way the train stage trains it: components.model.train.fit with
the stage's default TrainParams (seed, epochs, early stopping on the validation period, Platt
scaling), on the reference window cut by time into 70% train / 15% validation / 15% test, and the
holdout ROC AUC measured on the test period, as evaluate does. Only the model-dependent columns
(prediction PSI, AUCs) can differ from the stand-in's table; the feature drift is the same.

Prints the summary (components.monitoring.calibration.summarize) and the time it took.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd


class MLPScorer:
    """The train stage's MLP fitted on one window: __call__(frame) -> P(late)."""

    def __init__(self, window: pd.DataFrame):
        import torch

        from components.contracts.signature import DAY_SO_FAR
        from components.contracts.stages import TrainParams
        from components.model.network import predict
        from components.model.train import assign_split, deterministic, fit, time_split

        # The calibration frames have no day so far (docs/MONITORING.md, "Which columns the share counts"):
        # the MLP gets those inputs as missing, i.e. it is the daily-features model.
        frame = window.sort_values(["sched_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)
        frame = frame.assign(**{c: np.nan for c in DAY_SO_FAR if c not in frame.columns})
        self._missing = DAY_SO_FAR
        params = TrainParams(train_start=str(frame["day"].min().date()), train_end=str(frame["day"].max().date()),
                             device="cpu")
        bounds = time_split(frame["sched_dep_utc"], params.val_fraction, params.test_fraction)
        split = assign_split(frame, bounds)
        t0 = time.perf_counter()
        with deterministic(params.seed, params.threads):
            self.model, self.metrics = fit(params, frame, split, torch.device("cpu"))
        self.seconds = time.perf_counter() - t0
        self._predict = predict
        self.holdout = frame[split == "test"]

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return self._predict(self.model, frame.assign(**{c: np.nan for c in self._missing if c not in frame.columns}))


def calibration_table_mlp(reference_rows: int = 5000) -> tuple[pd.DataFrame, dict]:
    from sklearn.metrics import roc_auc_score

    from components.monitoring import calibration as mb
    from components.monitoring.drift import drift_statistics
    from components.monitoring.policy import load_policy

    policy = load_policy()
    frame = mb.year_frame()
    rows, models = [], {}
    for (first, last), months in mb.CASES.items():
        scorer = MLPScorer(mb.days(frame, first, last))
        holdout_auc = float(roc_auc_score(scorer.holdout["label"], scorer(scorer.holdout)))
        name = f"{first[5:7]}..{last[5:7]}"
        models[name] = {"holdout_auc": holdout_auc, "train_seconds": round(scorer.seconds, 1),
                        "epochs": scorer.metrics["epochs_run"], "val_auc": scorer.metrics["val_auc"]}
        scored = frame.assign(probability=scorer(frame))  # the whole year once; windows are slices
        ref = mb.reference_sample(scored, first, last, n=reference_rows)
        for month in months:
            for day in pd.date_range(f"2013-{month:02d}-01", periods=pd.Period(f"2013-{month:02d}").days_in_month):
                lo = day - pd.Timedelta(days=policy.window_days - 1)
                cur = mb.days(scored, str(lo.date()), str(day.date()))
                stats = drift_statistics(ref, cur, policy, engine="scipy")
                part14 = mb.days(scored, str((day - pd.Timedelta(days=13)).date()), str(day.date()))
                rows.append({"reference": name, "month": month, "day": day.date(), "rows": len(cur),
                             "drift_share": stats["drift_share"], "prediction_psi": stats["prediction"]["score"],
                             "auc": float(roc_auc_score(cur["label"], cur["probability"])),
                             "auc_14d": float(roc_auc_score(part14["label"], part14["probability"])),
                             "holdout_auc": holdout_auc,
                             "drifted": ",".join(c for c, e in stats["features"].items() if e["drifted"])})
    return pd.DataFrame(rows), models


def main() -> int:
    from components.monitoring import calibration as mb
    t0 = time.perf_counter()
    table, models = calibration_table_mlp()
    pd.set_option("display.width", 220)
    print("models:", models)
    print(mb.summarize(table).round(3).to_string(index=False))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
