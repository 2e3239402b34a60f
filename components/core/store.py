"""The artifact store every stage reads and writes: a local folder or S3 buckets, as the settings select.

The public names of the store live here (import them from this module):
  artifact_store  ArtifactStore (the interface, publication), its errors, parquet_bytes, sha256_bytes
  local_store     LocalStore, a local folder
  s3_store        S3Store, one S3 bucket (or an S3-compatible endpoint)
and RoutedStore and open_store below: one logical store over several buckets, chosen by the settings.
"""

from __future__ import annotations

from urllib.parse import urlparse

from components.core.artifact_store import (
    POINTER,
    ArtifactNotFound,
    ArtifactStore,
    ConflictError,
    StoreError,
    parquet_bytes,
    sha256_bytes,
)
from components.core.local_store import LocalStore
from components.core.s3_store import S3Store

__all__ = ["POINTER", "ArtifactNotFound", "ArtifactStore", "ConflictError", "DATA_AREAS", "LocalStore",
           "MODEL_AREAS", "RoutedStore", "S3Store", "StoreError", "open_store", "parquet_bytes", "sha256_bytes"]


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
        return sorted(self.list_modified(prefix))

    def list_modified(self, prefix=""):
        if prefix.lstrip("/").split("/", 1)[0] in self.routes:
            return self._route(prefix).list_modified(prefix)
        areas = {id(s): s for s in [self.default, *self.routes.values()]}
        # A bucket may hold keys of areas routed elsewhere; keep each key only from its own store.
        return {k: t for s in areas.values() for k, t in s.list_modified(prefix).items() if self._route(k) is s}

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
