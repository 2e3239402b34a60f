"""DuckDB's httpfs extension and S3 secret, for Feast's DuckDB offline store on the aws profile
(feature tables as s3:// objects)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from components.contracts.errors import StageFailed
from components.core.settings import Settings, load_settings


def offline_store_ready(settings: Settings | None = None) -> None:
    """Make the DuckDB connection Feast's offline store reads with able to read this profile's tables.

    On the aws profile the feature tables are s3:// objects. Feast 0.67's DuckDB offline store reads
    them with `ibis.read_parquet` on ibis's default DuckDB connection, which needs DuckDB's httpfs
    extension, and passes no endpoint or credentials there (a FileSource's s3_endpoint_override only
    reaches DuckDB together with a connection_ref). So here: load httpfs (DuckDB installs it from its
    extension repository on first use; where it can neither load nor download it, a clear error
    instead of one from deep inside Feast), then give that connection an S3 secret: the region, the
    credentials of boto3's chain (IRSA on EKS), and for an S3-compatible server (moto, MinIO) the
    settings' endpoint with path-style URLs (s3_url_style) and plain HTTP when it is http://
    (s3_use_ssl). Called before every offline read (credentials from IRSA expire).
    """
    settings = settings or load_settings()
    if not urlparse(settings.artifact_root).scheme.startswith("s3"):
        return
    import ibis

    con = ibis.get_backend()  # ibis's shared default connection: Feast reads through it, so it stays open
    try:
        packaged = packaged_httpfs(con.raw_sql("PRAGMA version").fetchone()[0])
        if packaged:  # the duckdb-extension-httpfs wheel of the lock file: nothing to download
            # Installed (copied into DuckDB's extension directory under HOME), not only loaded: ibis
            # re-installs any extension not marked both installed and loaded before reading s3://.
            con.raw_sql(f"INSTALL '{packaged}'; LOAD httpfs")
        else:
            con.load_extension("httpfs")
    except Exception as exc:  # duckdb.IOException / HTTPException when the repository is out of reach
        raise StageFailed(
            f"the aws profile's offline store reads s3:// feature tables through DuckDB's httpfs extension, "
            f"which is not installed here and could not be downloaded ({str(exc).splitlines()[0][:200]}). "
            "Install the duckdb-extension-httpfs wheel that matches the installed duckdb (requirements/base.in "
            "pins both), or point DuckDB at a reachable extension repository."
        ) from exc
    import boto3

    parts = ["TYPE s3", f"REGION '{settings.aws_region}'"]
    creds = boto3.Session().get_credentials()
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        parts += [f"KEY_ID '{frozen.access_key}'", f"SECRET '{frozen.secret_key}'"]
        if frozen.token:
            parts.append(f"SESSION_TOKEN '{frozen.token}'")
    if settings.s3_endpoint_url:
        endpoint = urlparse(settings.s3_endpoint_url)
        parts += [f"ENDPOINT '{endpoint.netloc}'", "URL_STYLE 'path'",
                  f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}"]
    con.raw_sql(f"CREATE OR REPLACE SECRET flightdeck_s3 ({', '.join(parts)})")


def packaged_httpfs(duckdb_version: str) -> str | None:
    """Path of the httpfs extension shipped by the duckdb-extension-httpfs wheel for this DuckDB, if any."""
    try:
        import duckdb_extension_httpfs
    except ImportError:
        return None
    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / duckdb_version / "httpfs.duckdb_extension"
    return str(path) if path.is_file() else None
