"""`flightdeck kfp compile | run-local | submit`: the KFP side of the CLI."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from components import code_version

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def compile_pipeline(name: str, out_dir: Path) -> Path:
    """Write one pipeline's IR YAML to out_dir/<name>.yaml."""
    from kfp import compiler

    from pipelines.definitions import PIPELINES

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], str(path))
    return path


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    from pipelines.definitions import PIPELINES

    return [compile_pipeline(name, out_dir) for name in PIPELINES]


def run_local(name: str, arguments: dict, pipeline_root: str | None = None):
    """Run a pipeline end to end with kfp.local: each step a subprocess of this Python, real stages."""
    import kfp.local

    from components.core.settings import load_settings
    from pipelines.definitions import PIPELINES

    if name not in PIPELINES:
        raise SystemExit(f"no pipeline {name!r}; pipelines: {', '.join(PIPELINES)}")
    settings = load_settings()
    root = pipeline_root or str(settings.home_path / "kfp")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root)
    return PIPELINES[name](**local_arguments(name, arguments, settings))


def local_arguments(name: str, arguments: dict, settings) -> dict:
    """A kfp.local run's arguments. The compiled training pipeline deploys to the cluster's GPU
    Triton (deploy_target defaults to gpu, where its deploy step runs); kfp.local deploys to the
    settings' Triton: its runtime's target (Settings.triton_target, the local CPU server)."""
    if name == "training":
        return {"deploy_target": settings.triton_target, **arguments}
    return dict(arguments)


def submit(name: str, host: str, arguments: dict, experiment: str, service_account: str, namespace: str) -> dict:
    """Upload the compiled pipeline as a version named after the code version, and start a run named after it.

    The pipeline (flightdeck-<name>) is uploaded on the first submit and found by name afterwards. Its
    version is named `<pipeline>-<code version>-ir-<sha256 of the IR, 8 hex>`: KFP refuses a second version
    of one name in a pipeline, so a submit of code that is already there (another date range, a rerun)
    reuses that version, while an edited dirty tree (git describe unchanged) or other images
    (FLIGHTDECK_IMAGE_TAG) make another IR and so a version of their own. The IR is compiled into a
    temporary folder, removed afterwards. kfp prints its links to stderr; stdout stays the JSON result.
    """
    pipeline_name = f"flightdeck-{name.replace('_', '-')}"
    version = code_version()
    with tempfile.TemporaryDirectory(prefix="flightdeck-kfp-") as tmp, contextlib.redirect_stdout(sys.stderr):
        package = str(compile_pipeline(name, Path(tmp)))
        digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:8]
        version_name = f"{pipeline_name}-{version}-ir-{digest}"
        client = _client(host, namespace)
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(package, pipeline_name=pipeline_name).pipeline_id
        pv = _pipeline_version(client, pipeline_id, version_name)
        if pv is None:
            pv = client.upload_pipeline_version(package, pipeline_version_name=version_name, pipeline_id=pipeline_id)
        run_name = f"{pipeline_name}-{version}-{time.strftime('%Y%m%dT%H%M%S')}"
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        # kfp 2.16 applies enable_caching only to a run from a package, not to one from a pipeline version:
        # no step is cached because every task of the IR says so (definitions._configure, tests/kfp).
        run = client.run_pipeline(experiment_id=experiment_id, job_name=run_name, params=arguments,
                                  pipeline_id=pipeline_id, version_id=pv.pipeline_version_id,
                                  service_account=service_account, enable_caching=False)
    return {"pipeline": pipeline_name, "pipeline_id": pipeline_id, "pipeline_version": pv.display_name,
            "pipeline_version_id": pv.pipeline_version_id, "run_name": run_name, "run_id": run.run_id}


def _client(host: str, namespace: str):
    import kfp

    try:
        # The constructor asks the API's healthz (multi-user or not): the first call that needs the endpoint.
        return kfp.Client(host=host, namespace=namespace)
    except Exception as exc:  # urllib3 / kfp_server_api raise several types for an unreachable host
        from components.contracts.errors import StageFailed

        raise StageFailed(f"cannot reach Kubeflow Pipelines at {host}: {exc}. The pipeline compiled fine; "
                          "check the URL, your port-forward or ingress, and credentials.") from exc


def _pipeline_version(client, pipeline_id: str, version_name: str):
    """The pipeline's version of that name, or None."""
    name_filter = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name",
                                              "stringValue": version_name}]})
    found = client.list_pipeline_versions(pipeline_id=pipeline_id, filter=name_filter).pipeline_versions or []
    return next((v for v in found if v.display_name == version_name), None)


def _typed(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _parse_args(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--arg {pair!r}: expected NAME=VALUE")
        k, v = pair.split("=", 1)
        out[k] = _typed(v)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kfp_command", metavar="ACTION", required=True)
    p = sub.add_parser("compile", help="write the IR YAML of every pipeline")
    p.add_argument("--out", default=str(COMPILED_DIR), help=f"folder (default: {COMPILED_DIR})")
    for action, help_text in (("run-local", "run a pipeline end to end with kfp.local on the local profile"),
                              ("submit", "submit a pipeline to a Kubeflow Pipelines endpoint")):
        p = sub.add_parser(action, help=help_text, description=help_text)
        p.add_argument("pipeline", choices=["training", "batch_prediction", "monitoring"])
        p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter (repeatable)")
        if action == "submit":
            p.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline")
            p.add_argument("--experiment", default="flightdeck", help="experiment name (default: flightdeck)")
            p.add_argument("--service-account", default="flightdeck-pipelines", help="pods' service account (IRSA)")
            p.add_argument("--namespace", default="kubeflow", help="KFP namespace (default: kubeflow)")


def run(args) -> int:
    if args.kfp_command == "compile":
        for path in compile_all(Path(args.out)):
            print(path)
        return 0
    arguments = _parse_args(args.arg)
    if args.kfp_command == "run-local":
        run_local(args.pipeline, arguments)
        print(json.dumps({"pipeline": args.pipeline, "status": "SUCCEEDED"}))
        return 0
    print(json.dumps(submit(args.pipeline, args.host, arguments, args.experiment, args.service_account,
                            args.namespace), indent=2))
    return 0
