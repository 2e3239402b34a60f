"""The Feast repository of the stages: feature_repo/definitions.py's objects with sources at this
profile's feature tables, feature_repo/profiles/<profile>/feature_store.yaml expanded with the
settings, the FeatureStore, `feast apply`, and the environment the `feast` CLI needs (feature_repo/repo.py).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.settings import SECRET_SETTINGS, Settings, load_settings, secret_env_names
from components.core.store import ArtifactStore, open_store
from components.features.redis_auth import online_store_access, redis_connection_string
from components.features.store_lease import store_lease

REPO_DIR = Path(__file__).resolve().parents[2] / "feature_repo"
ATOMIC_REGISTRY_STORE = "components.features.atomic_registry.AtomicFileRegistryStore"


def definitions_module():
    """feature_repo/definitions.py: the catalogue of entities, views (VIEWS) and the feature service."""
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
    return definitions_module().FEATURE_SERVICE


def _table_uri(store: ArtifactStore, view: str) -> str:
    path = store.local_path(layout.feature_table_key(view))
    return str(path) if path is not None else store.uri(layout.feature_table_key(view))


def repo_definitions(settings: Settings | None = None, store: ArtifactStore | None = None):
    """The repo's Feast objects, with sources at this profile's feature tables."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    defs = definitions_module()
    uris = {view: _table_uri(store, view) for view in [*defs.VIEWS, *defs.PUSHED_VIEWS]}
    return defs.build_definitions(uris, s3_endpoint_override=settings.s3_endpoint_url or None)


# -- feature_store.yaml ---------------------------------------------------------------------------
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
                          "non-secret settings (components.features.feast_repo.feast_config adds the Redis password)")
    if missing:
        raise StageFailed(f"{source} names ${{{missing[0]}}}, which is neither a flightdeck setting nor set in "
                          "the environment")
    return out


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
    registry = raw.get("registry") if isinstance(raw, dict) else None
    if isinstance(registry, dict) and registry.get("registry_type", "file") == "file" \
            and "://" not in str(registry.get("path", "")) and not registry.get("registry_store_type"):
        # Feast's local registry store rewrites the file in place; concurrent readers would see it half-written.
        raw["registry"] = {**registry, "registry_store_type": ATOMIC_REGISTRY_STORE}
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic quotes the input it refused: never show the password
        if settings.redis_password and settings.redis_password in str(exc):
            raise StageFailed(f"{yaml_path}: Feast refused the configuration: {settings.redact(str(exc))}") from None
        raise
    config.repo_path = REPO_DIR
    return config


def feature_store_yaml(settings: Settings) -> Path:
    """The profile's feature_store.yaml; FLIGHTDECK_FEAST_YAML may name another one (e.g. local files + Redis)."""
    override = os.environ.get("FLIGHTDECK_FEAST_YAML")
    return Path(override) if override else REPO_DIR / "profiles" / settings.profile / "feature_store.yaml"


# -- the FeatureStore and the feast CLI -----------------------------------------------------------
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


@contextlib.contextmanager
def feast_quiet() -> Iterator[None]:
    """Feast prints progress to stdout; the CLI's stdout is the stage's JSON result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _registry_matches(fs, defs) -> bool:
    """Whether the registry already holds exactly these entities, views (sources included) and services.

    Materialization intervals are Feast's bookkeeping, not definitions: they are left out."""
    views = {fv.name: fv for fv in fs.list_feature_views()}
    for view in defs.views:
        old = views.get(view.name)
        if old is None:
            return False
        candidate = copy.copy(view)
        candidate.materialization_intervals = list(old.materialization_intervals)
        if candidate != old:
            return False
    entities = {e.name: e for e in fs.list_entities()}
    services = {s.name: s for s in fs.list_feature_services()}
    return (len(views) == len(defs.views) and all(entities.get(e.name) == e for e in defs.entities)
            and services.get(defs.service.name) == defs.service)


def apply(settings: Settings | None = None, store: ArtifactStore | None = None, *, leased: bool = False,
          always: bool = False) -> list[str]:
    """`feast apply` of the repo's objects, keeping each view's materialization intervals.

    Skipped when the registry already holds these definitions (the usual case: every build calls
    it), unless `always` (materialize: Feast's apply also creates missing online tables). Otherwise
    applied under the registry lease (store_lease at layout.FEAST_REGISTRY_LEASE; `leased`: the
    caller holds it), after re-reading the registry:
    Feast rewrites the whole registry from its cached copy, so two unserialized writers lose each
    other's changes.

    Feast 0.67 keeps an existing view's batch source when only the source moved (the registry treats
    it as configuration), so a view whose table moved (another FLIGHTDECK_HOME or bucket) is replaced,
    carrying its materialization intervals over.
    """
    settings = settings or load_settings()
    store = store or open_store(settings)
    fs = feature_store(settings)
    defs = repo_definitions(settings, store)
    names = [v.name for v in defs.views]
    if not always:
        with feast_quiet():
            fs.refresh_registry()
            if _registry_matches(fs, defs):
                return names
    lease = contextlib.nullcontext() if leased else store_lease(store, layout.FEAST_REGISTRY_LEASE, "feast apply")
    with lease:
        with feast_quiet():
            fs.refresh_registry()  # what the previous holder wrote
            if not always and _registry_matches(fs, defs):
                return names
        registered = {fv.name: fv for fv in fs.list_feature_views()}
        for view in defs.views:
            old = registered.get(view.name)
            if old is not None and old.batch_source.path != view.batch_source.path:
                view.materialization_intervals = list(old.materialization_intervals)
                fs.registry.delete_feature_view(view.name, fs.project, commit=True)
        # Partial: Feast deletes no online tables, so on Redis this never connects (tests/features/test_redis_auth.py).
        with feast_quiet(), online_store_access(settings, fs):
            fs.apply(defs.objects())
    return names
