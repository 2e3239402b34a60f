"""One DAG, two runtimes: build the Airflow task that runs a stage, from its StageSpec.

`local` (the default) runs the stage's entry function in the worker, or its CLI as a child
process; `kubernetes` runs the stage's image in a KubernetesPodOperator, with what the cluster
gives a pod (settings, secrets, security context) defined once in components/core/cluster.py.
The runtime is a setting (FLIGHTDECK_RUNTIME); DAG files call `stage_task` and never change.
Details: docs/AIRFLOW.md, "Runtimes". Only cheap modules are imported here: DAG files must
parse fast, without torch/feast/GX.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from airflow.sdk import Asset

from components.contracts.errors import EXIT_BAD_INPUT, RESULT_PATH_ENV
from components.contracts.schema import NYCFLIGHTS13_DAYS
from components.contracts.stages import MIN_TRAIN_DAYS as MIN_TRAIN_DAYS  # re-exported for the DAG files
from components.contracts.stages import STAGES
from components.core import cluster
from components.core.images import GPU_NODE_SELECTOR, GPU_TOLERATION, service_account_for_stage
from components.core.settings import load_settings
from components.orchestration import report_links
from components.orchestration.notify import WebhookNotifier

log = logging.getLogger(__name__)

# Assets that connect the DAGs. URIs are logical names (x- scheme): the same in every
# profile, so the metadata DB's asset graph does not depend on where artifacts live.
PREDICTIONS = Asset(name="flight_delay_predictions", uri="x-flightdeck://predictions", group="flightdeck")
DRIFT = Asset(name="flight_delay_drift", uri="x-flightdeck://drift", group="flightdeck")

# The data's clock (docs/AIRFLOW.md, "The data's clock"): the schedules start on the first day the
# data holds and end with its last (schema.NYCFLIGHTS13_DAYS, the setting ingest, the backtest and the
# demo share), so the scheduler never starts a run for today's date on the 2013 data. 2013 days are run
# by triggering with a logical date, or with `airflow backfill create`. Airflow makes no task instance
# for a run whose logical date lies after END_DATE: such a run does nothing (and is not in the run log).
START_DATE = datetime.combine(NYCFLIGHTS13_DAYS[0], time.min, tzinfo=UTC)
END_DATE = datetime.combine(NYCFLIGHTS13_DAYS[1], time.max, tzinfo=UTC)  # the whole last day (04:00 runs too)

def scoring_schedule():
    """batch_prediction's timetable: a run at the start of every scoring interval (the setting
    scoring_interval_minutes; hourly by default), on the grid of components.contracts.prediction_time.
    Intervals of an hour or less are UTC crons (New York's offset is whole hours, so they are the local
    grid too); longer ones run on the local clock (the plan step floors each run's logical date to the grid;
    on the two DST days the wall clock and the grid differ: docs/AIRFLOW.md, "Dates and idempotence")."""
    from airflow.sdk import CronTriggerTimetable

    minutes = load_settings().scoring_interval_minutes
    if minutes <= 60 and 60 % minutes == 0:
        return CronTriggerTimetable("0 * * * *" if minutes == 60 else f"*/{minutes} * * * *", timezone="UTC")
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return CronTriggerTimetable(f"0 */{minutes // 60} * * *", timezone="America/New_York")
    raise ValueError(f"FLIGHTDECK_SCORING_INTERVAL_MINUTES={minutes}: batch_prediction runs on a cron, which needs "
                     "an interval that divides an hour, or a whole number of hours that divides a day")


XCOM_RESULT_PATH = "/airflow/xcom/return.json"  # what KubernetesPodOperator's xcom sidecar reads


@dataclass(frozen=True)
class Resources:
    cpu: str = "500m"
    memory: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    timeout_min: int = 30


# Per-stage pod resources and task timeouts; anything not named gets the defaults.
STAGE_RESOURCES: dict[str, Resources] = {
    "ingest": Resources(timeout_min=20),
    "validate": Resources(timeout_min=20),
    "features-build": Resources(cpu="1", memory="4Gi", memory_limit="8Gi"),
    "features-training-set": Resources(cpu="1", memory="4Gi", memory_limit="8Gi"),
    "features-materialize": Resources(timeout_min=20),
    "tune": Resources(cpu="1", memory="4Gi", memory_limit="8Gi", timeout_min=240),
    "train": Resources(cpu="4", memory="16Gi", cpu_limit="8", memory_limit="24Gi", timeout_min=120),
    "evaluate": Resources(cpu="1", memory="4Gi", memory_limit="8Gi"),
    "deploy": Resources(timeout_min=20),
    "rollout-start": Resources(timeout_min=20),
    "rollout-advance": Resources(timeout_min=30),  # two deploys at most (a superseded rollout's, then its own)
    "rollout-abort": Resources(timeout_min=20),
    "predict-batch": Resources(cpu="1", memory="4Gi", memory_limit="8Gi"),
    "monitor": Resources(cpu="1", memory="4Gi", memory_limit="8Gi"),
}

# Kubernetes placement, matching infra/terraform: the namespace, one IRSA service account per
# workload role (modules/iam service_accounts), the tainted GPU node group (modules/eks).
K8S_NAMESPACE = os.environ.get("FLIGHTDECK_K8S_NAMESPACE", "flightdeck")
# Stages that call the Kubernetes API themselves (deploy finds the Triton pods through the
# EndpointSlices of the Triton Service; infra/k8s/triton's Role allows just that).
NEEDS_API_TOKEN = ("deploy", "rollout-start", "rollout-advance", "rollout-abort")  # the rollout deploys


def service_account(spec_name: str) -> str:
    """The stage's service account (containers/images.yaml), bound to its IRSA role."""
    return service_account_for_stage(spec_name)


