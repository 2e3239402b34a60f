"""`flightdeck kfp submit` against a stand-in for the Kubeflow Pipelines API: a small HTTP server on
localhost answering the v2beta1 REST endpoints that kfp.Client 2.16 calls for this flow (the paths of
kfp_server_api), recording every request. The real CLI runs in a subprocess with the real kfp
client; the checks read what reached the API: the uploaded IR, the names, the service account, the
run's parameters, and what a second submit of the same code does.

The server keeps KFP's rules that matter here: pipeline names are unique, a pipeline's version names
are unique within it (a second upload of one name is refused with 409, as the API server's
unique index on (PipelineId, Name) does), and uploading a pipeline creates its default version."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from components import code_version
from pipelines.cli import COMPILED_DIR

REPO = Path(__file__).resolve().parents[2]
API = "/apis/v2beta1"


class FakeKfpApi:
    """The KFP API server's state and the requests it received ({method, path, query, json, files})."""

    def __init__(self):
        self.requests: list[dict] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.lock = threading.Lock()

    def calls(self, since: int = 0) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests[since:]]

    def handle(self, method: str, path: str, query: dict, body: bytes, content_type: str):
        record = {"method": method, "path": path, "query": query, "json": None, "files": {}}
        if content_type.startswith("application/json") and body:
            record["json"] = json.loads(body)
        elif content_type.startswith("multipart/form-data"):
            record["files"] = _multipart(body, content_type)
        with self.lock:
            self.requests.append(record)
            return self._route(method, path, query, record)

    def _route(self, method, path, query, record):
        parts = path.removeprefix(API).strip("/").split("/")
        if method == "GET" and parts == ["healthz"]:
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if method == "GET" and parts == ["pipelines"]:
            return 200, _listing("pipelines", self.pipelines.values(), query)
        if method == "POST" and parts == ["pipelines", "upload"]:
            name = query["name"]
            if any(p["display_name"] == name for p in self.pipelines.values()):
                return 409, _error(f"Failed to create a new pipeline. The name {name} already exist.", 6)
            pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": name, "name": name,
                        "namespace": query.get("namespace", "")}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._add_version(pipeline["pipeline_id"], name, record)  # KFP's default version
            return 200, pipeline
        if method == "POST" and parts == ["pipelines", "upload_version"]:
            pipeline_id, name = query["pipelineid"], query["name"]
            if pipeline_id not in self.pipelines:
                return 404, _error(f"Pipeline {pipeline_id} not found.", 5)
            if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in self.versions.values()):
                return 409, _error(f"Failed to create a new pipeline version. The name {name} already exist.", 6)
            return 200, self._add_version(pipeline_id, name, record)
        if method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions":
            own = [v for v in self.versions.values() if v["pipeline_id"] == parts[1]]
            return 200, _listing("pipeline_versions", own, query)
        if method == "GET" and parts == ["experiments"]:
            own = [e for e in self.experiments.values() if e["namespace"] == query.get("namespace", "")]
            return 200, _listing("experiments", own, query)
        if method == "POST" and parts == ["experiments"]:
            experiment = {**record["json"], "experiment_id": str(uuid.uuid4())}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if method == "POST" and parts == ["runs"]:
            ref = record["json"]["pipeline_version_reference"]
            version = self.versions.get(ref["pipeline_version_id"])
            if version is None or version["pipeline_id"] != ref["pipeline_id"]:
                return 404, _error(f"Pipeline version {ref} not found.", 5)
            if record["json"]["experiment_id"] not in self.experiments:
                return 404, _error("Experiment not found.", 5)
            run = {**record["json"], "run_id": str(uuid.uuid4()), "state": "PENDING"}
            self.runs[run["run_id"]] = run
            return 200, run
        return 404, _error(f"the stand-in API does not serve {method} {path}", 5)

    def _add_version(self, pipeline_id: str, name: str, record: dict) -> dict:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": name,
                   "name": name, "package": record["files"]["uploadfile"]["data"]}
        self.versions[version["pipeline_version_id"]] = version
        return {k: v for k, v in version.items() if k != "package"}


