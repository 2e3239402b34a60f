"""Static checks of infra/terraform (no provider downloads here): fmt, checkov, and invariants
read with python-hcl2 -- private encrypted TLS-only buckets, tainted GPU nodes and their capacity,
IAM scoped to named buckets and prefixes, tags everywhere, documented and validated variables
(the validations run for real: `terraform plan` of each module's variables.tf needs no
provider), pinned versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import hcl2
import pytest

from components.contracts import layout
from tests.infra.checkov_run import describe, run_checkov, skip_reason

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "infra" / "terraform"
MODULES = sorted(p for p in (TF / "modules").iterdir() if p.is_dir())
ENVIRONMENTS = [TF / "environments" / "dev", TF / "environments" / "prod"]
EXPECTED_MODULES = {
    "network",
    "eks",
    "storage",
    "ecr",
    "online_store",
    "airflow_db",
    "iam",
    "platform",
    "kms",
    "environment",  # the composition of the others; each root in environments/ calls it once
}

# AWS resource types this code uses, by whether they take tags. A new type must be classified
# here (the test fails otherwise), so "every taggable resource is tagged" cannot rot.
TAGGABLE = {
    "aws_vpc", "aws_default_security_group", "aws_internet_gateway", "aws_subnet", "aws_eip", "aws_nat_gateway",
    "aws_route_table", "aws_vpc_endpoint", "aws_security_group", "aws_vpc_security_group_ingress_rule",
    "aws_cloudwatch_log_group", "aws_iam_role", "aws_flow_log", "aws_kms_key", "aws_eks_cluster",
    "aws_iam_openid_connect_provider", "aws_launch_template", "aws_eks_node_group", "aws_s3_bucket",
    "aws_ecr_repository", "aws_elasticache_subnet_group", "aws_secretsmanager_secret",
    "aws_elasticache_replication_group", "aws_db_subnet_group", "aws_db_parameter_group", "aws_db_instance",
}  # fmt: skip
NOT_TAGGABLE = {
    "aws_route_table_association", "aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_kms_alias",
    "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls", "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_logging", "aws_s3_bucket_policy", "aws_ecr_lifecycle_policy", "aws_secretsmanager_secret_version",
    "aws_autoscaling_group_tag",  # it is a tag (of an ASG that EKS creates)
}  # fmt: skip


def unq(value):
    """python-hcl2 keeps the quotes of string literals and wraps expressions in ${...}."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
    return value


@cache
def parse(path: Path) -> dict:
    with path.open() as fh:
        return hcl2.load(fh)


def module_locals(directory: Path) -> dict:
    """Every `locals` entry of a module's main.tf, all blocks merged."""
    return {k: v for block in parse(directory / "main.tf").get("locals", []) for k, v in block.items()
            if not k.startswith("__")}


def tf_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or TF).rglob("*.tf"))


def blocks(kind: str, directory: Path | None = None):
    """(file, type, name, body) of every resource/data block; (file, name, body) for others."""
    for path in tf_files(directory):
        for entry in parse(path).get(kind, []):
            for type_, named in entry.items():
                if kind in ("resource", "data"):
                    for name, body in named.items():
                        yield path, unq(type_), unq(name), body
                else:
                    yield path, unq(type_), named


def resources(type_: str):
    return [(p, n, b) for p, t, n, b in blocks("resource") if t == type_]


def first(body: dict, key: str) -> dict:
    value = body.get(key)
    assert isinstance(value, list) and value, f"no {key} block"
    return value[0]


# -- formatting and checkov -------------------------------------------------------------------


def require_terraform() -> str:
    """The terraform binary; missing, the test fails (a skip would silently shrink the suite)."""
    terraform = shutil.which("terraform")
    assert terraform, ("terraform is not on PATH: these tests run `terraform fmt` and `terraform plan` offline "
                       "(the project's machines ship terraform 1.11; README, Containers and infrastructure)")
    return terraform


def test_terraform_fmt():
    terraform = require_terraform()
    out = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF)], capture_output=True, text=True
    )
    assert out.returncode == 0, f"run `terraform fmt -recursive infra/terraform`:\n{out.stdout}{out.stderr}"


@pytest.fixture(scope="module")
def checkov_tf() -> dict:
    return run_checkov(TF, "terraform")


def test_checkov_terraform_has_no_failed_checks(checkov_tf):
    assert checkov_tf["resource_count"] > 50 and checkov_tf["parsing_errors"] == 0
    assert not checkov_tf["failed"], "checkov failed checks:\n" + describe(checkov_tf["failed"])


def test_every_checkov_skip_sits_on_a_resource_with_a_reason(checkov_tf):
    for path in tf_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                assert re.fullmatch(r"\s*#checkov:skip=CKV2?_AWS_\d+:.{20,}", line), (
                    f"{path}:{n}: {line.strip()}"
                )
    assert checkov_tf["skipped"], "no skip seen: the JSON report lost them (--quiet?)"
    assert all(len(skip_reason(c)) >= 20 for c in checkov_tf["skipped"]), describe(checkov_tf["skipped"])


# -- layout, versions, documentation ----------------------------------------------------------


def test_every_module_has_the_standard_files():
    assert {m.name for m in MODULES} == EXPECTED_MODULES
    for directory in [*MODULES, *ENVIRONMENTS]:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (directory / name).is_file(), f"{directory.relative_to(REPO)} has no {name}"


def test_terraform_and_providers_are_pinned():
    for directory in [*MODULES, *ENVIRONMENTS]:
        (terraform,) = parse(directory / "versions.tf")["terraform"]
        assert unq(terraform["required_version"]).startswith(">= 1."), directory
        (providers,) = terraform["required_providers"]
        providers = {unq(k): v for k, v in providers.items() if not k.startswith("__")}
        used = {t.split("_")[0] for kind in ("resource", "data") for _, t, _, _ in blocks(kind, directory)}
        for name, spec in providers.items():
            assert re.fullmatch(r"~> \d+\.\d+", unq(spec["version"])), (
                f"{directory.name}: {name} {spec['version']}"
            )
        assert used <= set(providers), (
            f"{directory.name}: providers used but not pinned: {used - set(providers)}"
        )


def test_every_variable_and_output_is_described():
    for path, name, body in [*blocks("variable"), *blocks("output")]:
        assert len(unq(body.get("description", ""))) > 10, (
            f"{path.relative_to(REPO)}: {name} has no description"
        )


def environment_call(env: Path) -> dict:
    """The root's one call of modules/environment."""
    calls = [body for _, _, body in module_calls(env)]
    assert len(calls) == 1, f"{env.name}: expected one module call, found {len(calls)}"
    assert unq(calls[0]["source"]) == "../../modules/environment"
    return calls[0]


def test_environments_set_every_required_variable():
    for env in ENVIRONMENTS:
        tfvars = parse(env / "terraform.tfvars")
        required = {n for _, n, b in blocks("variable", env) if "default" not in b}
        assert required <= set(tfvars), f"{env.name}: terraform.tfvars misses {required - set(tfvars)}"
        (env_locals,) = parse(env / "main.tf")["locals"]
        assert unq(env_locals["tags"]["Environment"]) == env.name
        assert unq(environment_call(env)["environment"]) == "local.tags.Environment"


def module_calls(directory: Path | None = None):
    """(file, name, body) of every module block."""
    yield from blocks("module", directory)


MODULE_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def test_every_module_call_passes_what_its_module_declares():
    """Offline stand-in for `terraform validate` on module calls: every required variable of the
    called module is passed, and nothing it does not declare."""
    calls = list(module_calls())
    assert len(calls) >= 12  # the environment module's 11, and one per root
    for path, name, body in calls:
        source = (path.parent / unq(body["source"])).resolve()
        declared = {n: b for _, n, b in blocks("variable", source)}
        assert declared, f"{path.relative_to(REPO)}: module {name}: no variables in {source}"
        passed = set(body) - MODULE_META_ARGUMENTS - {k for k in body if k.startswith("__")}
        required = {n for n, b in declared.items() if "default" not in b}
        assert required <= passed, f"{path.relative_to(REPO)}: module {name} misses {required - passed}"
        assert passed <= set(declared), f"{path.relative_to(REPO)}: module {name}: unknown {passed - set(declared)}"


def test_every_module_output_referenced_exists():
    """The other half of that stand-in: `module.<call>.<output>` names an output of the called module."""
    directories = sorted({path.parent for path, _, _ in module_calls()})
    checked = 0
    for directory in directories:
        sources = {name: (directory / unq(body["source"])).resolve() for _, name, body in module_calls(directory)}
        text = "\n".join(path.read_text() for path in sorted(directory.glob("*.tf")))
        for call, output in set(re.findall(r"\bmodule\.([a-z_0-9]+)\.([a-z_0-9]+)", text)):
            assert call in sources, f"{directory.relative_to(REPO)}: module.{call} is not called there"
            outputs = {n for _, n, _ in blocks("output", sources[call])}
            assert output in outputs, f"{directory.relative_to(REPO)}: module.{call}.{output} is not an output"
            checked += 1
    assert checked >= 20


def test_environment_roots_stay_thin():
    """The roots configure providers and call modules/environment; resources live in modules/."""
    for env in ENVIRONMENTS:
        assert not list(blocks("resource", env)) and not list(blocks("data", env)), env.name
        environment_call(env)


def test_remote_state_backend_is_documented():
    for env in ENVIRONMENTS:
        text = (env / "versions.tf").read_text()
        assert re.search(r'^\s*#\s*backend "s3" \{', text, re.M), f"{env.name}: no documented S3 backend"
        assert f"flightdeck/{env.name}/terraform.tfstate" in text
        assert re.search(r"#\s*use_lockfile\s*=\s*true", text) and re.search(r"#\s*encrypt\s*=\s*true", text)


def minimum_version(constraint: str) -> tuple[int, ...]:
    match = re.match(r">= (\d+)\.(\d+)\.(\d+)", constraint)
    assert match, constraint
    return tuple(int(x) for x in match.groups())


def test_required_version_covers_the_features_used():
    """One Terraform constraint everywhere, new enough for what the code and the documented
    backend use: S3 lock files (use_lockfile, 1.10) and validations that refer to other
    variables (1.9)."""
    constraints = {d.relative_to(TF): unq(parse(d / "versions.tf")["terraform"][0]["required_version"])
                   for d in [*MODULES, *ENVIRONMENTS]}
    assert len(set(constraints.values())) == 1, constraints
    minimum = minimum_version(next(iter(constraints.values())))
    for env in ENVIRONMENTS:
        if "use_lockfile" in (env / "versions.tf").read_text():
            assert minimum >= (1, 10, 0), f"{env.name}: the S3 backend's use_lockfile needs Terraform >= 1.10"
    cross = [(path.parent.name, name) for path, name, body in blocks("variable") for v in body.get("validation", [])
             if set(re.findall(r"\bvar\.([a-z_0-9]+)", unq(v["condition"]))) - {name}]
    assert cross, "no validation refers to another variable any more: the 1.9 reason below can go"
    assert minimum >= (1, 9, 0), f"validations referring to other variables need Terraform >= 1.9: {cross}"
    terraform = shutil.which("terraform")
    if terraform:  # the installed binary can run these modules (tests below run it on variables.tf)
        out = subprocess.run([terraform, "version", "-json"], capture_output=True, text=True, check=True)
        import json

        installed = tuple(int(x) for x in json.loads(out.stdout)["terraform_version"].split("-")[0].split("."))
        assert installed >= minimum, f"terraform {installed} is older than required {minimum}"


