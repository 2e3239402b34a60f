"""features: feature tables from validated data, `feast apply`, training sets, online materialization.

  build         validated partitions -> features/<view>.parquet (upserted by date range) + feast apply
  training_set  entity rows = validated flights, event_timestamp = sched_dep_utc - lead time,
                point-in-time join through get_historical_features with the feature service
  materialize   online store, over explicit intervals in bounded chunks, idempotent (see `materialize`)

Batch prediction calls `scoring_frame` (offline store, as of the lead time) and online prediction
calls `online_features` (online store): both read the same feature service as the training set,
and `model_frame` adds the same schedule fields, so training and serving cannot skew.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import logging
import math
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from components.contracts import layout, schema, signature
from components.contracts.errors import StageFailed
from components.contracts.stages import FeaturesBuildParams, MaterializeParams, TrainingSetParams
from components.core.settings import SECRET_SETTINGS, Settings, load_settings, secret_env_names
from components.core.store import ArtifactNotFound, ArtifactStore, open_store, parquet_bytes
from components.features import tables as ft

log = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parents[2] / "feature_repo"
ENTITY_COLUMNS = ["origin", "carrier", "route", "tailnum", "as_of_date"]
SCHEDULE_FIELDS = ["carrier", "origin", "dest", "sched_hour", "day_of_week", "distance"]


# -- the Feast repository ---------------------------------------------------------------------
def _definitions_module():
    try:
        return importlib.import_module("feature_repo.definitions")
    except ModuleNotFoundError:  # installed without the repo folder on sys.path
        spec = importlib.util.spec_from_file_location("feature_repo.definitions", REPO_DIR / "definitions.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


def feature_service_name() -> str:
    """The feature service every training set and every prediction is read through."""
    return _definitions_module().FEATURE_SERVICE


def _table_uri(store: ArtifactStore, view: str) -> str:
    path = store.local_path(layout.feature_table_key(view))
    return str(path) if path is not None else store.uri(layout.feature_table_key(view))


def repo_definitions(settings: Settings | None = None, store: ArtifactStore | None = None):
    """The repo's Feast objects, with sources at this profile's feature tables."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    defs = _definitions_module()
    uris = {view: _table_uri(store, view) for view in defs.VIEWS}
    return defs.build_definitions(uris, s3_endpoint_override=settings.s3_endpoint_url or None)


def _yaml_values(settings: Settings) -> dict[str, str]:
    """What a feature_store.yaml's ${FLIGHTDECK_*} names mean for these settings (FLIGHTDECK_HOME absolute)."""
    values = {f"FLIGHTDECK_{f.name.upper()}": str(getattr(settings, f.name)) for f in fields(Settings)
              if f.name not in SECRET_SETTINGS}
    values["FLIGHTDECK_HOME"] = str(settings.home_path)
    return values


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_feast_yaml(text: str, settings: Settings, source: str = "feature_store.yaml") -> str:
    """The yaml with every ${NAME} replaced: FLIGHTDECK_* from the settings, anything else from the environment.

    The `feast` CLI expands the same file with the environment alone (os.path.expandvars), so a file
    that names only settings means the same thing to the stages and to the CLI.
    """
    values = _yaml_values(settings)
    missing, secret = [], []

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name in secret_env_names():
            secret.append(name)
            return m.group(0)
        value = values.get(name, os.environ.get(name))
        if value is None:
            missing.append(name)
            return m.group(0)
        return value

    out = _VARIABLE.sub(one, text)
    if secret:  # the text may be shown (yaml errors quote it); secrets are added after parsing
        raise StageFailed(f"{source} names ${{{secret[0]}}}, a secret setting: a feature_store.yaml names only "
                          "non-secret settings (components.features.build.feast_config adds the Redis password)")
    if missing:
        raise StageFailed(f"{source} names ${{{missing[0]}}}, which is neither a flightdeck setting nor set in "
                          "the environment")
    return out


def redis_connection_string(connection_string: str, password: str) -> str:
    """Feast's Redis connection string (host:port[,key=value...]) with the AUTH password added.

    Feast 0.67 (RedisOnlineStore._parse_connection_string) splits the string at every comma, each
    key=value at its first `=`, and json-decodes each value when it can: a password is given as a
    JSON string literal, so it reaches redis-py exactly as set ("123", "true" or "null" would
    otherwise arrive as a number, a bool or no password). A comma cannot be carried at all.
    """
    if not password:
        return connection_string
    if "," in password:
        raise StageFailed("FLIGHTDECK_REDIS_PASSWORD contains a comma, which Feast's Redis connection string "
                          "(host:port,key=value,...) cannot carry: use a password without commas")
    if any(p.split("=", 1)[0].strip().lower() == "password" for p in connection_string.split(",") if "=" in p):
        raise StageFailed("the Redis connection string already has a password= parameter and "
                          "FLIGHTDECK_REDIS_PASSWORD is set: give the password only in FLIGHTDECK_REDIS_PASSWORD")
    return f"{connection_string},password={json.dumps(password)}"


