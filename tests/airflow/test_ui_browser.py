"""Browser test of the Airflow UI as `make airflow` serves it: scripts/airflow_standalone.sh (airflow
standalone: api-server, scheduler, dag-processor, triggerer) on a free port in a fresh AIRFLOW_HOME;
headless Chromium (selenium + the Debian chromium-driver) logs in with the login the script prints,
and finds the three DAGs with no import errors. Screenshots go to test-artifacts/airflow-ui/.

The data's clock (docs/AIRFLOW.md), through the REST API the UI uses: the DAGs start paused, the
scheduler has no next run for them (their schedules end with the data's last day), no run exists until
one is triggered, and a 2013 day triggered as the README says (logical date, unpause on trigger) runs
green, through the real stages, landing nothing in quarantine; unpausing makes no run for today."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.airflow.conftest import REPO
from tests.conftest import free_port

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DAG_IDS = ("continuous_training", "batch_prediction", "monitoring")
SHOTS = REPO / "test-artifacts" / "airflow-ui"



@pytest.fixture(scope="module", autouse=True)
def chromium_installed():
    # A missing browser fails the test (scripts/bootstrap.sh installs it), it is never silently skipped.
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser test needs the Debian packages chromium and chromium-driver "
                    "(scripts/bootstrap.sh installs them: apt-get install chromium chromium-driver)")


def api(base: str, path: str, token: str | None = None, body: dict | None = None, method: str | None = None) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None, method=method,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    """`make airflow`'s script, as a newcomer runs it; yields the URL, the printed password and an API token."""
    home = tmp_path_factory.mktemp("airflow-ui-home")
    port = free_port()
    # The session's Airflow settings (tests/airflow/conftest.py) must not leak into the newcomer's setup.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"FLIGHTDECK_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW_PORT": str(port),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"})
    log = open(home / "make-airflow.out", "w+")
    # Its own session: teardown stops the script and every Airflow process it started.
    proc = subprocess.Popen([str(REPO / "scripts" / "airflow_standalone.sh")], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, printed = time.monotonic() + 300, ""
        while "login:" not in printed:
            assert proc.poll() is None, f"make airflow exited with {proc.returncode}: {printed[-3000:]}"
            assert time.monotonic() < deadline, f"make airflow printed no login within 300 s: {printed[-3000:]}"
            time.sleep(1)
            printed = (home / "make-airflow.out").read_text()
        url = re.search(r"Airflow UI:\s+(\S+)", printed).group(1)
        password = re.search(r"login:\s+admin / (\S+)", printed).group(1)
        assert url == f"http://localhost:{port}", printed
        base = f"http://127.0.0.1:{port}"
        token = api(base, "/auth/token", body={"username": "admin", "password": password})["access_token"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the dag-processor has parsed the folder
            found = {d["dag_id"] for d in api(base, "/api/v2/dags", token)["dags"]}
            if set(DAG_IDS) <= found:
                break
            time.sleep(2)
        yield {"base": base, "password": password, "token": token, "printed": printed, "home": home}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def login(browser, airflow_ui, shot: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(airflow_ui["base"] + "/dags")
    password = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[type='password']")))
    user = browser.find_element(By.CSS_SELECTOR, "input[name='username'], input[type='text']")
    if shot:
        browser.save_screenshot(str(SHOTS / shot))
    user.send_keys("admin")
    password.send_keys(airflow_ui["password"], Keys.ENTER)
    wait.until(lambda d: "/login" not in d.current_url)
    return wait


def test_login_and_find_the_dags(airflow_ui, browser):
    from selenium.webdriver.common.by import By

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    wait = login(browser, airflow_ui, "1-login.png")
    browser.get(airflow_ui["base"] + "/dags")
    wait.until(lambda d: all(dag_id in d.find_element(By.TAG_NAME, "body").text for dag_id in DAG_IDS))
    browser.save_screenshot(str(SHOTS / "2-dags.png"))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Import Error" not in page, page[:2000]
    # The same through the REST API the UI uses: no import errors, three DAGs.
    assert api(airflow_ui["base"], "/api/v2/importErrors", airflow_ui["token"])["total_entries"] == 0
    browser.get(airflow_ui["base"] + "/dags/continuous_training")
    wait.until(lambda d: "continuous_training" in d.find_element(By.TAG_NAME, "body").text)
    time.sleep(2)  # let the graph render before the screenshot
    browser.save_screenshot(str(SHOTS / "3-continuous-training.png"))
    assert (SHOTS / "2-dags.png").stat().st_size > 10_000


# -- the data's clock ------------------------------------------------------------------------------
TRAINING = "continuous_training"
# A 2013 day as the README says to run one. A one-week window and an impossible calibration gate keep it
# short and end it at challenger_rejected (a green run: no Triton is needed to deploy).
TRIGGER = {"logical_date": "2013-03-01T00:00:00Z", "conf": {"window_days": 7, "max_ece": 0.0}}
RUN_TIMEOUT_S = 900


def test_the_ui_lives_on_the_data_clock(airflow_ui, browser):
    from selenium.webdriver.common.by import By

    base, token = airflow_ui["base"], airflow_ui["token"]
    assert "2013" in airflow_ui["printed"] and "logical date" in airflow_ui["printed"]  # how to run a day
    for dag_id in DAG_IDS:
        dag = api(base, f"/api/v2/dags/{dag_id}", token)
        assert dag["is_paused"] is True, dag_id  # paused at creation
        if dag_id != "monitoring":  # (scheduled on an asset only)
            # The schedule ended with the data's last day: the scheduler has nothing to start, now or on unpause.
            assert dag["next_dagrun_run_after"] is None and dag["next_dagrun_logical_date"] is None, dag
    assert api(base, "/api/v2/dags/~/dagRuns", token)["total_entries"] == 0  # no run before we trigger

    run = api(base, f"/api/v2/dags/{TRAINING}/dagRuns", token, body=TRIGGER)
    for dag_id in (TRAINING, "batch_prediction"):  # as the trigger form's "Unpause ... on trigger" does
        assert api(base, f"/api/v2/dags/{dag_id}", token, body={"is_paused": False}, method="PATCH")["is_paused"] is False
    path = f"/api/v2/dags/{TRAINING}/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (state := api(base, path, token)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the triggered run is still {state} after {RUN_TIMEOUT_S} s"
        time.sleep(5)
    tis = {t["task_id"]: t["state"] for t in api(base, f"{path}/taskInstances", token)["task_instances"]}
    assert state == "success", tis
    assert tis["challenger_rejected"] == "success" and tis["register"] == "skipped", tis

    # Only the triggered run exists: unpausing started no run for today's date (batch_prediction has been
    # unpaused the whole time the training ran).
    runs = api(base, "/api/v2/dags/~/dagRuns", token)
    assert [(r["dag_id"], r["dag_run_id"]) for r in runs["dag_runs"]] == [(TRAINING, run["dag_run_id"])], runs
    artifacts = airflow_ui["home"] / "artifacts"
    assert sorted(p.name for p in (artifacts / "raw" / "schedule").iterdir()) == \
        [f"date=2013-02-{d}" for d in range(22, 29)]  # the window's days, nothing else
    assert not (artifacts / "quarantine").exists() or not any((artifacts / "quarantine").rglob("*"))

    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = login(browser, airflow_ui)
    browser.get(f"{base}/dags/{TRAINING}")
    wait.until(lambda d: TRAINING in d.find_element(By.TAG_NAME, "body").text)
    time.sleep(2)  # let the grid render before the screenshot
    browser.save_screenshot(str(SHOTS / "4-a-2013-day-run.png"))
