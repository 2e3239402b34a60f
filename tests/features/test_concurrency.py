"""Feature builds and materializations of disjoint and overlapping day ranges, run at once as real
`flightdeck` processes (local profile) while a training set is read, leave exactly what the same runs
one after the other leave: feature tables, online store and training sets, value for value. Then the
same with a materializer SIGKILLed while it writes the online store (holding the registry lease) and
a build SIGKILLed meanwhile, both rerun afterwards.

Why it matters: a backfill, side-by-side batch_prediction runs and a continuous_training run build and
materialize overlapping days at once; each table write is a compare-and-swap, the progress record
too, and Feast's registry writes and materializations are serialized by a lease in the store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from components.contracts import layout

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = "artifacts"  # the local profile's store under FLIGHTDECK_HOME (Feast's own files are in feast/)
PREBUILT = ("2013-01-01", "2013-01-06")  # built before the concurrent phase: what the materializers load
BUILDS = [("2013-01-07", "2013-01-09"), ("2013-01-10", "2013-01-12"), ("2013-01-08", "2013-01-11")]
MATERIALIZES = [("2013-01-01", "2013-01-03"), ("2013-01-04", "2013-01-06"), ("2013-01-02", "2013-01-05")]
READ_MEANWHILE = ("2013-01-03", "2013-01-06")  # a training set read while the others write
FINAL = ("2013-01-04", "2013-01-12")  # the training set compared after everything


def _stage(kind: str, start: str, end: str) -> list[str]:
    args = {"build": ["features", "build"], "materialize": ["features", "materialize", "--chunk-days", "1"],
            "training-set": ["features", "training-set"]}[kind]
    return [sys.executable, "-m", "components.ops.cli", *args, "--start", start, "--end", end]


def _env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "FEAST_"))}
    return {**clean, "FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local"}


def _run(kind: str, start: str, end: str, home: Path) -> None:
    done = subprocess.run(_stage(kind, start, end), cwd=REPO, env=_env(home), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{kind} {start}..{end}: {done.stderr[-3000:]}"


def _jobs() -> list[tuple[str, str, str]]:
    return ([("build", a, b) for a, b in BUILDS] + [("materialize", a, b) for a, b in MATERIALIZES]
            + [("training-set", *READ_MEANWHILE)])


@pytest.fixture(scope="module")
def base(built_home, tmp_path_factory) -> Path:
    """Validated Jan 1-21, feature tables of PREBUILT only, no Feast registry or online store yet:
    the concurrent runs race to apply the registry too."""
    home = tmp_path_factory.mktemp("concurrency") / "base"
    shutil.copytree(built_home, home)
    shutil.rmtree(home / ARTIFACTS / layout.FEATURE_TABLES)
    shutil.rmtree(home / "feast", ignore_errors=True)
    _run("build", *PREBUILT, home)
    shutil.rmtree(home / "feast")
    return home


def _copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def _state(home: Path) -> dict:
    """What the runs leave: every feature table, the online store (created_ts aside) and the training sets."""
    tables = {p.name: pd.read_parquet(p) for p in sorted((home / ARTIFACTS / layout.FEATURE_TABLES).glob("*.parquet"))}
    online = {}
    with sqlite3.connect(home / "feast" / "online_store.db") as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in sorted(names):
            cols = [r[1] for r in con.execute(f"PRAGMA table_info('{name}')") if r[1] != "created_ts"]
            online[name] = pd.read_sql(f"SELECT {', '.join(cols)} FROM '{name}' ORDER BY {', '.join(cols[:2])}", con)
    sets = {}
    for a, b in (READ_MEANWHILE, FINAL):
        frame = pd.read_parquet(home / ARTIFACTS / layout.training_set_key(a, b))
        sets[(a, b)] = frame.sort_values("flight_id").reset_index(drop=True)
    progress = json.loads((home / ARTIFACTS / layout.MATERIALIZATION_PROGRESS).read_text())
    intervals = {v: e["intervals"] for v, e in progress["views"].items()}
    return {"tables": tables, "online": online, "sets": sets, "progress": intervals}


def _assert_same(got: dict, want: dict) -> None:
    assert got["progress"] == want["progress"]
    assert got["tables"].keys() == want["tables"].keys()
    for name, table in want["tables"].items():
        pd.testing.assert_frame_equal(got["tables"][name], table, check_exact=True, obj=name)
    assert got["online"].keys() == want["online"].keys() and len(want["online"]) >= 4
    for name, rows in want["online"].items():
        assert len(rows) > 0, name
        pd.testing.assert_frame_equal(got["online"][name], rows, check_exact=True, obj=name)
    for key, frame in want["sets"].items():
        assert len(frame) > 1000
        pd.testing.assert_frame_equal(got["sets"][key], frame, check_exact=True, obj=str(key))


def _in_process(kind: str, start: str, end: str, home: Path) -> None:
    """The stage a job's process runs, called here (the reference run need not pay the imports again)."""
    from components.contracts.stages import FeaturesBuildParams, MaterializeParams, TrainingSetParams
    from components.features.build import build
    from components.features.materialize import materialize
    from components.features.training_set import training_set

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        if kind == "build":
            build(FeaturesBuildParams(start=start, end=end))
        elif kind == "materialize":
            materialize(MaterializeParams(start=start, end=end, chunk_days=1))
        else:
            training_set(TrainingSetParams(start=start, end=end))


