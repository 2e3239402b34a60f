"""Offline validation of Kubernetes objects: built-in kinds against the official schemas
(kubernetes-validate), custom resources against the openAPIV3Schema of their CustomResourceDefinition,
read from upstream CRD files kept as test data (tests/infra/data/crds, each copy with its LICENSE,
README and BLOBS) or from CRDs a build itself contains (the KFP manifests). A kind with neither is
refused: no object goes unchecked.

An API server's structural-schema rules are applied as JSON Schema (Draft 4, what OpenAPI v3.0
schemas are):
- `nullable: true` admits null; `x-kubernetes-int-or-string: true` admits an integer or a string;
- an object schema with `properties` but no `additionalProperties` and no
  `x-kubernetes-preserve-unknown-fields` refuses other fields: the API server would silently drop
  them (pruning), so a misspelt field would be lost configuration;
- `x-kubernetes-embedded-resource` objects may carry apiVersion, kind and metadata.
Not evaluated: the CEL rules of `x-kubernetes-validations` (no CEL interpreter here) and the
formats (`int32`, `date-time`, ...), which the API server checks too."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from tests.infra.vendored import DATA

CRDS = DATA / "crds"
K8S_VERSION = "1.33.0"  # infra/terraform/modules/eks kubernetes_version

# OpenAPI v3.0 keywords that mean the same in JSON Schema Draft 4, copied as they are.
_SAME = ("type", "enum", "required", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
         "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "multipleOf", "minProperties",
         "maxProperties")


class NoSchema(LookupError):
    """An object whose kind has neither a built-in schema nor a CRD here."""


def to_json_schema(node: dict) -> dict:
    """One openAPIV3Schema node as a Draft 4 schema with the API server's semantics (module docstring)."""
    out = {key: node[key] for key in _SAME if key in node}
    if "properties" in node:
        out["properties"] = {name: to_json_schema(sub) for name, sub in node["properties"].items()}
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            # In a structural schema these may only add constraints (no types of their own).
            out[key] = [to_json_schema({**sub, "x-kubernetes-preserve-unknown-fields": True}) for sub in node[key]]
    if "not" in node:
        out["not"] = to_json_schema({**node["not"], "x-kubernetes-preserve-unknown-fields": True})
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = to_json_schema(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    if node.get("x-kubernetes-embedded-resource"):
        out.setdefault("properties", {})
        for field, kind in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
            out["properties"].setdefault(field, {"type": kind})
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [*out.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        out = {"anyOf": [{"type": "null"}, out]} if "anyOf" in out or "oneOf" in out or "allOf" in out else out
    return out


# Fields a CRD leaves untyped because its schema cannot refer to itself, checked as the operator
# reads them: AlertmanagerConfig's child routes are Routes (prometheus-operator v0.85.0,
# pkg/apis/monitoring/v1alpha1/alertmanager_config_types.go, Route.ChildRoutes decodes each with
# DisallowUnknownFields), so the route schema applies to them too.
SELF_REFERENCES = {
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"):
        (("properties", "spec", "properties", "route", "properties", "routes", "items"), "#/properties/spec/properties/route"),
}


def crd_schemas(crds: list[dict]) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): Draft 4 schema} for every served version of these CRDs."""
    out = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True) and "schema" in version:
                schema = to_json_schema(version["schema"]["openAPIV3Schema"])
                # Every object has a name (metadata is `type: object` in a CRD; the API server adds the rest).
                schema.setdefault("properties", {})["metadata"] = {"type": "object", "required": ["name"]}
                schema.setdefault("required", [])
                schema["required"] = sorted({*schema["required"], "apiVersion", "kind", "metadata"})
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                if key in SELF_REFERENCES:
                    path, target = SELF_REFERENCES[key]
                    node = schema
                    for part in path[:-1]:
                        node = node[part]
                    node[path[-1]] = {"$ref": target}
                out[key] = schema
    return out


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` (an enum value of AlertmanagerConfig's matchType) as the `value`
    tag, which PyYAML cannot construct; YAML 1.2 and the API server read a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def read_crds(paths: list[Path]) -> list[dict]:
    return [d for path in paths for d in yaml.load_all(path.read_text(), Loader=_Loader)  # a SafeLoader
            if d and d.get("kind") == "CustomResourceDefinition"]


@cache
def kept_schemas() -> dict[tuple[str, str], dict]:
    """The CRDs kept as test data, every upstream copy under tests/infra/data/crds."""
    return crd_schemas(read_crds(sorted(CRDS.rglob("*.yaml"))))


def is_builtin(obj: dict) -> bool:
    """Whether kubernetes-validate has a schema for this apiVersion and kind at K8S_VERSION."""
    try:
        kubernetes_validate.validate({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": "x"}},
                                     K8S_VERSION, strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        pass  # the schema exists; this skeleton just is not a valid object of it
    return True


def problems(obj: dict, schemas: dict[tuple[str, str], dict] | None = None) -> list[str]:
    """Everything wrong with `obj` by its schema (empty when valid); NoSchema for an unknown kind."""
    schemas = kept_schemas() if schemas is None else schemas
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in schemas:
        validator = jsonschema.Draft4Validator(schemas[key])
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]
    if is_builtin(obj):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
        return []
    raise NoSchema(f"{key[0]} {key[1]} ({obj.get('metadata', {}).get('name')}): no built-in schema for Kubernetes "
                   f"{K8S_VERSION} and no CRD kept in {CRDS.relative_to(CRDS.parents[3])}")
