"""The artifact store on a local folder: atomic writes by rename, conditional writes under a file lock."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.core.artifact_store import (
    ArtifactNotFound,
    ArtifactStore,
    ConflictError,
    StoreError,
    sha256_bytes,
)

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
        want = prefix.lstrip("/")
        # os.walk, not Path.rglob: another process's retention sweep may remove a folder while it is walked,
        # and rglob then raises FileNotFoundError (seen with two publishers of one prefix); walk skips it.
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if name.startswith("."):
                    continue
                key = (Path(root) / name).relative_to(self.base).as_posix()
                if key.startswith(want):
                    out.append(key)
        return sorted(out)

    def list_modified(self, prefix: str = "") -> dict[str, float]:
        out = {}
        for key in self.list(prefix):
            try:
                out[key] = self._path(key).stat().st_mtime
            except FileNotFoundError:  # deleted since it was listed
                pass
        return out

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
