"""Real monitoring servers for the tests: a Pushgateway, and a Prometheus that scrapes it and
evaluates infra/monitoring/alerts.yml (Debian packages prometheus and prometheus-pushgateway,
which scripts/bootstrap.sh installs). A missing binary fails the test, it does not skip it:
`make test` must really run these."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port, listening

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra/monitoring/alerts.yml"
# binary -> the Debian package that ships it
PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "prometheus-pushgateway": "prometheus-pushgateway"}


def required_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {PACKAGES.get(name, name)}). scripts/bootstrap.sh "
                    f"installs it when run as root (`make test` runs it); or `apt-get install {PACKAGES.get(name, name)}`",
                    pytrace=False)
    return path


def alert_rule(name: str) -> dict:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == name]
    assert len(rules) == 1, name
    return rules[0]


@contextlib.contextmanager
def pushgateway(workdir: Path):
    """A real Pushgateway on a free localhost port; yields its host:port."""
    binary = required_tool("prometheus-pushgateway")
    port = free_port()
    with listening([binary, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={workdir / 'pgw.data'}"],
                   port):
        yield f"127.0.0.1:{port}"


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        """An instant query: [{"metric": {labels}, "value": float}, ...]."""
        q = urllib.parse.urlencode({"query": expr})
        body = json.loads(urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10).read())
        assert body["status"] == "success", body
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict]:
        """Poll until `expr` returns something (a scrape and a rule evaluation take a second each)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.3)

    def firing(self, alertname: str) -> list[dict]:
        return self.query(f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')


@contextlib.contextmanager
def prometheus(workdir: Path, pushgateway_address: str):
    """A real Prometheus that scrapes the Pushgateway every second (honor_labels, as deployed) and
    evaluates alerts.yml every second; yields a Prometheus client."""
    binary = required_tool("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [pushgateway_address]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    with (workdir / "prometheus.log").open("wb") as log, listening(argv, port, stdout=log, stderr=subprocess.STDOUT):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prometheus at {url} not ready; log:\n{(workdir / 'prometheus.log').read_text()}")
            time.sleep(0.2)
        yield Prometheus(url)


def pushed_samples(address: str) -> dict[str, list]:
    """flightdeck_* samples on the Pushgateway's /metrics: name -> [Sample(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("flightdeck_"):
                out.setdefault(s.name, []).append(s)
    return out