def test_backend_comment_says_what_init_backend_false_does():
    for env in ENVIRONMENTS:
        text = (env / "versions.tf").read_text()
        assert "`terraform init -backend=false`" in text and "skips the backend block" in text, env.name
        assert "Terraform >= 1.10" in text, env.name


# -- security invariants ------------------------------------------------------------------------


def _for_each_bucket_resources(type_: str) -> dict[str, dict]:
    """{bucket resource name: body} of the per-bucket settings resources of a type."""
    out = {}
    for _, _, body in resources(type_):
        target = unq(body.get("for_each", "")) or unq(body.get("bucket", ""))
        match = re.match(r"aws_s3_bucket\.([a-z_]+)", target)
        assert match, f"{type_} does not point at an aws_s3_bucket: {target}"
        out[match.group(1)] = body
    return out


def test_every_bucket_is_private_encrypted_versioned_and_tls_only():
    buckets = resources("aws_s3_bucket")
    assert buckets
    pab = _for_each_bucket_resources("aws_s3_bucket_public_access_block")
    sse = _for_each_bucket_resources("aws_s3_bucket_server_side_encryption_configuration")
    versioning = _for_each_bucket_resources("aws_s3_bucket_versioning")
    ownership = _for_each_bucket_resources("aws_s3_bucket_ownership_controls")
    lifecycle = _for_each_bucket_resources("aws_s3_bucket_lifecycle_configuration")
    policies = _for_each_bucket_resources("aws_s3_bucket_policy")
    documents = {n: b for _, t, n, b in blocks("data") if t == "aws_iam_policy_document"}
    for _, name, _ in buckets:
        assert all(
            pab[name][k] is True
            for k in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            )
        )
        rule = first(first(sse[name], "rule"), "apply_server_side_encryption_by_default")
        assert unq(rule["sse_algorithm"]) == "aws:kms" and unq(rule["kms_master_key_id"]).startswith("var.")
        assert unq(first(versioning[name], "versioning_configuration")["status"]) == "Enabled"
        assert unq(first(ownership[name], "rule")["object_ownership"]) == "BucketOwnerEnforced"
        assert lifecycle[name].get("rule"), "no lifecycle rule"
        doc_name = re.search(r"aws_iam_policy_document\.([a-z_]+)", unq(policies[name]["policy"])).group(1)
        deny = [s for s in documents[doc_name]["statement"] if unq(s.get("effect", "")) == "Deny"]
        assert any(
            unq(c["variable"]) == "aws:SecureTransport" and [unq(v) for v in c["values"]] == ["false"]
            for s in deny for c in s.get("condition", [])
        ), f"bucket {name}: no deny of non-TLS requests"  # fmt: skip
        denied = {unq(r) for s in deny for r in s["resources"]}
        assert {"each.value.arn", "${each.value.arn}/*"} <= denied


def test_gpu_nodes_are_tainted_and_system_nodes_are_not():
    groups = {n: b for _, n, b in resources("aws_eks_node_group")}
    gpu = [b for b in groups.values() if "NVIDIA" in unq(b["ami_type"])]
    assert gpu, "no GPU node group"
    for body in gpu:
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in [
            {k: unq(v) for k, v in t.items() if k != "__is_block__"} for t in body.get("taint", [])
        ]
    for body in groups.values():
        if "NVIDIA" not in unq(body["ami_type"]):
            assert not body.get("taint"), "CPU nodes carry the GPU taint"
    (plugin,) = [b for _, n, b in resources("helm_release") if n == "nvidia_device_plugin"]
    assert "nvidia.com/gpu" in plugin["values"][0] and re.fullmatch(r"var\.\w+", unq(plugin["version"]))


def as_list(value) -> list:
    """An attribute written as a list literal, or as one expression (a for-expression)."""
    return value if isinstance(value, list) else [value]


def _statements(document: dict):
    yield from document.get("statement", [])
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if unq(label) == "statement":
                yield from body.get("content", [])


def test_no_iam_policy_grants_s3_on_wildcard_resources():
    checked = 0
    for path, type_, name, body in blocks("data"):
        if type_ != "aws_iam_policy_document":
            continue
        for statement in _statements(body):
            if unq(statement.get("effect", '"Allow"')) != "Allow":
                continue
            actions = [unq(a) for a in as_list(statement.get("actions", []))]
            if not any(a.startswith("s3:") or a == "*" or '"s3:' in a or '"*"' in a for a in actions):
                continue
            checked += 1
            for resource in as_list(statement.get("resources", [])):
                text = unq(resource)
                assert text != "*" and not text.startswith("arn:aws:s3:::*"), (
                    f"{path.name} {name}: {actions} on {text}"
                )
                # Bucket ARNs come from the storage module (named buckets), never from a literal.
                assert re.search(r"(local\.b\[|each\.value\.arn|var\.bucket_arns)", text), (
                    f"{path.name} {name}: {text}"
                )
    assert checked >= 4  # read, write and list of the IRSA roles, the access-log delivery


def iam_grants(workload: str, kind: str) -> set[tuple[str, str]]:
    """(bucket, key prefix) pairs modules/iam grants a workload to read or write."""
    access = module_locals(IAM)["access"]
    return {(unq(r["bucket"]), unq(r["prefix"])) for r in access[workload][kind]}


def covers(grants: set[tuple[str, str]], bucket: str, key: str) -> bool:
    """Whether a grant's resource pattern (<bucket>/<prefix>*, IAM wildcards) matches the key."""
    from fnmatch import fnmatchcase

    return any(b == bucket and fnmatchcase(key, prefix + "*") for b, prefix in grants)


def bucket_of(key: str) -> str:
    """The bucket a key lives in on AWS (components/core/store.py routes by the first segment)."""
    from components.core.store import DATA_AREAS, MODEL_AREAS

    area = key.split("/", 1)[0]
    return "data" if area in DATA_AREAS else "models" if area in MODEL_AREAS else "artifacts"


def code_keys() -> dict[str, dict[str, list[str]]]:
    """Keys the stages of each narrowly scoped workload read and write, built with the code's own
    key functions (a moved prefix in the code fails the grants check below)."""
    from datetime import date

    import yaml

    from components.contracts import schema
    from components.model.registry import Registry

    day, model = date(2013, 4, 1), "flight_delay"
    registry = Registry.__new__(Registry)
    registry.prefix = f"models/{model}"  # as Registry.__init__ sets it
    feast = yaml.safe_load((REPO / "feature_repo" / "profiles" / "aws" / "feature_store.yaml").read_text())
    feast_key = feast["registry"]["path"].split("}/", 1)[1]  # s3://${FLIGHTDECK_S3_BUCKET}/<key>
    repo_root = "triton/model_repository"  # components/serving/triton/repository.py (tests/infra/test_k8s.py checks it)
    return {
        "batch_predict": {
            "read": [f"{layout.validated_prefix('flights', day)}/_PUBLISHED.json",
                     f"{layout.validated_prefix('flights', day)}/v-1/part.parquet",
                     layout.feature_table_key("weather_hourly"), f"{layout.predictions_prefix(day)}/_PUBLISHED.json",
                     feast_key, layout.serving_state_key(model), registry.aliases_key,
                     f"{registry.version_prefix(3)}/model.pt"],
            "write": [f"{layout.predictions_prefix(day)}/v-1/predictions.parquet",
                      f"{layout.challenger_records_prefix(model, 3, 4)}/20130401T000000-abc.parquet",
                      f"{layout.challenger_records_prefix(model, 3, 4)}/health/20130401T000000-abc.json"],
        },
        "trainer": {
            "read": [layout.training_set_key("2013-01-01", "2013-03-31"),
                     *(f"{layout.validated_prefix(t, None if t in schema.REFERENCE else day)}/_PUBLISHED.json"
                       for t in schema.TABLE_COLUMNS),
                     f"{layout.train_run_prefix('r-1')}/v-1/model.pt", layout.TRAIN_LATEST, layout.EVAL_LATEST,
                     f"{layout.eval_run_prefix('e-1')}/v-1/evaluation.json", registry.aliases_key,
                     f"{registry.version_prefix(3)}/version.json", layout.serving_state_key(model),
                     f"serving/{model}/deploy.lock", f"{repo_root}/{model}/config.pbtxt",
                     # the rollout stages (flightdeck-train): the records, health and labels they decide on
                     f"{layout.challenger_records_prefix(model, 3, 4)}/20130401T000000-abc.parquet",
                     f"{layout.challenger_records_prefix(model, 3, 4)}/health/20130401T000000-abc.json",
                     f"{layout.validated_prefix('flights', day)}/v-1/part.parquet", layout.rollout_key(model)],
            "write": [f"{layout.train_run_prefix('r-1')}/v-1/model.pt", f"{layout.eval_run_prefix('e-1')}/_PUBLISHED.json",
                      f"{registry.version_prefix(3)}/model.pt", f"{registry.prefix}/claims/3.json", registry.aliases_key,
                      layout.serving_state_key(model), f"serving/{model}/deploy.lock", f"{repo_root}/{model}/3/model.pt",
                      f"{repo_root}/{model}_online/1/model.py", layout.rollout_key(model),
                      f"{layout.rollout_report_prefix(model, 3, 4)}/report.json"],
        },
        "triton": {
            "read": [f"{repo_root}/{model}/config.pbtxt", f"{repo_root}/{model}/3/model.pt", layout.serving_state_key(model),
                     feast_key],
            "write": [f"{layout.challenger_records_prefix(model, 3, 4)}/20130401T000000-abc.parquet"],
        },
        "airflow": {  # its logs, the run log, and the reports of the plugin's pages (report_pages.py)
            "read": [f"{layout.runlog_prefix('training')}/latest.json", "airflow-logs/dag_id=x/run_id=y/task_id=z/attempt=1.log",
                     f"{layout.eval_run_prefix('e-1')}/v-1/report.md", f"{registry.version_prefix(3)}/model_card.md",
                     registry.aliases_key, f"{layout.monitoring_report_prefix(day)}/v-1/report.html",
                     f"{layout.monitoring_prefix(day)}/v-1/drift_current.parquet",
                     f"{layout.quarantine_prefix('flights', day, 'sha256-0')}/v-1/report.md",
                     f"{layout.rollout_report_prefix(model, 3, 4)}/report.md"],
            "write": [f"{layout.runlog_prefix('training')}/latest.json", f"{layout.runlog_prefix('training')}/events/x.json",
                      "airflow-logs/dag_id=x/run_id=y/task_id=z/attempt=1.log"],
        },
    }


