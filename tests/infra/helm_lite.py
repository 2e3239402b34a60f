"""Render infra/k8s/triton (a Helm chart) without the helm binary, for the offline checks.

The chart's templates are kept to plain Kubernetes YAML whose only template syntax is
`{{ .Values.<path> }}` and `{{ .Release.Namespace }}`, inside strings or (numbers: replica
counts) as a whole scalar; anything else is an error here, so the rendered output is exactly
what `helm template` would give. (checkov's
Kubernetes runner skips files with Helm syntax, and its Helm runner needs the helm binary:
both checkov and kubernetes-validate therefore look at this rendering.)
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

EXPRESSION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


class TemplateError(ValueError):
    pass


def _lookup(values: dict, dotted: str, where: str):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise TemplateError(f"{where}: .Values.{dotted} is not in values.yaml")
        node = node[part]
    if isinstance(node, dict | list):
        raise TemplateError(f"{where}: .Values.{dotted} is not a scalar")
    return node


def render_text(text: str, values: dict, namespace: str, where: str = "template") -> str:
    def substitute(match: re.Match) -> str:
        expr = match.group(1)
        if expr == ".Release.Namespace":
            return namespace
        if expr.startswith(".Values.") and re.fullmatch(r"\.Values(\.[A-Za-z_][A-Za-z0-9_]*)+", expr):
            return str(_lookup(values, expr.removeprefix(".Values."), where))
        raise TemplateError(f"{where}: unsupported template expression {{{{ {expr} }}}}")

    return EXPRESSION.sub(substitute, text)


def render_chart(chart: Path, namespace: str = "flightdeck", overrides: dict | None = None) -> dict[str, str]:
    """{template file name: rendered YAML} for every template of the chart."""
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return {
        path.name: render_text(path.read_text(), values, namespace, where=str(path))
        for path in sorted((chart / "templates").glob("*.yaml"))
    }
