"""The artifact store on an S3 bucket (or an S3-compatible endpoint): PUTs are atomic, conditional
writes use If-Match / If-None-Match."""

from __future__ import annotations

from components.core.artifact_store import ArtifactNotFound, ArtifactStore, ConflictError, StoreError


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
        return sorted(self.list_modified(prefix))

    def list_modified(self, prefix: str = "") -> dict[str, float]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out.update((obj["Key"][strip:], obj["LastModified"].timestamp()) for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._error(exc, prefix, "list") from exc
        return out

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
