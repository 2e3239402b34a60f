"""One artifact store per backtest policy, over the one real store.

Each policy of a backtest needs its own registry, training and evaluation runs, predictions and
monitoring history (as if it were a separate FLIGHTDECK_HOME), while the data that does not
depend on the policy (raw, validated, quarantine, feature tables, training sets) is prepared once
and shared. `NamespacedStore` routes each key by its area: shared areas go to the base store as
they are, every other key goes under the policy's folder of the base store. A key of one area is
never split across the two, so multi-object publications stay atomic.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from components.core.store import ArtifactStore

SHARED_AREAS = ("raw", "validated", "quarantine", "features", "training_sets")


class NamespacedStore(ArtifactStore):
    def __init__(self, base: ArtifactStore, prefix: str, shared: tuple[str, ...] = SHARED_AREAS,
                 shared_prefixes: dict[str, str] | None = None):
        self.base = base
        self.prefix = prefix.strip("/")
        self.shared = set(shared)
        # Key prefixes redirected to another folder of the base store (e.g. a backtest-wide cache).
        self.shared_prefixes = {k.strip("/") + "/": v.strip("/") + "/" for k, v in (shared_prefixes or {}).items()}
        self.root = base.uri(self.prefix)

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        for src, dst in self.shared_prefixes.items():
            if key.startswith(src):
                return dst + key[len(src):]
        if key.split("/", 1)[0] in self.shared:
            return key
        return f"{self.prefix}/{key}"

    def uri(self, key: str = "") -> str:
        return self.base.uri(self._key(key)) if key else self.root

    def local_path(self, key: str = "") -> Path | None:
        return self.base.local_path(self._key(key))

    def read_bytes(self, key):
        return self.base.read_bytes(self._key(key))

    def write_bytes(self, key, data):
        self.base.write_bytes(self._key(key), data)

    def list(self, prefix=""):
        return sorted(self.list_modified(prefix))

    def list_modified(self, prefix=""):
        key = prefix.lstrip("/")
        full = self._key(key) if key else self.prefix + "/"
        for src, dst in self.shared_prefixes.items():
            if key.startswith(src):
                return {src + k[len(dst):]: t for k, t in self.base.list_modified(full).items()}
        if key.split("/", 1)[0] in self.shared:
            return self.base.list_modified(full)
        return {k[len(self.prefix) + 1:]: t for k, t in self.base.list_modified(full).items()}

    def exists(self, key):
        return self.base.exists(self._key(key))

    def delete(self, key):
        self.base.delete(self._key(key))

    def read_versioned(self, key):
        return self.base.read_versioned(self._key(key))

    def write_if(self, key, data, expected):
        return self.base.write_if(self._key(key), data, expected)


# -- the published day records -------------------------------------------------------------------
def day_prefix(root: str, policy: str, day: date) -> str:
    return f"{root}/days/{policy}/date={day.isoformat()}"


def read_day(store: ArtifactStore, root: str, namespace: str, day: date, label: str | None = None) -> dict | None:
    """A policy's published day record (None: not replayed yet), labelled with the policy's name as given now."""
    if store.published(day_prefix(root, namespace, day)) is None:
        return None
    record = json.loads(store.read_published(day_prefix(root, namespace, day), "day.json"))
    return record | {"policy": label} if label else record