# What each workload may touch, exactly (bucket, key prefix; a `*` matches a model name).
EXPECTED_GRANTS = {
    "data": ({("data", ""), ("artifacts", ""), ("models", "")}, {("data", ""), ("artifacts", "")}),
    # validated/flights/: the rollout stages (deploy's role) join their flights' labels
    "trainer": ({("data", "training_sets/"), ("data", "validated/*/_PUBLISHED.json"), ("data", "validated/flights/"),
                 ("artifacts", "runs/"),
                 ("models", "models/"), ("models", "serving/"), ("models", "triton/model_repository/")},
                {("artifacts", "runs/"), ("models", "models/"), ("models", "serving/"),
                 ("models", "triton/model_repository/")}),
    "batch_predict": ({("data", "validated/flights/"), ("data", "features/"), ("data", "predictions/"),
                       ("artifacts", "feast/"), ("models", "serving/*/state.json"), ("models", "models/")},
                      {("data", "predictions/"), ("models", "serving/*/challenger/")}),
    "triton": ({("models", "triton/model_repository/"), ("models", "serving/*/state.json"), ("artifacts", "feast/")},
               {("models", "serving/*/challenger/")}),
    "pipelines": ({("data", ""), ("artifacts", ""), ("models", "")},
                  {("data", ""), ("artifacts", ""), ("models", "models/"), ("models", "serving/"),
                   ("models", "triton/model_repository/")}),
    "airflow": ({("artifacts", "airflow-logs/"), ("artifacts", "runlog/"), ("artifacts", "runs/evaluate/"),
                 ("artifacts", "monitoring/"), ("models", "models/"), ("data", "quarantine/"),
                 ("models", "serving/*/rollouts/")},
                {("artifacts", "airflow-logs/"), ("artifacts", "runlog/")}),
}  # fmt: skip


def test_irsa_roles_are_least_privilege():
    """Read what modules/iam grants each workload: exactly the expected prefixes, for every role;
    batch prediction reads what it scores from and writes only predictions (and a challenger's
    outputs on the same flights), nothing of the data bucket beyond that."""
    assert set(module_locals(IAM)["access"]) == set(EXPECTED_GRANTS)
    for workload, (read, write) in EXPECTED_GRANTS.items():
        assert (iam_grants(workload, "read"), iam_grants(workload, "write")) == (read, write), workload
    assert not any(p == "" for _, p in iam_grants("batch_predict", "read") | iam_grants("batch_predict", "write"))
    assert {b for b, _ in iam_grants("batch_predict", "write")} == {"data", "models"}
    trust = [b for p, t, n, b in blocks("data", IAM) if n == "assume"][0]
    conditions = {unq(c["variable"]): c for c in first(trust, "statement")["condition"]}
    assert set(conditions) == {"${var.oidc_issuer}:aud", "${var.oidc_issuer}:sub"}


def test_scoped_grants_cover_every_key_the_code_touches():
    """The keys each scoped workload's code builds (its own key functions) fall inside its grants,
    in the bucket components/core/store.py routes them to; a key of another area does not."""
    for workload, kinds in code_keys().items():
        for kind, keys in kinds.items():
            grants = iam_grants(workload, kind)
            for key in keys:
                assert covers(grants, bucket_of(key), key), f"{workload} cannot {kind} {bucket_of(key)}/{key}"
    # ... and the check has teeth: what batch prediction must never touch is outside its grants.
    read, write = iam_grants("batch_predict", "read"), iam_grants("batch_predict", "write")
    assert not covers(read, "data", "raw/flights/date=2013-04-01/part.parquet")
    assert not covers(read, "data", "validated/weather/date=2013-04-01/_PUBLISHED.json")
    assert not covers(read, "data", "training_sets/2013-01-01_2013-03-31.parquet")
    assert not covers(read, "artifacts", "runs/train/r-1/v-1/model.pt")
    assert not covers(write, "data", "validated/flights/date=2013-04-01/_PUBLISHED.json")
    assert not covers(write, "models", "models/flight_delay/aliases.json")
    assert not covers(write, "models", "serving/flight_delay/state.json")
    assert not covers(iam_grants("triton", "write"), "models", "triton/model_repository/flight_delay/config.pbtxt")
    # the rollout reads flight outcomes (its labels); the trainer role still reads no other validated table
    assert not covers(iam_grants("trainer", "read"), "data", "validated/weather/date=2013-04-01/v-1/part.parquet")


def test_pipelines_role_is_the_union_of_the_stage_roles():
    """KFP sets one service account per run (kfp-kubernetes 2.16 has no per-step setting), so the
    pipelines role is the union of the roles of the stages a run runs, and no more: every grant of
    data, trainer and batch_predict is covered, and every pipelines grant is one of theirs (less
    those another of theirs already covers)."""
    for kind in ("read", "write"):
        stages = set().union(*(iam_grants(w, kind) for w in ("data", "trainer", "batch_predict")))
        union = {(b, p) for b, p in stages
                 if not any(b == b2 and p != p2 and covers({(b2, p2)}, b, p) for b2, p2 in stages)}
        assert iam_grants("pipelines", kind) == union, kind


def test_list_conditions_follow_the_grants():
    """ListBucket on a bucket is limited to the workload's prefixes there (s3:prefix); IfExists only
    on the buckets whose clients call HeadBucket (Feast's S3 registry, Triton's S3 loader)."""
    local = module_locals(IAM)
    head = {unq(k): {unq(b) for b in v} for k, v in local["head_bucket"].items()}
    assert head == {"batch_predict": {"artifacts"}, "triton": {"artifacts", "models"}}
    feast = (REPO / ".venv" / "lib").glob("python3*/site-packages/feast/infra/registry/s3.py")
    for path in feast:  # the reason for the artifacts entries, where Feast is installed
        assert "head_bucket(" in path.read_text()
    (document,) = [b for _, t, n, b in blocks("data", IAM) if (t, n) == ("aws_iam_policy_document", "access")]
    (listing,) = [s for s in _statements(document) if unq(s.get("sid", "")).startswith("List")]
    assert [unq(a) for a in listing["actions"]] == ["s3:ListBucket"]
    ((label, condition),) = [item for d in listing["dynamic"] for item in d.items()]
    assert unq(label) == "condition"
    content = condition["content"][0]
    assert unq(content["test"]) == \
        'contains(lookup(local.head_bucket, each.key, []), statement.key) ? "StringLikeIfExists" : "StringLike"'
    assert unq(content["variable"]) == "s3:prefix"
    assert unq(content["values"]) == '[for p in distinct(statement.value) : "${p}*"]'
    assert unq(condition["for_each"]) == 'contains(statement.value, "") ? [] : [1]'


def test_every_taggable_resource_is_tagged():
    for path, type_, name, body in blocks("resource"):
        if not type_.startswith("aws_"):
            continue
        assert type_ in TAGGABLE | NOT_TAGGABLE, f"classify {type_} in TAGGABLE or NOT_TAGGABLE"
        if type_ in TAGGABLE:
            assert "tags" in body, f"{path.relative_to(REPO)}: {type_}.{name} has no tags"
    for env in ENVIRONMENTS:
        (aws,) = [p['"aws"'] for p in parse(env / "main.tf")["provider"] if '"aws"' in p]
        assert unq(first(aws, "default_tags")["tags"]) == "local.tags"
        (env_locals,) = parse(env / "main.tf")["locals"]
        assert {"Project", "Environment", "Owner", "ManagedBy"} <= set(env_locals["tags"])
        assert unq(environment_call(env)["tags"]) == "local.tags"
    # ... and the environment module hands the same tags to every module that takes them.
    for path, name, body in module_calls(TF / "modules" / "environment"):
        source = (path.parent / unq(body["source"])).resolve()
        if any(n == "tags" for _, n, _ in blocks("variable", source)):
            assert unq(body.get("tags", "")) == "var.tags", f"module {name} is not given var.tags"


def test_data_stores_are_encrypted_and_private():
    ((_, _, redis),) = resources("aws_elasticache_replication_group")
    assert redis["at_rest_encryption_enabled"] is True and redis["transit_encryption_enabled"] is True
    assert unq(redis["auth_token"]).startswith("random_password.")
    ((_, _, db),) = resources("aws_db_instance")
    assert db["storage_encrypted"] is True and db["publicly_accessible"] is False
    assert db["manage_master_user_password"] is True and "password" not in db
    assert unq(db["backup_retention_period"]).startswith("var.")
    ((_, _, cluster),) = resources("aws_eks_cluster")
    assert first(cluster, "vpc_config")["endpoint_private_access"] is True
    assert unq(first(first(cluster, "encryption_config"), "provider")["key_arn"]).startswith("var.")
    for _, _, repo in resources("aws_ecr_repository"):
        assert unq(repo["image_tag_mutability"]) == "IMMUTABLE"
        assert first(repo, "image_scanning_configuration")["scan_on_push"] is True


def test_ecr_has_a_repository_per_image():
    import yaml

    images = yaml.safe_load((REPO / "containers" / "images.yaml").read_text())["images"]
    env_locals = {k: v for block in parse(TF / "modules" / "environment" / "main.tf")["locals"] for k, v in block.items()}
    assert sorted(unq(i) for i in env_locals["images"]) == sorted(i["repository"] for i in images.values())
    ((_, _, ecr),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "ecr"]
    assert unq(ecr["repositories"]) == "toset(local.images)"


def test_triton_release_uses_the_chart_in_infra_k8s():
    (release,) = [b for _, n, b in resources("helm_release") if n == "triton"]
    chart = unq(release["chart"]).replace("${path.module}", str(TF / "modules" / "platform"))
    assert (Path(chart).resolve() / "Chart.yaml").is_file(), chart
    names = {n for _, n, _ in resources("helm_release")}
    assert {"airflow", "triton", "kube_prometheus_stack"} <= names


# -- what the stage pods get from modules/platform ---------------------------------------------

PLATFORM = TF / "modules" / "platform"


def platform_locals() -> dict:
    return {k: v for block in parse(PLATFORM / "main.tf")["locals"] for k, v in block.items()}


def platform_resource(type_: str, name: str) -> dict:
    (body,) = [b for p, t, n, b in blocks("resource", PLATFORM) if (t, n) == (type_, name)]
    return body


