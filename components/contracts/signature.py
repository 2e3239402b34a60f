"""The model's input contract, shared by features (what the training set holds), train (what the
module expects), Triton (config.pbtxt) and the prediction clients.

The exported TorchScript module takes raw feature values, never pre-normalised ones:
  numeric      FP32  [batch, len(NUMERIC)]      NaN = missing (imputed inside the module)
  categorical  INT64 [batch, len(CATEGORICAL)]  strings packed by `encode_category`, ints as-is
and returns
  probability  FP32  [batch, 1]                 P(arrival delay >= 15 min or cancelled)

Packing a string into an int64 is a fixed, vocabulary-free encoding (not a learned transform):
the vocabularies live inside the module, so serving cannot skew from training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The day so far at the prediction time (the last of NUMERIC): the drift share leaves them out (docs/MONITORING.md).
DAY_SO_FAR = [
    "origin_deps_so_far",
    "origin_dep_delay_so_far",
    "origin_late15_share_so_far",
    "origin_waiting_so_far",
    "carrier_origin_deps_so_far",
    "carrier_origin_dep_delay_so_far",
    "carrier_origin_late15_share_so_far",
    "carrier_origin_waiting_so_far",
    "plane_deps_so_far",
    "plane_prev_dep_delay",
]
CATEGORICAL = ["carrier", "origin", "dest", "sched_hour", "day_of_week"]
NUMERIC = [
    "distance",
    # hourly weather at the origin, the latest observation at or before the prediction time
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    # carrier daily stats from flights landed before the prediction time
    "carrier_late_rate_7d",
    "carrier_late_rate_28d",
    "carrier_mean_dep_delay_7d",
    "carrier_cancel_rate_7d",
    # route (origin-dest) daily stats
    "route_late_rate_28d",
    "route_mean_arr_delay_28d",
    "route_flights_28d",
    # plane attributes
    "plane_year",
    "plane_seats",
    # the day so far (pushed as outcomes become known, feature_repo/definitions.py PUSHED_VIEWS)
    *DAY_SO_FAR,
]
# The inputs known before the day starts: the columns the drift share counts (components.monitoring.drift).
DAILY = [c for c in NUMERIC if c not in DAY_SO_FAR]
LABEL = "label"
# Columns of every training set / scoring frame besides the features.
KEYS = ["flight_id", "event_timestamp", "sched_dep_utc", "tailnum", "month"]

INPUT_NUMERIC = "numeric"
INPUT_CATEGORICAL = "categorical"
OUTPUT = "probability"
STRING_CATEGORICAL = ("carrier", "origin", "dest")


def encode_category(value) -> int:
    """Pack up to 8 ASCII characters into an int64 (0 = missing). Longer strings are hashed stably."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return 0
    if isinstance(value, (int, np.integer)):
        return int(value)
    raw = str(value).encode("ascii", "replace")
    if len(raw) > 7:
        import hashlib

        return int.from_bytes(hashlib.blake2b(raw, digest_size=7).digest(), "little") | (1 << 56)
    return int.from_bytes(raw, "little")


def to_tensors(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A frame with the feature columns -> (numeric float32, categorical int64) arrays, vectorised."""
    missing = [c for c in NUMERIC + CATEGORICAL if c not in df.columns]
    if missing:
        raise KeyError(f"scoring frame lacks feature columns: {', '.join(missing)}")
    numeric = df[NUMERIC].to_numpy(dtype=np.float32, na_value=np.nan)
    cat = np.zeros((len(df), len(CATEGORICAL)), dtype=np.int64)
    for j, col in enumerate(CATEGORICAL):
        series = df[col]
        if col in STRING_CATEGORICAL:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            packed = np.array([encode_category(u) for u in uniques] + [0], dtype=np.int64)
            cat[:, j] = packed[codes]  # -1 (missing) picks the trailing 0
        else:
            cat[:, j] = pd.to_numeric(series, errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    return numeric, cat


def signature_json() -> dict:
    return {
        "inputs": [
            {"name": INPUT_NUMERIC, "dtype": "FP32", "shape": [-1, len(NUMERIC)], "features": NUMERIC},
            {"name": INPUT_CATEGORICAL, "dtype": "INT64", "shape": [-1, len(CATEGORICAL)], "features": CATEGORICAL,
             "encoding": {c: "ascii-packed-int64" for c in STRING_CATEGORICAL}},
        ],
        "outputs": [{"name": OUTPUT, "dtype": "FP32", "shape": [-1, 1]}],
    }
