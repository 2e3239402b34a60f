"""One real Triton server per test module, on free ports, with a fresh FLIGHTDECK_HOME and an admin key;
a few real days of flights ingested, validated and turned into feature tables, shared by the modules
that need real features (copied into each module's own home)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import signature
from tests.conftest import triton_settings

# Real flights of a few days: the day that is scored (batch) or served (online) has carrier and route
# statistics from the days before it (a first day alone would score with those features missing).
START, DAY = "2013-01-01", "2013-01-03"


@pytest.fixture(scope="module")
def serving_env(tmp_path_factory):
    with triton_settings(tmp_path_factory.mktemp("fd-serving")) as env:
        yield env


@pytest.fixture(scope="module")
def triton(serving_env):
    from components.serving.triton import repository
    from components.serving.triton.server import TritonServer

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


@pytest.fixture(scope="session")
def real_days(tmp_path_factory) -> Path:
    """A FLIGHTDECK_HOME where START..DAY went through the real ingest, validate and features-build stages
    (no online store yet). Copy it with `copy_home`; never write into it."""
    from components.contracts.stages import FeaturesBuildParams, IngestParams, ValidateParams
    from components.core.store import open_store
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build

    home = tmp_path_factory.mktemp("fd-real-days")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local"}.items():
            mp.setenv(k, v)
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        store = open_store()
        ingest(IngestParams(start=START, end=DAY), store)
        validate(ValidateParams(start=START, end=DAY), store)
        build(FeaturesBuildParams(start=START, end=DAY), store)
    return home


def copy_home(src: Path, dst: Path) -> Path:
    """The data, feature tables and records of a home; Feast's registry and online store are left out
    (the features stages apply and materialize them again for the new home and online store)."""
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=lambda d, names: ["feast"] if Path(d) == src else [])
    return dst


def flights_of(store, day: str = DAY) -> pd.DataFrame:
    keys = [k for k in store.list(f"validated/flights/date={day}/") if k.endswith(".parquet")]
    return pd.concat([store.read_parquet(k) for k in keys], ignore_index=True)


def metric(metrics_url: str, name: str, model: str, version: str | None = None) -> float:
    """A Triton counter for a model (summed over versions unless one is named), read from /metrics."""
    import re
    import urllib.request

    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    total = 0.0
    for labels, value in re.findall(rf"^{name}{{([^}}]*)}}\s+(\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if got.get("model") == model and (version is None or got.get("version") == version):
            total += float(value)
    return total
