"""The deploy lease: one deploy (hence one model-control load) per model at a time, across processes
and machines, held as a conditional write on layout.deploy_lock_key in the artifact store."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore, ConflictError

log = logging.getLogger(__name__)


class DeployFailed(StageFailed):
    """A deploy did not happen or was rolled back; what serves is what served before."""


@contextmanager
def deploy_lock(store: ArtifactStore, model: str, wait_s: float = 120.0, lease_s: float = 900.0):
    """One deploy per model at a time, across processes and machines (a conditional write in the store).

    A lease older than lease_s is taken over: a deploy killed mid-way must not block the next forever.
    """
    key = layout.deploy_lock_key(model)
    owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait_s
    while True:
        now = datetime.now(UTC)
        body = json.dumps({"owner": owner, "expires": (now + timedelta(seconds=lease_s)).isoformat()}).encode()
        current = store.read_versioned(key)
        try:
            if current is None:
                store.write_if(key, body, None)
                break
            held = json.loads(current[0])
            if datetime.fromisoformat(held["expires"]) < now:
                log.warning("taking over the expired deploy lock of %s held by %s", model, held["owner"])
                store.write_if(key, body, current[1])
                break
        except ConflictError:
            pass
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"another deploy of {model!r} holds its lock ({store.uri(key)}: {current[0].decode() if current else ''}); "
                f"waited {wait_s:.0f} s. Loads of one model are never run concurrently."
            )
        time.sleep(0.5)
    try:
        yield owner
    finally:
        got = store.read_versioned(key)
        if got is not None and json.loads(got[0]).get("owner") == owner:
            store.delete(key)