def default_args() -> dict:
    """Retries with exponential backoff and the failure notifier, for every task."""
    delay = float(os.environ.get("FLIGHTDECK_RETRY_DELAY_S", "60"))
    return {
        "owner": "flightdeck",
        "retries": int(os.environ.get("FLIGHTDECK_RETRIES", "2")),
        "retry_delay": timedelta(seconds=delay),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [WebhookNotifier()],
    }


def stage_task(spec_name: str, task_id: str | None = None, outlets: list | None = None,
               trigger_rule: str = "all_success", **params):
    """The task that runs stage `spec_name` with `params` (values may be Jinja templates); trigger_rule:
    Airflow's (none_failed_min_one_success for a task after an optional, possibly skipped, one)."""
    if spec_name not in STAGES:  # a wiring mistake in a DAG file: fail the parse, naming the choices
        raise KeyError(f"no stage named {spec_name!r} in components.contracts.stages.STAGES "
                       f"(known: {', '.join(sorted(STAGES))})")
    spec = STAGES[spec_name]
    spec.make_params(**{k: f"<{k}>" for k in params})  # refuse unknown parameter names at parse time
    res = STAGE_RESOURCES.get(spec_name, Resources())
    common = dict(
        task_id=task_id or spec_name.replace("-", "_"),
        execution_timeout=timedelta(minutes=res.timeout_min),
        outlets=outlets or [],
        trigger_rule=trigger_rule,
        doc_md=f"**{spec.name}**: {spec.help}\n\nentry `{spec.entry}`, CLI `flightdeck {' '.join(spec.command)}`",
    )
    settings = load_settings()
    if settings.runtime == "kubernetes":
        return report_links.attach(_pod_task(spec, res, settings, params, common), spec_name)
    from airflow.providers.standard.operators.python import PythonOperator

    task = PythonOperator(python_callable=run_stage_local, op_kwargs={"spec_name": spec_name, "params": params},
                          **common)
    return report_links.attach(task, spec_name)  # the UI's links to the stage's reports (report_links.py)


def run_stage_local(spec_name: str, params: dict) -> dict:
    """Local runtime: in the worker process, or as a child process (read when the task runs)."""
    mode = os.environ.get("FLIGHTDECK_LOCAL_TASKS", "inprocess")
    if mode not in ("inprocess", "subprocess"):
        raise ValueError(f"FLIGHTDECK_LOCAL_TASKS={mode!r} is not one of inprocess, subprocess")
    return (run_stage_inprocess if mode == "inprocess" else run_stage_subprocess)(spec_name, params)


def run_stage_inprocess(spec_name: str, params: dict) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from components.contracts.errors import BadInput

    try:
        result = STAGES[spec_name].run(**typed_params(spec_name, params))
    except BadInput as exc:
        # Refused input is quarantined; retrying the same data cannot pass.
        raise AirflowFailException(str(exc)) from exc
    log.info("%s result: %s", spec_name, json.dumps(result, default=str)[:2000])
    return result


def typed_params(spec_name: str, params: dict) -> dict:
    """Rendered templates are strings: give each the type of its dataclass field (as the CLI does)."""
    import dataclasses

    kinds = {f.name: f.type if isinstance(f.type, str) else f.type.__name__
             for f in dataclasses.fields(STAGES[spec_name].params)}
    out = {}
    for name, value in params.items():
        kind = kinds.get(name)
        if isinstance(value, str) and kind in ("int", "float"):
            value = int(value) if kind == "int" else float(value)
        elif isinstance(value, str) and kind == "bool":
            value = value.strip().lower() in ("1", "true", "yes")
        out[name] = value
    return out


def param_default(spec_name: str, name: str):
    """A stage parameter's default (DAG params offer it without repeating the number)."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(STAGES[spec_name].params) if f.name == name)


def run_stage_subprocess(spec_name: str, params: dict) -> dict:
    """Run `python -m components.ops.cli <stage args>`; its JSON result becomes the task's XCom."""
    from airflow.sdk.exceptions import AirflowFailException

    args = [sys.executable, "-m", "components.ops.cli", *STAGES[spec_name].cli_args(**params)]
    log.info("running %s", " ".join(args))
    proc = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy())
    if proc.stderr:
        log.info("stage stderr:\n%s", proc.stderr[-20000:])
    if proc.returncode == EXIT_BAD_INPUT:
        raise AirflowFailException(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "bad input")
    if proc.returncode != 0:
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with {proc.returncode}"
        raise RuntimeError(f"stage {spec_name} {how}; see the log above")
    return json.loads(proc.stdout)


