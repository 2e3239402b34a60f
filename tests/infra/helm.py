"""The real `helm` (from .venv-tools, see scripts/bootstrap.sh, which also puts kubectl 1.33 with
kustomize there) for the offline checks: `helm lint` and `helm template` of the charts in infra/k8s
with the values each environment sets. No cluster is contacted (`helm template` without --validate)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".venv-tools" / "bin"
HELM = TOOLS_BIN / "helm"
SOURCE = re.compile(r"^# Source: [^/]+/templates/(?P<name>\S+)$", re.M)


class HelmError(RuntimeError):
    """helm refused the chart or the values (the message is the tool's own)."""


def _tool(path: Path) -> str:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run scripts/bootstrap.sh (it extracts helm and kubectl into .venv-tools)")
    return str(path)


def nested(overrides: dict[str, object] | None) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}: the dotted overrides the tests use, as a values file."""
    values: dict = {}
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def _run(args: list[str]) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise HelmError(f"{' '.join(args[:2])} exited {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def _with_values(args: list[str], values: dict | None, files: dict[str, Path] | None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(values or {}))
        extra = ["--values", str(values_file)]
        for key, path in (files or {}).items():
            extra += ["--set-file", f"{key}={path}"]
        return _run(args + extra)


def helm_template(chart: Path, namespace: str = "flightdeck", overrides: dict[str, object] | None = None,
                  release: str = "triton", files: dict[str, Path] | None = None) -> dict[str, str]:
    """{template file name: rendered YAML} as `helm template` renders the chart. `overrides` are
    dotted value paths; `files` are values read from files (`--set-file`, Terraform's file())."""
    out = _with_values([_tool(HELM), "template", release, str(chart), "--namespace", namespace],
                       nested(overrides), files)
    rendered: dict[str, str] = {}
    for document in re.split(r"^---\s*$", out, flags=re.M):
        match = SOURCE.search(document)
        if match and yaml.safe_load(document) is not None:
            name = match.group("name")
            rendered[name] = rendered[name] + "---\n" + document if name in rendered else document
    return rendered


def helm_lint(chart: Path, overrides: dict[str, object] | None = None, files: dict[str, Path] | None = None) -> str:
    """`helm lint --strict` (warnings fail too) with these values; returns its report."""
    return _with_values([_tool(HELM), "lint", "--strict", str(chart)], nested(overrides), files)


def documents(rendered: dict[str, str]) -> list[dict]:
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
