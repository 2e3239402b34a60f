"""The artifact store on both backends: the local folder and S3 over HTTP (moto server)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pandas as pd
import pytest

from components.store import ArtifactNotFound, ConflictError, StoreError, open_store


def test_bytes_json_parquet_roundtrip(any_store):
    any_store.write_bytes("a/b.bin", b"\x00\x01")
    any_store.write_json("a/c.json", {"x": 1})
    df = pd.DataFrame({"t": pd.to_datetime(["2013-01-01T05:00Z"]).astype("datetime64[us, UTC]"), "v": [1.5]})
    any_store.write_parquet("a/d/e.parquet", df)
    assert any_store.read_bytes("a/b.bin") == b"\x00\x01"
    assert any_store.read_json("a/c.json") == {"x": 1}
    pd.testing.assert_frame_equal(any_store.read_parquet("a/d/e.parquet"), df)
    assert any_store.list("a/") == ["a/b.bin", "a/c.json", "a/d/e.parquet"]
    assert any_store.exists("a/c.json") and not any_store.exists("a/zzz")


def test_missing_key_names_the_uri(any_store):
    with pytest.raises(ArtifactNotFound, match="nothing/here.json does not exist"):
        any_store.read_json("nothing/here.json")


def test_corrupt_parquet_is_a_clear_error(any_store):
    any_store.write_bytes("bad.parquet", b"PAR1 this is not parquet")
    with pytest.raises(StoreError, match="bad.parquet is not a readable parquet file"):
        any_store.read_parquet("bad.parquet")


def test_publish_replaces_atomically_and_cleans_old_versions(any_store):
    first = any_store.publish("art", {"x.txt": b"one", "y.txt": b"uno"})
    assert any_store.read_published("art", "x.txt") == b"one"
    second = any_store.publish("art", {"x.txt": b"two"})
    assert second["version"] != first["version"]
    assert any_store.read_published("art", "x.txt") == b"two"
    # Only the pointer and the current version remain.
    assert all(k.endswith("_PUBLISHED.json") or second["version"] in k for k in any_store.list("art/"))
    with pytest.raises(ArtifactNotFound, match="has no file 'y.txt'"):
        any_store.read_published("art", "y.txt")


def test_tampered_published_file_is_refused(any_store):
    record = any_store.publish("art", {"x.txt": b"one"})
    any_store.write_bytes(f"art/{record['version']}/x.txt", b"evil")
    with pytest.raises(StoreError, match="sha256 .* does not match"):
        any_store.read_published("art", "x.txt")


def test_conditional_write_detects_lost_update(any_store):
    token = any_store.write_if("alias.json", b"v1", None)
    with pytest.raises(ConflictError):
        any_store.write_if("alias.json", b"v1-again", None)  # must not exist any more
    new_token = any_store.write_if("alias.json", b"v2", token)
    with pytest.raises(ConflictError):
        any_store.write_if("alias.json", b"v3", token)  # stale token loses
    assert any_store.read_versioned("alias.json") == (b"v2", new_token)


def _slow_publisher(home: str) -> None:
    os.environ["FLIGHTDECK_HOME"] = home
    store = open_store()
    files = {f"f{i}.bin": os.urandom(1024) for i in range(10_000)}
    store.publish("big", files)


def test_killed_publisher_leaves_nothing_readable(home):
    """SIGKILL mid-publish: the old artifact stays the visible one, the partial one is invisible."""
    store = open_store()
    store.publish("big", {"f0.bin": b"old"})
    proc = multiprocessing.get_context("spawn").Process(target=_slow_publisher, args=(str(home),))
    proc.start()
    deadline = time.monotonic() + 30
    while len(store.list("big/")) < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert len(store.list("big/")) > 2, "the writer was killed before it wrote anything"
    assert store.read_published("big", "f0.bin") == b"old"
    assert list(store.published("big")["files"]) == ["f0.bin"]


def test_missing_bucket_is_a_clear_error(aws_env, monkeypatch):
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "aws")
    monkeypatch.setenv("FLIGHTDECK_S3_BUCKET", "no-such-bucket-here")
    monkeypatch.setenv("FLIGHTDECK_S3_ENDPOINT_URL", aws_env)
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist"):
        open_store().write_bytes("x", b"1")


def test_local_store_refuses_keys_outside_its_root(local_store):
    with pytest.raises(StoreError, match="escapes the store root"):
        local_store.write_bytes("../../etc/passwd", b"")


def test_three_buckets_route_by_area(aws_env, monkeypatch):
    """data/, models/ and everything else land in the buckets their IAM roles are scoped to."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    for b in ("fd-art", "fd-data", "fd-models"):
        s3.create_bucket(Bucket=b)
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "aws")
    monkeypatch.setenv("FLIGHTDECK_S3_ENDPOINT_URL", aws_env)
    monkeypatch.setenv("FLIGHTDECK_S3_BUCKET", "fd-art")
    monkeypatch.setenv("FLIGHTDECK_S3_DATA_BUCKET", "fd-data")
    monkeypatch.setenv("FLIGHTDECK_S3_MODELS_BUCKET", "fd-models")
    store = open_store()
    store.publish("validated/flights/date=2013-01-01", {"part.parquet": b"p"})
    store.write_bytes("models/flight_delay/versions/1/model.pt", b"m")
    store.write_json("runs/train/r1/metrics.json", {"auc": 0.7})
    assert store.uri("models/x") == "s3://fd-models/models/x"

    def keys(bucket):
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

    assert all(k.startswith("validated/") for k in keys("fd-data")) and keys("fd-data")
    assert keys("fd-models") == ["models/flight_delay/versions/1/model.pt"]
    assert keys("fd-art") == ["runs/train/r1/metrics.json"]
    assert store.read_published("validated/flights/date=2013-01-01", "part.parquet") == b"p"
    assert len(store.list("")) == 4  # the pointer, the partition, the model, the metrics
