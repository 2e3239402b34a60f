"""A lease in the artifact store: one holder at a time across processes and machines, by conditional
writes (a local file lock + compare, or S3 If-Match / If-None-Match), renewed while held.

Used to serialize what Feast cannot do concurrently: writes of its registry (one object rewritten
whole by every `apply` and after every materialized chunk) and materializations into an online store
where the last write wins (SQLite). No database: the store's conditional write is the only primitive.

- Renewed every lease_s / 3 by a background thread while held, so a long holder is never taken over.
- Taken over only when expired, or at once when its owner is a process of this machine that is gone
  (a SIGKILLed stage on the same host does not make the next one wait lease_s).
- Released on the way out, only if still ours.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore, ConflictError

log = logging.getLogger(__name__)


class LeaseTimeout(StageFailed):
    """Another holder kept the lease for longer than this caller would wait."""


def _owner_is_gone(owner: str) -> bool:
    """Whether `owner` (host:pid:nonce) names a process of this machine that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != os.uname().nodename or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:  # killed but not yet reaped by its parent (a zombie) is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _body(owner: str, purpose: str, lease_s: float) -> bytes:
    expires = datetime.now(UTC) + timedelta(seconds=lease_s)
    return json.dumps({"owner": owner, "purpose": purpose, "expires": expires.isoformat()}).encode()


def _renew(store: ArtifactStore, key: str, owner: str, purpose: str, lease_s: float, stop: threading.Event) -> None:
    while not stop.wait(lease_s / 3):
        current = store.read_versioned(key)
        if current is None or json.loads(current[0]).get("owner") != owner:
            log.error("lease %s was taken from %s (%s); stopping its renewal", store.uri(key), owner, purpose)
            return
        try:
            store.write_if(key, _body(owner, purpose, lease_s), current[1])
        except ConflictError:
            continue  # re-read: still ours or taken, decided next round


@contextmanager
def store_lease(store: ArtifactStore, key: str, purpose: str, wait_s: float = 900.0,
                lease_s: float = 60.0) -> Iterator[str]:
    """Hold the lease at `key` for the block; waits up to wait_s for a live holder (LeaseTimeout after)."""
    owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        current = store.read_versioned(key)
        try:
            if current is None:
                store.write_if(key, _body(owner, purpose, lease_s), None)
                break
            held = json.loads(current[0])
            expired = datetime.fromisoformat(held["expires"]) < datetime.now(UTC)
            if expired or _owner_is_gone(held["owner"]):
                log.warning("taking over the %s lease %s of %s", "expired" if expired else "dead holder's",
                            store.uri(key), held["owner"])
                store.write_if(key, _body(owner, purpose, lease_s), current[1])
                break
        except ConflictError:
            pass  # somebody else moved first: look again
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"{purpose}: waited {wait_s:.0f} s for the lease {store.uri(key)}, held by "
                               f"{current[0].decode() if current else 'nobody'}")
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(store, key, owner, purpose, lease_s, stop), daemon=True)
    renewer.start()
    try:
        yield owner
    finally:
        stop.set()
        renewer.join()
        got = store.read_versioned(key)
        if got is not None and json.loads(got[0]).get("owner") == owner:
            store.delete(key)  # ours, renewed moments ago: nobody may take it over yet
