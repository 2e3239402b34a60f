"""The concurrency primitives of the features layer on a real local store, with real threads racing:
table upserts and progress records by compare-and-swap lose nothing; the registry lease admits one
holder, waits for a live one and takes over a dead or expired one at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from components.contracts import layout
from components.core.store import LocalStore
from components.features import tables as ft
from components.features.build import _upsert
from components.features.materialize import save_progress
from components.features.store_lease import LeaseTimeout, store_lease


def _race(n: int, fn) -> None:
    start = threading.Barrier(n)
    errors = []

    def one(i):
        start.wait()
        try:
            fn(i)
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_upserts_of_disjoint_and_overlapping_days_keep_every_row(tmp_path):
    store = LocalStore(tmp_path)
    day0 = pd.Timestamp("2013-01-01", tz="UTC")

    def rows(first: int, last: int) -> pd.DataFrame:
        stamps = [day0 + pd.Timedelta(days=d) for d in range(first, last + 1)]
        return pd.DataFrame({"carrier": "AA", ft.TS: ft.utc_us(stamps), "x": [float(s.day) for s in stamps]})

    ranges = [(0, 2), (3, 5), (6, 8), (2, 4), (9, 11), (7, 10), (12, 13), (1, 12)]

    def upsert(i):
        a, b = ranges[i]
        _upsert(store, "carrier_daily_stats", rows(a, b), day0 + pd.Timedelta(days=a), day0 + pd.Timedelta(days=b))

    _race(len(ranges), upsert)
    table = store.read_parquet(layout.feature_table_key("carrier_daily_stats"))
    pd.testing.assert_frame_equal(table, rows(0, 13))  # every day once, as one sequential pass leaves it


def test_concurrent_progress_records_merge_every_writers_intervals(tmp_path):
    store = LocalStore(tmp_path)
    day0 = pd.Timestamp("2013-01-01", tz="UTC")
    spans = [(day0 + pd.Timedelta(days=2 * i), day0 + pd.Timedelta(days=2 * i + 1)) for i in range(8)]
    _race(len(spans), lambda i: save_progress(store, [("weather_hourly", *spans[i])]))
    entry = store.read_json(layout.MATERIALIZATION_PROGRESS)["views"]["weather_hourly"]
    assert entry["intervals"] == [[a.isoformat(), b.isoformat()] for a, b in spans]
    assert entry["materialized_until"] == spans[-1][1].isoformat()


def test_the_lease_admits_one_holder_at_a_time(tmp_path):
    store = LocalStore(tmp_path)
    inside, most = [0], [0]
    lock = threading.Lock()

    def hold(_):
        with store_lease(store, "l/lease", "test", wait_s=60, lease_s=5):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            threading.Event().wait(0.05)
            with lock:
                inside[0] -= 1

    _race(6, hold)
    assert most[0] == 1 and not store.exists("l/lease")


def test_a_live_holder_is_waited_for_and_a_dead_or_expired_one_taken_over(tmp_path):
    store = LocalStore(tmp_path)
    with store_lease(store, "l/lease", "first holder", lease_s=30):
        with pytest.raises(LeaseTimeout, match="first holder"):
            with store_lease(store, "l/lease", "second", wait_s=0.3):
                pass
    dead = subprocess.Popen(["true"])
    dead.wait()
    far = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    store.write_bytes("l/lease", json.dumps({"owner": f"{os.uname().nodename}:{dead.pid}:x", "expires": far}).encode())
    with store_lease(store, "l/lease", "after a killed holder", wait_s=2):
        pass
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    store.write_bytes("l/lease", json.dumps({"owner": f"{socket.gethostname()}-elsewhere:1:x", "expires": past}).encode())
    with store_lease(store, "l/lease", "after an expired holder", wait_s=2):
        pass
    assert not store.exists("l/lease")


def test_a_long_holder_is_renewed_not_taken_over(tmp_path):
    store = LocalStore(tmp_path)
    with store_lease(store, "l/lease", "long", lease_s=0.6):
        threading.Event().wait(1.5)  # longer than the lease: renewed meanwhile
        with pytest.raises(LeaseTimeout):
            with store_lease(store, "l/lease", "second", wait_s=0.5, lease_s=0.6):
                pass
