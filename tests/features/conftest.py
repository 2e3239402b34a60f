"""A small real data set for the features tests: three weeks of January 2013, ingested and validated
by the real stages, feature tables built once for the module run."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import redis_server

START, END = "2013-01-01", "2013-01-21"


@dataclass
class FeatureEnv:
    home: Path
    store: object


def _prepare(home: Path, mp: pytest.MonkeyPatch) -> FeatureEnv:
    from components.contracts.stages import FeaturesBuildParams, IngestParams, ValidateParams
    from components.core.store import open_store
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build

    mp.setenv("FLIGHTDECK_HOME", str(home))
    mp.setenv("FLIGHTDECK_PROFILE", "local")
    mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    store = open_store()
    ingest(IngestParams(start=START, end=END), store)
    validate(ValidateParams(start=START, end=END), store)
    build(FeaturesBuildParams(start=START, end=END), store)
    return FeatureEnv(home=home, store=store)


@pytest.fixture(scope="session")
def built_home(tmp_path_factory) -> Path:
    """A home with validated data and built feature tables; tests copy it rather than change it."""
    home = tmp_path_factory.mktemp("features-home")
    with pytest.MonkeyPatch.context() as mp:
        _prepare(home, mp)
    return home


@pytest.fixture
def fenv(built_home, tmp_path, monkeypatch) -> FeatureEnv:
    """A private copy of the built home (its own registry, online store and progress record)."""

    from components.core.store import open_store

    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    monkeypatch.setenv("FLIGHTDECK_HOME", str(home))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    monkeypatch.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    return FeatureEnv(home=home, store=open_store())


@dataclass
class RedisAuth:
    url: str
    password: str


@pytest.fixture
def redis_auth(tmp_path):
    """A real redis-server that refuses every command until AUTH with its password."""
    password = "pw-" + secrets.token_urlsafe(24)  # distinctive, so a leak into any output is found
    with redis_server(tmp_path, password) as url:
        yield RedisAuth(url=url, password=password)