def test_settings_config_map_holds_exactly_the_cluster_settings():
    """The ConfigMap's keys are the settings components/core/settings.py reads, less the local-only
    ones, plus the Triton Service's name and namespace that components/serving/triton/replicas.py reads;
    the Airflow pods (envFrom) and the KFP steps (key by key) read it by these names."""
    import dataclasses

    from components.core import cluster
    from components.core.settings import SECRET_SETTINGS, Settings

    settings = platform_locals()["stage_settings"]
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert set(cluster.NOT_CLUSTER_SETTINGS) <= fields and set(SECRET_SETTINGS) <= fields
    # Secret settings (the Redis password) come from Secrets, never from the ConfigMap.
    expected = {f"FLIGHTDECK_{n.upper()}" for n in fields - set(cluster.NOT_CLUSTER_SETTINGS) - set(SECRET_SETTINGS)}
    assert "FLIGHTDECK_REDIS_PASSWORD" not in settings and "redis_password" in SECRET_SETTINGS
    replicas = (REPO / "components" / "serving" / "triton" / "replicas.py").read_text()
    for name in cluster.EXTRA_ENV_SETTINGS:
        assert f'os.environ.get("{name}"' in replicas, f"{name}: replicas.py does not read it any more"
    assert set(settings) == expected | set(cluster.EXTRA_ENV_SETTINGS) == set(cluster.settings_env_names())
    # Where each value comes from: the module's inputs, the releases it installs.
    values = {k: unq(v) for k, v in settings.items()}
    assert values["FLIGHTDECK_PROFILE"] == "aws" and values["FLIGHTDECK_RUNTIME"] == "kubernetes"
    assert values["FLIGHTDECK_S3_BUCKET"] == 'var.bucket_names["artifacts"]'
    assert values["FLIGHTDECK_S3_DATA_BUCKET"] == 'var.bucket_names["data"]'
    assert values["FLIGHTDECK_S3_MODELS_BUCKET"] == 'var.bucket_names["models"]'
    assert values["FLIGHTDECK_AWS_REGION"] == "var.aws_region"
    assert values["FLIGHTDECK_REDIS_URL"].startswith("${var.redis_endpoint}")
    assert values["FLIGHTDECK_PUSHGATEWAY_URL"] == "local.pushgateway_url"
    assert values["FLIGHTDECK_TRITON_NAMESPACE"] == 'kubernetes_namespace_v1.this["flightdeck"].metadata[0].name'
    assert values["FLIGHTDECK_TRITON_URL"] == "${local.triton_host}:8001"
    assert values["FLIGHTDECK_TRITON_HTTP_URL"] == "${local.triton_host}:8000"
    # ingest reads sources only under the data bucket's landing/ (components/data/landing.py)
    assert values["FLIGHTDECK_LANDING"] == 's3://${var.bucket_names["data"]}/landing/'
    assert float(values["FLIGHTDECK_QUARANTINE_MAX_MB"]) > 0
    # Defaults of the module's inputs are the settings' own defaults.
    declared = {n: b for _, n, b in blocks("variable", PLATFORM)}
    assert unq(declared["model_name"]["default"]) == Settings.model_name
    assert float(declared["lead_time_hours"]["default"]) == Settings.lead_time_hours
    for name in ("aws_region", "redis_endpoint", "image_tag", "model_name", "lead_time_hours", "bucket_names"):
        assert "validation" in declared[name] and len(unq(declared[name]["description"])) > 10, name


def test_settings_config_map_and_admin_key_secret_exist_wherever_stage_pods_run():
    from components.core import cluster
    from pipelines.cli import COMPILED_DIR

    local = platform_locals()
    stage_namespaces = {k: unq(v) for k, v in local["stage_namespaces"].items()}
    assert stage_namespaces == {"flightdeck": 'kubernetes_namespace_v1.this["flightdeck"].metadata[0].name',
                                "kubeflow": "local.kfp_namespace"}
    assert unq(local["kfp_namespace"]) == "kubeflow"
    assert unq(local["settings_namespaces"]).startswith("merge(local.stage_namespaces, {airflow = ")

    config_map = platform_resource("kubernetes_config_map_v1", "settings")
    assert unq(first(config_map, "metadata")["name"]) == cluster.SETTINGS_CONFIG_MAP
    assert unq(config_map["for_each"]) == "local.settings_namespaces"
    assert unq(config_map["data"]) == "local.stage_settings"

    secret = platform_resource("kubernetes_secret_v1", "triton_admin_key")
    assert unq(first(secret, "metadata")["name"]) == cluster.TRITON_ADMIN_SECRET
    assert [unq(k) for k in secret["data"]] == [cluster.TRITON_ADMIN_SECRET_KEY]
    assert unq(secret["for_each"]) == "local.stage_namespaces"
    (moved,) = parse(PLATFORM / "main.tf")["moved"]  # the Secret was one resource before
    assert unq(moved["to"]) == 'kubernetes_secret_v1.triton_admin_key["flightdeck"]'
    # Triton checks the same key the deploy steps send.
    (triton,) = [b for _, n, b in resources("helm_release") if n == "triton"]
    assert 'adminKeySecret = kubernetes_secret_v1.triton_admin_key["flightdeck"].metadata[0].name' in \
        unq(triton["values"][0])
    # The compiled pipelines and the Airflow pods name these (tests/kfp, tests/airflow check the
    # references); the KFP definitions' docstring names them too.
    definitions = (REPO / "pipelines" / "definitions.py").read_text()
    assert "flightdeck-triton-admin" not in definitions and f"`{cluster.TRITON_ADMIN_SECRET}` Secret" in definitions
    compiled = (COMPILED_DIR / "training.yaml").read_text()
    assert f"secretName: {cluster.TRITON_ADMIN_SECRET}" in compiled
    assert f"configMapName: {cluster.SETTINGS_CONFIG_MAP}" in compiled


def test_redis_auth_secret_exists_wherever_its_pods_run():
    """The online store's AUTH token reaches the materialize pods (Airflow: flightdeck, KFP: kubeflow)
    and Triton (flightdeck) from one Secret per namespace, made from modules/online_store's token;
    the names agree with components/core/cluster.py, the compiled KFP YAML and the Triton chart."""
    from components.core import cluster
    from pipelines.cli import COMPILED_DIR

    secret = platform_resource("kubernetes_secret_v1", "redis_auth")
    assert unq(first(secret, "metadata")["name"]) == cluster.REDIS_AUTH_SECRET
    assert {unq(k): unq(v) for k, v in secret["data"].items()} == {cluster.REDIS_AUTH_SECRET_KEY: "var.redis_auth_token"}
    assert unq(secret["for_each"]) == "local.stage_namespaces"  # flightdeck (Airflow pods, Triton) and kubeflow
    (triton,) = [b for _, n, b in resources("helm_release") if n == "triton"]
    assert 'redisAuthSecret = kubernetes_secret_v1.redis_auth["flightdeck"].metadata[0].name' in unq(triton["values"][0])
    # The token: a sensitive output of online_store (the same random_password as the replication
    # group's auth_token), a sensitive, validated input of platform, wired by environment.
    store_outputs = {n: b for _, n, b in blocks("output", TF / "modules" / "online_store")}
    assert unq(store_outputs["auth_token"]["value"]) == "random_password.auth.result"
    assert store_outputs["auth_token"]["sensitive"] is True
    (group,) = [b for _, n, b in resources("aws_elasticache_replication_group") if n == "this"]
    assert unq(group["auth_token"]) == "random_password.auth.result"
    declared = {n: b for _, n, b in blocks("variable", PLATFORM)}
    assert declared["redis_auth_token"]["sensitive"] is True and "validation" in declared["redis_auth_token"]
    ((_, _, platform),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "platform"]
    assert unq(platform["redis_auth_token"]) == "module.online_store.auth_token"
    # Never in the ConfigMap; the compiled materialize step names the Secret.
    assert not [k for k, v in platform_locals()["stage_settings"].items() if "redis_auth" in str(unq(v))]
    compiled = (COMPILED_DIR / "batch_prediction.yaml").read_text()
    assert f"secretName: {cluster.REDIS_AUTH_SECRET}" in compiled
    assert f"secretKey: {cluster.REDIS_AUTH_SECRET_KEY}" in compiled and f"envVar: {cluster.REDIS_PASSWORD_ENV}" in compiled


def test_tuning_db_secret_exists_wherever_tune_pods_run():
    """The tune stage's study storage URL (a secret setting) reaches the tune pods (Airflow: flightdeck, KFP:
    kubeflow) from one Secret per namespace, from a sensitive, validated variable that environment passes on;
    the names agree with components/core/cluster.py and the compiled KFP YAML; never in the ConfigMap."""
    from components.core import cluster
    from pipelines.cli import COMPILED_DIR

    secret = platform_resource("kubernetes_secret_v1", "tuning_db")
    assert unq(first(secret, "metadata")["name"]) == cluster.TUNING_DB_SECRET
    assert {unq(k): unq(v) for k, v in secret["data"].items()} == {cluster.TUNING_DB_SECRET_KEY: "var.tuning_storage_url"}
    assert unq(secret["for_each"]) == "local.stage_namespaces"
    for module in (PLATFORM, TF / "modules" / "environment"):
        declared = {n: b for _, n, b in blocks("variable", module)}
        assert declared["tuning_storage_url"]["sensitive"] is True and "validation" in declared["tuning_storage_url"]
    ((_, _, platform),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "platform"]
    assert unq(platform["tuning_storage_url"]) == "var.tuning_storage_url"
    assert not [k for k, v in platform_locals()["stage_settings"].items() if "tuning" in str(unq(v))]
    compiled = (COMPILED_DIR / "training.yaml").read_text()
    assert f"secretName: {cluster.TUNING_DB_SECRET}" in compiled and f"envVar: {cluster.TUNING_STORAGE_ENV}" in compiled


def test_kfp_runs_service_account_is_created_and_trusted():
    from components.ops.cli import build_parser

    args = build_parser().parse_args(["kfp", "submit", "training", "--host", "http://kfp"])
    sa = platform_resource("kubernetes_service_account_v1", "pipelines")
    local = platform_locals()
    meta = first(sa, "metadata")
    assert (unq(local["kfp_namespace"]), unq(local["pipelines_service_account"])) == (args.namespace, args.service_account)
    assert (unq(meta["namespace"]), unq(meta["name"])) == ("local.kfp_namespace", "local.pipelines_service_account")
    assert {unq(k): unq(v) for k, v in meta["annotations"].items()} == \
        {"eks.amazonaws.com/role-arn": 'var.role_arns["pipelines"]'}
    # KFP's launcher and Argo's executor in each step pod use the API token.
    assert sa["automount_service_account_token"] is True
    iam = {n: b for _, n, b in blocks("variable", TF / "modules" / "iam")}
    assert [unq(a) for a in iam["service_accounts"]["default"]["pipelines"]] == \
        [f"{args.namespace}:{args.service_account}"]
    binding = platform_resource("kubernetes_role_binding_v1", "pipelines_runner")
    assert unq(first(binding, "role_ref")["name"]) == "pipeline-runner"  # the KFP manifests' runner Role
    assert unq(first(binding, "subject")["name"]) == "kubernetes_service_account_v1.pipelines.metadata[0].name"
    # The stage accounts: one per IRSA workload role the images.yaml accounts map to.
    import yaml

    accounts = set(yaml.safe_load((REPO / "containers" / "images.yaml").read_text())["service_accounts"].values())
    assert {unq(k) for k in local["stage_service_accounts"]} == accounts