def feast_config(settings: Settings, yaml_path: Path):
    """Feast's RepoConfig from the profile's feature_store.yaml, expanded with the settings.

    A Redis online store also gets the password setting (FLIGHTDECK_REDIS_PASSWORD), added to the
    connection string after the yaml is parsed: the yaml names only non-secret settings, so its text
    (which parse errors quote) never holds the password.
    """
    import yaml
    from feast.repo_config import RepoConfig

    raw = yaml.safe_load(expand_feast_yaml(yaml_path.read_text(), settings, str(yaml_path)))
    online = raw.get("online_store") if isinstance(raw, dict) else None
    if isinstance(online, dict) and online.get("type") == "redis" and settings.redis_password:
        raw["online_store"] = {**online, "connection_string": redis_connection_string(
            str(online.get("connection_string", "")), settings.redis_password)}
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic quotes the input it refused: never show the password
        if settings.redis_password and settings.redis_password in str(exc):
            raise StageFailed(f"{yaml_path}: Feast refused the configuration: {settings.redact(str(exc))}") from None
        raise
    config.repo_path = REPO_DIR
    return config


def _in_chain(exc: BaseException | None, kind: type) -> BaseException | None:
    """`exc` or the first of its causes (Feast wraps some) that is a `kind`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _redis_auth_probe(cfg) -> BaseException | None:
    """One PING with the online store's own connection parameters: its AuthenticationError, if any.

    Redis answers an unauthenticated client's first commands with NOAUTH, but closes the connection
    on a request of more than a few arguments (Feast's HMGETs of a whole view): redis-py then reports
    "Connection closed by server", which says nothing about the password. The probe tells them apart.
    """
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    if str(getattr(getattr(cfg, "redis_type", "redis"), "value", "redis")) != "redis":
        return None
    nodes, params = RedisOnlineStore._parse_connection_string(cfg.connection_string)
    if not nodes:
        return None
    client = redis.Redis(**{**params, "host": nodes[0]["host"], "port": int(nodes[0]["port"]),
                            "socket_timeout": 5, "socket_connect_timeout": 5})
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        return exc
    except Exception:  # down, unreachable, TLS: not a password problem
        return None
    finally:
        client.close()
    return None


def _redis_auth_error(exc: BaseException, fs) -> BaseException | None:
    """The redis-py AuthenticationError behind `exc`, or behind a dropped connection (see the probe)."""
    cfg = fs.config.online_store
    if getattr(cfg, "type", "") != "redis":
        return None
    try:
        from redis.exceptions import AuthenticationError
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:
        return None
    auth = _in_chain(exc, AuthenticationError)
    if auth is None and _in_chain(exc, RedisConnectionError) is not None:
        auth = _redis_auth_probe(cfg)
    return auth


def _online_store_refused(exc: BaseException, settings: Settings, fs) -> StageFailed | None:
    """A StageFailed that says what is wrong with the Redis password, when the store refused it."""
    auth = _redis_auth_error(exc, fs)
    if auth is None:
        return None
    where = str(getattr(fs.config.online_store, "connection_string", "")).split(",")[0] or "?"
    said = settings.redact(str(auth).strip()) or type(auth).__name__
    if not settings.redis_password:
        what = ("requires a password and FLIGHTDECK_REDIS_PASSWORD is not set (on the cluster it comes from "
                "the flightdeck-redis-auth Secret, key password; on AWS the token is in Secrets Manager, "
                "<environment>/redis-auth-token)")
    elif "no password is set" in said or "without any password configured" in said:
        what = "has no password configured, but FLIGHTDECK_REDIS_PASSWORD is set: unset it, or configure the server"
    else:
        what = ("refused the password in FLIGHTDECK_REDIS_PASSWORD: it is wrong (rotated? the Secret and the "
                "server's AUTH token must match; RUNBOOK.md, Redis AUTH token)")
    return StageFailed(f"the Redis online store at {where} {what} (Redis: {said})")


@contextlib.contextmanager
def _online_store_access(settings: Settings, fs):
    """Feast calls that open the online store: a refused Redis password becomes one clear error."""
    try:
        yield
    except Exception as exc:
        refused = _online_store_refused(exc, settings, fs)
        if refused is None:
            raise
        raise refused from None


def _prepare_feast_env(settings: Settings) -> None:
    """What Feast needs besides its config: the local folder of its files, the S3 endpoint of its registry."""
    if settings.profile == "local":
        (settings.home_path / "feast").mkdir(parents=True, exist_ok=True)
    if settings.s3_endpoint_url:
        os.environ["FEAST_S3_ENDPOINT_URL"] = settings.s3_endpoint_url  # Feast's S3 registry reads this


def feast_cli_environment(env: dict[str, str] | None = None) -> Settings:
    """For feature_repo/repo.py under the `feast` CLI, which expands feature_store.yaml with the environment
    only: refuse an environment that leaves a ${FLIGHTDECK_*} of the profile's yaml unexpanded (Feast
    would take the literal text for a path), and make the folders the stages would make."""
    env = dict(os.environ if env is None else env)
    settings = load_settings(env)
    text = (REPO_DIR / "profiles" / settings.profile / "feature_store.yaml").read_text()
    unset = sorted({n for n in _VARIABLE.findall(text) if n not in env})
    if unset:
        raise StageFailed(
            f"the feast CLI expands feature_repo/profiles/{settings.profile}/feature_store.yaml with the environment "
            f"only, and {', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set: export the settings, e.g. "
            f"FLIGHTDECK_HOME=/abs/path (a settings file is not read by Feast)"
        )
    _prepare_feast_env(settings)
    return settings


_STORES: dict[tuple, object] = {}


def feature_store_yaml(settings: Settings) -> Path:
    """The profile's feature_store.yaml; FLIGHTDECK_FEAST_YAML may name another one (e.g. local files + Redis)."""
    override = os.environ.get("FLIGHTDECK_FEAST_YAML")
    return Path(override) if override else REPO_DIR / "profiles" / settings.profile / "feature_store.yaml"


