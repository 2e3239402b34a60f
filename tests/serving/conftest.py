"""One real Triton server per test module, on free ports, with a fresh FLIGHTDECK_HOME and an admin key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components import signature
from tests.conftest import triton_settings


@pytest.fixture(scope="module")
def serving_env(tmp_path_factory):
    with triton_settings(tmp_path_factory.mktemp("fd-serving")) as env:
        yield env


@pytest.fixture(scope="module")
def triton(serving_env):
    from components.triton import repository
    from components.triton.server import TritonServer

    _, repo_uri = repository.prepare_repository()
    p = serving_env["ports"]
    with TritonServer(repo_uri, http_port=p["http"], grpc_port=p["grpc"], metrics_port=p["metrics"],
                      admin_key=serving_env["key"]) as server:
        yield server


def flights_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """A scoring frame with the signature's columns, some values missing."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.normal(50, 20, rows).astype("float32") for c in signature.NUMERIC})
    df.loc[rng.random(rows) < 0.1, "temp"] = np.nan
    df["carrier"] = rng.choice(["UA", "B6", "DL", None], rows)
    df["origin"] = rng.choice(["EWR", "JFK", "LGA"], rows)
    df["dest"] = rng.choice(["ORD", "ATL", "LAX"], rows)
    df["sched_hour"] = rng.integers(5, 24, rows)
    df["day_of_week"] = rng.integers(0, 7, rows)
    df["flight_id"] = [f"2013-01-01_UA_{i}_EWR" for i in range(rows)]
    return df