def test_airflow_workers_may_run_the_stage_pods_and_read_the_settings():
    role = platform_resource("kubernetes_role_v1", "airflow_stage_pods")
    granted = {unq(r["resources"][0]): {unq(v) for v in r["verbs"]} for r in role["rule"]}
    # What KubernetesPodOperator does: create/watch/patch/delete the pod, read its log, exec into
    # the xcom sidecar, list the pod's events on failure; nothing else.
    assert granted == {"pods": {"create", "get", "list", "watch", "patch", "delete"}, "pods/log": {"get"},
                       "pods/exec": {"create", "get"}, "events": {"list"}}
    binding = platform_resource("kubernetes_role_binding_v1", "airflow_stage_pods")
    subject = first(binding, "subject")
    iam = {n: b for _, n, b in blocks("variable", TF / "modules" / "iam")}
    assert f"airflow:{unq(subject['name'])}" in [unq(a) for a in iam["service_accounts"]["default"]["airflow"]]
    (airflow,) = [b for _, n, b in resources("helm_release") if n == "airflow"]
    values = unq(airflow["values"][0])
    assert 'extraEnvFrom = yamlencode([{configMapRef = {name = kubernetes_config_map_v1.settings["airflow"]' in values
    match = re.search(r'airflowLocalSettings = file\("\$\{path\.module\}/([^"]+)"\)', values)
    local_settings = (PLATFORM / match.group(1)).resolve()
    assert local_settings == REPO / "infra" / "k8s" / "airflow" / "airflow_local_settings.py"
    assert "airflow.providers.cncf.kubernetes.operators.pod" in local_settings.read_text()


def test_pushgateway_is_installed_where_the_settings_point():
    (release,) = [b for _, n, b in resources("helm_release") if n == "pushgateway"]
    local = platform_locals()
    assert unq(release["name"]) == "local.pushgateway_release"
    assert unq(release["chart"]) == unq(local["pushgateway_release"]) == "prometheus-pushgateway"
    assert unq(release["namespace"]) == 'kubernetes_namespace_v1.this["monitoring"].metadata[0].name'
    assert re.fullmatch(r"var\.chart_versions\.pushgateway", unq(release["version"]))
    assert unq(local["pushgateway_url"]) == (
        'http://${local.pushgateway_release}.${kubernetes_namespace_v1.this["monitoring"].metadata[0].name}'
        ".svc.cluster.local:9091")
    # Scraped by infra/k8s/monitoring's ServiceMonitor (honorLabels; tests/infra/test_monitoring_wiring.py).
    assert "serviceMonitor = {enabled = false}" in unq(release["values"][0])


def test_environment_passes_the_settings_inputs_to_platform():
    ((_, _, platform),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "platform"]
    assert unq(platform["aws_region"]) == "data.aws_region.current.name"
    assert unq(platform["redis_endpoint"]) == "module.online_store.primary_endpoint"
    assert unq(platform["bucket_names"]) == "module.storage.bucket_names"
    assert unq(platform["image_tag"]) == "var.image_tag"
    for env in ENVIRONMENTS:
        assert unq(environment_call(env)["image_tag"]) == "var.image_tag", env.name


# -- GPU capacity and the cluster autoscaler -----------------------------------------------------

EKS = TF / "modules" / "eks"
IAM = TF / "modules" / "iam"
# (NVIDIA GPUs, vCPUs, GiB) of the single-GPU sizes modules/eks allows (AWS instance type specs).
GPU_INSTANCES = {
    **{f"{family}.{size}": (1, cpus, gib) for family in ("g4dn", "g5", "g6")
       for size, cpus, gib in (("xlarge", 4, 16), ("2xlarge", 8, 32), ("4xlarge", 16, 64), ("8xlarge", 32, 128),
                               ("16xlarge", 64, 256))},
    **{f"g6e.{size}": (1, cpus, gib) for size, cpus, gib in (("xlarge", 4, 32), ("2xlarge", 8, 64),
                                                             ("4xlarge", 16, 128), ("8xlarge", 32, 256),
                                                             ("16xlarge", 64, 512))},
}
# What a node keeps for itself before pods: the kubelet's and the system's reservations and the
# eviction threshold on EKS AMIs (about 0.1 CPU and 1 GiB on these sizes), plus the DaemonSets on
# the GPU nodes (aws-node, kube-proxy, the NVIDIA device plugin, node-exporter); rounded up.
NODE_OVERHEAD = (0.5, 2.5)


def quantity(value: str, memory: bool) -> float:
    """A Kubernetes quantity as CPUs, or as GiB for memory."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|K|M|G|T)?", str(value))
    assert match, value
    number, unit = float(match.group(1)), match.group(2)
    if not memory:
        return number / 1000 if unit == "m" else number
    return number * units.get(unit, 1) / 2**30


def gpu_pod_requests() -> dict[str, tuple[float, float]]:
    """(CPUs, GiB) requested by every pod that takes a GPU: the training pod as Airflow and KFP run
    it, and a Triton replica as the chart renders it."""
    import yaml

    from components.orchestration.runtime import STAGE_RESOURCES
    from pipelines.cli import COMPILED_DIR
    from tests.infra.helm import helm_template

    train = STAGE_RESOURCES["train"]
    out = {"train (Airflow)": (quantity(train.cpu, False), quantity(train.memory, True))}
    spec, _ = yaml.safe_load_all((COMPILED_DIR / "training.yaml").read_text())
    kfp = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    out["train (KFP)"] = (quantity(kfp["resourceCpuRequest"], False), quantity(kfp["resourceMemoryRequest"], True))
    deployment = yaml.safe_load(helm_template(REPO / "infra" / "k8s" / "triton")["deployment.yaml"])
    (triton,) = deployment["spec"]["template"]["spec"]["containers"]
    requests = triton["resources"]["requests"]
    assert requests["nvidia.com/gpu"] == "1"
    out["triton"] = (quantity(requests["cpu"], False), quantity(requests["memory"], True))
    return out


def rolling_update_surge() -> int:
    """Extra Triton pods a rolling update runs at once (maxSurge, with maxUnavailable 0)."""
    import yaml

    from tests.infra.helm import helm_template

    deployment = yaml.safe_load(helm_template(REPO / "infra" / "k8s" / "triton")["deployment.yaml"])
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "a rollout that removes a replica first needs no surge room: update this"
    return int(rolling["maxSurge"])


def test_gpu_instance_table_is_what_modules_eks_allows():
    """The table above is exactly the set the GPU node group's validation admits (single-GPU sizes)."""
    (validation, *_) = [v for v in {n: b for _, n, b in blocks("variable", EKS)}["gpu_node_group"]["validation"]
                        if "instance_types" in unq(v["condition"])]
    pattern = re.search(r'regex\("(.+?)", t\)', unq(validation["condition"])).group(1).replace("\\\\", "\\")
    families = re.search(r"\^\(([^)]*)\)", pattern).group(1).split("|")
    sizes = re.search(r"\.\(([^)]*)\)\$", pattern).group(1).split("|")
    assert {f"{f}.{s}" for f in families for s in sizes} == set(GPU_INSTANCES)
    assert all(re.fullmatch(pattern, t) for t in GPU_INSTANCES)
    assert not re.fullmatch(pattern, "p4d.24xlarge") and not re.fullmatch(pattern, "g5.12xlarge")  # 8 and 4 GPUs


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.name)
def test_gpu_capacity_holds_triton_at_max_plus_a_training_pod(env):
    """At its max size the GPU node group holds every Triton replica the HPA may run, the one extra
    replica of a rolling update, and a training pod; every GPU instance type fits each GPU pod."""
    call = environment_call(env)
    gpu, triton = call["gpu_node_group"], call["triton_replicas"]
    types = [unq(t) for t in gpu["instance_types"]]
    capacity = gpu["max_size"] * min(GPU_INSTANCES[t][0] for t in types)
    needed = triton["max"] + rolling_update_surge() + 1
    assert capacity >= needed, (
        f"{env.name}: {capacity} GPUs at max, Triton needs {triton['max']} + {rolling_update_surge()} (surge) "
        f"and a training pod 1")
    assert 1 <= triton["min"] <= triton["max"] and gpu["min_size"] <= gpu["desired_size"] <= gpu["max_size"]
    cpu_overhead, gib_overhead = NODE_OVERHEAD
    for pod, (cpus, gib) in gpu_pod_requests().items():
        for t in types:
            _, node_cpus, node_gib = GPU_INSTANCES[t]
            assert cpus + cpu_overhead <= node_cpus and gib + gib_overhead <= node_gib, (
                f"{env.name}: a {pod} pod ({cpus} CPU, {gib:.1f} GiB) does not fit a {t} ({node_cpus} CPU, {node_gib} GiB)")


def test_capacity_check_catches_an_undersized_group():
    """dev as it was: g5.xlarge (a training pod's 4 CPU / 16 GiB do not fit), max 2 for Triton's 2."""
    cpus, gib = gpu_pod_requests()["train (Airflow)"]
    _, node_cpus, node_gib = GPU_INSTANCES["g5.xlarge"]
    assert cpus + NODE_OVERHEAD[0] > node_cpus and gib + NODE_OVERHEAD[1] > node_gib
    assert 2 * GPU_INSTANCES["g5.xlarge"][0] < 2 + rolling_update_surge() + 1


def test_dev_gpu_group_can_be_empty_and_prod_keeps_triton_serving():
    dev, prod = (environment_call(env) for env in ENVIRONMENTS)
    assert dev["gpu_node_group"]["min_size"] == 0  # real with the autoscaler and the node template
    assert prod["gpu_node_group"]["min_size"] >= prod["triton_replicas"]["min"] >= 2
    assert dev["triton_replicas"]["min"] == 1


def test_triton_replica_counts_come_from_the_environment():
    """The roots' triton_replicas reach the chart's values through modules/environment and platform."""
    for env in ENVIRONMENTS:
        assert unq(environment_call(env)["triton_replicas"]["min"]) >= 1
    ((_, _, platform),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "platform"]
    assert unq(platform["triton_replicas"]) == "var.triton_replicas"
    (release,) = [b for _, n, b in resources("helm_release") if n == "triton"]
    values = unq(release["values"][0])
    for fragment in ("replicas = var.triton_replicas.min",
                     "autoscaling = {minReplicas = var.triton_replicas.min, maxReplicas = var.triton_replicas.max}",
                     "disruption = {maxUnavailable = var.triton_replicas.max_unavailable}"):
        assert fragment in values, fragment
    # modules/environment refuses a GPU group too small for them (checked for real by terraform in
    # test_variable_validations_accept_the_environments_and_reject_bad_values).
    env_vars = {n: b for _, n, b in blocks("variable", TF / "modules" / "environment")}
    conditions = [unq(v["condition"]) for v in env_vars["triton_replicas"]["validation"]]
    assert "var.gpu_node_group.max_size >= var.triton_replicas.max + 2" in conditions


