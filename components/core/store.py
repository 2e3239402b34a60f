"""The artifact store every stage reads and writes: a local folder or an S3 bucket.

Keys are '/'-separated paths relative to the store root. Every write of one object is
atomic (a reader sees the old object or the new one, never a prefix of it). Artifacts made
of several objects are published with `publish`: the objects go under a fresh version
folder and become visible only when one small pointer object names them, so a writer
killed at any point leaves nothing a reader can mistake for a finished artifact.

A reader reads the pointer, then the objects it names. Publishing keeps the version the old
pointer named (one version back) until the next publish, so a reader that read the pointer just
before a publish still finds its objects; `read_published` also re-reads the pointer once when
they are gone (a reader that slept through two publishes).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

POINTER = "_PUBLISHED.json"


class StoreError(RuntimeError):
    """An artifact store operation failed; the message names the key and the cause."""


class ArtifactNotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class ConflictError(StoreError):
    """A conditional write lost a race: somebody else changed the object first."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Backend-independent helpers on top of five primitives implemented per backend."""

    root: str

    # -- primitives -------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """All keys under prefix (recursive), sorted."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and an opaque version token, or None when it does not exist."""
        raise NotImplementedError

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        """Write only if the object is still at version `expected` (None: must not exist).

        Raises ConflictError otherwise. Returns the new version token.
        """
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------
    def uri(self, key: str = "") -> str:
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}" if key else self.root

    def local_path(self, key: str = "") -> Path | None:
        """A filesystem path for the key when the backend is local (Feast and DuckDB read it directly)."""
        return None

    def read_json(self, key: str):
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj) -> None:
        self.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_parquet(self, key: str) -> pd.DataFrame:
        data = self.read_bytes(key)
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise StoreError(f"{self.uri(key)} is not a readable parquet file: {exc}") from exc

    def write_parquet(self, key: str, df: pd.DataFrame) -> None:
        self.write_bytes(key, parquet_bytes(df))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def copy(self, src: str, dst: str) -> None:
        self.write_bytes(dst, self.read_bytes(src))

    # -- multi-object publication -------------------------------------------------------
    def publish(self, prefix: str, files: dict[str, bytes], meta: dict | None = None) -> dict:
        """Publish a set of objects under prefix as one artifact, atomically.

        Objects go to prefix/v-<id>/<name>; then the pointer prefix/_PUBLISHED.json is
        written naming them with their sha256. Afterwards every other version is removed except
        the one the replaced pointer named: readers that read that pointer a moment ago (the
        validated partitions features are reading, a run evaluate is loading) still find its files;
        it goes at the next publish. Leftovers of a killed publisher go too.
        Returns the pointer record.
        """
        prefix = prefix.strip("/")
        previous = self.published(prefix)
        keep = {previous["version"]} if previous else set()
        version = f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        entries = {}
        for name, data in sorted(files.items()):
            self.write_bytes(f"{prefix}/{version}/{name}", data)
            entries[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
        record = {"version": version, "files": entries, "meta": meta or {}, "published_at": time.time()}
        self.write_json(f"{prefix}/{POINTER}", record)
        keep.add(version)
        for key in self.list(prefix + "/"):
            rest = key[len(prefix) + 1 :]
            if rest != POINTER and rest.split("/", 1)[0] not in keep:
                self.delete(key)
        return record

    def published(self, prefix: str) -> dict | None:
        """The pointer record of a published artifact, or None if nothing is published there."""
        try:
            return self.read_json(f"{prefix.strip('/')}/{POINTER}")
        except ArtifactNotFound:
            return None

    def published_key(self, prefix: str, name: str, record: dict | None = None) -> str:
        record = record or self.published(prefix)
        if record is None:
            raise ArtifactNotFound(f"nothing is published at {self.uri(prefix)}")
        if name not in record["files"]:
            raise ArtifactNotFound(f"{self.uri(prefix)} has no file {name!r}")
        return f"{prefix.strip('/')}/{record['version']}/{name}"

    def read_published(self, prefix: str, name: str) -> bytes:
        """Read one file of a published artifact, checking its sha256 against the pointer it was read by.

        The pointer is read once per attempt (file and checksum always come from the same version); if
        that version's file is gone, a newer publish replaced it: the pointer is read again, once."""
        for attempt in (1, 2):
            record = self.published(prefix)
            key = self.published_key(prefix, name, record)
            try:
                data = self.read_bytes(key)
            except ArtifactNotFound:
                if attempt == 2 or (self.published(prefix) or {}).get("version") == record["version"]:
                    raise
                continue
            expected = record["files"][name]["sha256"]
            if sha256_bytes(data) != expected:
                raise StoreError(f"{self.uri(key)}: sha256 {sha256_bytes(data)} does not match the published {expected}")
            return data
        raise AssertionError("unreachable")

    def unpublish(self, prefix: str) -> int:
        return self.delete_prefix(prefix.strip("/") + "/")


def parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    # An object column with no values (an empty day's stats table) would be typed null, and a reader's
    # join on it then fails ("carrier:int32 and carrier:string are not comparable"): our object
    # columns hold strings, so say so.
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type) and df[field.name].dtype == object:
            table = table.set_column(i, pa.field(field.name, pa.string()), table.column(i).cast(pa.string()))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


STALE_TEMP_SECONDS = 3600  # far longer than any single write takes


