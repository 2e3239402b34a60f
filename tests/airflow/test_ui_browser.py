"""Browser test of the Airflow UI: api-server + dag-processor on free ports in a fresh
AIRFLOW_HOME; headless Chromium (selenium + the Debian chromium-driver) logs in with the
SimpleAuthManager password Airflow generated, and finds the three DAGs with no import errors.
Screenshots go to test-artifacts/airflow-ui/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.airflow.conftest import AIRFLOW_ENV, DAGS, REPO
from tests.conftest import free_port, wait_for_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DAG_IDS = ("continuous_training", "batch_prediction", "monitoring")
SHOTS = REPO / "test-artifacts" / "airflow-ui"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="needs the Debian chromium and chromium-driver (scripts/bootstrap.sh)")


def api(base: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-ui-home")
    port = free_port()
    env = {**os.environ, **AIRFLOW_ENV,
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log = open(home / "servers.log", "w")
    procs = [subprocess.Popen([airflow, cmd], env=env, stdout=log, stderr=subprocess.STDOUT)
             for cmd in ("api-server", "dag-processor")]
    try:
        wait_for_port(port, timeout=180, proc=procs[0])
        base = f"http://127.0.0.1:{port}"
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        token = api(base, "/auth/token", body={"username": "admin", "password": passwords["admin"]})["access_token"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the dag-processor has parsed the folder
            found = {d["dag_id"] for d in api(base, "/api/v2/dags", token)["dags"]}
            if set(DAG_IDS) <= found:
                break
            time.sleep(2)
        yield {"base": base, "password": passwords["admin"], "token": token}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
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


def test_login_and_find_the_dags(airflow_ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    wait = WebDriverWait(browser, 90)
    browser.get(airflow_ui["base"] + "/dags")
    password = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[type='password']")))
    user = browser.find_element(By.CSS_SELECTOR, "input[name='username'], input[type='text']")
    browser.save_screenshot(str(SHOTS / "1-login.png"))
    user.send_keys("admin")
    password.send_keys(airflow_ui["password"], Keys.ENTER)
    wait.until(lambda d: "/login" not in d.current_url)
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