def test_node_groups_leave_the_desired_size_to_the_autoscaler():
    for _, name, body in resources("aws_eks_node_group"):
        (lifecycle,) = body["lifecycle"]
        assert [unq(c) for c in lifecycle["ignore_changes"]] == ["scaling_config[0].desired_size"], name


def test_gpu_asg_tells_the_autoscaler_what_a_gpu_node_is():
    """Scale-from-zero of a tainted GPU group: the ASG's node-template tags say the label, taint and
    GPU count a new node will have, and they are the node group's own."""
    groups = {n: b for _, n, b in resources("aws_eks_node_group")}
    gpu = groups["gpu"]
    ((_, name, tag_resource),) = resources("aws_autoscaling_group_tag")
    assert unq(tag_resource["autoscaling_group_name"]) == "one(aws_eks_node_group.gpu.resources[0].autoscaling_groups[*].name)"
    assert unq(tag_resource["for_each"]) == "local.gpu_node_template_tags"
    (tag,) = tag_resource["tag"]
    assert (unq(tag["key"]), unq(tag["value"]), tag["propagate_at_launch"]) == ("each.key", "each.value", False)
    tags = {unq(k): unq(v) for k, v in module_locals(EKS)["gpu_node_template_tags"].items()}
    prefix = "k8s.io/cluster-autoscaler/node-template/"
    labels = {unq(k): unq(v) for k, v in gpu["labels"].items()}
    (taint,) = [{k: unq(v) for k, v in t.items() if k != "__is_block__"} for t in gpu["taint"]]
    effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
    assert tags == {
        **{f"{prefix}label/{k}": v for k, v in labels.items()},
        f"{prefix}taint/{taint['key']}": f"{taint['value']}:{effects[taint['effect']]}",
        f"{prefix}resources/nvidia.com/gpu": "1",  # single-GPU types only (test_gpu_instance_table_...)
    }


def test_cluster_autoscaler_is_installed_with_its_irsa_role():
    (release,) = [b for _, n, b in resources("helm_release") if n == "cluster_autoscaler"]
    local = platform_locals()
    assert unq(release["chart"]) == "cluster-autoscaler" and unq(release["namespace"]) == "kube-system"
    assert unq(release["repository"]) == "https://kubernetes.github.io/autoscaler"
    assert unq(release["version"]) == "var.chart_versions.cluster_autoscaler"
    values = unq(release["values"][0])
    for fragment in ('cloudProvider = "aws"', "awsRegion = var.aws_region", "autoDiscovery = {clusterName = var.cluster_name}",
                     "image = {tag = local.cluster_autoscaler_images[var.kubernetes_version]}",
                     "name = local.cluster_autoscaler_service_account",
                     '"eks.amazonaws.com/role-arn" = var.role_arns["cluster_autoscaler"]',
                     'nodeSelector = {"flightdeck.io/node-pool" = "system"}'):
        assert fragment in values, fragment
    # The image's minor is the cluster's (the autoscaler simulates that version's scheduler).
    images = {unq(k): unq(v) for k, v in local["cluster_autoscaler_images"].items()}
    for minor, tag in images.items():
        assert re.fullmatch(rf"v{re.escape(minor)}\.\d+", tag), (minor, tag)
    eks_vars = {n: b for _, n, b in blocks("variable", EKS)}
    assert unq(eks_vars["kubernetes_version"]["default"]) in images
    platform_vars = {n: b for _, n, b in blocks("variable", PLATFORM)}
    allowed = re.search(r"contains\(\[([^]]*)\]", unq(platform_vars["kubernetes_version"]["validation"][0]["condition"]))
    assert {unq(v.strip()) for v in allowed.group(1).split(",")} == set(images)
    # Trusted by exactly its service account, in the namespace the release runs in.
    iam = {n: b for _, n, b in blocks("variable", IAM)}
    assert [unq(a) for a in iam["service_accounts"]["default"]["cluster_autoscaler"]] == \
        [f"kube-system:{unq(local['cluster_autoscaler_service_account'])}"]
    ((_, _, platform),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "platform"]
    assert unq(platform["cluster_name"]) == "module.eks.cluster_name"
    assert unq(platform["kubernetes_version"]) == "module.eks.kubernetes_version"


# The "Full Cluster Autoscaler Features Policy" of cluster-autoscaler/cloudprovider/aws/README.md:
# the read-only calls (none of which takes resource-level permissions) and the two that act.
AUTOSCALER_DESCRIBE = {
    "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities", "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
}  # fmt: skip
AUTOSCALER_ACT = {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}


def test_cluster_autoscaler_role_is_scoped_to_this_cluster():
    (document,) = [b for _, t, n, b in blocks("data", IAM) if (t, n) == ("aws_iam_policy_document", "cluster_autoscaler")]
    statements = {unq(s["sid"]): s for s in document["statement"]}
    assert set(statements) == {"DiscoverGroupsAndInstanceTypes", "DescribeOwnNodeGroups", "ResizeOwnNodeGroups"}

    def actions(sid):
        return {unq(a) for a in statements[sid]["actions"]}

    assert actions("DiscoverGroupsAndInstanceTypes") == AUTOSCALER_DESCRIBE
    assert [unq(r) for r in statements["DiscoverGroupsAndInstanceTypes"]["resources"]] == ["*"]
    assert not statements["DiscoverGroupsAndInstanceTypes"].get("condition")
    assert actions("DescribeOwnNodeGroups") == {"eks:DescribeNodegroup"}
    assert unq(statements["DescribeOwnNodeGroups"]["resources"]) == "var.node_group_arns"
    resize = statements["ResizeOwnNodeGroups"]
    assert actions("ResizeOwnNodeGroups") == AUTOSCALER_ACT
    assert unq(resize["resources"]) == "local.autoscaling_group_arns"
    conditions = {(unq(c["test"]), unq(c["variable"])): [unq(v) for v in c["values"]] for c in resize["condition"]}
    assert conditions == {
        ("StringEquals", "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"): ["owned"],
        ("StringEquals", "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled"): ["true"],
    }
    arns = unq(module_locals(IAM)["autoscaling_group_arns"])
    assert arns.startswith("[for name in var.autoscaling_group_names : ") and \
        ":autoScalingGroup:*:autoScalingGroupName/${name}" in arns
    assert not any(a.startswith("s3:") for s in statements.values() for a in actions(unq(s["sid"])))
    (policy,) = [b for _, n, b in resources("aws_iam_role_policy") if n == "cluster_autoscaler"]
    assert unq(policy["policy"]) == "data.aws_iam_policy_document.cluster_autoscaler.json"
    # Given exactly this cluster's node groups and their ASGs.
    ((_, _, iam),) = [c for c in module_calls(TF / "modules" / "environment") if c[1] == "iam"]
    assert {k: unq(iam[k]) for k in ("cluster_name", "node_group_arns", "autoscaling_group_names")} == {
        "cluster_name": "module.eks.cluster_name", "node_group_arns": "module.eks.node_group_arns",
        "autoscaling_group_names": "module.eks.autoscaling_group_names"}
    outputs = {n: b["value"] for _, n, b in blocks("output", EKS)}
    assert [unq(a) for a in outputs["node_group_arns"]] == ["aws_eks_node_group.system.arn", "aws_eks_node_group.gpu.arn"]
    assert "aws_eks_node_group.system, aws_eks_node_group.gpu" in unq(outputs["autoscaling_group_names"])


# -- Kubeflow Pipelines (kustomize, the one non-Helm install) and the Airflow chart's accounts ----------


