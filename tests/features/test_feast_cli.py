"""The route feature_repo/repo.py documents: the real `feast` CLI on the local profile's feature_store.yaml,
in a temporary FLIGHTDECK_HOME, sees the same registry and objects as the stages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.contracts import layout
from components.features.feast_repo import (
    REPO_DIR,
    definitions_module,
    expand_feast_yaml,
    feature_service_name,
    feature_store,
)

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

REPO = Path(__file__).resolve().parents[2]
FEAST = REPO / ".venv" / "bin" / "feast"
YAML = "profiles/local/feature_store.yaml"


def feast(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = FEAST if FEAST.exists() else Path(sys.executable).parent / "feast"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "FEAST_"))}
    return subprocess.run([str(exe), "-f", YAML, *args], cwd=REPO_DIR, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def test_feast_cli_apply_and_list_on_the_local_profile(fenv):
    env = {"FLIGHTDECK_HOME": str(fenv.home), "FLIGHTDECK_PROFILE": "local"}
    registry = fenv.home / "feast" / "registry.db"
    registry.unlink(missing_ok=True)  # the CLI writes it, not the fixture's build

    plan = feast(["plan"], env)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "Created feature view weather_hourly" in plan.stdout + plan.stderr

    applied = feast(["apply"], env)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert registry.is_file() and registry.stat().st_size > 100
    views = feast(["feature-views", "list"], env)
    assert views.returncode == 0, views.stderr[-3000:]
    listed = {line.split()[0] for line in views.stdout.splitlines()[1:] if line.strip() and not line.startswith("-")}
    assert listed >= set(definitions_module().VIEWS), views.stdout
    entities = feast(["entities", "list"], env)
    assert entities.returncode == 0, entities.stderr[-3000:]
    for name in ("origin", "carrier", "route", "tailnum", "as_of_date"):
        assert name in entities.stdout

    # The stages read what the CLI wrote: same registry file, same views, sources at this home's tables.
    fs = feature_store()
    assert Path(fs.config.registry.path) == registry
    by_name = {fv.name: fv for fv in fs.list_feature_views()}
    assert set(by_name) == set(definitions_module().VIEWS) | set(definitions_module().PUSHED_VIEWS)
    for name, fv in by_name.items():
        assert fv.batch_source.path == str(fenv.store.local_path(layout.feature_table_key(name)))
    assert fs.get_feature_service(feature_service_name()).name == "delay_model_v1"
    assert not list(REPO_DIR.glob("$*")), "nothing may be written under a literal ${...} path"


def test_feast_cli_without_the_settings_is_refused_clearly(tmp_path):
    out = feast(["plan"], {"FLIGHTDECK_PROFILE": "local", "HOME": str(tmp_path)})
    assert out.returncode != 0
    assert "FLIGHTDECK_HOME is not set" in out.stderr
    assert not list(REPO_DIR.glob("$*")), "Feast must not have taken ${FLIGHTDECK_HOME} for a folder name"


@pytest.mark.parametrize("profile", ["local", "aws"])
def test_profile_yaml_names_only_settings(profile, monkeypatch, tmp_path):
    """Every ${...} of the profile's yaml is a flightdeck setting, so the CLI and the stages expand it alike."""
    from components.core.settings import load_settings

    text = (REPO_DIR / "profiles" / profile / "feature_store.yaml").read_text()
    env = {"FLIGHTDECK_PROFILE": profile, "FLIGHTDECK_HOME": str(tmp_path), "FLIGHTDECK_S3_BUCKET": "b"}
    settings = load_settings(env)
    expanded = expand_feast_yaml(text, settings)
    assert "${FLIGHTDECK" not in expanded
    registry = f"{tmp_path}/feast/registry.db" if profile == "local" else "s3://b/feast/registry.db"
    assert f"path: {registry}" in expanded
    with monkeypatch.context() as mp:
        for k, v in {**env, "FLIGHTDECK_REDIS_URL": settings.redis_url}.items():
            mp.setenv(k, v)
        assert os.path.expandvars(text) == expanded  # what the feast CLI gets from the same settings
    with pytest.raises(Exception, match="NOT_A_SETTING"):
        expand_feast_yaml(text + "\nx: ${NOT_A_SETTING}\n", settings)
