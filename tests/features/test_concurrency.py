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
import time
from pathlib import Path

import pandas as pd
import pytest

from components.contracts import layout
from components.features.feast_repo import definitions_module
from tests.features.concurrency_helpers import (
    BUILDS,
    FINAL,
    PREBUILT,
    READ_MEANWHILE,
    assert_same_tables_sets_progress,
    in_process,
    jobs,
    run,
    start_all,
    wait,
)

pytestmark = pytest.mark.slow

ARTIFACTS = "artifacts"  # the local profile's store under FLIGHTDECK_HOME (Feast's own files are in feast/)


def _env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "FEAST_"))}
    return {**clean, "FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local"}


def _run(kind: str, start: str, end: str, home: Path) -> None:
    run((kind, start, end), _env(home))


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
    assert_same_tables_sets_progress(got, want)
    assert got["online"].keys() == want["online"].keys() and len(want["online"]) >= 4
    pushed = {f"flightdeck_{view}" for view in definitions_module().PUSHED_VIEWS}
    for name, rows in want["online"].items():
        # builds and materializations fill every batch view; the day-so-far views are filled by push only
        assert (len(rows) == 0) if name in pushed else (len(rows) > 0), name
        pd.testing.assert_frame_equal(got["online"][name], rows, check_exact=True, obj=name)


def _in_process(kind: str, start: str, end: str, home: Path) -> None:
    in_process((kind, start, end), _env(home))


@pytest.fixture(scope="module")
def sequential(base, tmp_path_factory) -> dict:
    """The same jobs one after the other, in the order listed."""
    home = _copy(base, tmp_path_factory.mktemp("sequential") / "home")
    for job in jobs():
        _in_process(*job, home)
    _in_process("training-set", *FINAL, home)
    return _state(home)


def _start_all(home: Path) -> dict:
    return start_all(_env(home), home.parent, (home / "feast" / "registry.db").exists)


def _wait(procs: dict, home: Path) -> dict:
    return wait(procs, home.parent)


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
