"""The baselines evaluate fits on the run's own training period and scores on the same holdout.

- carrier_rate: each carrier's historical late rate (smoothed toward the overall rate);
- logistic_regression: the same features with the same imputation as the MLP (mean + missing
  indicator), one-hot categories;
- lightgbm: gradient-boosted trees, the practitioner's reference for tabular data. Reported, never
  gating; a dev/bench dependency, not in the stage image (containers/locks/stage.lock): evaluate
  skips it where it cannot be imported (components.model.evaluate.lightgbm_unavailable).

Each fitter returns the holdout's predicted probabilities; components.model.evaluate scores them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from components.contracts.signature import CATEGORICAL, LABEL, NUMERIC


def carrier_rate(train: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray:
    """Each carrier's late rate over the training rows (smoothed toward the overall rate)."""
    prior, k = train[LABEL].mean(), 20.0
    stats = train.groupby("carrier")[LABEL].agg(["sum", "count"])
    rate = (stats["sum"] + k * prior) / (stats["count"] + k)
    return holdout["carrier"].map(rate).fillna(prior).to_numpy(dtype=np.float64)


def _sk_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[NUMERIC + CATEGORICAL].copy()
    out[NUMERIC] = out[NUMERIC].astype("float64")
    for col in CATEGORICAL:
        out[col] = out[col].astype(str)
    return out


def logistic_regression(train: pd.DataFrame, holdout: pd.DataFrame, seed: int, min_count: int) -> np.ndarray:
    """Same features, same imputation as the MLP (training mean + missing indicator), one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True, keep_empty_features=True),
                              StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_count), CATEGORICAL),
    ])
    model = make_pipeline(prep, LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    model.fit(_sk_frame(train), train[LABEL].to_numpy())
    return model.predict_proba(_sk_frame(holdout))[:, 1]


def lightgbm(train: pd.DataFrame, val: pd.DataFrame, holdout: pd.DataFrame, seed: int, threads: int) -> np.ndarray:
    """Gradient-boosted trees on the same features (NaN handled natively), early-stopped on validation."""
    import lightgbm as lgb

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        out = df[NUMERIC + CATEGORICAL].copy()
        for col in CATEGORICAL:
            out[col] = pd.Categorical(df[col].astype(str), categories=sorted(train[col].astype(str).unique()))
        return out

    model = lgb.LGBMClassifier(n_estimators=2000, learning_rate=0.05, num_leaves=63, min_child_samples=50,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                               random_state=seed, n_jobs=threads, deterministic=True, force_row_wise=True,
                               verbose=-1)
    model.fit(frame(train), train[LABEL], eval_X=(frame(val),), eval_y=(val[LABEL],), eval_metric="binary_logloss",
              callbacks=[lgb.early_stopping(50, verbose=False)])
    return model.predict_proba(frame(holdout))[:, 1]


def baseline_fitters(train: pd.DataFrame, val: pd.DataFrame, holdout: pd.DataFrame, seed: int, min_category_count: int,
                     threads: int) -> dict[str, Callable[[], np.ndarray]]:
    """Each baseline's fit-then-predict-the-holdout, by name, in the order the evaluation reports them."""
    return {
        "carrier_rate": lambda: carrier_rate(train, holdout),
        "logistic_regression": lambda: logistic_regression(train, holdout, seed, min_category_count),
        "lightgbm": lambda: lightgbm(train, val, holdout, seed, threads),
    }
