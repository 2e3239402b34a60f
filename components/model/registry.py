"""The model registry: versioned models on the artifact store (a folder or an S3 bucket), no server.

Layout under models/<name>/:
  claims/<N>.json           created with If-None-Match (create-only): whoever creates it owns number N,
                            so two writers never get the same version; numbers are never reused
  versions/<N>/             model.pt, model.pt.sha256, signature.json, metrics.json, evaluation.json,
                            evaluation.md, lineage.json, reference.parquet, curves.png, model_card.json,
                            model_card.md (components.model.card), and LAST
                            version.json: the record (sha256 of every file). Only the owner of claim N
                            writes there, and a version exists only once its version.json does, so
                            a writer killed half-way leaves nothing a reader could take for a version
  aliases.json              ONE document with champion, previous, the champion history, deployments
                            and an event log, replaced only by compare-and-swap (If-Match on S3, an
                            flock'd compare-and-swap locally): of two concurrent promotions exactly one
                            wins, the other gets PromotionConflict and nothing is lost.

Every model load goes through `load_model` / `model_bytes`, which refuse a file whose sha256 differs
from the version record.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.store import ArtifactNotFound, ArtifactStore, ConflictError, open_store, sha256_bytes

log = logging.getLogger(__name__)

ALIASES = ("champion", "previous")
MAX_EVENTS = 200


class PromotionConflict(ConflictError, StageFailed):
    """An alias change lost a race with another writer; the other change stands, nothing was overwritten."""


class VersionNotFound(StageFailed, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


class Registry:
    def __init__(self, store: ArtifactStore, name: str):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
            raise StageFailed(f"model name {name!r} must be letters, digits, '_', '.' or '-'")
        self.store, self.name = store, name
        self.prefix = layout.model_prefix(name)

    # -- keys ---------------------------------------------------------------------------------
    def version_prefix(self, version: int) -> str:
        return f"{self.prefix}/versions/{int(version)}"

    @property
    def aliases_key(self) -> str:
        return f"{self.prefix}/aliases.json"

    def _numbers(self, under: str, pattern: str) -> list[int]:
        found = set()
        for key in self.store.list(f"{self.prefix}/{under}/"):
            m = re.match(pattern, key[len(self.prefix) + len(under) + 2 :])
            if m:
                found.add(int(m.group(1)))
        return sorted(found)

    # -- versions -----------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Complete versions, oldest first. A claimed number whose writer died is skipped, never reused."""
        return self._numbers("versions", r"(\d+)/version\.json$")

    def create_version(self, files: dict[str, bytes], record: dict,
                       numbered: Callable[[int], dict[str, bytes]] | None = None) -> int:
        """Claim the next number with a create-only write, write the files under it, then the record.

        `numbered(N)` makes the files that name the version's own number (the model card, written by
        register), once N is claimed; they are written and checksummed like the others."""
        for _ in range(1000):
            claimed = self._numbers("claims", r"(\d+)\.json$")
            number = (claimed[-1] if claimed else 0) + 1
            claim = json.dumps({"version": number, "claimed_at": utc_now(), "model_sha256": record.get("model_sha256")})
            try:
                self.store.write_if(f"{self.prefix}/claims/{number}.json", claim.encode(), None)
            except ConflictError:
                continue  # another writer took this number first: take the next one
            base = self.version_prefix(number)
            if numbered is not None:
                files = {**files, **numbered(number)}
            for name, data in sorted(files.items()):
                self.store.write_bytes(f"{base}/{name}", data)
            entries = {name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in files.items()}
            full = {**record, "version": number, "model_name": self.name, "files": entries, "published_at": utc_now()}
            if "model.pt" in files:
                full["sha256"] = full["model_sha256"] = entries["model.pt"]["sha256"]
            self.store.write_if(f"{base}/version.json", json.dumps(full, indent=2, sort_keys=True).encode(), None)
            return number
        raise StageFailed(f"could not claim a version number for model {self.name} after 1000 tries")

    def get(self, version: int) -> dict:
        """The version record (version.json): what was registered, with every file's sha256."""
        try:
            return self.store.read_json(f"{self.version_prefix(version)}/version.json")
        except ArtifactNotFound:
            have = self.versions()
            raise VersionNotFound(f"model {self.name} has no version {version} in {self.store.uri(self.prefix)} "
                                  f"(versions: {', '.join(map(str, have)) or 'none'})") from None

    def resolve(self, ref: str | int) -> int:
        """A version number from a number or an alias (champion, previous)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return int(ref)
        if ref not in ALIASES:
            raise StageFailed(f"{ref!r} is neither a version number nor an alias ({', '.join(ALIASES)})")
        doc, _ = self.aliases()
        if doc.get(ref) is None:
            raise VersionNotFound(f"model {self.name} has no {ref} yet")
        return int(doc[ref])

    def read_file(self, ref: str | int, name: str) -> bytes:
        """One file of a version, checked against the sha256 it was published with."""
        version = self.resolve(ref)
        record = self.get(version)
        if name not in record["files"]:
            raise VersionNotFound(f"version {version} of {self.name} has no file {name!r}")
        data = self.store.read_bytes(f"{self.version_prefix(version)}/{name}")
        if sha256_bytes(data) != record["files"][name]["sha256"]:
            from components.model.network import ModelIntegrityError

            raise ModelIntegrityError(
                f"{name} of {self.name} version {version} has sha256 {sha256_bytes(data)}, but the registry "
                f"recorded {record['files'][name]['sha256']}: the file changed after registration; it is refused."
            )
        return data

    def model_bytes(self, ref: str | int) -> tuple[bytes, int]:
        """The TorchScript file of a version, verified against the version record's sha256."""
        from components.model.network import ModelIntegrityError

        version = self.resolve(ref)
        record = self.get(version)
        data = self.store.read_bytes(f"{self.version_prefix(version)}/model.pt")
        expected = record.get("model_sha256")
        if not expected or sha256_bytes(data) != expected or record["files"]["model.pt"]["sha256"] != expected:
            raise ModelIntegrityError(
                f"refusing to load {self.name} version {version}: model.pt has sha256 {sha256_bytes(data)} but "
                f"the registry recorded {expected}. The file was changed or corrupted after registration; "
                f"roll back (`flightdeck registry rollback`) or register the model again."
            )
        return data, version

    def load_model(self, ref: str | int = "champion"):
        """The TorchScript module of a version or alias, only after its sha256 checks out."""
        from components.model.network import load_scripted

        data, version = self.model_bytes(ref)
        return load_scripted(data, self.get(version)["model_sha256"], f"{self.store.uri(self.version_prefix(version))}")

    def find(self, **match) -> int | None:
        """The newest version whose record has these values (used to make register idempotent)."""
        for version in reversed(self.versions()):
            record = self.get(version)
            if all(record.get(k) == v for k, v in match.items()):
                return version
        return None

    # -- aliases ------------------------------------------------------------------------------
    def aliases(self) -> tuple[dict, str | None]:
        """The alias document and its version token (None when nothing was ever promoted)."""
        got = self.store.read_versioned(self.aliases_key)
        if got is None:
            return {"champion": None, "previous": None, "champion_history": [], "deployed": {}, "events": []}, None
        return json.loads(got[0]), got[1]

    def _swap(self, doc: dict, token: str | None, action: str) -> dict:
        doc["events"] = (doc.get("events", []) + [{"action": action, "at": utc_now(), "champion": doc["champion"]}])[
            -MAX_EVENTS:
        ]
        doc["updated_at"] = utc_now()
        try:
            self.store.write_if(self.aliases_key, json.dumps(doc, indent=2, sort_keys=True).encode(), token)
        except ConflictError as exc:
            raise PromotionConflict(
                f"{action} of model {self.name} lost a race: its aliases ({self.store.uri(self.aliases_key)}) were "
                "changed by another promotion or rollback after this one read them, so nothing was written. "
                "Check the current champion with `flightdeck registry show` and retry if the change is still wanted."
            ) from exc
        return doc

    def promote(self, ref: str | int, force: bool = False) -> dict:
        """Make a version champion (the old champion becomes previous), by compare-and-swap."""
        version = self.resolve(ref)
        doc, token = self.aliases()
        record = self.get(version)
        if not record.get("blessed") and not force:
            raise StageFailed(f"version {version} of {self.name} was not blessed by its evaluation "
                              f"({record.get('evaluation_id')}); promote it anyway only with --force")
        self.model_bytes(version)  # never promote a file that does not match its record
        if doc.get("champion") == version:
            return doc
        doc["previous"] = doc.get("champion")
        doc["champion"] = version
        doc["champion_history"] = doc.get("champion_history", []) + [version]
        log.info("promoting %s version %d (previous champion %s)", self.name, version, doc["previous"])
        return self._swap(doc, token, f"promote {version}")

    def rollback(self) -> dict:
        """Restore the previous champion, by compare-and-swap."""
        doc, token = self.aliases()
        history = doc.get("champion_history", [])
        if len(history) < 2:
            raise StageFailed(f"model {self.name} has no previous champion to roll back to "
                              f"(champion history: {history or 'empty'})")
        restored = history[-2]
        self.model_bytes(restored)
        doc["champion_history"] = history[:-1]
        doc["champion"] = restored
        doc["previous"] = history[-3] if len(history) >= 3 else None
        log.info("rolling %s back from version %d to %d", self.name, history[-1], restored)
        return self._swap(doc, token, f"rollback {history[-1]} -> {restored}")

    def record_deployment(self, ref: str | int, target: str, info: dict | None = None, attempts: int = 20) -> dict:
        """Note that a version now serves at `target` (e.g. 'triton-local'); used by the deploy stage.

        A deployment is a fact to record, not a decision: on a lost race the document is re-read
        and the record applied again.
        """
        version = self.resolve(ref)
        self.get(version)
        for attempt in range(attempts):
            doc, token = self.aliases()
            doc.setdefault("deployed", {})[target] = {"version": version, "at": utc_now(), "info": info or {}}
            try:
                return self._swap(doc, token, f"deployed {version} to {target}")
            except PromotionConflict:
                time.sleep(0.05 * (attempt + 1))
        raise StageFailed(f"could not record the deployment of {self.name} version {version} to {target}: "
                          f"{attempts} conflicting writers in a row")

    def deployed(self, target: str) -> dict | None:
        return self.aliases()[0].get("deployed", {}).get(target)

    def summary(self) -> dict:
        doc, _ = self.aliases()
        rows = []
        for version in self.versions():
            record = self.get(version)
            rows.append({
                "version": version,
                "blessed": record.get("blessed"),
                "roc_auc": record.get("metrics", {}).get("roc_auc"),
                "window": record.get("window"),
                "registered_at": record.get("registered_at"),
                "aliases": [a for a in ALIASES if doc.get(a) == version]
                + [f"deployed:{t}" for t, d in doc.get("deployed", {}).items() if d.get("version") == version],
            })
        return {"model": self.name, "champion": doc.get("champion"), "previous": doc.get("previous"), "versions": rows}


def open_registry(name: str = "", store: ArtifactStore | None = None) -> Registry:
    from components.core.settings import load_settings

    return Registry(store or open_store(), name or load_settings().model_name)
