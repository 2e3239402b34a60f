"""The deploy lease: one deploy (hence one model-control load) per model at a time, across processes
and machines, held as a conditional write on layout.deploy_lock_key in the artifact store.

The holder renews the lease from a heartbeat thread (every lease_s / 3, by compare-and-swap on the
object it wrote), so a deploy may run longer than lease_s; a lease is taken over only once it has
expired by a margin (the holder is dead: no heartbeat), and a holder whose renewal finds the lease
taken over fails at its next check, before it changes serving state.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore, ConflictError, StoreError

log = logging.getLogger(__name__)

# Clocks of two machines differ a little: a lease counts as expired only this long after its `expires`.
TAKEOVER_MARGIN_S = 30.0


class DeployFailed(StageFailed):
    """A deploy did not happen or was rolled back; what serves is what served before."""


class DeployLease:
    """A held deploy lease; `check()` raises DeployFailed once it is lost."""

    def __init__(self, store: ArtifactStore, model: str, key: str, owner: str, lease_s: float, token: str):
        self.store, self.model, self.key, self.owner, self.lease_s = store, model, key, owner, lease_s
        self._token, self._renewed = token, time.monotonic()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name=f"deploy-lease-{model}", daemon=True)

    def body(self) -> bytes:
        expires = datetime.now(UTC) + timedelta(seconds=self.lease_s)
        return json.dumps({"owner": self.owner, "expires": expires.isoformat()}).encode()

    def renew(self) -> None:
        """Extend `expires` by a conditional write on what this holder last wrote."""
        if self._lost:
            return
        try:
            self._token = self.store.write_if(self.key, self.body(), self._token)
            self._renewed = time.monotonic()
        except ConflictError:
            got = self.store.read_versioned(self.key)
            holder = json.loads(got[0]).get("owner") if got else None
            self._lost = (f"the deploy lease of {self.model!r} ({self.store.uri(self.key)}) was taken over by "
                          f"{holder or 'nobody (it was deleted)'} while this deploy ({self.owner}) held it")
            log.error("%s", self._lost)

    def check(self) -> None:
        """Raise DeployFailed if the lease is lost, or unrenewed so long that another may take it over."""
        if not self._lost and time.monotonic() - self._renewed > self.lease_s:
            self._lost = (f"the deploy lease of {self.model!r} could not be renewed for {self.lease_s:.0f} s "
                          f"(the store {self.store.uri(self.key)} is unreachable?); another deploy may hold it")
        if self._lost:
            raise DeployFailed(f"{self._lost}; this deploy stops here, serving state unchanged by it")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.renew()
            except StoreError as exc:  # a store hiccup: try again at the next beat (check() bounds the gap)
                log.warning("could not renew the deploy lease of %s: %s", self.model, exc)
            if self._lost:
                return

    def start(self) -> None:
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._lost:
            return  # somebody else's now: leave it alone
        try:
            self.store.write_if(self.key, b"", self._token)  # only if still ours, then gone
            self.store.delete(self.key)
        except ConflictError:
            pass


@contextmanager
def deploy_lock(store: ArtifactStore, model: str, wait_s: float = 120.0, lease_s: float = 900.0):
    """One deploy per model at a time, across processes and machines (a conditional write in the store).

    Yields the DeployLease, renewed while the context is held; a deploy killed mid-way stops renewing,
    and its lease is taken over once expired (by TAKEOVER_MARGIN_S, or a third of lease_s if shorter).
    """
    key = layout.deploy_lock_key(model)
    owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    margin = timedelta(seconds=min(TAKEOVER_MARGIN_S, lease_s / 3))
    lease = DeployLease(store, model, key, owner, lease_s, token="")
    deadline = time.monotonic() + wait_s
    while True:
        current = store.read_versioned(key)
        try:
            if current is None:
                lease._token = store.write_if(key, lease.body(), None)
                break
            held = _held(current[0])
            if held is None or datetime.fromisoformat(held["expires"]) + margin < datetime.now(UTC):
                log.warning("taking over the expired deploy lock of %s held by %s", model, (held or {}).get("owner"))
                lease._token = store.write_if(key, lease.body(), current[1])
                break
        except ConflictError:
            pass
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"another deploy of {model!r} holds its lock ({store.uri(key)}: {current[0].decode() if current else ''}); "
                f"waited {wait_s:.0f} s. Loads of one model are never run concurrently."
            )
        time.sleep(min(0.5, lease_s / 6))
    lease._renewed = time.monotonic()
    lease.start()
    try:
        yield lease
    finally:
        lease.release()


def _held(body: bytes) -> dict | None:
    """The lease record, or None for an empty or unreadable one (a release cut short): free to take."""
    try:
        held = json.loads(body)
        datetime.fromisoformat(held["expires"])
        return held
    except (ValueError, KeyError, TypeError):
        return None
