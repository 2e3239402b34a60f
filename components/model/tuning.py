"""What train reads of a tune run (components.model.tune): the chosen parameters, and where they came from.

Kept apart from tune.py, which imports train (its split and fitting): train imports this module only.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.stages import TrainParams
from components.core.store import ArtifactStore, sha256_bytes


def tuned_prefix(store: ArtifactStore, ref: str) -> str:
    """runs/tune/<id> from a tune id, that prefix, its best_params.json key, or either as a store URI."""
    root = store.uri().rstrip("/") + "/"
    ref = ref[len(root):] if ref.startswith(root) else ref
    ref = ref.removesuffix("best_params.json").rstrip("/")
    return ref if ref.startswith(layout.TUNE_RUNS + "/") else layout.tune_run_prefix(ref)


def load_tuned(store: ArtifactStore, ref: str) -> dict:
    """A tune run's choice for train: its parameters, where they came from and the hash of the file read."""
    prefix = tuned_prefix(store, ref)
    try:
        data = store.read_published(prefix, "best_params.json")
    except KeyError:
        raise StageFailed(f"--tuned {ref!r}: no published tune run at {store.uri(prefix)}; run `flightdeck tune` "
                          "for the window first") from None
    choice = json.loads(data)
    unknown = set(choice["params"]) - {f.name for f in fields(TrainParams)}
    if unknown:
        raise StageFailed(f"--tuned {ref!r}: parameters {sorted(unknown)} are not train parameters")
    return {**{k: choice[k] for k in ("tune_id", "study", "best_trial", "best_val_auc", "default_val_auc", "params")},
            "prefix": prefix, "uri": store.uri(prefix), "sha256": sha256_bytes(data)}


def apply_tuned(params: TrainParams, tuning: dict) -> TrainParams:
    """TrainParams with the tuned values in place of the searched ones (the rest as given)."""
    return replace(params, **tuning["params"])