def feature_store(settings: Settings | None = None):
    """Feast's FeatureStore for the profile, configured by feature_repo/profiles/<profile>/feature_store.yaml."""
    from feast import FeatureStore

    settings = settings or load_settings()
    yaml = feature_store_yaml(settings)
    key = (settings, str(yaml))
    if key not in _STORES:
        _prepare_feast_env(settings)
        _STORES[key] = FeatureStore(repo_path=str(REPO_DIR), config=feast_config(settings, yaml))
    return _STORES[key]


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

    con = ibis.get_backend()
    try:
        packaged = _packaged_httpfs(con.raw_sql("PRAGMA version").fetchone()[0])
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


def _packaged_httpfs(duckdb_version: str) -> str | None:
    """Path of the httpfs extension shipped by the duckdb-extension-httpfs wheel for this DuckDB, if any."""
    try:
        import duckdb_extension_httpfs
    except ImportError:
        return None
    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / duckdb_version / "httpfs.duckdb_extension"
    return str(path) if path.is_file() else None


@contextlib.contextmanager
def _feast_quiet():
    """Feast prints progress to stdout; the CLI's stdout is the stage's JSON result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def apply(settings: Settings | None = None, store: ArtifactStore | None = None) -> list[str]:
    """`feast apply` of the repo's objects, keeping each view's materialization intervals.

    Feast 0.67 keeps an existing view's batch source when only the source moved (the registry treats
    it as configuration), so a view whose table moved (another FLIGHTDECK_HOME or bucket) is replaced,
    carrying its materialization intervals over.
    """
    settings = settings or load_settings()
    fs = feature_store(settings)
    defs = repo_definitions(settings, store)
    registered = {fv.name: fv for fv in fs.list_feature_views()}
    for view in defs.views:
        old = registered.get(view.name)
        if old is not None and old.batch_source.path != view.batch_source.path:
            view.materialization_intervals = list(old.materialization_intervals)
            fs.registry.delete_feature_view(view.name, fs.project, commit=True)
    # Partial: Feast deletes no online tables, so on Redis this never connects (tests/features/test_redis_auth.py).
    with _feast_quiet(), _online_store_access(settings, fs):
        fs.apply(defs.objects())
    return [v.name for v in defs.views]


# -- reading validated data ---------------------------------------------------------------------
def _read_days(store: ArtifactStore, table: str, days: list[date], required: bool) -> pd.DataFrame:
    """The validated partitions of `table` for these days, as one frame (missing days are skipped or refused)."""
    def one(day: date) -> pa.Table | None:
        try:
            data = store.read_published(layout.validated_prefix(table, day), "part.parquet")
        except ArtifactNotFound:
            return None
        return pq.read_table(pa.BufferReader(data))

    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = list(pool.map(one, days))
    missing = [d for d, p in zip(days, parts, strict=True) if p is None]
    if required and missing:
        shown = ", ".join(d.isoformat() for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StageFailed(
            f"features need validated {table} partitions for every date in the range, but {len(missing)} "
            f"are not validated ({shown}). Run `flightdeck ingest` and `flightdeck validate` for those dates "
            "first; a date whose batch failed validation stays unpublished until a good batch passes."
        )
    tables = [p for p in parts if p is not None and p.num_rows]
    if not tables:
        return pd.DataFrame()
    # One conversion of the concatenated table: far cheaper than concatenating hundreds of frames.
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def _read_reference(store: ArtifactStore, table: str) -> pd.DataFrame:
    try:
        data = store.read_published(layout.validated_prefix(table), "part.parquet")
    except ArtifactNotFound:
        raise StageFailed(
            f"features need the validated {table} reference table, which is not published. "
            "Run `flightdeck ingest` and `flightdeck validate` first."
        ) from None
    return pd.read_parquet(io.BytesIO(data))


# -- build --------------------------------------------------------------------------------------
def _upsert(store: ArtifactStore, view: str, new: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> int:
    """Replace the table's rows stamped in [lo, hi] with `new`: rebuilding a range never duplicates."""
    key = layout.feature_table_key(view)
    try:
        old = store.read_parquet(key)
        old = old[(old[ft.TS] < lo) | (old[ft.TS] > hi)]
        table = pd.concat([old, new], ignore_index=True) if len(old) else new
    except ArtifactNotFound:
        table = new
    keycol = table.columns[0]
    order = [c for c in (keycol, "as_of_date", ft.TS) if c in table.columns]
    table = table.sort_values(order, kind="stable").reset_index(drop=True)
    table[ft.TS] = ft.utc_us(table[ft.TS])
    store.write_bytes(key, parquet_bytes(table))
    return len(table)