@pytest.fixture(scope="module")
def sequential(base, tmp_path_factory) -> dict:
    """The same jobs one after the other, in the order listed."""
    home = _copy(base, tmp_path_factory.mktemp("sequential") / "home")
    for job in _jobs():
        _in_process(*job, home)
    _in_process("training-set", *FINAL, home)
    return _state(home)


def _start_all(home: Path) -> dict[tuple[str, str, str], subprocess.Popen]:
    """The writers at once; the reader as soon as one of them has applied the registry (a training set
    needs one: it never applies)."""
    def start(job):
        log = open(home.parent / f"{'-'.join(job)}.log", "w")  # noqa: SIM115 - the process owns it
        return subprocess.Popen(_stage(*job), cwd=REPO, env=_env(home), stdout=subprocess.DEVNULL, stderr=log)

    writers = [job for job in _jobs() if job[0] != "training-set"]
    procs = {job: start(job) for job in writers}
    deadline = time.monotonic() + 300
    while not (home / "feast" / "registry.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    procs[("training-set", *READ_MEANWHILE)] = start(("training-set", *READ_MEANWHILE))
    return procs


def _wait(procs: dict, home: Path) -> dict:
    """Each job's exit status and the end of its stderr."""
    return {job: (p.wait(timeout=600), (home.parent / f"{'-'.join(job)}.log").read_text()[-3000:])
            for job, p in procs.items()}


def test_concurrent_builds_and_materializations_equal_a_sequential_run(base, sequential, tmp_path):
    home = _copy(base, tmp_path / "home")
    procs = _start_all(home)
    assert len(procs) >= 7
    results = _wait(procs, home)
    assert all(rc == 0 for rc, _ in results.values()), {j: err for j, (rc, err) in results.items() if rc}
    assert not (home / ARTIFACTS / layout.FEAST_REGISTRY_LEASE).exists()  # released by every holder
    _in_process("training-set", *FINAL, home)
    _assert_same(_state(home), sequential)


def _lease_holder(home: Path) -> int | None:
    try:
        owner = json.loads((home / ARTIFACTS / layout.FEAST_REGISTRY_LEASE).read_text())["owner"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return int(owner.split(":")[1])


def test_writers_killed_mid_write_then_rerun_equal_a_sequential_run(base, sequential, tmp_path):
    home = _copy(base, tmp_path / "home")
    procs = _start_all(home)
    materializers = {p.pid: job for job, p in procs.items() if job[0] == "materialize"}
    killed = []
    deadline = time.monotonic() + 300
    while not killed and time.monotonic() < deadline:
        holder = _lease_holder(home)
        if holder in materializers and procs[materializers[holder]].poll() is None:
            time.sleep(0.3)  # inside its chunks: some online rows written, the progress record not complete
            os.kill(holder, signal.SIGKILL)
            killed.append(materializers[holder])
        time.sleep(0.05)
    assert killed, "no materializer was seen holding the registry lease"
    build = procs[("build", *BUILDS[1])]
    if build.poll() is None:
        build.send_signal(signal.SIGKILL)
        killed.append(("build", *BUILDS[1]))
    results = _wait(procs, home)
    failed = {job for job, (rc, _) in results.items() if rc != 0}
    assert failed == set(killed) or failed <= set(killed), {j: results[j][1] for j in failed - set(killed)}
    assert results[killed[0]][0] == -signal.SIGKILL
    # The killed materializer's lease is taken over at once (its process is gone), not after lease_s.
    for job in killed:
        _run(*job, home)
    assert not (home / ARTIFACTS / layout.FEAST_REGISTRY_LEASE).exists()
    _in_process("training-set", *FINAL, home)
    _assert_same(_state(home), sequential)
