"""Airflow on the cluster runs these DAGs: the Airflow image (containers/airflow.Dockerfile) is a
venv made from containers/locks/airflow.lock alone plus the package and dags/, and the Airflow
chart's values (modules/platform) use that image. Here the same venv is made from the lock alone
(`uv venv` + `uv pip install --no-deps -r`, as the Dockerfile does) and Airflow's DagBag parses
dags/ in it, with the settings the cluster's Airflow pods get: zero import errors.

Making the venv costs about 20 s with uv's wheel cache warm (172 packages); it is made once per lock
version under ~/.cache/flightdeck/ and reused while the lock is unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.test_terraform import TF, module_locals, platform_locals, platform_resource, unq

REPO = Path(__file__).resolve().parents[2]
IMAGES = yaml.safe_load((REPO / "containers" / "images.yaml").read_text())
LOCK = REPO / IMAGES["images"]["airflow"]["lock"]
UV = Path(sys.executable).parent / "uv"
HEAVY = ("torch", "feast", "great_expectations", "evidently", "kfp", "tritonclient")
PARSE = r"""
import importlib.util, json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
                  "heavy": [m for m in sys.argv[2:] if importlib.util.find_spec(m) is not None],
                  "airflow": __import__("airflow").__version__, "prefix": sys.prefix}))
"""


def image_venv() -> Path:
    """The image's venv, from its lock alone, cached by the lock's hash (built in a temporary
    folder and renamed, so an interrupted build is never reused)."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flightdeck"
    venv = cache / f"airflow-image-venv-{digest}"
    if (venv / ".complete").exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    building = cache / f"{venv.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    run = {"capture_output": True, "text": True, "timeout": 900}
    for command in ([str(UV), "venv", "-q", "--python", sys.executable, str(building)],
                    [str(UV), "pip", "install", "-q", "--python", str(building / "bin" / "python"), "--no-deps",
                     "-r", str(LOCK)],
                    [str(UV), "pip", "check", "--python", str(building / "bin" / "python")]):
        out = subprocess.run(command, **run)
        assert out.returncode == 0, f"{' '.join(command[:3])}: {out.stderr[-3000:]}{out.stdout[-2000:]}"
    (building / ".complete").write_text(LOCK.name)
    try:
        building.rename(venv)  # fails if another process finished first: use theirs
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        assert (venv / ".complete").exists(), f"{venv} exists but is incomplete: remove it"
    return venv


def cluster_settings() -> dict[str, str]:
    """The flightdeck-settings ConfigMap Airflow's pods get (modules/platform stage_settings), with
    example values for what Terraform fills in."""
    settings = {}
    for name, value in unq(platform_locals()["stage_settings"]).items():
        value = unq(value)
        settings[name] = value if "${" not in value and not value.startswith(("var.", "local.")) else f"example-{name.lower()}"
    settings.update({"FLIGHTDECK_S3_BUCKET": "flightdeck-dev-artifacts", "FLIGHTDECK_AWS_REGION": "us-east-1",
                     "FLIGHTDECK_IMAGE_REGISTRY": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                     "FLIGHTDECK_IMAGE_TAG": "0.1.0", "FLIGHTDECK_LEAD_TIME_HOURS": "2", "FLIGHTDECK_SCORING_INTERVAL_MINUTES": "60",
                     "FLIGHTDECK_MODEL_NAME": "flight_delay",
                     "FLIGHTDECK_REDIS_URL": "redis.example:6379,ssl=true"})
    return settings


def in_image_env(script: str, args: list[str], home: Path) -> dict:
    """Run a Python script in the image's venv with the settings the cluster's Airflow pods get; its last
    stdout line, as JSON."""
    venv = image_venv()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "FLIGHTDECK_HOME": str(home / "flightdeck"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),  # the image's /opt/airflow/plugins
           # The image installs the package from /app (-e); here the checkout is that /app.
           "PYTHONPATH": str(REPO), **cluster_settings()}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script, *args],
                         capture_output=True, text=True, timeout=600, env=env, cwd=home)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse(dag_folder: Path, home: Path) -> dict:
    return in_image_env(PARSE, [str(dag_folder), *HEAVY], home)


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    return parse(REPO / "dags", tmp_path_factory.mktemp("airflow-home"))