def _error(message: str, code: int) -> dict:
    return {"error_message": message, "code": code, "message": message, "details": []}


def _listing(key: str, items, query: dict) -> dict:
    """KFP's list response: items matching the filter's EQUALS predicates; an empty list is omitted."""
    predicates = json.loads(query["filter"])["predicates"] if query.get("filter") else []
    for p in predicates:
        assert p["operation"] in (1, "EQUALS"), p
    matching = [{k: v for k, v in item.items() if k != "package"} for item in items
                if all(item.get(p["key"]) == p.get("stringValue", p.get("string_value")) for p in predicates)]
    return {key: matching, "total_size": len(matching)} if matching else {}


def _multipart(body: bytes, content_type: str) -> dict:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): {"filename": part.get_filename(),
                                                                 "data": part.get_payload(decode=True)}
            for part in message.iter_parts()}


@pytest.fixture
def kfp_api():
    api = FakeKfpApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = api.handle(self.command, url.path, query, body, self.headers.get("Content-Type", ""))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _serve

        def log_message(self, *args):  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _submit(api: FakeKfpApi, tmp_path: Path, *args: str, env: dict | None = None) -> dict:
    """The real CLI in a subprocess: `flightdeck kfp submit training --host <stand-in> ...`."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("FLIGHTDECK_IMAGE_REGISTRY", "FLIGHTDECK_IMAGE_TAG")}
    # HOME: no ~/.config/kfp/context.json of the user's; TMPDIR: where the compiled IR goes.
    base.update({"HOME": str(tmp_path / "home"), "TMPDIR": str(scratch), "FLIGHTDECK_HOME": str(tmp_path / "fd"),
                 "FLIGHTDECK_PROFILE": "local", **(env or {})})
    cli = Path(sys.executable).with_name("flightdeck")  # the venv's console script
    before = set(Path("/tmp").glob("flightdeck-kfp-*"))  # where submit used to compile, and leave, the IR
    out = subprocess.run([str(cli), "kfp", "submit", "training", "--host", api.host, *args], cwd=REPO, env=base,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert list(scratch.iterdir()) == [], "submit left its compiled IR behind"
    assert set(Path("/tmp").glob("flightdeck-kfp-*")) <= before, "submit left its compiled IR in /tmp"
    return json.loads(out.stdout)  # stdout is the JSON result alone (kfp's links go to stderr)


def test_submit_uploads_the_ir_and_starts_a_run_named_after_the_code_version(kfp_api, tmp_path):
    version = code_version()
    git_describe = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=REPO,
                                  capture_output=True, text=True).stdout.strip()
    assert git_describe and git_describe in version

    first = _submit(kfp_api, tmp_path, "--arg", "start=2013-01-01", "--arg", "max_epochs=4")
    assert kfp_api.calls() == [
        ("GET", f"{API}/healthz"),                 # kfp.Client(): multi-user or not
        ("GET", f"{API}/pipelines"),               # get_pipeline_id: list filtered by display_name
        ("POST", f"{API}/pipelines/upload"),       # not there yet: upload it
        ("GET", f"{API}/pipelines/{first['pipeline_id']}/versions"),  # this code's version there?
        ("POST", f"{API}/pipelines/upload_version"),
        ("GET", f"{API}/experiments"),             # create_experiment looks it up by name first
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/runs"),
    ]
    requests = {(r["method"], r["path"]): r for r in kfp_api.requests}
    find = requests[("GET", f"{API}/pipelines")]
    assert json.loads(find["query"]["filter"])["predicates"] == [
        {"operation": 1, "key": "display_name", "stringValue": "flightdeck-training"}]

    # The uploaded pipeline is the committed training IR, byte for byte (the compile test keeps it current).
    committed = (COMPILED_DIR / "training.yaml").read_bytes()
    upload = requests[("POST", f"{API}/pipelines/upload")]
    assert upload["query"]["name"] == "flightdeck-training"
    assert upload["files"]["uploadfile"]["filename"] == "training.yaml"
    assert upload["files"]["uploadfile"]["data"] == committed
    upload_version = requests[("POST", f"{API}/pipelines/upload_version")]
    assert upload_version["files"]["uploadfile"]["data"] == committed
    assert upload_version["query"]["pipelineid"] == first["pipeline_id"]
    version_name = upload_version["query"]["name"]
    assert version_name == f"flightdeck-training-{version}-ir-{hashlib.sha256(committed).hexdigest()[:8]}"
    assert first["pipeline_version"] == version_name

    experiment = requests[("POST", f"{API}/experiments")]["json"]
    assert experiment == {"display_name": "flightdeck", "namespace": "kubeflow"}

    run = requests[("POST", f"{API}/runs")]["json"]
    assert run["display_name"] == first["run_name"]
    assert run["display_name"].startswith(f"flightdeck-training-{version}-")
    assert run["service_account"] == "flightdeck-pipelines"
    assert run["runtime_config"] == {"parameters": {"start": "2013-01-01", "max_epochs": 4}}
    assert run["pipeline_version_reference"] == {"pipeline_id": first["pipeline_id"],
                                                 "pipeline_version_id": first["pipeline_version_id"]}
    assert run["experiment_id"] in kfp_api.experiments
    # Caching: kfp 2.16 sends no override for a run of a pipeline version (enable_caching applies only to
    # a package), and no spec; every task of the IR it runs has caching off.
    assert set(run) == {"display_name", "experiment_id", "pipeline_version_reference", "runtime_config",
                        "service_account"}
    spec, _ = yaml.safe_load_all(committed)
    tasks = dict(spec["root"]["dag"]["tasks"])
    assert {"ingest", "train", "rollout-start"} <= set(tasks)
    assert all(task["cachingOptions"].get("enableCache", False) is False for task in tasks.values()), tasks

    # A second submit of the same code: the pipeline is found by name (get_pipeline_id), the version of
    # this code is found in it and reused (KFP would refuse to upload it again), the experiment too;
    # only a run is created, with its own parameters.
    mark = len(kfp_api.requests)
    second = _submit(kfp_api, tmp_path, "--arg", "start=2013-04-01", "--arg", "end=2013-04-30")
    assert kfp_api.calls(mark) == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/pipelines"),
        ("GET", f"{API}/pipelines/{first['pipeline_id']}/versions"),
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/runs"),
    ]
    assert (second["pipeline_id"], second["pipeline_version_id"], second["pipeline_version"]) == \
        (first["pipeline_id"], first["pipeline_version_id"], first["pipeline_version"])
    assert second["run_id"] != first["run_id"]
    rerun = kfp_api.requests[-1]["json"]
    assert rerun["runtime_config"] == {"parameters": {"start": "2013-04-01", "end": "2013-04-30"}}
    assert rerun["experiment_id"] == run["experiment_id"]
    assert len(kfp_api.pipelines) == 1 and len(kfp_api.experiments) == 1 and len(kfp_api.runs) == 2

    # Same code version, other IR (other images): a version of its own in the same pipeline.
    mark = len(kfp_api.requests)
    third = _submit(kfp_api, tmp_path, "--arg", "start=2013-01-01", env={"FLIGHTDECK_IMAGE_TAG": "other-tag"})
    assert ("POST", f"{API}/pipelines/upload_version") in kfp_api.calls(mark)
    assert ("POST", f"{API}/pipelines/upload") not in kfp_api.calls(mark)
    assert third["pipeline_id"] == first["pipeline_id"]
    assert third["pipeline_version"].startswith(f"flightdeck-training-{version}-ir-")
    assert third["pipeline_version"] != first["pipeline_version"]
    (uploaded,) = [r["files"]["uploadfile"]["data"] for r in kfp_api.requests[mark:]
                   if r["path"] == f"{API}/pipelines/upload_version"]
    assert b"other-tag" in uploaded and b"other-tag" not in committed
