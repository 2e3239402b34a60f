"""The interface every artifact store backend implements, and publication built on top of it.

Keys are '/'-separated paths relative to the store root. Every write of one object is
atomic (a reader sees the old object or the new one, never a prefix of it). Artifacts made
of several objects are published with `publish`: the objects go under a fresh version
folder and become visible only when one small pointer object names them, so a writer
killed at any point leaves nothing a reader can mistake for a finished artifact.

A reader reads the pointer, then the objects it names. Publishing keeps the version the old
pointer named (one version back) until the next publish, so a reader that read the pointer just
before a publish still finds its objects; `read_published` also re-reads the pointer once when
they are gone (a reader that slept through two publishes).

Import the public names from components.core.store.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from pathlib import Path

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
