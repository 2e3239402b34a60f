"""The reports behind the stage tasks' extra links, in the real browser, on the Airflow `make airflow` serves.

scripts/airflow_standalone.sh starts Airflow (test_ui_browser.py's module fixture, with the flightdeck plugin
from plugins/); a batch_prediction run for a 2013 day whose landing file has flights from an unknown airport
is triggered through the REST API and run by the real scheduler: validate refuses the day and quarantines it
(the cheapest real run with a report: ingest and validate of one day). Headless Chromium logs in, opens the
validate task instance, clicks its "Quarantine report" extra link and sees the report's title and verdict.
Screenshots go to test-artifacts/airflow-ui/report-links/.
"""

from __future__ import annotations

import json
import time
import urllib.request
from urllib.parse import quote

import pytest

from tests.airflow import test_ui_browser as ui_browser
from tests.airflow.conftest import REPO
from tests.airflow.test_dag_runs import bad_source

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

DAY = "2013-03-05"
# validate covers the schedule days whose flights are predicted during DAY: its own and the next (a flight
# leaving after midnight is predicted lead hours before, on DAY), so the quarantine link spans both
NEXT = "2013-03-06"
SHOTS = REPO / "test-artifacts" / "airflow-ui" / "report-links"

# test_ui_browser.py's fixtures: `make airflow`'s script in a fresh home (one start for this module), Chromium.
airflow_ui, chromium_installed, chrome = ui_browser.airflow_ui, ui_browser.chromium_installed, ui_browser.browser


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    """The landing folder `make airflow`'s stages may read a source from (set before Airflow starts)."""
    folder = tmp_path_factory.mktemp("landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_LANDING", str(folder))
        yield folder


@pytest.fixture(scope="module")
def ui(landing, request):
    return request.getfixturevalue("airflow_ui")


def call(ui, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(ui["base"] + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {ui['token']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def refused_run(ui, landing):
    """batch_prediction for DAY from the bad landing file, run by the scheduler until validate has failed."""
    source = bad_source(landing / "bad", DAY, NEXT)
    call(ui, "PATCH", "/api/v2/dags/batch_prediction", {"is_paused": False})
    t0 = time.monotonic()
    run = call(ui, "POST", "/api/v2/dags/batch_prediction/dagRuns",
               {"logical_date": f"{DAY}T04:00:00Z", "conf": {"source": str(source), "day": DAY}})["dag_run_id"]
    path = f"/api/v2/dags/batch_prediction/dagRuns/{quote(run, safe='')}/taskInstances/validate"
    state = None
    while time.monotonic() - t0 < 420 and state not in ("failed", "success", "upstream_failed"):
        time.sleep(2)
        state = call(ui, "GET", path)["state"]
    print(f"batch_prediction {DAY} under the scheduler: validate {state} after {time.monotonic() - t0:.0f} s")
    assert state == "failed", f"validate ended {state}; see the standalone log"
    links = call(ui, "GET", path + "/links")["extra_links"]  # what the UI asks for
    assert links == {"Quarantine report": f"/flightdeck/reports/quarantine?start={DAY}&end={NEXT}&dag_id=batch_prediction"}
    return run


def login(driver, ui, wait):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(ui["base"] + "/dags")
    password = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[type='password']")))
    driver.find_element(By.CSS_SELECTOR, "input[name='username'], input[type='text']").send_keys("admin")
    password.send_keys(ui["password"], Keys.ENTER)
    wait.until(lambda d: "/login" not in d.current_url)


def test_click_the_quarantine_report_link_of_the_refused_validate_task(ui, refused_run, chrome):
    browser = chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 90)
    login(browser, ui, wait)
    t0 = time.monotonic()
    browser.get(f"{ui['base']}/dags/batch_prediction/runs/{quote(refused_run, safe='')}/tasks/validate")
    # The task instance's Details tab lists its extra links.
    wait.until(ec.element_to_be_clickable((By.XPATH, "//*[self::a or self::button][normalize-space()='Details']"))).click()
    try:
        link = wait.until(ec.element_to_be_clickable((By.XPATH, "//a[normalize-space()='Quarantine report']")))
    finally:
        browser.save_screenshot(str(SHOTS / "1-validate-task.png"))
    print(f"task instance page with the link in {time.monotonic() - t0:.1f} s")
    assert link.get_attribute("href") == (f"{ui['base']}/flightdeck/reports/quarantine?start={DAY}&end={NEXT}"
                                          "&dag_id=batch_prediction")

    t0 = time.monotonic()
    link.click()
    wait.until(lambda d: "/flightdeck/reports/quarantine" in d.current_url and d.title)
    body = wait.until(ec.visibility_of_element_located((By.TAG_NAME, "body"))).text
    print(f"report opened in {time.monotonic() - t0:.1f} s")
    browser.save_screenshot(str(SHOTS / "2-quarantine-report.png"))
    assert browser.title == f"Quarantine report {DAY}..{NEXT}"
    assert f"Verdict: REFUSED by validation: 1 batch(es) quarantined: schedule {DAY}" in body
    assert f"Quarantined: schedule {DAY}" in body and "expect_column_values_to_be_in_set" in body
    assert "origin must be one of EWR, JFK, LGA" in body
