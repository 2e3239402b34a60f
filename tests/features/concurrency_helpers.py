"""What the concurrency tests of both profiles share (tests/features/test_concurrency.py, local;
test_concurrency_aws.py, the S3 API server and Redis): the jobs, their `flightdeck` command lines,
starting them at once, waiting for them, and comparing what they leave with a sequential run's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
PREBUILT = ("2013-01-01", "2013-01-06")  # built before the concurrent phase: what the materializers load
BUILDS = [("2013-01-07", "2013-01-09"), ("2013-01-10", "2013-01-12"), ("2013-01-08", "2013-01-11")]
MATERIALIZES = [("2013-01-01", "2013-01-03"), ("2013-01-04", "2013-01-06"), ("2013-01-02", "2013-01-05")]
READ_MEANWHILE = ("2013-01-03", "2013-01-06")  # a training set read while the others write
FINAL = ("2013-01-04", "2013-01-12")  # the training set compared after everything

Job = tuple[str, str, str]


def stage(kind: str, start: str, end: str) -> list[str]:
    args = {"build": ["features", "build"], "materialize": ["features", "materialize", "--chunk-days", "1"],
            "training-set": ["features", "training-set"]}[kind]
    return [sys.executable, "-m", "components.ops.cli", *args, "--start", start, "--end", end]


def run(job: Job, env: dict[str, str]) -> None:
    done = subprocess.run(stage(*job), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(job)}: {done.stderr[-3000:]}"


def jobs() -> list[Job]:
    return ([("build", a, b) for a, b in BUILDS] + [("materialize", a, b) for a, b in MATERIALIZES]
            + [("training-set", *READ_MEANWHILE)])


def in_process(job: Job, env: dict[str, str]) -> None:
    """The stage a job's process runs, called here under the job's environment (the reference run need
    not pay the imports again)."""
    from components.contracts.stages import FeaturesBuildParams, MaterializeParams, TrainingSetParams
    from components.features.build import build
    from components.features.materialize import materialize
    from components.features.training_set import training_set

    kind, start, end = job
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith(("FLIGHTDECK_", "FEAST_"))]:
            mp.delenv(name)
        for name, value in env.items():
            if name.startswith(("FLIGHTDECK_", "AWS_")):
                mp.setenv(name, value)
        if kind == "build":
            build(FeaturesBuildParams(start=start, end=end))
        elif kind == "materialize":
            materialize(MaterializeParams(start=start, end=end, chunk_days=1))
        else:
            training_set(TrainingSetParams(start=start, end=end))


def log_path(logs: Path, job: Job) -> Path:
    return logs / f"{'-'.join(job)}.log"


def start_all(env: dict[str, str], logs: Path, registry_applied: Callable[[], bool]) -> dict[Job, subprocess.Popen]:
    """The writers at once; the reader as soon as one of them has applied the registry (a training set
    needs one: it never applies)."""
    def start(job):
        log = open(log_path(logs, job), "w")  # noqa: SIM115 - the process owns it
        return subprocess.Popen(stage(*job), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)

    writers = [job for job in jobs() if job[0] != "training-set"]
    procs = {job: start(job) for job in writers}
    deadline = time.monotonic() + 300
    while not registry_applied() and time.monotonic() < deadline:
        time.sleep(0.1)
    procs[("training-set", *READ_MEANWHILE)] = start(("training-set", *READ_MEANWHILE))
    return procs


def wait(procs: dict, logs: Path) -> dict:
    """Each job's exit status and the end of its stderr."""
    return {job: (p.wait(timeout=600), log_path(logs, job).read_text()[-3000:]) for job, p in procs.items()}


def assert_same_tables_sets_progress(got: dict, want: dict) -> None:
    """Feature tables, training sets and materialization progress, value for value."""
    assert got["progress"] == want["progress"]
    assert got["tables"].keys() == want["tables"].keys()
    for name, table in want["tables"].items():
        pd.testing.assert_frame_equal(got["tables"][name], table, check_exact=True, obj=name)
    for key, frame in want["sets"].items():
        assert len(frame) > 1000
        pd.testing.assert_frame_equal(got["sets"][key], frame, check_exact=True, obj=str(key))