def build(params: FeaturesBuildParams, store: ArtifactStore | None = None) -> dict:
    settings = load_settings()
    store = store or open_store(settings)
    days = schema.day_range(params.start, params.end)
    first, last = days[0], days[-1]
    t0 = time.perf_counter()
    # A flight on `first` is predicted up to the lead time before it, so the weather hours start
    # lead_days earlier and the daily stats (stamped at the end of a day) one day more; the stats
    # reach HISTORY_DAYS further back.
    lead_days = max(1, math.ceil(settings.lead_time_hours / 24))
    hour_first = first - timedelta(days=lead_days)
    stat_first = hour_first - timedelta(days=1)
    history = schema.day_range(stat_first - timedelta(days=ft.HISTORY_DAYS), first - timedelta(days=1))
    flights = pd.concat(
        [_read_days(store, "flights", history, required=False), _read_days(store, "flights", days, required=True)],
        ignore_index=True,
    )
    # One day more than the hours built, so the first hours carry observations from before them.
    weather = _read_days(store, "weather", schema.day_range(stat_first, last), required=False)
    planes = _read_reference(store, "planes")
    t_read = time.perf_counter() - t0

    outcomes = ft.flight_outcomes(flights)
    lo, hi = ft.day_stamps(stat_first, last)
    w_lo, _ = schema.local_day_bounds_utc(hour_first)
    _, w_hi = schema.local_day_bounds_utc(last)
    tables = {
        "weather_hourly": (ft.weather_hourly(weather, pd.Timestamp(w_lo), pd.Timestamp(w_hi) - pd.Timedelta(hours=1)),
                           pd.Timestamp(w_lo), pd.Timestamp(w_hi) - pd.Timedelta(microseconds=1)),
        "carrier_daily_stats": (ft.carrier_daily_stats(outcomes, stat_first, last), lo, hi),
        "route_daily_stats": (ft.route_daily_stats(outcomes, stat_first, last), lo, hi),
        "plane_attributes": (ft.plane_attributes(planes), pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")),
    }
    defs = _definitions_module()
    for view, (df, a, b) in list(tables.items()):
        ttl = defs.VIEWS[view][2]
        if view not in defs.STATIC_VIEWS:
            tables[view] = (ft.bucket_by_date(df, pd.Timedelta(ttl), defs.AS_OF_DATE), a, b)
    rows = {view: _upsert(store, view, df, a, b) for view, (df, a, b) in tables.items()}
    built = {view: len(df) for view, (df, _, _) in tables.items()}
    t_apply = time.perf_counter()
    views = apply(settings, store)
    seconds = time.perf_counter() - t0
    result = {
        "start": first.isoformat(), "end": last.isoformat(),
        "flights_read": len(flights),
        "rows_built": built, "table_rows": rows, "applied_views": views,
        "seconds": round(seconds, 3), "read_seconds": round(t_read, 3),
        "apply_seconds": round(time.perf_counter() - t_apply, 3),
        "uri": store.uri("features"),  # features/<view>.parquet, one table per view (the KFP Dataset)
    }
    log.info("features build %s..%s: %s", first, last, built)
    return result


# -- training sets and scoring frames -----------------------------------------------------------
def _default_index(df: pd.DataFrame) -> pd.DataFrame:
    """0..n-1 row labels, without copying a frame that has them already (a copy costs ~1 s a year)."""
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    return df.reset_index(drop=True)


def _tailnum(flights: pd.DataFrame) -> pd.Series:
    return flights["tailnum"].astype(object).where(flights["tailnum"].notna(), None)


def _utc_dates(ts: pd.Series) -> pd.Series:
    """YYYY-MM-DD of each UTC timestamp (formatting only the distinct days: strftime per row is slow)."""
    days = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    uniq, inverse = np.unique(days, return_inverse=True)
    return pd.Series(uniq.astype(str).astype(object)[inverse], index=ts.index)


def entity_rows(flights: pd.DataFrame, lead_time_hours: float) -> pd.DataFrame:
    """Feast entity rows for flights: the join keys and the prediction time (sched dep - lead time).

    `row` numbers the flights so the joined features can be put back in order without a merge.
    """
    flights = _default_index(flights)
    at = ft.utc_us(flights["sched_dep_utc"] - pd.Timedelta(hours=lead_time_hours))
    return pd.DataFrame({
        "row": np.arange(len(flights), dtype="int64"),
        "event_timestamp": at,
        "as_of_date": _utc_dates(at),
        "origin": flights["origin"].astype(str),
        "carrier": flights["carrier"].astype(str),
        "route": flights["origin"].astype(str) + "-" + flights["dest"].astype(str),
        "tailnum": _tailnum(flights),
    })


def schedule_fields(flights: pd.DataFrame) -> pd.DataFrame:
    """What the model reads from the flight row itself (known when the flight is scheduled)."""
    flights = _default_index(flights)
    sched = ft.utc_us(flights["sched_dep_utc"])
    local = sched.dt.tz_convert(schema.LOCAL_TZ)
    return pd.DataFrame({
        "flight_id": flights["flight_id"].astype(str),
        "sched_dep_utc": sched,
        "tailnum": _tailnum(flights),
        "month": local.dt.month.astype("int64"),
        "carrier": flights["carrier"].astype(str),
        "origin": flights["origin"].astype(str),
        "dest": flights["dest"].astype(str),
        "sched_hour": local.dt.hour.astype("int64"),
        "day_of_week": local.dt.dayofweek.astype("int64"),
        "distance": flights["distance"].astype("float64"),
    })


def historical_features(entities: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Point-in-time features for entity rows through the feature service (offline store)."""
    fs = feature_store(settings)
    offline_store_ready(settings)
    job = fs.get_historical_features(entity_df=entities, features=_service(fs))
    return job.to_arrow().to_pandas()


def model_frame(flights: pd.DataFrame, settings: Settings | None = None, with_label: bool = True) -> pd.DataFrame:
    """KEYS + every model feature (+ label) for flights, as of the lead time before each departure."""
    settings = settings or load_settings()
    flights = _default_index(flights)
    entities = entity_rows(flights, settings.lead_time_hours)
    feats = historical_features(entities, settings)
    # Feast returns the rows in its own order: put them back in flight order by the row number.
    order = np.empty(len(feats), dtype="int64")
    order[feats["row"].to_numpy()] = np.arange(len(feats))
    feats = feats.take(order)
    out = schedule_fields(flights)
    out["event_timestamp"] = entities["event_timestamp"]
    for col in signature.NUMERIC:
        if col not in out.columns:
            out[col] = feats[col].to_numpy(dtype="float64", na_value=np.nan)
    if with_label:
        out[signature.LABEL] = ft.label(flights)
    columns = signature.KEYS + signature.CATEGORICAL + signature.NUMERIC + ([signature.LABEL] if with_label else [])
    return out[columns].sort_values(["sched_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)


def _output_target(store: ArtifactStore, out: str, default_key: str) -> tuple[str, Path | None]:
    """(store key, None) for keys and URIs inside the store; (uri, local path) for other local files."""
    if not out:
        return default_key, None
    parsed = urlparse(out)
    if not parsed.scheme:
        return out.lstrip("/"), None
    root = store.uri().rstrip("/") + "/"
    if out.startswith(root):
        return out[len(root):], None
    if parsed.scheme == "file":
        return out, Path(parsed.path)
    raise StageFailed(f"--out {out!r} is neither a key of the artifact store ({store.uri()}) nor a file:// URI")


def training_set(params: TrainingSetParams, store: ArtifactStore | None = None) -> dict:
    settings = load_settings()
    store = store or open_store(settings)
    days = schema.day_range(params.start, params.end)
    t0 = time.perf_counter()
    flights = _read_days(store, "flights", days, required=True)
    if flights.empty:
        raise StageFailed(f"no validated flights between {params.start} and {params.end}: nothing to train on")
    frame = model_frame(flights, settings)
    target, local = _output_target(store, params.out, f"training_sets/{params.start}_{params.end}.parquet")
    data = parquet_bytes(frame)
    if local is None:
        store.write_bytes(target, data)
        uri = store.uri(target)
    else:
        from components.core.store import LocalStore

        LocalStore(local.parent).write_bytes(local.name, data)
        uri = target
    seconds = time.perf_counter() - t0
    return {
        "out": uri, "uri": uri, "rows": len(frame), "columns": len(frame.columns), "shape": list(frame.shape),
        "label_rate": round(float(frame[signature.LABEL].mean()), 4),
        "missing_rate": {c: round(float(frame[c].isna().mean()), 4) for c in signature.NUMERIC if frame[c].isna().any()},
        "seconds": round(seconds, 3),
    }


def scoring_frame(day: str | date, settings: Settings | None = None, store: ArtifactStore | None = None) -> pd.DataFrame:
    """A day's validated flights with KEYS + every model feature as of the lead time (batch prediction)."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    days = schema.day_range(day, day)
    flights = _read_days(store, "flights", days, required=True)
    if flights.empty:
        return pd.DataFrame(columns=signature.KEYS + signature.CATEGORICAL + signature.NUMERIC)
    return model_frame(flights, settings, with_label=False)


_SERVICES: dict[int, object] = {}


def _service(fs):
    """The feature service object, resolved once per FeatureStore (from_proto costs ~10 ms a call)."""
    if id(fs) not in _SERVICES:
        _SERVICES[id(fs)] = fs.get_feature_service(feature_service_name())
    return _SERVICES[id(fs)]


def online_features(flight: dict, settings: Settings | None = None) -> dict:
    """Model features for one scheduled flight from the online store (online prediction).

    `flight` needs carrier, origin, dest, tailnum (may be None), distance and sched_dep_utc; the
    values are those of the feature service at the flight's prediction time (sched dep - lead time),
    as far as the online store has been materialized. Same fields and rules as `model_frame`,
    computed for one row without pandas.
    """
    settings = settings or load_settings()
    sched = pd.Timestamp(flight["sched_dep_utc"])
    sched = (sched.tz_localize("UTC") if sched.tzinfo is None else sched.tz_convert("UTC")).as_unit("us")
    at = sched - pd.Timedelta(hours=settings.lead_time_hours)
    local = sched.tz_convert(schema.LOCAL_TZ)
    tailnum = flight.get("tailnum")
    tailnum = None if tailnum is None or (isinstance(tailnum, float) and math.isnan(tailnum)) else str(tailnum)
    origin, dest, carrier = str(flight["origin"]), str(flight["dest"]), str(flight["carrier"])
    row = {"origin": origin, "carrier": carrier, "route": f"{origin}-{dest}", "tailnum": tailnum or "",
           "as_of_date": at.strftime("%Y-%m-%d")}
    fs = feature_store(settings)
    try:
        values = fs.get_online_features(features=_service(fs), entity_rows=[row]).to_dict()
    except Exception as exc:
        refused = _online_store_refused(exc, settings, fs)
        if refused is None:
            raise
        raise refused from None
    out = {
        "flight_id": str(flight.get("flight_id", "")), "event_timestamp": at, "sched_dep_utc": sched,
        "tailnum": tailnum, "month": local.month, "carrier": carrier, "origin": origin, "dest": dest,
        "sched_hour": local.hour, "day_of_week": local.dayofweek, "distance": float(flight["distance"]),
    }
    for name in signature.NUMERIC:
        if name in values:
            v = values[name][0]
            out[name] = float("nan") if v is None else float(v)
    return out


# -- materialization ----------------------------------------------------------------------------
Interval = tuple[pd.Timestamp, pd.Timestamp]


def _read_progress(store: ArtifactStore) -> dict:
    try:
        return store.read_json(layout.MATERIALIZATION_PROGRESS)
    except ArtifactNotFound:
        return {"views": {}}


def _merge_intervals(intervals: list[list[str]]) -> list[list[str]]:
    spans = sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in intervals)
    merged: list[list[pd.Timestamp]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [[a.isoformat(), b.isoformat()] for a, b in merged]


def _recorded(progress: dict, view: str) -> list[Interval]:
    return [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in progress["views"].get(view, {}).get("intervals", [])]


def _subtract(span: Interval, done: list[Interval]) -> list[Interval]:
    """The parts of `span` that no interval of `done` covers, oldest first."""
    out, a = [], span[0]
    for da, db in sorted(done):
        if db <= a or da >= span[1]:
            continue
        if da > a:
            out.append((a, da))
        a = max(a, db)
    if a < span[1]:
        out.append((a, span[1]))
    return out


def _intersect(span: Interval, done: list[Interval]) -> list[Interval]:
    return [(max(span[0], a), min(span[1], b)) for a, b in sorted(done) if a < span[1] and b > span[0]]


def _table_min_ts(store: ArtifactStore, view: str) -> pd.Timestamp | None:
    try:
        ts = pq.read_table(pa.BufferReader(store.read_bytes(layout.feature_table_key(view))), columns=[ft.TS]).column(0)
    except ArtifactNotFound:
        return None
    return pd.Timestamp(pa.compute.min(ts).as_py()) if len(ts) else None


def _chunks(start: pd.Timestamp, end: pd.Timestamp, days: int) -> list[Interval]:
    """[start, end) cut at local midnights, at most `days` local days per chunk."""
    out, a = [], start
    while a < end:
        local = a.tz_convert(schema.LOCAL_TZ).normalize().tz_localize(None) + pd.Timedelta(days=days)
        b = min(end, local.tz_localize(schema.LOCAL_TZ).tz_convert("UTC"))
        out.append((a, b))
        a = b
    return out


def _union(spans: list[Interval]) -> list[Interval]:
    return [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in _merge_intervals([[x.isoformat(), y.isoformat()] for x, y in spans])]


def online_write_keeps_newest(fs) -> bool:
    """Whether the online store skips a row older than the one it holds for that key.

    Feast 0.67: the Redis store reads each key's stored event timestamp and skips older or equal rows
    (unless skip_dedup); the SQLite store upserts unconditionally, so the last write wins."""
    cfg = fs.config.online_store
    return getattr(cfg, "type", "") == "redis" and not getattr(cfg, "skip_dedup", False)


def materialize(params: MaterializeParams, store: ArtifactStore | None = None) -> dict:
    """Load feature values into the online store for an explicit interval, in bounded chunks; idempotent.

    The interval is [start of local day `start`, end of local day `end`): the run's data interval
    (the batch_prediction DAG passes its day as both). Without `start`, each view continues from where
    its materialization stopped (its first one starts at its oldest feature row).

    - Idempotent: what each view has materialized is recorded (features/materialization.json, written
      after every chunk, so a killed run resumes where it stopped); only the parts of the interval
      not yet recorded are loaded, so a re-run of the same interval is a no-op (0 chunks).
    - Bounded: the work goes in chunks of `chunk_days` local days, and Feast holds the latest row per
      online key of one chunk at a time, so memory follows the chunk, not the window (README, Features).
    - An older interval never overwrites newer online values. Feast 0.67's Redis store compares event
      timestamps and skips a row older than the one it holds; its SQLite store upserts unconditionally
      (the last write wins). So on SQLite, when a gap before already-materialized data is filled (a
      backfill), everything already materialized after the gap is written again right after it, in
      time order (`repair_chunks`): every key ends with its newest row. Same online values on both.
    - Re-applying the repo keeps Feast's materialization intervals (see `apply`), and this record
      lives in the artifact store, not in the registry.
    - Static views (plane attributes) are always materialized whole: a few thousand rows, one stamp.
    """
    settings = load_settings()
    store = store or open_store(settings)
    defs = _definitions_module()
    end_day = schema.parse_day(params.end, "end")
    end = ft.day_stamps(end_day, end_day)[0]
    requested_start = None
    if params.start:
        start_day = schema.parse_day(params.start, "start")
        if start_day > end_day:
            raise StageFailed(f"materialize: --start {params.start} is after --end {params.end}")
        requested_start = pd.Timestamp(schema.local_day_bounds_utc(start_day)[0])
    chunk_days = max(1, int(params.chunk_days))
    t0 = time.perf_counter()
    # Idempotent, and makes sure the online tables exist (a fresh SQLite file or Redis has none).
    apply(settings, store)
    fs = feature_store(settings)
    offline_store_ready(settings)
    progress = _read_progress(store)
    done: dict[str, dict] = {}
    with _feast_quiet(), _online_store_access(settings, fs):
        fs.materialize(ft.STATIC_SINCE.to_pydatetime(), end.to_pydatetime(), feature_views=list(defs.STATIC_VIEWS))
    for view in defs.STATIC_VIEWS:
        done[view] = {"from": ft.STATIC_SINCE.isoformat(), "to": end.isoformat(), "chunks": 1, "repair_chunks": 0}
        _record(progress, view, ft.STATIC_SINCE, end)
    store.write_json(layout.MATERIALIZATION_PROGRESS, progress)
    # Time-varying views: per view, the parts of the interval not recorded yet, in chunks of chunk_days.
    # A gap before data already online is a backfill: where the store keeps the last write (SQLite),
    # everything already materialized after it is written again, in time order, so every key ends with
    # its newest row; Redis skips the older rows itself.
    keeps_newest = online_write_keeps_newest(fs)
    work: dict[Interval, dict[str, bool]] = {}  # window -> {view: loads new data (not only a repair)}
    for view in defs.VIEWS:
        if view in defs.STATIC_VIEWS:
            continue
        recorded = _recorded(progress, view)
        until = progress["views"].get(view, {}).get("materialized_until")
        start = requested_start or (pd.Timestamp(until) if until else _table_min_ts(store, view))
        if start is None or start >= end:
            done[view] = {"from": None, "to": until, "chunks": 0, "repair_chunks": 0}
            continue
        gaps = _subtract((start, end), recorded)
        spans = list(gaps)
        newest = max((b for _, b in recorded), default=None)
        if gaps and newest is not None and gaps[0][0] < newest and not keeps_newest:
            spans += _intersect((gaps[0][0], newest), recorded)
        steps = [c for span in _union(spans) for c in _chunks(*span, chunk_days)]
        for window in steps:
            work.setdefault(window, {})[view] = any(window[0] < gb and window[1] > ga for ga, gb in gaps)
        fresh = sum(work[w][view] for w in steps)
        done[view] = {"from": start.isoformat(), "to": end.isoformat(), "chunks": fresh,
                      "repair_chunks": len(steps) - fresh}
    # Sorted by start: each view's windows are disjoint and in time order, so they are written so.
    for (a, b), views in sorted(work.items()):
        with _feast_quiet(), _online_store_access(settings, fs):
            fs.materialize(a.to_pydatetime(), b.to_pydatetime(), feature_views=list(views))
        for v in views:
            _record(progress, v, a, b)
        store.write_json(layout.MATERIALIZATION_PROGRESS, progress)  # after every chunk: a killed run resumes here
    return {
        "start": requested_start.isoformat() if requested_start is not None else None,
        "end": end.isoformat(), "views": done, "chunk_days": chunk_days,
        "chunks": sum(any(v.values()) for v in work.values()),
        "repair_chunks": sum(not any(v.values()) for v in work.values()),
        "online_store_keeps_newest": keeps_newest,
        "seconds": round(time.perf_counter() - t0, 3), "progress": store.uri(layout.MATERIALIZATION_PROGRESS),
    }


def _record(progress: dict, view: str, a: pd.Timestamp, b: pd.Timestamp) -> None:
    entry = progress["views"].setdefault(view, {"intervals": []})
    entry["intervals"] = _merge_intervals(entry["intervals"] + [[a.isoformat(), b.isoformat()]])
    prev = entry.get("materialized_until")
    entry["materialized_until"] = max(pd.Timestamp(prev), b).isoformat() if prev else b.isoformat()
    entry["updated_at"] = datetime.now(UTC).isoformat()


def online_freshness(store: ArtifactStore | None = None) -> dict[str, str | None]:
    """Per view, up to when the online store holds values (for the demo summary and monitoring)."""
    progress = _read_progress(store or open_store())
    return {view: progress["views"].get(view, {}).get("materialized_until") for view in _definitions_module().VIEWS}
