"""Fixtures shared across the suite: a fresh FLIGHTDECK_HOME per test, and a real S3 HTTP
endpoint (moto server in its own process on localhost) for the boto3 backend."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# Per-test time limits (pytest-timeout, fixture setup included): a hung server wait fails its test
# instead of holding CI until its 90-minute limit. The default (pyproject.toml, `timeout`) fits every
# unit and integration test with room for slow cores; the end-to-end files (marked slow) run whole
# lifecycles behind module fixtures and get this one. A test that needs another sets its own
# @pytest.mark.timeout(...).
SLOW_TEST_TIMEOUT_S = 1500


def pytest_collection_modifyitems(config, items):
    """The long end-to-end files (marked slow) first: under `make test`'s workers (pytest -n, one file
    per worker at a time) the short files then fill the other workers around them, not after them.
    Slow tests get SLOW_TEST_TIMEOUT_S unless they set their own limit."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_S))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def listening(argv: list[str], port: int, **popen):
    """Run a server process until it listens on 127.0.0.1:`port`; yields the process, stops it after.
    Its output is discarded unless `popen` says otherwise (stdout=..., env=...)."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    proc = subprocess.Popen(argv, **popen)
    try:
        wait_for_port(port, proc=proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh local-profile FLIGHTDECK_HOME for one test."""
    h = tmp_path / "fd-home"
    monkeypatch.setenv("FLIGHTDECK_HOME", str(h))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    return h


@pytest.fixture
def local_store(home):
    from components.core.store import open_store

    return open_store()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint: moto_server in a separate process on a free localhost port."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with listening([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port,
                   env=env):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def aws_env(s3_endpoint, monkeypatch):
    """Credentials for the local endpoint only (moto accepts any); never real ones."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture
def s3_bucket(aws_env) -> str:
    import boto3

    name = f"fd-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(aws_env, s3_bucket, monkeypatch):
    """An S3Store on a fresh bucket of the moto server, selected through the aws profile settings."""
    from components.core.store import open_store

    monkeypatch.setenv("FLIGHTDECK_PROFILE", "aws")
    monkeypatch.setenv("FLIGHTDECK_S3_BUCKET", s3_bucket)
    monkeypatch.setenv("FLIGHTDECK_S3_ENDPOINT_URL", aws_env)
    return open_store()


@pytest.fixture(params=["local", "s3"])
def any_store(request):
    """Both backends, for tests of behaviour that must not depend on the backend."""
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")


@contextlib.contextmanager
def local_triton(home: Path, env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()):
    """A local-profile FLIGHTDECK_HOME with a real Triton server on free ports, for a test module.

    Sets the settings' environment (Triton URLs, the admin key, plus `env`) for the duration.
    Yields {"home", "ports", "key", "server"}.
    """
    with triton_settings(home, env) as settings:
        from components.serving.triton import repository
        from components.serving.triton.server import TritonServer

        _, repo_uri = repository.repository_location()
        ports = settings["ports"]
        with TritonServer(repo_uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key=settings["key"], extra_args=extra_args) as server:
            yield {**settings, "server": server}


@contextlib.contextmanager
def triton_settings(home: Path, env: dict[str, str] | None = None):
    """The local-profile settings of a test module that talks to its own Triton: free ports, an admin key."""
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    key = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        mp.setenv("FLIGHTDECK_RUNTIME", "local")
        mp.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{ports['grpc']}")
        mp.setenv("FLIGHTDECK_TRITON_HTTP_URL", f"127.0.0.1:{ports['http']}")
        mp.setenv("FLIGHTDECK_TRITON_ADMIN_KEY", key)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        yield {"home": home, "ports": ports, "key": key}


@contextlib.contextmanager
def redis_server(work: Path, password: str | None = None):
    """A throwaway redis-server (no persistence) on a free loopback port, with AUTH when `password` is
    given (--requirepass, as ElastiCache's AUTH token); yields "127.0.0.1:<port>"."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (scripts/bootstrap.sh installs it)")
    port = free_port()
    auth = ["--requirepass", password] if password is not None else []
    with listening([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(work), *auth], port):
        yield f"127.0.0.1:{port}"


def redis_feast_yaml(path: Path, registry: Path | None = None) -> Path:
    """Write the local profile's Feast config with the aws profile's online store section (Redis) to
    `path` (optionally with its own registry file); returns `path`."""
    import yaml

    from components.features.feast_repo import REPO_DIR

    aws = yaml.safe_load((REPO_DIR / "profiles" / "aws" / "feature_store.yaml").read_text())
    config = yaml.safe_load((REPO_DIR / "profiles" / "local" / "feature_store.yaml").read_text())
    config["online_store"] = aws["online_store"]
    if registry is not None:
        config["registry"] = {**config["registry"], "path": str(registry)}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server for one test (Feast's Redis online store, the aws profile's)."""
    with redis_server(tmp_path) as url:
        yield url
