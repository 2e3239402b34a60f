"""The interface every artifact store backend implements, and publication built on top of it.

Keys are '/'-separated paths relative to the store root. Every write of one object is
atomic (a reader sees the old object or the new one, never a prefix of it). Artifacts made
of several objects are published with `publish`: the objects go under a fresh version
folder and become visible only when one small pointer object names them, so a writer
killed at any point leaves nothing a reader can mistake for a finished artifact.

A reader reads the pointer, then the objects it names. Publishing keeps the version the old
pointer named (one version back) until the next publish, so a reader that read the pointer just
before a publish still finds its objects; `read_published` also re-reads the pointer when they are
gone (a reader that slept through two publishes).

Several publishers of one prefix may run at once (a backfill beside the daily run). The pointer is
replaced by compare-and-swap and carries the history of the versions it named, so retention knows
which versions were published and in which order; a version no pointer has named yet may be another
publisher's still being written, and is removed only when none of its objects changed for
`publish_grace_s` (then it is what a killed publisher left).

Import the public names from components.core.store.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import uuid
from pathlib import Path

import pandas as pd

POINTER = "_PUBLISHED.json"
# A version no pointer names yet is left alone while any of its objects is younger than this: it may be a
# concurrent publisher's, still being written (one object write never takes this long).
PUBLISH_GRACE_SECONDS = 15 * 60
# Versions of the pointer's history kept whatever their age: the current one and the one it replaced.
KEEP_PUBLISHED = 2
HISTORY_LENGTH = 20
READ_ATTEMPTS = 5


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
    publish_grace_s: float = PUBLISH_GRACE_SECONDS

    # -- primitives -------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """All keys under prefix (recursive), sorted."""
        raise NotImplementedError

    def list_modified(self, prefix: str = "") -> dict[str, float]:
        """Every key under prefix (recursive) with the time it was last written (seconds since the epoch)."""
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

        Objects go to prefix/v-<id>/<name>; then the pointer prefix/_PUBLISHED.json is replaced by
        compare-and-swap (a concurrent publisher's pointer is re-read, never overwritten unseen) naming
        them with their sha256 and the versions published before. Afterwards old versions are removed:
        - the current and the previous published version stay (readers that read the replaced pointer a
          moment ago, the validated partitions features are reading, a run evaluate is loading);
        - older published versions go;
        - a version no pointer named goes only when none of its objects changed for publish_grace_s:
          a concurrent publisher's version in flight stays, a killed publisher's leftovers go.
        Returns the pointer record.
        """
        prefix = prefix.strip("/")
        version = f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        entries = {}
        for name, data in sorted(files.items()):
            self.write_bytes(f"{prefix}/{version}/{name}", data)
            entries[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
        record = self._swap_pointer(prefix, version, entries, meta or {})
        self._retain(prefix, record, files)
        return record

    def _swap_pointer(self, prefix: str, version: str, entries: dict, meta: dict) -> dict:
        key = f"{prefix}/{POINTER}"
        for _attempt in range(100):
            current = self.read_versioned(key)
            previous = json.loads(current[0]) if current else None
            history = _history(previous)
            record = {"version": version, "files": entries, "meta": meta, "published_at": time.time(),
                      "history": [version, *history][:HISTORY_LENGTH]}
            try:
                self.write_if(key, json.dumps(record, indent=2, sort_keys=True, default=str).encode(),
                              current[1] if current else None)
                return record
            except ConflictError:
                time.sleep(random.uniform(0.005, 0.05))  # another publisher got there first: read its pointer
        raise StoreError(f"could not replace {self.uri(key)}: 100 concurrent publishers won the race in a row")

    def _retain(self, prefix: str, record: dict, files: dict[str, bytes]) -> None:
        history = record["history"]
        keep, superseded = set(history[:KEEP_PUBLISHED]), set(history[KEEP_PUBLISHED:])
        last_write: dict[str, float] = {}
        modified = self.list_modified(prefix + "/")
        for key, mtime in modified.items():
            rest = key[len(prefix) + 1 :]
            if rest != POINTER and "/" in rest:
                folder = rest.split("/", 1)[0]
                last_write[folder] = max(mtime, last_write.get(folder, 0.0))
        # A publisher that stalled longer than the grace between its last object and its pointer may have
        # had its version swept by another: write back what is missing (same bytes, same sha256).
        for name, data in files.items():
            if f"{prefix}/{record['version']}/{name}" not in modified:
                self.write_bytes(f"{prefix}/{record['version']}/{name}", data)
        cutoff = time.time() - self.publish_grace_s
        doomed = {v for v, t in last_write.items() if v not in keep and (v in superseded or t < cutoff)}
        for key in modified:
            rest = key[len(prefix) + 1 :]
            if rest != POINTER and rest.split("/", 1)[0] in doomed:
                self.delete(key)

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
        that version's file is gone, newer publishes replaced it: the pointer is read again, as long as
        it keeps changing (a few times: concurrent publishers)."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            record = self.published(prefix)
            key = self.published_key(prefix, name, record)
            try:
                data = self.read_bytes(key)
            except ArtifactNotFound:
                if attempt == READ_ATTEMPTS or (self.published(prefix) or {}).get("version") == record["version"]:
                    raise
                continue
            expected = record["files"][name]["sha256"]
            if sha256_bytes(data) != expected:
                raise StoreError(f"{self.uri(key)}: sha256 {sha256_bytes(data)} does not match the published {expected}")
            return data
        raise AssertionError("unreachable")

    def unpublish(self, prefix: str) -> int:
        return self.delete_prefix(prefix.strip("/") + "/")


def _history(record: dict | None) -> list[str]:
    """The versions a pointer record says were published, newest first (a record written before the
    history was kept names only its own)."""
    if record is None:
        return []
    return list(record.get("history") or [record["version"]])


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
