"""The aws profile's Feast setup, for real: feature tables on S3 (a moto server over HTTP), Feast's S3
registry in the artifact bucket, the Redis online store on a real redis-server, the profile's own
feature_store.yaml (feature_repo/profiles/aws). Small window: three January days.

The offline store reads the s3:// tables through DuckDB's httpfs extension, loaded from the
duckdb-extension-httpfs wheel that requirements/base.in pins with duckdb (no download at run time).
"""

from __future__ import annotations

import pandas as pd
import pytest

from components.contracts import layout, schema
from components.contracts.stages import (
    FeaturesBuildParams,
    IngestParams,
    MaterializeParams,
    TrainingSetParams,
    ValidateParams,
)
from components.features import tables as ft
from components.features.build import build
from components.features.duckdb_httpfs import packaged_httpfs
from components.features.feast_repo import REPO_DIR, definitions_module, feast_config
from components.features.materialize import materialize
from components.features.retrieval import model_frame, online_features
from components.features.training_set import training_set
from components.features.validated import read_days

START, END = "2013-01-01", "2013-01-03"


def test_the_locked_duckdb_has_its_packaged_httpfs_extension():
    """Bumping duckdb without the matching duckdb-extension-httpfs would leave the aws profile unable
    to read its feature tables (DuckDB would try to download the extension at run time)."""
    import duckdb

    assert packaged_httpfs(duckdb.connect().sql("PRAGMA version").fetchone()[0]) is not None, duckdb.__version__


@pytest.fixture
def aws(s3_store, s3_bucket, aws_env, redis_url, monkeypatch):
    """The aws profile on the moto server and a real Redis, with three validated days and their features."""
    from components.data.ingest import ingest
    from components.data.validate import validate

    monkeypatch.setenv("FLIGHTDECK_REDIS_URL", redis_url)
    monkeypatch.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    ingest(IngestParams(start=START, end=END), s3_store)
    validate(ValidateParams(start=START, end=END), s3_store)
    built = build(FeaturesBuildParams(start="2013-01-02", end=END), s3_store)
    return {"store": s3_store, "bucket": s3_bucket, "endpoint": aws_env, "redis": redis_url, "built": built}


def test_aws_build_writes_tables_and_the_feast_registry_to_s3(aws):
    import boto3

    s3 = boto3.client("s3", endpoint_url=aws["endpoint"], region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=aws["bucket"]).get("Contents", [])}
    views = set(definitions_module().VIEWS)
    assert {f"features/{v}.parquet" for v in views} <= keys
    assert "feast/registry.db" in keys  # Feast's S3 registry wrote to the moto server, not to AWS
    assert set(aws["built"]["applied_views"]) == views | set(definitions_module().PUSHED_VIEWS)
    assert set(aws["built"]["table_rows"]) == views and all(aws["built"]["table_rows"].values())

    # A fresh FeatureStore from the aws yaml reads that registry back: every view, sourced from s3://.
    from feast import FeatureStore

    from components.core.settings import load_settings

    settings = load_settings()
    config = feast_config(settings, REPO_DIR / "profiles" / "aws" / "feature_store.yaml")
    assert config.registry.path == f"s3://{aws['bucket']}/feast/registry.db"
    assert config.online_store.type == "redis" and config.online_store.connection_string == aws["redis"]
    fs = FeatureStore(repo_path=str(REPO_DIR), config=config)
    by_name = {fv.name: fv for fv in fs.list_feature_views()}
    assert set(by_name) == views | set(definitions_module().PUSHED_VIEWS)
    for name, fv in by_name.items():
        assert fv.batch_source.path == f"s3://{aws['bucket']}/features/{name}.parquet"
        assert fv.batch_source.s3_endpoint_override == aws["endpoint"]
    table = aws["store"].read_parquet(layout.feature_table_key("weather_hourly"))
    assert str(table[ft.TS].dtype) == "datetime64[us, UTC]" and len(table) > 100


def test_aws_training_set_and_materialize_online_equals_offline(aws):
    import redis

    store = aws["store"]
    ts = training_set(TrainingSetParams(start=END, end=END), store)
    frame = store.read_parquet(f"training_sets/{END}_{END}.parquet")
    assert ts["rows"] == len(frame) > 500 and frame["temp"].notna().mean() > 0.8
    result = materialize(MaterializeParams(start=END, end=END, chunk_days=1), store)
    assert result["chunks"] == 1 and result["online_store_keeps_newest"] is True
    assert redis.Redis.from_url(f"redis://{aws['redis']}").dbsize() > 0
    # One flight of the next day, predicted at the end of the materialized day: Redis == the offline store.
    flights = read_days(store, "flights", schema.day_range(END, END), required=True)
    flight = flights.dropna(subset=["tailnum"]).iloc[0].copy()
    at = ft.day_stamps(schema.parse_day(END), schema.parse_day(END))[0]
    flight["sched_dep_utc"] = at + pd.Timedelta(hours=2)
    online = online_features(flight.to_dict())
    offline = model_frame(pd.DataFrame([flight]), with_label=False).iloc[0]
    compared = 0
    for col in ("temp", "carrier_late_rate_7d", "route_late_rate_28d", "plane_year"):
        a, b = online[col], float(offline[col])
        assert (pd.isna(a) and pd.isna(b)) or a == b, (col, a, b)
        compared += not pd.isna(a)
    assert compared >= 3
