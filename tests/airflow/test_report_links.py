"""Reports where users look (issue 18, item 5): the stage tasks' extra links in the Airflow UI and the
flightdeck plugin's pages behind them, served from the artifact store.

Everything goes through Airflow's real API server app (airflow.api_fastapi.app.create_app, with the plugin
loaded from plugins/ as `make airflow` loads it) and a real login: the extra links endpoint the UI calls,
then the page the link names. The reports come from the real stages: a batch_prediction run (dag.test,
local runtime) whose validate task refuses a bad landing file; a real training run evaluated by the evaluate
stage and registered by the register stage; a July day monitored by the monitor stage. The S3 profile serves
the same pages from a real S3 endpoint (moto). The kubernetes runtime's stage pods carry the same links.
"""

from __future__ import annotations

import html
import json
import re
import time

import pytest

from tests.airflow.conftest import AIRFLOW_HOME, DAGS

DAY = "2013-03-05"  # the batch_prediction day whose landing file has flights from an unknown airport
# validate covers the schedule days whose flights are predicted during DAY: its own and the next (a flight
# leaving after midnight is predicted lead hours before, on DAY), so the quarantine link spans both
NEXT = "2013-03-06"
MONITORED = "2013-07-14"
LINKED = {("continuous_training", "evaluate"): ["Evaluation report", "Model card"],
          ("continuous_training", "validate"): ["Quarantine report"],
          ("batch_prediction", "validate"): ["Quarantine report"],
          ("monitoring", "monitor"): ["Drift report"],
          ("continuous_training", "rollout_start"): ["Rollout report"],
          ("monitoring", "rollout_advance"): ["Rollout report"]}