class LocalStore(ArtifactStore):
    def __init__(self, root_dir: str | Path):
        self.base = Path(root_dir).resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.root = self.base.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.base / key.lstrip("/")).resolve()
        if path != self.base and self.base not in path.parents:
            raise StoreError(f"key {key!r} escapes the store root")
        return path

    def local_path(self, key: str = "") -> Path:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactNotFound(f"{self.uri(key)} does not exist") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # A writer killed mid-write (SIGKILL, OOM) leaves its hidden temp file; readers never see it,
        # and the next write of the key sweeps it once it is clearly not a live writer's.
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            try:
                if time.time() - stale.stat().st_mtime > STALE_TEMP_SECONDS:
                    stale.unlink()
            except FileNotFoundError:
                pass

    def list(self, prefix: str = "") -> list[str]:
        start = self._path(prefix) if prefix else self.base
        # A prefix may be a folder or the start of a file name.
        folder = start if start.is_dir() else start.parent
        if not folder.exists():
            return []
        out = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.base).as_posix()
                if key.startswith(prefix.lstrip("/")):
                    out.append(key)
        return sorted(out)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Remove folders left empty, up to the root.
        parent = path.parent
        while parent != self.base:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_prefix(self, prefix: str) -> int:
        n = super().delete_prefix(prefix)
        folder = self._path(prefix)
        if prefix.endswith("/") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        return n

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock = self._path(key).with_name(f".{self._path(key).name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.read_bytes(key)
        except ArtifactNotFound:
            return None
        return data, sha256_bytes(data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        with self._lock(key):
            current = self.read_versioned(key)
            current_token = current[1] if current else None
            if current_token != expected:
                raise ConflictError(
                    f"{self.uri(key)} changed since it was read (expected version {expected}, found {current_token})"
                )
            self.write_bytes(key, data)
            return sha256_bytes(data)


class S3Store(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            # Five retries after the first attempt (botocore: total_max_attempts = max_attempts + 1), with
            # adaptive client-side rate limiting when S3 throttles (503 SlowDown); tests/core/test_store.py.
            config=Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, key: str, action: str) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return ArtifactNotFound(f"{self.uri(key)} does not exist")
            if code == "NoSuchBucket":
                return StoreError(f"bucket {self.bucket!r} does not exist (while trying to {action} {self.uri(key)})")
            if code in ("AccessDenied", "403", "Forbidden"):
                return StoreError(
                    f"access denied to {self.uri(key)} ({action}): check the IAM role of this workload"
                )
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return ConflictError(f"{self.uri(key)} changed since it was read ({code})")
        return StoreError(f"could not {action} {self.uri(key)}: {exc}")

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            raise self._error(exc, key, "read") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        # A PUT is atomic: the object becomes visible only when it is complete.
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._error(exc, key, "write") from exc

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._error(exc, prefix, "list") from exc
        return sorted(out)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            err = self._error(exc, key, "check")
            if isinstance(err, ArtifactNotFound):
                return False
            raise err from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._error(exc, key, "delete") from exc

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            err = self._error(exc, key, "read")
            if isinstance(err, ArtifactNotFound):
                return None
            raise err from exc
        return obj["Body"].read(), obj["ETag"]

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        # S3 conditional writes: If-None-Match: * creates only; If-Match: <etag> replaces only that version.
        cond = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **cond)
        except Exception as exc:
            raise self._error(exc, key, "conditionally write") from exc
        return resp["ETag"]


# Top-level key areas and the bucket each lives in on AWS (see Settings.s3_*_bucket).
DATA_AREAS = ("raw", "validated", "quarantine", "features", "training_sets", "predictions")
MODEL_AREAS = ("models", "serving", "triton")


class RoutedStore(ArtifactStore):
    """One logical store over several buckets, routed by the first segment of the key.

    Every artifact lives under one area, so a publish (objects + pointer) stays in one bucket.
    """

    def __init__(self, default: ArtifactStore, routes: dict[str, ArtifactStore]):
        self.default = default
        self.routes = routes
        self.root = default.root

    def _route(self, key: str) -> ArtifactStore:
        return self.routes.get(key.lstrip("/").split("/", 1)[0], self.default)

    def uri(self, key: str = "") -> str:
        return self._route(key).uri(key) if key else self.root

    def read_bytes(self, key):
        return self._route(key).read_bytes(key)

    def write_bytes(self, key, data):
        self._route(key).write_bytes(key, data)

    def list(self, prefix=""):
        if prefix.lstrip("/").split("/", 1)[0] in self.routes:
            return self._route(prefix).list(prefix)
        areas = {id(s): s for s in [self.default, *self.routes.values()]}
        # A bucket may hold keys of areas routed elsewhere; keep each key only from its own store.
        return sorted({k for s in areas.values() for k in s.list(prefix) if self._route(k) is s})

    def exists(self, key):
        return self._route(key).exists(key)

    def delete(self, key):
        self._route(key).delete(key)

    def read_versioned(self, key):
        return self._route(key).read_versioned(key)

    def write_if(self, key, data, expected):
        return self._route(key).write_if(key, data, expected)


def open_store(settings=None) -> ArtifactStore:
    """The store the settings select."""
    from components.core.settings import load_settings

    settings = settings or load_settings()
    root = urlparse(settings.artifact_root)
    if root.scheme == "file":
        return LocalStore(root.path)

    def s3(bucket: str) -> S3Store:
        return S3Store(bucket, prefix=settings.s3_prefix, endpoint_url=settings.s3_endpoint_url or None,
                       region=settings.aws_region)

    artifacts = s3(settings.s3_bucket)
    routes: dict[str, ArtifactStore] = {}
    for bucket, areas in ((settings.s3_data_bucket, DATA_AREAS), (settings.s3_models_bucket, MODEL_AREAS)):
        if bucket and bucket != settings.s3_bucket:
            store = s3(bucket)
            routes.update({area: store for area in areas})
    return RoutedStore(artifacts, routes) if routes else artifacts
