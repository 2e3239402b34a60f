"""`flightdeck kfp compile | run-local | submit`: the KFP side of the CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from components.cli import EXTRA_COMMANDS

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def code_version() -> str:
    """The code version that pipeline versions and run names carry: git describe, else the package version."""
    from components import __version__

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return __version__


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    from kfp import compiler

    from pipelines.definitions import PIPELINES

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in PIPELINES.items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    return written


def run_local(name: str, arguments: dict, pipeline_root: str | None = None):
    """Run a pipeline end to end with kfp.local: each step a subprocess of this Python, real stages."""
    import kfp.local

    from components.settings import load_settings
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
    settings' Triton, the CPU server of the local runtime (as the Airflow DAG's deploy_target())."""
    if name == "training":
        return {"deploy_target": "gpu" if settings.runtime == "kubernetes" else "cpu", **arguments}
    return dict(arguments)


def submit(name: str, host: str, arguments: dict, experiment: str, service_account: str, namespace: str):
    """Upload the compiled pipeline as a version named after the code version, and start a run."""
    import kfp

    out_dir = Path(f"/tmp/flightdeck-kfp-{int(time.time())}")
    paths = {p.stem: p for p in compile_all(out_dir)}
    version = code_version()
    try:
        client = kfp.Client(host=host, namespace=namespace)
    except Exception as exc:  # urllib3 / kfp_server_api raise several types for an unreachable host
        from components.errors import StageFailed

        raise StageFailed(f"cannot reach Kubeflow Pipelines at {host}: {exc}. The pipeline compiled fine; "
                          "check the URL, your port-forward or ingress, and credentials.") from exc
    pipeline_name = f"flightdeck-{name.replace('_', '-')}"
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(paths[name]), pipeline_name=pipeline_name).pipeline_id
    pv = client.upload_pipeline_version(str(paths[name]), pipeline_version_name=f"{pipeline_name}-{version}",
                                        pipeline_id=pipeline_id)
    run_name = f"{pipeline_name}-{version}-{time.strftime('%Y%m%dT%H%M%S')}"
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    run = client.run_pipeline(experiment_id=experiment_id, job_name=run_name, params=arguments,
                              pipeline_id=pipeline_id, version_id=pv.pipeline_version_id,
                              service_account=service_account, enable_caching=False)
    return {"pipeline": pipeline_name, "pipeline_version": pv.display_name, "run_name": run_name, "run_id": run.run_id}


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


def _add(parser: argparse.ArgumentParser) -> None:
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


def _run(args) -> int:
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


EXTRA_COMMANDS["kfp"] = ("Kubeflow Pipelines: compile, run locally, submit to a cluster", _add, _run)
