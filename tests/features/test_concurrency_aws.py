"""The concurrency test of test_concurrency.py on the aws profile: feature tables, the progress record,
the training sets and Feast's registry (with its lease) in a bucket of the S3 API server (moto server
over HTTP, conditional writes by If-Match / If-None-Match), the online store on a real redis-server.
Seven `flightdeck` processes build and materialize disjoint and overlapping day ranges at once while a
training set is read; afterwards every feature table (read back from S3), every Redis hash of the
online store and the training sets equal those of the same jobs run one after the other, value for
value. (The SIGKILL variant runs on the local profile only: the lease and compare-and-swap logic it
exercises is the store's, shared by both backends.)
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from components.contracts import layout
from tests.conftest import redis_server
from tests.features.concurrency_helpers import (
    FINAL,
    PREBUILT,
    READ_MEANWHILE,
    assert_same_tables_sets_progress,
    in_process,
    jobs,
    start_all,
    wait,
)

pytestmark = pytest.mark.slow

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",  # moto takes any
               "AWS_DEFAULT_REGION": "us-east-1"}


def _env(home: Path, endpoint: str, bucket: str, redis_url: str) -> dict[str, str]:
    """A process's environment: the aws profile on `bucket` of the moto server and the Redis at `redis_url`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "FEAST_", "AWS_"))}
    return {**clean, **CREDENTIALS, "FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "aws",
            "FLIGHTDECK_S3_BUCKET": bucket, "FLIGHTDECK_S3_ENDPOINT_URL": endpoint,
            "FLIGHTDECK_REDIS_URL": redis_url}


def _s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _keys(s3, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _exists(s3, bucket: str, key: str) -> bool:
    return any(k == key for k in _keys(s3, bucket, key))


@pytest.fixture(scope="module")
def base_bucket(built_home, s3_endpoint, tmp_path_factory) -> str:
    """Validated Jan 1-21 and the feature tables of PREBUILT in a bucket, no Feast registry yet: the
    concurrent runs race to apply it."""
    s3 = _s3(s3_endpoint)
    bucket = "fd-concurrency-base"
    s3.create_bucket(Bucket=bucket)
    artifacts = built_home / "artifacts"
    for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
        key = path.relative_to(artifacts).as_posix()
        if not key.startswith(f"{layout.FEATURE_TABLES}/"):
            s3.upload_file(str(path), bucket, key)
    work = tmp_path_factory.mktemp("concurrency-aws-base")
    with redis_server(work) as redis_url:
        in_process(("build", *PREBUILT), _env(work / "home", s3_endpoint, bucket, redis_url))
    for key in _keys(s3, bucket, "feast/"):
        s3.delete_object(Bucket=bucket, Key=key)
    return bucket


def _copy(s3, base: str, bucket: str) -> str:
    s3.create_bucket(Bucket=bucket)
    for key in _keys(s3, base):
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": base, "Key": key})
    return bucket


def _state(s3, bucket: str, redis_url: str) -> dict:
    """What the runs leave: every feature table on S3, every Redis hash of the online store (keys,
    fields and serialized values; the event timestamps included) and the training sets."""
    import redis

    def frame(key):
        return pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    tables = {k: frame(k) for k in _keys(s3, bucket, f"{layout.FEATURE_TABLES}/") if k.endswith(".parquet")}
    client = redis.Redis.from_url(f"redis://{redis_url}")
    online = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    sets = {(a, b): frame(layout.training_set_key(a, b)).sort_values("flight_id").reset_index(drop=True)
            for a, b in (READ_MEANWHILE, FINAL)}
    progress = json.loads(s3.get_object(Bucket=bucket, Key=layout.MATERIALIZATION_PROGRESS)["Body"].read())
    intervals = {v: e["intervals"] for v, e in progress["views"].items()}
    return {"tables": tables, "online": online, "sets": sets, "progress": intervals}


def _assert_same(got: dict, want: dict) -> None:
    assert_same_tables_sets_progress(got, want)
    views = {field[len(b"_ts:"):] for fields in want["online"].values() for field in fields
             if field.startswith(b"_ts:")}
    assert len(views) >= 4 and len(want["online"]) > 100, views
    assert got["online"].keys() == want["online"].keys()
    differing = [key for key, fields in want["online"].items() if got["online"][key] != fields]
    assert not differing, f"{len(differing)} of {len(want['online'])} Redis hashes differ, e.g. {differing[:3]}"


@pytest.fixture(scope="module")
def sequential(base_bucket, s3_endpoint, tmp_path_factory) -> dict:
    """The same jobs one after the other, in the order listed, on a copy of the base bucket."""
    s3 = _s3(s3_endpoint)
    work = tmp_path_factory.mktemp("sequential-aws")
    bucket = _copy(s3, base_bucket, "fd-concurrency-sequential")
    with redis_server(work) as redis_url:
        env = _env(work / "home", s3_endpoint, bucket, redis_url)
        for job in [*jobs(), ("training-set", *FINAL)]:
            in_process(job, env)
        return _state(s3, bucket, redis_url)


def test_concurrent_builds_and_materializations_on_s3_and_redis_equal_a_sequential_run(
        base_bucket, sequential, s3_endpoint, tmp_path):
    s3 = _s3(s3_endpoint)
    bucket = _copy(s3, base_bucket, "fd-concurrency-concurrent")
    with redis_server(tmp_path) as redis_url:
        env = _env(tmp_path / "home", s3_endpoint, bucket, redis_url)
        procs = start_all(env, tmp_path, lambda: _exists(s3, bucket, "feast/registry.db"))
        assert len(procs) >= 7
        results = wait(procs, tmp_path)
        assert all(rc == 0 for rc, _ in results.values()), {j: err for j, (rc, err) in results.items() if rc}
        assert not _exists(s3, bucket, layout.FEAST_REGISTRY_LEASE)  # released by every holder
        in_process(("training-set", *FINAL), env)
        _assert_same(_state(s3, bucket, redis_url), sequential)