def test_kfp_manifests_come_from_a_pinned_release_tag():
    """KFP has no Helm chart: its kustomize manifests are built at a ref, which must be the commit
    (40 hex) of a release tag of kubeflow/pipelines (X.Y.Z), not a branch or a movable tag; the
    exception is stated in the module and the README."""
    builds = {n: b for _, t, n, b in blocks("data", PLATFORM) if t == "kustomization_build"}
    assert set(builds) == {"kfp_cluster", "kfp"}
    for name, body in builds.items():
        match = re.fullmatch(r"github\.com/kubeflow/pipelines/manifests/kustomize/([a-z/-]+)\?ref=\$\{([^}]+)\}",
                             unq(body["path"]))
        assert match, f"{name}: {unq(body['path'])}"
        assert match.group(2) == "var.kubeflow_pipelines_commit", name
    assert {re.search(r"kustomize/([a-z/-]+)\?", unq(b["path"])).group(1) for b in builds.values()} == \
        {"cluster-scoped-resources", "env/platform-agnostic"}
    declared = {n: b for _, n, b in blocks("variable", PLATFORM)}["chart_versions"]
    ref = unq(declared["default"]["kubeflow_pipelines"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", ref), f"{ref} is not a release tag"
    conditions = [unq(v["condition"]) for v in declared["validation"]]
    assert any("var.chart_versions.kubeflow_pipelines" in c for c in conditions)
    commit = {n: b for _, n, b in blocks("variable", PLATFORM)}["kubeflow_pipelines_commit"]
    # The shipped default is a real commit (the tag's), so a plan with defaults builds pinned manifests.
    assert re.fullmatch(r"[0-9a-f]{40}", unq(commit["default"])) and set(unq(commit["default"])) != {"0"}
    assert [unq(v["condition"]) for v in commit["validation"]] == [
        'can(regex("^[0-9a-f]{40}$", var.kubeflow_pipelines_commit))', '!can(regex("^0{40}$", var.kubeflow_pipelines_commit))']
    main = (PLATFORM / "main.tf").read_text()
    assert "KFP publishes no\n# Helm chart" in main and "never a branch" in main
    readme = (REPO / "README.md").read_text()
    kfp_section = readme[readme.index("## Kubeflow Pipelines"):]
    kfp_section = kfp_section[:kfp_section.index("\n## ", 3)]
    assert "no Helm chart" in kfp_section and "release tag" in kfp_section and ref in kfp_section


# Components of the official Airflow chart (1.18, values.schema.json) that have a serviceAccount
# block, with the account name the chart gives them (<release>-<suffix>). The chart has no
# chart-wide serviceAccount key; its values schema refuses unknown keys.
AIRFLOW_CHART_ACCOUNTS = {
    "workers": "worker", "scheduler": "scheduler", "apiServer": "api-server", "webserver": "webserver",
    "triggerer": "triggerer", "dagProcessor": "dag-processor", "flower": "flower", "statsd": "statsd",
    "redis": "redis", "pgbouncer": "pgbouncer", "cleanup": "cleanup", "migrateDatabaseJob": "migrate-database-job",
    "createUserJob": "create-user-job",
}  # fmt: skip
# The ones that read or write S3 (the remote task logs, the run log): Airflow 3 components.
AIRFLOW_S3_COMPONENTS = {"workers", "scheduler", "apiServer", "triggerer", "dagProcessor"}


def test_every_airflow_component_that_uses_s3_has_the_irsa_role():
    (release,) = [b for _, n, b in resources("helm_release") if n == "airflow"]
    assert unq(release["name"]) == "airflow" and unq(release["chart"]) == "airflow"
    values = unq(release["values"][0])
    top = values.removeprefix("yamlencode({")
    annotated = set(re.findall(r"\b([A-Za-z]+) = \{serviceAccount = \{annotations = local\.airflow_irsa\}\}", values))
    assert annotated == AIRFLOW_S3_COMPONENTS
    assert annotated <= set(AIRFLOW_CHART_ACCOUNTS)
    assert not re.search(r"(^|, )serviceAccount = ", top), "the Airflow chart has no chart-wide serviceAccount value"
    assert {unq(k): unq(v) for k, v in platform_locals()["airflow_irsa"].items() if not k.startswith("__")} == \
        {"eks.amazonaws.com/role-arn": 'var.role_arns["airflow"]'}
    # The airflow role trusts exactly those accounts, by the names the chart gives them.
    iam = {n: b for _, n, b in blocks("variable", IAM)}
    trusted = {unq(a) for a in iam["service_accounts"]["default"]["airflow"]}
    assert trusted == {f"airflow:airflow-{AIRFLOW_CHART_ACCOUNTS[c]}" for c in AIRFLOW_S3_COMPONENTS}
    # Remote logging goes where that role may write.
    assert 'remote_base_log_folder = "s3://${var.bucket_names["artifacts"]}/airflow-logs"' in values
    assert ("artifacts", "airflow-logs/") in iam_grants("airflow", "write")


# -- every variable is validated, and the validations work ----------------------------------------

# Variables without a validation block, each with its reason. Kept short on purpose: a new
# variable gets a validation, or an entry here that says why none makes sense.
VALIDATION_EXEMPT_TYPES = {
    "bool": "true and false are both valid settings; Terraform's type check is the whole check",
}
VALIDATION_EXEMPT: dict[tuple[str, str], str] = {}


def variable_type(body: dict) -> str:
    return unq(body.get("type", ""))


def test_every_variable_is_validated_or_exempt_with_a_reason():
    missing, exempted = [], set()
    for path, name, body in blocks("variable"):
        where = (str(path.parent.relative_to(TF)), name)
        if "validation" in body:
            assert where not in VALIDATION_EXEMPT, f"{where} is validated: drop its exemption"
            for validation in body["validation"]:
                assert len(unq(validation["error_message"])) > 20, f"{where}: say what a valid value is"
            continue
        if variable_type(body) in VALIDATION_EXEMPT_TYPES:
            continue
        if where in VALIDATION_EXEMPT:
            exempted.add(where)
            continue
        missing.append(where)
    assert not missing, f"variables without a validation (add one, or an exemption with its reason): {missing}"
    assert exempted == set(VALIDATION_EXEMPT), f"stale exemptions: {set(VALIDATION_EXEMPT) - exempted}"
    for reason in [*VALIDATION_EXEMPT.values(), *VALIDATION_EXEMPT_TYPES.values()]:
        assert len(reason) >= 20


def test_shared_formats_are_validated_the_same_way_everywhere():
    """One rule per kind of value (a KMS key ARN, a VPC id, tags): a module cannot be looser."""
    for kind in ("kms_key_arn", "vpc_id", "tags", "client_security_group_ids"):
        conditions = {(path.parent.name, unq(v["condition"])) for path, name, body in blocks("variable")
                      if name == kind and path.parent.name != "environment" for v in body["validation"]}
        assert len({c for _, c in conditions}) == 1, f"{kind}: {sorted(conditions)}"


# Valid inputs of every module, as the environment module passes them (unknown values aside).
KMS_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VPC_ID, SUBNETS, SGS = "vpc-0123456789abcdef0", ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"], ["sg-0123456789abcdef0"]
TAGS = {"Project": "flightdeck", "Environment": "dev", "Owner": "ml-platform", "ManagedBy": "terraform"}
DIGEST = "sha256:" + "3f" * 32
RUNBOOK_URL = "https://github.com/example/flightdeck/blob/main"
NODE_GROUP = {"instance_types": ["m6i.xlarge"], "min_size": 1, "max_size": 3, "desired_size": 2}
GPU_GROUP = {"instance_types": ["g5.2xlarge"], "min_size": 0, "max_size": 4, "desired_size": 1}
ROLE = "arn:aws:iam::123456789012:role/flightdeck-dev-{}"
GOOD_INPUTS = {
    "modules/network": {"name": "flightdeck-dev", "cidr_block": "10.40.0.0/16",
                        "availability_zones": ["us-east-1a", "us-east-1b"], "kms_key_arn": KMS_ARN, "tags": TAGS},
    "modules/eks": {"name": "flightdeck-dev", "vpc_id": VPC_ID, "subnet_ids": SUBNETS, "kms_key_arn": KMS_ARN,
                    "system_node_group": NODE_GROUP, "gpu_node_group": GPU_GROUP, "tags": TAGS,
                    "public_access_cidrs": ["203.0.113.0/24"]},
    "modules/storage": {"name": "flightdeck-dev", "kms_key_arn": KMS_ARN, "tags": TAGS},
    "modules/ecr": {"repositories": ["flightdeck/stage", "flightdeck/train", "flightdeck/triton"],
                    "kms_key_arn": KMS_ARN, "tags": TAGS},
    "modules/online_store": {"name": "flightdeck-dev", "vpc_id": VPC_ID, "subnet_ids": SUBNETS,
                             "client_security_group_ids": SGS, "kms_key_arn": KMS_ARN, "tags": TAGS},
    "modules/airflow_db": {"name": "flightdeck-dev-airflow", "vpc_id": VPC_ID, "subnet_ids": SUBNETS,
                           "client_security_group_ids": SGS, "kms_key_arn": KMS_ARN, "tags": TAGS},
    "modules/iam": {"name": "flightdeck-dev",
                    "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
                    "oidc_issuer": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
                    "bucket_arns": {b: f"arn:aws:s3:::flightdeck-dev-{b}-123456789012" for b in ("data", "artifacts", "models")},
                    "kms_key_arn": KMS_ARN, "cluster_name": "flightdeck-dev",
                    "node_group_arns": ["arn:aws:eks:us-east-1:123456789012:nodegroup/flightdeck-dev/gpu/0ac7d9a2-1b2c-4d5e-8f90-123456789abc"],
                    "autoscaling_group_names": ["eks-gpu-0ac7d9a2-1b2c-4d5e-8f90-123456789abc"], "tags": TAGS},
    "modules/kms": {"name": "flightdeck-dev-data", "description": "flightdeck dev: S3 data, artifacts and models",
                    "tags": TAGS},
    "modules/platform": {"name": "flightdeck-dev",
                         "role_arns": {w: ROLE.format(w.replace("_", "-")) for w in
                                       ("data", "trainer", "batch_predict", "triton", "pipelines", "airflow", "cluster_autoscaler")},
                         "bucket_names": {b: f"flightdeck-dev-{b}-123456789012" for b in ("data", "artifacts", "models")},
                         "aws_region": "us-east-1", "redis_endpoint": "master.flightdeck-dev.abcdef.use1.cache.amazonaws.com:6379",
                         "image_registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com", "triton_image_digest": DIGEST,
                         "cluster_name": "flightdeck-dev", "kubernetes_version": "1.33",
                         "triton_replicas": {"min": 1, "max": 2, "max_unavailable": 1},
                         "redis_auth_token": "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6A7b8C9d0E1f2",
                         "runbook_base_url": RUNBOOK_URL, "kubeflow_pipelines_commit": "3f" * 20},
}
# One bad value per validated variable (its validation must refuse it).
BAD_INPUTS = {
    "modules/network": {"name": "Flightdeck", "cidr_block": "10.40.0.0/24", "availability_zones": ["us-east-1a"],
                        "flow_log_retention_days": 30, "kms_key_arn": "alias/flightdeck", "tags": {"aws:owner": "me"}},
    "modules/eks": {"name": "fd", "kubernetes_version": "1.29", "vpc_id": "vpc-123", "subnet_ids": ["subnet-zz", "subnet-0123456789abcdef0"],
                    "public_access_cidrs": ["0.0.0.0/0"], "kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab",
                    "system_node_group": {**NODE_GROUP, "min_size": 0},
                    "gpu_node_group": {**GPU_GROUP, "instance_types": ["p4d.24xlarge"]},
                    "nvidia_device_plugin_version": "latest", "log_retention_days": 30, "tags": {"": "empty key"}},
    "modules/storage": {"name": "FD", "buckets": {"data": {"noncurrent_version_expiration_days": 30}},
                        "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:alias/x", "access_log_retention_days": 7,
                        "tags": {"k": "v" * 300}},
    "modules/ecr": {"repositories": ["Flightdeck/Stage"], "kms_key_arn": "", "keep_images": 1,
                    "tags": {f"k{i}": "v" for i in range(41)}},
    "modules/online_store": {"name": "-x", "vpc_id": "vpc", "subnet_ids": ["subnet-0123456789abcdef0"],
                             "client_security_group_ids": [], "node_type": "r7g.large", "replicas": 0,
                             "engine_version": "6.2", "snapshot_retention_days": 0, "kms_key_arn": "arn:aws:kms:",
                             "tags": {"AWS:x": "y"}},
    "modules/airflow_db": {"name": "1db", "vpc_id": "subnet-0123456789abcdef0", "subnet_ids": ["sg-01234567", "sg-89abcdef"],
                           "client_security_group_ids": ["vpc-01234567"], "instance_class": "r6g.large",
                           "engine_version": "12", "allocated_storage_gb": 10, "backup_retention_days": 1,
                           "kms_key_arn": "arn:aws:kms:us-east-1:1234:key/x", "tags": {"x" * 129: "y"}},
    "modules/iam": {"name": "x", "oidc_provider_arn": "arn:aws:iam::123456789012:role/x",
                    "oidc_issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/X", "bucket_arns": {"data": "arn:aws:s3:::d"},
                    "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/", "service_accounts": {"everything": ["ns:sa"]},
                    "cluster_name": "Flightdeck_Dev", "node_group_arns": ["arn:aws:eks:us-east-1:123456789012:cluster/flightdeck-dev"],
                    "autoscaling_group_names": ["my-asg"], "tags": {"aws:cloudformation:stack": "x"}},
    "modules/kms": {"name": "aws/ebs", "description": "   ", "deletion_window_in_days": 3, "tags": {"k": "v" * 257}},
    "modules/platform": {"name": "a", "role_arns": {"data": ROLE.format("data")}, "cluster_name": "c",
                         "kubernetes_version": "1.29", "triton_replicas": {"min": 2, "max": 1, "max_unavailable": 2},
                         "bucket_names": {"data": "d"}, "aws_region": "us-east", "redis_endpoint": "redis://host",
                         "image_tag": "-bad", "model_name": "Flight-Delay", "lead_time_hours": 72, "scoring_interval_minutes": 90,
                         "image_registry": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/flightdeck",
                         "triton_image_digest": "sha256:" + "0" * 64, "airflow_metadata_secret": "Airflow_Metadata",
                         "redis_auth_token": "has,a-comma-and-is-long-enough", "runbook_base_url": "https://runbooks.example/",
                         "kubeflow_pipelines_commit": "2.14.3", "tuning_storage_url": "mysql://tuner:pw@db.example/optuna",
                         "chart_versions": {"airflow": "1.18.0", "kube_prometheus_stack": "77.6.0", "pushgateway": "3.11.2",
                                            "cluster_autoscaler": "9.50.0", "metrics_server": "3.12.2",
                                            "prometheus_adapter": "4.11.0", "kubeflow_pipelines": "master"}},
}


def terraform_plan(module: str, values: dict, tmp_path: Path) -> tuple[int, str]:
    """`terraform plan` of a module's variables.tf alone, with these inputs: it evaluates every
    variable's validations, needs no provider and no network (CHECKPOINT_DISABLE)."""
    terraform = require_terraform()
    import json

    work = tmp_path / module.replace("/", "-")
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(TF / module / "variables.tf", work / "variables.tf")
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    (work / "cli.tfrc").write_text("")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(work), "CHECKPOINT_DISABLE": "1",
           "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": str(work / "cli.tfrc")}
    out = subprocess.run([terraform, f"-chdir={work}", "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"],
                         capture_output=True, text=True, timeout=120, env=env)
    return out.returncode, out.stdout + out.stderr


def refused(output: str, variables_tf: Path) -> dict[str, str]:
    """{variable: its error message} for every "Invalid value for variable" in a plan's output;
    the variable is the one whose block holds the validation rule the diagnostic names."""
    starts = [(n, re.match(r'variable "([a-z_0-9]+)"', line).group(1))
              for n, line in enumerate(variables_tf.read_text().splitlines(), 1) if line.startswith("variable ")]
    out = {}
    for block in output.split("Error: Invalid value for variable")[1:]:
        line = int(re.search(r"checked by the validation rule at variables\.tf:(\d+),", block).group(1))
        name = [v for n, v in starts if n <= line][-1]
        message = block.split("\n\n", 2)[2].split("This was checked by")[0] if block.count("\n\n") >= 2 else block
        out.setdefault(name, " ".join(message.split()))
    return out


def error_messages(module: str) -> dict[str, list[str]]:
    return {n: [" ".join(unq(v["error_message"]).split()) for v in b.get("validation", [])]
            for _, n, b in blocks("variable", TF / module)}


@pytest.mark.parametrize("module", sorted(GOOD_INPUTS))
def test_module_validations_accept_good_inputs_and_refuse_each_bad_one(module, tmp_path):
    rc, output = terraform_plan(module, GOOD_INPUTS[module], tmp_path / "good")
    assert rc == 0, f"{module} refuses valid inputs:\n{output[-3000:]}"
    rc, output = terraform_plan(module, {**GOOD_INPUTS[module], **BAD_INPUTS[module]}, tmp_path / "bad")
    assert rc != 0
    got, messages = refused(output, TF / module / "variables.tf"), error_messages(module)
    assert set(got) == set(BAD_INPUTS[module]), f"{module}: refused {sorted(got)}, expected {sorted(BAD_INPUTS[module])}\n{output[-3000:]}"
    for name, text in got.items():
        assert any(m in text for m in messages[name]), f"{module}.{name}: {text}"
    validated = {n for n, m in messages.items() if m}
    assert validated == set(BAD_INPUTS[module]), f"{module}: no bad case for {validated - set(BAD_INPUTS[module])}"


def environment_inputs(env: Path) -> dict:
    """What a root passes modules/environment, with its locals and variables resolved (a real
    digest for the tfvars placeholder)."""
    call = environment_call(env)
    (env_locals,) = parse(env / "main.tf")["locals"]
    tags = {unq(k): unq(v) for k, v in env_locals["tags"].items()}
    root_vars = {n: b for _, n, b in blocks("variable", env)}

    def resolve(value):
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items() if not k.startswith("__")}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        text = unq(value)
        if text == "local.tags":
            return tags
        if text == "local.tags.Environment":
            return tags["Environment"]
        if isinstance(text, str) and text.startswith("var."):
            name = text.removeprefix("var.")
            given = {"triton_image_digest": DIGEST, "runbook_base_url": RUNBOOK_URL}  # no default: tfvars
            return given[name] if name in given else resolve(root_vars[name]["default"])
        return text

    return {k: resolve(v) for k, v in call.items() if k not in MODULE_META_ARGUMENTS and not k.startswith("__")}


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.name)
def test_environment_module_accepts_what_each_root_passes(env, tmp_path):
    rc, output = terraform_plan("modules/environment", environment_inputs(env), tmp_path)
    assert rc == 0, f"{env.name}: modules/environment refuses the root's inputs:\n{output[-3000:]}"