@pytest.fixture(scope="module")
def api(airflow_db):
    """Airflow's API server app with its plugins, and a client logged in as the generated admin."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    password = json.loads((AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = client.post("/auth/token", json={"username": "admin", "password": password}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield client
    purge_cached_app()


def get_page(api, url: str):
    t0 = time.perf_counter()
    response = api.get(url)
    print(f"GET {url}: {response.status_code}, {len(response.content)} bytes in {time.perf_counter() - t0:.3f} s")
    return response


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


@pytest.fixture(scope="module")
def refused_run(airflow_db, tmp_path_factory):
    """batch_prediction for DAY with a landing file that validation refuses: validate fails, quarantines."""
    from components.orchestration.local import load_dags, run_dag
    from tests.airflow.test_dag_runs import bad_source

    home = tmp_path_factory.mktemp("refused-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        source = bad_source(home / "landing" / "bad", DAY, NEXT)
        dr, tis, seconds = run_dag(load_dags()["batch_prediction"], DAY, run_conf={"source": str(source), "day": DAY})
        print(f"batch_prediction {DAY}: {dr.state} in {seconds:.1f} s")
        assert tis["validate"].state == "failed" and tis["ingest"].state == "success"
        yield {"home": home, "run_id": dr.run_id}


def links_of(api, dag_id: str, run_id: str, task_id: str) -> dict:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links")
    assert response.status_code == 200, response.text
    return response.json()["extra_links"]


def test_the_refused_validate_task_links_to_its_quarantine_report(api, refused_run):
    run = refused_run["run_id"]
    links = links_of(api, "batch_prediction", run, "validate")
    assert links == {"Quarantine report": f"/flightdeck/reports/quarantine?start={DAY}&end={NEXT}&dag_id=batch_prediction"}
    assert links_of(api, "batch_prediction", run, "ingest") == {}  # tasks without a report have no link

    page = get_page(api, links["Quarantine report"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = text_of(page)
    assert f"<title>Quarantine report {DAY}..{NEXT}</title>" in page.text
    assert f"Verdict: REFUSED by validation: 1 batch(es) quarantined: schedule {DAY} (1 failed expectation(s))" in text
    # The batch's own report.md, rendered: its title, the failed expectation in a table, the sample values.
    assert f"<h1>Quarantined: schedule {DAY}</h1>" in page.text and "<table>" in page.text
    assert "expect_column_values_to_be_in_set" in text and "origin must be one of EWR, JFK, LGA" in text
    assert "40 of " in text and "XXX" in text
    # Built from the store's contents: no script may run in it.
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    # Airflow's login guards the pages like the rest of the API.
    assert api.get(links["Quarantine report"], headers={"Authorization": ""}).status_code == 401


def test_a_range_with_nothing_quarantined_is_a_404_naming_the_command(api, refused_run, monkeypatch):
    monkeypatch.setenv("FLIGHTDECK_HOME", str(refused_run["home"]))
    page = get_page(api, "/flightdeck/reports/quarantine?start=2013-03-06&end=2013-03-07")
    assert page.status_code == 404
    text = text_of(page)
    assert "no batch was quarantined for 2013-03-06..2013-03-07" in text
    assert "flightdeck validate --start 2013-03-06 --end 2013-03-07" in text
    assert get_page(api, "/flightdeck/reports/quarantine?start=2013-03-07&end=2013-03-06").status_code == 400


# -- evaluate: the evaluation report and the model card --------------------------------------------
@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """A real training run on two weeks (tests/model's window and settings), evaluated by the evaluate stage."""
    from components.contracts.stages import EvaluateParams, TrainParams
    from components.core.store import LocalStore
    from components.model.evaluate import evaluate
    from components.model.train import train
    from tests.model.conftest import TEST_TRAIN, WINDOW, build_training_set

    home = tmp_path_factory.mktemp("evaluation-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        store = LocalStore(home / "artifacts")
        build_training_set(store, *WINDOW)
        run = train(TrainParams(train_start=WINDOW[0], train_end=WINDOW[1], **TEST_TRAIN), store)
        result = evaluate(EvaluateParams(run_id=run["run_id"], model_name="delay_test", threads=1), store)
    return {"home": home, "store": store, "result": result}


def test_the_evaluation_report_shows_the_report_and_its_verdict(api, evaluation, monkeypatch):
    from components.orchestration.report_links import evaluation_url

    monkeypatch.setenv("FLIGHTDECK_HOME", str(evaluation["home"]))
    result = evaluation["result"]
    page = get_page(api, evaluation_url(result["eval_id"], "continuous_training"))
    assert page.status_code == 200
    text = text_of(page)
    assert f"<h1>Evaluation of training run <code>{result['run_id']}</code></h1>" in page.text
    verdict = "Verdict: BLESSED" if result["blessed"] else "Verdict: NOT BLESSED (" + "; ".join(result["failed"])
    assert verdict in text and ("Decision: BLESSED" if result["blessed"] else "Decision: NOT BLESSED") in text
    assert "The gate: paired bootstrap intervals" in text and "<table>" in page.text

    missing = get_page(api, evaluation_url("2013-01-01_2013-01-14_0000000000__00000000"))
    assert missing.status_code == 404
    assert "no evaluation 2013-01-01_2013-01-14_0000000000__00000000 is published" in text_of(missing)
    assert "flightdeck evaluate --run-id 2013-01-01_2013-01-14_0000000000" in text_of(missing)


def test_the_model_card_link_serves_the_registered_versions_card(api, evaluation, monkeypatch):
    from components.contracts.stages import RegisterParams
    from components.model.register import register
    from components.model.registry import Registry
    from components.orchestration.report_links import model_card_url

    monkeypatch.setenv("FLIGHTDECK_HOME", str(evaluation["home"]))
    eval_id, store = evaluation["result"]["eval_id"], evaluation["store"]
    url = model_card_url(eval_id, "delay_test", "continuous_training")
    before = get_page(api, url)
    assert before.status_code == 404
    assert f"evaluation {eval_id} is not registered in model delay_test, so it has no model card" in text_of(before)
    assert f"flightdeck register --evaluation {eval_id}" in text_of(before)

    version = register(RegisterParams(evaluation=eval_id, model_name="delay_test", promote=False), store)["version"]
    after = get_page(api, url)
    if "model_card.md" in Registry(store, "delay_test").get(version)["files"]:  # register writes the card
        assert after.status_code == 200 and f"Model card: delay_test version {version}" in after.text
    else:  # a version registered without a card says so
        assert after.status_code == 404
        assert f"version {version} of delay_test (evaluation {eval_id}) has no model_card.md" in text_of(after)

    # A version that holds a card (what register writes into a version): the card, rendered, with its verdict.
    cards = Registry(store, "delay_cards")
    card = f"# Model card: delay_cards\n\nTrained on {evaluation['result']['run_id']}.\n\n| metric | value |\n|---|---|\n| roc_auc | 0.7 |\n"
    number = cards.create_version({"model_card.md": card.encode()}, {"evaluation_id": eval_id, "blessed": True})
    page = get_page(api, model_card_url(eval_id, "delay_cards"))
    assert page.status_code == 200 and f"<title>Model card: delay_cards version {number}</title>" in page.text
    assert f"Verdict: version {number} of delay_cards, blessed, not serving" in text_of(page)
    assert "<h1>Model card: delay_cards</h1>" in page.text and "<td>roc_auc</td>" in page.text


def test_pages_read_the_s3_store_alike(api, evaluation, refused_run, s3_store):
    """The aws profile (s3_store sets it): the same artifacts, published to S3 with the store's API, same pages."""
    from components.contracts import layout
    from components.core.store import LocalStore
    from components.orchestration.report_links import evaluation_url, quarantine_url

    local_quarantine = LocalStore(refused_run["home"] / "artifacts")
    copies = [(evaluation["store"], layout.eval_run_prefix(evaluation["result"]["eval_id"]))]
    copies += [(local_quarantine, key.rsplit("/", 1)[0]) for key in local_quarantine.list("quarantine/")
               if key.endswith("/_PUBLISHED.json")]
    for source, prefix in copies:
        record = source.published(prefix)
        s3_store.publish(prefix, {name: source.read_published(prefix, name) for name in record["files"]},
                         meta=record["meta"])
    page = get_page(api, evaluation_url(evaluation["result"]["eval_id"]))
    assert page.status_code == 200 and "Evaluation of training run" in page.text
    assert f"from {s3_store.uri(layout.eval_run_prefix(evaluation['result']['eval_id']))}" in text_of(page)
    assert s3_store.uri().startswith("s3://")
    page = get_page(api, quarantine_url(DAY, DAY))
    assert page.status_code == 200 and f"Verdict: REFUSED by validation: 1 batch(es) quarantined: schedule {DAY}" \
        in text_of(page)


# -- monitor: Evidently's report, drawn on demand ------------------------------------------------------
@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """July 8-14 scored by a January-March model with labels (tests/monitoring's way), July 14 monitored."""
    import pandas as pd

    from components.contracts.stages import MonitorParams
    from components.core.store import LocalStore
    from components.monitoring import calibration as mb
    from components.monitoring.monitor import monitor

    home = tmp_path_factory.mktemp("monitored-home")
    store = LocalStore(home / "artifacts")
    frame = mb.year_frame()
    scorer = mb.Scorer(mb.days(frame, "2013-01-01", "2013-03-31"))
    version = mb.register_reference_model(store, mb.reference_sample(frame, "2013-01-01", "2013-03-31", n=5000),
                                          scorer, ("2013-01-01", "2013-03-31"), holdout_auc=0.70)
    for day in pd.date_range("2013-07-08", MONITORED):
        mb.publish_predictions(store, frame, str(day.date()), version, scorer)
        mb.publish_labels(store, frame, str(day.date()))
    return {"home": home, "store": store, "result": monitor(MonitorParams(date=MONITORED, push=False), store)}


def test_the_drift_report_is_drawn_on_demand_then_served(api, monitored, monkeypatch):
    from components.contracts import layout, schema
    from components.orchestration.report_links import monitoring_url

    monkeypatch.setenv("FLIGHTDECK_HOME", str(monitored["home"]))
    store, result = monitored["store"], monitored["result"]
    target = layout.monitoring_report_prefix(schema.parse_day(MONITORED))
    assert store.published(target) is None  # the monitor does not draw it
    t0 = time.perf_counter()
    page = get_page(api, monitoring_url(MONITORED, "monitoring"))
    drawn_s = time.perf_counter() - t0
    assert page.status_code == 200
    text = text_of(page)
    assert f"flightdeck monitoring: {MONITORED} (model flight_delay v1)" in text
    assert f"<b>Retrain</b>: {result['retrain']} &mdash;" in page.text  # the verdict
    assert f"<b>Drift</b>: ok, share {result['drift_share']:.2f}" in page.text
    assert "Drift in column" in page.text  # Evidently's widgets
    assert page.headers["content-security-policy"] == "sandbox allow-scripts"  # its scripts, in an opaque origin
    drawn = store.published(target)  # drawn by the CLI's function, and published for next time
    assert drawn is not None and drawn["meta"]["monitoring_version"] == \
        store.published(layout.monitoring_prefix(schema.parse_day(MONITORED)))["version"]

    t0 = time.perf_counter()
    again = get_page(api, monitoring_url(MONITORED))
    print(f"drift report: drawn in {drawn_s:.2f} s, then served in {time.perf_counter() - t0:.3f} s")
    assert again.content == page.content and store.published(target)["version"] == drawn["version"]

    missing = get_page(api, monitoring_url("2013-07-20"))
    assert missing.status_code == 404
    assert "no monitoring results are published for 2013-07-20" in text_of(missing)
    assert "flightdeck monitor --date 2013-07-20" in text_of(missing)
    assert get_page(api, monitoring_url("2013-07-32")).status_code == 400


# -- the links on the tasks, in both runtimes, and the plugin -------------------------------------------
def test_the_rollout_report_shows_each_difference_with_its_interval(api, tmp_path, monkeypatch):
    """A rollout's report as rollout_advance writes it (write_report, from a real decision of the guardrails
    on a worse challenger's evidence), through the plugin: verdict, the paired differences with CI and n."""
    from components.core.settings import load_settings
    from components.core.store import open_store
    from components.orchestration.report_links import rollout_url
    from components.serving import rollout as R
    from components.serving.rollout_report import write_report
    from tests.serving.test_rollout_decision import evidence

    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    decision = R.decide(evidence(champ_noise=0.3, chall_noise=1.5, n_labelled=600), days_at_step=1)
    assert decision.action == R.ROLLBACK
    state = {"model": "flight_delay", "champion": 3, "challenger": 4, "status": "rolled_back", "step": 0,
             "started_at": "2013-04-01T00:00:00+00:00", "history": [
                 {"day": "2013-04-02", "step": "shadow", "action": "rollback", "reason": decision.reason,
                  "checks": decision.to_json()["checks"], "decided_at": "2013-04-02T06:00:00+00:00"}]}
    write_report(open_store(), load_settings(), state)
    page = get_page(api, rollout_url(3, 4, "monitoring"))
    assert page.status_code == 200, page.text
    text = text_of(page)
    assert "Verdict: ROLLED BACK at step shadow (rollback: outcomes: challenger significantly worse" in text
    assert "| log_loss |" not in text and "<table>" in page.text  # rendered, not raw markdown
    outcome = next(c for c in decision.checks if c.name == "outcomes").numbers
    assert f"{outcome['log_loss']['diff']:+.4f}" in text and str(outcome["n"]) in text and "95% CI" in text
    missing = get_page(api, rollout_url(3, 5))
    assert missing.status_code == 404 and "flightdeck rollout start" in text_of(missing)
    assert get_page(api, rollout_url("x", 5)).status_code == 400


def _links_by_task(dagbag) -> dict:
    return {(dag.dag_id, task.task_id): sorted(link.name for link in task.operator_extra_links)
            for dag in dagbag.dags.values() for task in dag.tasks if task.operator_extra_links}


def _serialized_links(dagbag) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    return {(dag.dag_id, t["__var"]["task_id"]): sorted(t["__var"]["_operator_extra_links"])
            for dag in dagbag.dags.values() for t in DagSerialization.serialize_dag(dag)["tasks"]
            if t["__var"].get("_operator_extra_links")}


def test_the_stage_tasks_carry_the_links_in_the_local_runtime():
    from airflow.dag_processing.dagbag import DagBag

    from components.orchestration.report_links import stage_params
    from components.orchestration.runtime import stage_task

    bag = DagBag(dag_folder=str(DAGS))
    assert _links_by_task(bag) == LINKED and _serialized_links(bag) == LINKED  # what the API server reads
    task = stage_task("validate", start="2013-03-01", end="2013-03-05")
    assert type(task).__name__ == "PythonOperator" and stage_params(task) == {"start": "2013-03-01", "end": "2013-03-05"}


def test_the_stage_pods_carry_the_links_in_the_kubernetes_runtime(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from components.orchestration.report_links import stage_params
    from components.orchestration.runtime import stage_task

    for name, value in {"FLIGHTDECK_RUNTIME": "kubernetes", "FLIGHTDECK_PROFILE": "aws",
                        "FLIGHTDECK_S3_BUCKET": "flightdeck-artifacts"}.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {type(bag.dags[d].task_dict[t]).__name__ for d, t in LINKED} == {"StagePodOperator"}
    assert _links_by_task(bag) == LINKED and _serialized_links(bag) == LINKED
    # The pod's CLI arguments give the link its parameters.
    task = stage_task("validate", start="2013-03-01", end="2013-03-05")
    assert task.arguments == ["validate", "--start", "2013-03-01", "--end", "2013-03-05"]
    assert stage_params(task) == {"start": "2013-03-01", "end": "2013-03-05"}
    assert stage_params(stage_task("evaluate", run_id="r1", model_name="m")) == {"run_id": "r1", "model_name": "m"}


PLUGIN_PROBE = r"""
import json, sys
import airflow.sdk
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
print(json.dumps({"plugins": [p.name for p in plugins], "errors": errors,
                  "heavy": [m for m in ("fastapi", "pandas", "markdown_it", "components.core.store") if m in sys.modules]}))
"""


def test_the_plugin_loads_light_from_the_plugins_folder():
    """Every Airflow process loads plugins: the plugin file must not pull the web app or the store in."""
    import subprocess
    import sys

    from tests.airflow.conftest import REPO

    proc = subprocess.run([sys.executable, "-c", PLUGIN_PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"plugins": ["flightdeck_reports"], "errors": {}, "heavy": []}