def _pod_task(spec, res: Resources, settings, params: dict, common: dict):
    from kubernetes.client import models as k8s

    from components.core.images import image_for_stage  # noqa: I001 (kept local: reads containers/ at render time)
    from components.orchestration.pod import StagePodOperator

    limits = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    if spec.gpu:
        limits["nvidia.com/gpu"] = "1"
    # Settings by reference to the cluster's ConfigMap (infra/terraform/modules/platform), not
    # copied from the scheduler's environment; only the pod's own paths are set here.
    env = [k8s.V1EnvVar(name=RESULT_PATH_ENV, value=XCOM_RESULT_PATH)]
    env += [k8s.V1EnvVar(name=k, value=v) for k, v in cluster.SCRATCH_ENV.items()]
    # Secrets by reference, each only for the stages that use it (the Triton admin key: deploy; the
    # Redis online store's password: materialize).
    for name, secret, key in cluster.stage_secret_env(spec.name):
        env.append(k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key))))
    return StagePodOperator(
        name=f"flightdeck-{spec.name}",
        namespace=K8S_NAMESPACE,
        image=image_for_stage(spec.name, settings),
        cmds=["flightdeck"],
        arguments=spec.cli_args(**params),
        env_vars=env,
        env_from=[k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=cluster.SETTINGS_CONFIG_MAP))],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": res.cpu, "memory": res.memory}, limits=limits
        ),
        node_selector=dict(GPU_NODE_SELECTOR) if spec.gpu else None,
        tolerations=[k8s.V1Toleration(**GPU_TOLERATION)] if spec.gpu else None,
        service_account_name=service_account(spec.name),
        automount_service_account_token=spec.name in NEEDS_API_TOKEN,
        labels=cluster.stage_pod_labels(spec.name),
        do_xcom_push=True,  # the CLI writes its JSON result where the xcom sidecar reads it
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # keep failed pods for the on-call engineer
        # Pod Security Standards "restricted", enforced on the flightdeck namespace; the stage
        # container and (StagePodOperator) the xcom sidecar get the same container context.
        security_context=copy.deepcopy(cluster.POD_SECURITY_CONTEXT),
        container_security_context=copy.deepcopy(cluster.CONTAINER_SECURITY_CONTEXT),
        volumes=[k8s.V1Volume(name=cluster.SCRATCH_VOLUME,
                              empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=cluster.SCRATCH_SIZE_LIMIT))],
        volume_mounts=[k8s.V1VolumeMount(name=cluster.SCRATCH_VOLUME, mount_path=cluster.SCRATCH_PATH)],
        **common,
    )


def step(func, task_id: str | None = None, branch: bool = False, outlets: list | None = None):
    """A small Airflow-side task (a date, a branch, an asset event): runs in the worker in both runtimes."""
    from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator

    cls = BranchPythonOperator if branch else PythonOperator
    return cls(task_id=task_id or func.__name__, python_callable=func, outlets=outlets or [],
               execution_timeout=timedelta(minutes=5))


def xcom(task_id: str, key: str | None = None) -> str:
    """A template for a value from another task's result."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')" + (f"['{key}']" if key else "") + " }}"


def run_callbacks(pipeline: str) -> dict:
    """DAG-level callbacks that record each finished run in the run log (components.core.runlog), which
    `flightdeck status` and the pipeline alerts (FlightdeckPipelineFailed / ...Late) read."""

    def record(context, status: str) -> None:
        from components.core import runlog
        dag_run = context.get("dag_run")
        if dag_run is None:
            # Airflow builds the callback's context from the run's last task instance: without one, the run had
            # none (its logical date is outside the DAG's dates, START_DATE..END_DATE: the data's clock), so
            # nothing ran. Recording it as a success would hide a pipeline that is late.
            log.warning("%s run %s had no task instance (a logical date outside %s..%s, the data's days?): nothing "
                        "ran; not recorded in the run log", pipeline, context.get("run_id"), START_DATE.date(),
                        END_DATE.date())
            return
        info = {"run_id": getattr(dag_run, "run_id", None),
                "logical_date": str(getattr(dag_run, "logical_date", "") or ""),
                "reason": str(context.get("reason") or "")}
        try:
            runlog.record_run(pipeline, status, info)
        except Exception:  # the run's own outcome must not depend on the run log
            log.exception("could not record the %s run of %s", status, pipeline)

    return {"on_success_callback": lambda ctx: record(ctx, "success"),
            "on_failure_callback": lambda ctx: record(ctx, "failed")}