def test_environment_module_refuses_each_bad_input(tmp_path):
    dev = environment_inputs(ENVIRONMENTS[0])
    bad = {
        "environment": "Dev-1", "vpc_cidr": "8.8.0.0/16",
        "availability_zones": ["us-east-1a", "us-west-2b"], "eks_public_access_cidrs": ["0.0.0.0/0"],
        "system_node_group": {**NODE_GROUP, "instance_types": ["g5.xlarge"]},
        "gpu_node_group": {**GPU_GROUP, "min_size": 2, "desired_size": 1},
        "redis_node_type": "t4g.small", "redis_replicas": 0, "db_instance_class": "t4g.small",
        "triton_image_digest": "sha256:" + "0" * 64, "image_tag": "with space",
        "runbook_base_url": "http://runbooks.example", "tuning_storage_url": "sqlite:///optuna.db",
    }
    # Validations that refer to another variable run only when that one is valid: separately.
    cross = {
        "tags": {**TAGS, "Environment": "prod"},
        # Triton's max 3 + a surge + a training pod do not fit dev's 4 GPU nodes.
        "triton_replicas": {"min": 1, "max": 3, "max_unavailable": 1},
    }
    messages = error_messages("modules/environment")
    assert {n for n, m in messages.items() if m} == set(bad) | set(cross)
    got = {}
    for case, values in (("bad", bad), ("cross", cross)):
        rc, output = terraform_plan("modules/environment", {**dev, **values}, tmp_path / case)
        assert rc != 0
        got[case] = refused(output, TF / "modules/environment/variables.tf")
        assert set(got[case]) == set(values), f"refused {sorted(got[case])}, expected {sorted(values)}\n{output[-3000:]}"
        for name, text in got[case].items():
            assert any(m in text for m in messages[name]), f"{name}: {text}"
    assert "placeholder" in got["bad"]["triton_image_digest"]
    assert "triton_replicas.max + 2" in got["cross"]["triton_replicas"]


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.name)
def test_roots_refuse_the_placeholder_digest_until_it_is_filled_in(env, tmp_path):
    """terraform.tfvars ships an all-zero digest: the root's validation refuses it with a message
    that says where the real one comes from; a real digest passes."""
    tfvars = parse(env / "terraform.tfvars")
    placeholder = unq(tfvars["triton_image_digest"])
    assert re.fullmatch(r"sha256:0{64}", placeholder)
    assert "placeholder" in (env / "terraform.tfvars").read_text()
    runbook_placeholder = unq(tfvars["runbook_base_url"])
    rc, output = terraform_plan(str(env.relative_to(TF)), {"triton_image_digest": placeholder,
                                                           "runbook_base_url": runbook_placeholder}, tmp_path / "zero")
    variables_tf = env / "variables.tf"
    assert rc != 0 and set(refused(output, variables_tf)) == {"triton_image_digest", "runbook_base_url"}
    assert "make images PUSH=1" in refused(output, variables_tf)["triton_image_digest"]
    rc, output = terraform_plan(str(env.relative_to(TF)), {"triton_image_digest": DIGEST, "runbook_base_url": RUNBOOK_URL},
                                tmp_path / "real")
    assert rc == 0, output[-3000:]
    rc, output = terraform_plan(str(env.relative_to(TF)), {"triton_image_digest": DIGEST, "image_tag": "-x",
                                                           "runbook_base_url": RUNBOOK_URL,
                                                           "eks_public_access_cidrs": ["0.0.0.0/0"]}, tmp_path / "bad")
    assert set(refused(output, variables_tf)) == {"image_tag", "eks_public_access_cidrs"}


# The EKS public-access rule, in every variables.tf that declares it: what together covers the internet
# is refused, however it is split; ordinary operator networks pass.
PUBLIC_ACCESS_CIDRS = {"modules/eks": "public_access_cidrs", "modules/environment": "eks_public_access_cidrs",
                       "environments/dev": "eks_public_access_cidrs", "environments/prod": "eks_public_access_cidrs"}
COVERS_THE_INTERNET = [["0.0.0.0/0"], ["10.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"],
                       ["203.0.113.0/24", "0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"],
                       ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/3"]]
NOT_THE_INTERNET = [[], ["203.0.113.0/24", "198.51.100.7/32"], ["0.0.0.0/1"],
                    ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4"]]


@pytest.mark.parametrize("module", sorted(PUBLIC_ACCESS_CIDRS))
def test_public_access_cidrs_that_cover_the_internet_are_refused(module, tmp_path):
    variable = PUBLIC_ACCESS_CIDRS[module]
    # The other required inputs: the good ones of the module, what dev passes the environment module,
    # or the digest and runbook URL an environment root requires.
    if module == "modules/environment":
        base = environment_inputs(ENVIRONMENTS[0])
    else:
        base = GOOD_INPUTS.get(module, {"triton_image_digest": DIGEST, "runbook_base_url": RUNBOOK_URL})
    variables_tf = TF / module / "variables.tf"
    for i, cidrs in enumerate(COVERS_THE_INTERNET):
        rc, output = terraform_plan(module, {**base, variable: cidrs}, tmp_path / f"bad{i}")
        assert rc != 0 and set(refused(output, variables_tf)) == {variable}, (cidrs, output[-2000:])
        assert "cover less than the whole internet" in refused(output, variables_tf)[variable]
    for i, cidrs in enumerate(NOT_THE_INTERNET):
        rc, output = terraform_plan(module, {**base, variable: cidrs}, tmp_path / f"good{i}")
        assert rc == 0, (cidrs, output[-2000:])
