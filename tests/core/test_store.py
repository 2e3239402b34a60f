"""The artifact store on both backends: the local folder and S3 over HTTP (moto server)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time

import pandas as pd
import pytest

from components.core.store import ArtifactNotFound, ConflictError, StoreError, open_store


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


def _versions(store, prefix: str) -> set[str]:
    return {k.split("/")[1] for k in store.list(prefix + "/") if not k.endswith("_PUBLISHED.json")}


def test_publish_replaces_atomically_and_cleans_old_versions(any_store):
    any_store.publish_grace_s = 0  # the killed writer's leftovers are already past the grace
    first = any_store.publish("art", {"x.txt": b"one", "y.txt": b"uno"})
    assert any_store.read_published("art", "x.txt") == b"one"
    any_store.write_bytes("art/v-killed-writer/x.txt", b"half")  # what a killed publisher leaves
    second = any_store.publish("art", {"x.txt": b"two"})
    assert second["version"] != first["version"]
    assert any_store.read_published("art", "x.txt") == b"two"
    with pytest.raises(ArtifactNotFound, match="has no file 'y.txt'"):
        any_store.read_published("art", "y.txt")
    # The pointer, the current version and the one the replaced pointer named (for its readers).
    assert _versions(any_store, "art") == {first["version"], second["version"]}
    third = any_store.publish("art", {"x.txt": b"three"})
    assert _versions(any_store, "art") == {second["version"], third["version"]}  # first goes one publish later
    assert third["history"][:3] == [third["version"], second["version"], first["version"]]


def test_a_version_in_flight_is_never_swept(any_store):
    """A version no pointer names yet may be a concurrent publisher's, still being written: publishes
    leave it alone while its objects are younger than the grace (and sweep it once they are not)."""
    any_store.write_bytes("art/v-in-flight/a.txt", b"being written")
    for i in range(3):
        any_store.publish("art", {"x.txt": str(i).encode()})
    assert "v-in-flight" in _versions(any_store, "art")
    any_store.publish_grace_s = 0
    last = any_store.publish("art", {"x.txt": b"last"})
    assert "v-in-flight" not in _versions(any_store, "art") and last["version"] in _versions(any_store, "art")


def test_a_reader_of_the_old_pointer_still_finds_its_files(any_store):
    """A reader reads the pointer, then the files: a publish in between must not pull them away."""
    any_store.publish("art", {"x.txt": b"one"})
    old = any_store.published("art")
    any_store.publish("art", {"x.txt": b"two"})
    assert any_store.read_bytes(any_store.published_key("art", "x.txt", old)) == b"one"
    # A reader that slept through two publishes: its version is gone, read_published reads the pointer again.
    any_store.publish("art", {"x.txt": b"three"})
    with pytest.raises(ArtifactNotFound):
        any_store.read_bytes(any_store.published_key("art", "x.txt", old))
    assert any_store.read_published("art", "x.txt") == b"three"


def test_readers_during_repeated_publishes_never_fail(any_store):
    """Real threads: one writer republishing, readers reading all the while (files and checksums agree)."""
    import threading

    any_store.publish("art", {"x.txt": b"0" * 1000, "y.txt": b"y0"})
    stop, errors, reads = threading.Event(), [], [0]

    def reader():
        from components.core.store import open_store

        own = open_store()  # its own client, as a separate stage process would have
        while not stop.is_set():
            try:
                data = own.read_published("art", "x.txt")
                assert len(set(data)) == 1, data[:20]
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - the test collects what readers got
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 60):
            any_store.publish("art", {"x.txt": str(i % 10).encode() * 1000, "y.txt": b"y"})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    assert reads[0] > 10


def _publisher(env: dict, name: str, rounds: int, grace_s: float) -> None:
    os.environ.update(env)
    store = open_store()
    store.publish_grace_s = grace_s
    for i in range(rounds):
        # Several objects per version, so a publish is in flight long enough for the other to overlap it.
        store.publish("art", {f"f{j}.txt": f"{name}-{i}".encode() * 200 for j in range(8)})


def test_concurrent_publishers_of_one_prefix_never_break_a_reader(any_store):
    """Two processes republishing one prefix while readers read: every pointer ever seen names files that
    exist and match, no reader fails, and afterwards only what retention allows is left. A short grace
    (a few seconds, well above one object write) makes the sweep run all the while."""
    import threading

    grace_s = 3.0
    any_store.publish("art", {f"f{j}.txt": b"seed" * 200 for j in range(8)})
    env = {k: os.environ[k] for k in os.environ if k.startswith(("FLIGHTDECK_", "AWS_"))}
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_publisher, args=(env, name, 25, grace_s)) for name in ("a", "b")]
    stop, errors, checked = threading.Event(), [], [0]

    def reader():
        own = open_store()
        while not stop.is_set():
            try:
                record = None
                data = own.read_published("art", "f7.txt")
                assert len(data) % 200 == 0 and data[: len(data) // 200] * 200 == data, data[:20]
                record = own.published("art")
                for name, entry in record["files"].items():  # the pointer names files that exist and match
                    got = own.read_bytes(own.published_key("art", name, record))
                    assert hashlib.sha256(got).hexdigest() == entry["sha256"], name
                checked[0] += 1
            except ArtifactNotFound as exc:
                # Legitimate only for a version two publishes replaced between our reads of pointer and files.
                if record is None or record["version"] in own.published("art")["history"][:2]:
                    errors.append(f"a reader failed, or a current pointer names a missing file: {exc}")
            except Exception as exc:  # noqa: BLE001 - the test collects what readers got
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=300)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert not errors, errors[:3]
    assert checked[0] > 10
    final = any_store.published("art")
    for name in final["files"]:
        any_store.read_bytes(any_store.published_key("art", name, final))
    time.sleep(grace_s + 1)
    any_store.publish_grace_s = grace_s
    last = any_store.publish("art", {"f0.txt": b"last"})
    assert _versions(any_store, "art") == set(last["history"][:2])


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


def test_a_killed_writers_temp_file_is_swept_by_the_next_write_of_its_key(home):
    """What SIGKILL leaves mid-write_bytes (the hidden temp beside the key) is never listed, and the
    next write of the key removes it once it is older than any live write; a fresh one (a writer
    still at work) stays."""
    from components.core.local_store import STALE_TEMP_SECONDS

    store = open_store()
    store.write_bytes("raw/day.parquet", b"v1")
    folder = store._path("raw/day.parquet").parent
    stale, live = folder / ".day.parquet.tmp-killed", folder / ".day.parquet.tmp-live"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    assert store.list("raw/") == ["raw/day.parquet"]
    store.write_bytes("raw/day.parquet", b"v2")
    assert not stale.exists() and live.exists()
    assert store.read_bytes("raw/day.parquet") == b"v2"


def _slow_s3_publisher(env: dict) -> None:
    os.environ.update(env)
    store = open_store()
    store.publish("big", {f"f{i}.bin": os.urandom(256) for i in range(20_000)})


def test_killed_publisher_on_s3_leaves_nothing_readable(s3_store, monkeypatch):
    """The same SIGKILL mid-publish on the S3 backend (moto server over HTTP): the partial version's
    objects are there, but the pointer still names the old artifact and only it."""
    s3_store.publish("big", {"f0.bin": b"old"})
    env = {k: os.environ[k] for k in os.environ if k.startswith(("FLIGHTDECK_", "AWS_"))}
    proc = multiprocessing.get_context("spawn").Process(target=_slow_s3_publisher, args=(env,))
    proc.start()
    deadline = time.monotonic() + 120
    while len(s3_store.list("big/")) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert len(s3_store.list("big/")) > 2, "the writer was killed before it wrote anything"
    assert s3_store.read_published("big", "f0.bin") == b"old"
    assert list(s3_store.published("big")["files"]) == ["f0.bin"]
    # A publish once the grace has passed sweeps the dead writer's objects (keeping only the version
    # readers may hold).
    s3_store.publish_grace_s = 0
    record = s3_store.publish("big", {"f0.bin": b"new"})
    assert len(s3_store.list("big/")) == 3 and s3_store.read_published("big", "f0.bin") == b"new"
    assert record["version"] in _versions(s3_store, "big")


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


@pytest.fixture
def denied_store(tmp_path, monkeypatch):
    """An S3Store whose principal a bucket policy denies (moto server with IAM authorization on: after the
    first few set-up calls every request is authenticated and checked against the policies)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import boto3

    from tests.conftest import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, proc=proc)
        url, bucket = f"http://127.0.0.1:{port}", "fd-denied"
        root = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                    aws_secret_access_key="testing")
        boto3.client("s3", **root).create_bucket(Bucket=bucket)
        iam = boto3.client("iam", **root)
        iam.create_user(UserName="stage")
        key = iam.create_access_key(UserName="stage")["AccessKey"]
        iam.put_user_policy(UserName="stage", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        for name, value in {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                            "AWS_DEFAULT_REGION": "us-east-1", "FLIGHTDECK_PROFILE": "aws",
                            "FLIGHTDECK_S3_BUCKET": bucket, "FLIGHTDECK_S3_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(name, value)
        # boto3's default session caches the credentials it first resolved: start a new one for this principal.
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        store = open_store()
        store.write_bytes("open/ok.txt", b"1")
        store.write_bytes("secret/x.txt", b"2")
        store.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/secret/*"}]}))
        yield store
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_access_denied_is_a_clear_error(denied_store):
    assert denied_store.read_bytes("open/ok.txt") == b"1"  # the same client, allowed elsewhere
    for action, call in (("read", lambda: denied_store.read_bytes("secret/x.txt")),
                         ("write", lambda: denied_store.write_bytes("secret/y.txt", b"3")),
                         ("read", lambda: denied_store.read_json("secret/x.txt"))):
        with pytest.raises(StoreError, match=rf"access denied to s3://fd-denied/secret/.* \({action}\): check the IAM "
                                              "role of this workload") as err:
            call()
        assert not isinstance(err.value, ArtifactNotFound)  # denied is not "missing": nothing may be recreated
    with pytest.raises(StoreError, match="access denied"):
        denied_store.publish("secret/art", {"a.txt": b"a"})
    assert denied_store.published("open") is None  # a missing pointer elsewhere is still just missing


class _FlakyProxy:
    """A real HTTP proxy in front of the S3 server that answers the first `fail` requests with
    503 SlowDown (what S3 sends when it throttles), then forwards; counts every request."""

    def __init__(self, upstream: str, fail: int):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlparse

        target = urlparse(upstream)
        self.requests, self.fail = 0, fail
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests += 1
                if proxy.requests <= proxy.fail:
                    msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("fail, succeeds", [(5, True), (6, False)])
def test_throttled_requests_are_retried_five_times(s3_bucket, aws_env, monkeypatch, fail, succeeds):
    """s3_store.S3Store's botocore config against a server that throttles: max_attempts=5 means five retries
    after the first attempt (botocore counts total_max_attempts = max_attempts + 1), adaptive mode."""
    import boto3

    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").put_object(Bucket=s3_bucket, Key="k",
                                                                                  Body=b"v")
    proxy = _FlakyProxy(aws_env, fail)
    try:
        monkeypatch.setenv("FLIGHTDECK_PROFILE", "aws")
        monkeypatch.setenv("FLIGHTDECK_S3_BUCKET", s3_bucket)
        monkeypatch.setenv("FLIGHTDECK_S3_ENDPOINT_URL", proxy.url)
        store = open_store()
        if succeeds:
            assert store.read_bytes("k") == b"v"
            assert proxy.requests == fail + 1  # every throttled attempt was retried, then one went through
        else:
            with pytest.raises(StoreError, match="could not read .*SlowDown"):
                store.read_bytes("k")
            assert proxy.requests == 6  # and no more: the first attempt and five retries
    finally:
        proxy.close()