def test_a_dag_that_needs_a_heavy_package_is_an_import_error_there(tmp_path):
    """The check has teeth: a DAG file importing torch at parse time fails in the image's venv."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "heavy.py").write_text("import torch  # noqa\nfrom airflow.sdk import DAG\nDAG(dag_id='heavy')\n")
    (tmp_path / "home").mkdir()
    result = parse(dags, tmp_path / "home")
    assert list(result["errors"]) == [str(dags / "heavy.py")] and "torch" in result["errors"][str(dags / "heavy.py")]


def test_dags_parse_in_the_image_environment_with_zero_import_errors(parsed):
    assert parsed["errors"] == {}
    assert parsed["dags"] == sorted(p.stem for p in (REPO / "dags").glob("*.py") if not p.name.startswith("."))
    assert parsed["prefix"].startswith(str(Path.home() / ".cache")) or "airflow-image-venv" in parsed["prefix"]


def test_the_image_environment_is_the_light_one(parsed):
    """Nothing heavy is installed: the DAGs parse without torch, Feast, GX, Evidently, KFP, tritonclient."""
    assert parsed["heavy"] == []
    assert parsed["airflow"] == IMAGES["images"]["airflow"]["base"]["image"].split(":")[1].split("-")[0]


def test_dockerfile_builds_that_environment():
    text = (REPO / IMAGES["images"]["airflow"]["dockerfile"]).read_text()
    assert "COPY containers/locks/airflow.lock /tmp/airflow.lock" in text
    assert "--no-deps -r /tmp/airflow.lock" in text and "uv pip check" in text
    assert "COPY --chown=airflow:0 dags /opt/airflow/dags" in text
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags" in text
    assert "COPY --chown=airflow:0 plugins /opt/airflow/plugins" in text
    assert "AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins" in text
    assert "ENV PATH=/home/airflow/venv/bin:$PATH" in text


PLUGIN = r"""
import json
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
apps = [app for plugin in plugins for app in plugin.fastapi_apps]
from components.orchestration.report_pages import render_markdown
print(json.dumps({"plugins": [p.name for p in plugins], "errors": errors, "mounts": [a["url_prefix"] for a in apps],
                  "routes": sorted(r.path for a in apps for r in a["app"].routes),
                  "markdown": render_markdown("| a |\n|---|\n| 1 |\n")}))
"""


def test_the_report_plugin_loads_in_the_image_environment(tmp_path):
    """The cluster's API server mounts the report pages behind the stage tasks' links: the plugin, its web app
    and the Markdown renderer come from the image's lock alone (Evidently is not there: the pages serve a drift
    report drawn by `flightdeck monitor-report`, and say so when there is none)."""
    loaded = in_image_env(PLUGIN, [], tmp_path)
    assert "flightdeck_reports" in loaded["plugins"] and loaded["errors"] == {}
    assert loaded["mounts"] == ["/flightdeck"]
    assert {"/reports/evaluation/{eval_id}", "/reports/model-card/{eval_id}", "/reports/monitoring/{day}",
            "/reports/quarantine"} <= set(loaded["routes"])
    assert "<table>" in loaded["markdown"]


def test_the_airflow_chart_runs_the_image():
    values = unq(platform_resource("helm_release", "airflow")["values"][0])
    repository = IMAGES["images"]["airflow"]["repository"]
    assert f'repository = "${{var.image_registry}}/{repository}", tag = local.image_tag' in values
    assert "persistence = {enabled = false}" in values.replace("  ", " ") or "enabled = false" in values
    assert 'airflowVersion = "3.3.2"' in values
    assert '"flightdeck/airflow"' in str(module_locals(TF / "modules" / "environment")["images"])  # its ECR repository
    assert "pyproject.toml" in unq(platform_locals()["image_tag"])  # the version build_images.py tags
