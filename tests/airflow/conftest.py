"""One Airflow home per test session: SQLite metadata DB, this repo's dags/, no examples.

Airflow reads its configuration when first imported, so the environment is set here, at
collection time, before any test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="fd-airflow-"))

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),  # the report pages behind the stage tasks' links
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
    # Retries stay on (they are under test) but wait a second, not a minute.
    "FLIGHTDECK_RETRY_DELAY_S": "1",
}
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session (a subprocess: same CLI an operator uses)."""
    if not (AIRFLOW_HOME / "airflow.db").exists():
        proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                              capture_output=True, text=True, env=os.environ.copy(), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    yield AIRFLOW_HOME


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
