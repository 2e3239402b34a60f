"""The register stage: add an evaluated training run to the registry as a new version, and promote it
when its evaluation blessed it. The registry itself (versions, aliases, checksums) is
components.model.registry."""

from __future__ import annotations

import json
import logging

from components.contracts import layout
from components.contracts.results import RegisterResult
from components.contracts.stages import RegisterParams
from components.core.store import ArtifactStore, open_store, sha256_bytes
from components.model import evaluate as ev
from components.model.card import CARD_JSON, build_card, card_files
from components.model.registry import open_registry, utc_now

log = logging.getLogger(__name__)


def register(params: RegisterParams, store: ArtifactStore | None = None) -> RegisterResult:
    """Add an evaluated training run as a new version (idempotent), and promote it if it was blessed.

    Inputs:
      runs/evaluate/<eval-id>/ (evaluation.json, report.md; default: runs/evaluate/_latest.json) and
      the training run it evaluated, runs/train/<run-id>/ (model.pt, lineage.json, signature.json,
      metrics.json, params.json, curves.png, reference.parquet), each read sha256-checked.
    Outputs:
      models/<name>/versions/<N>/: those files, the evaluation, model.pt.sha256, the lineage with
      the evaluation id and the model card (model_card.json, model_card.md: components.model.card);
      version.json with the record. Nothing new when the same evaluation of the same model bytes is
      already a version with a card (one without, registered before cards existed, gets a new version
      that has one: deploy refuses a version without a card). With --promote and a blessed evaluation:
      models/<name>/aliases.json names it champion (compare-and-swap).
    Returns:
      RegisterResult: the version, whether this call created or promoted it, the champion now.
    Failures:
      StageFailed: no evaluation published yet. ArtifactNotFound (a KeyError): the evaluation or
      the training run lacks a file. StoreError: a published file does not match its recorded sha256.
      PromotionConflict: another promotion of the model won the race.
    """
    store = store or open_store()
    registry = open_registry(params.model_name, store)
    eval_id = params.evaluation or ev.latest_evaluation(store)
    evaluation = json.loads(store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"))
    run_id = evaluation["run_id"]
    run = layout.train_run_prefix(run_id)
    model_data = store.read_published(run, "model.pt")
    model_sha = sha256_bytes(model_data)
    existing = registry.find(evaluation_id=eval_id, model_sha256=model_sha)
    if existing is not None and CARD_JSON not in registry.get(existing)["files"]:
        log.warning("register: version %d holds this evaluation but no model card (registered before cards "
                    "existed); registering it again as a new version, with its card", existing)
        existing = None
    if existing is not None:
        version, created = existing, False
    else:
        lineage = json.loads(store.read_published(run, "lineage.json"))
        lineage.update({"evaluation_id": eval_id, "registered_at": utc_now(), "model_name": registry.name})
        files = {
            "model.pt": model_data,
            "model.pt.sha256": f"{model_sha}  model.pt\n".encode(),
            "lineage.json": json.dumps(lineage, indent=2, sort_keys=True, default=str).encode(),
            "evaluation.json": store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"),
            "evaluation.md": store.read_published(layout.eval_run_prefix(eval_id), "report.md"),
        }
        for name in ("signature.json", "metrics.json", "params.json", "curves.png", "reference.parquet"):
            files[name] = store.read_published(run, name)
        record = {
            "model_name": registry.name,
            "model_sha256": model_sha,
            "run_id": run_id,
            "evaluation_id": eval_id,
            "blessed": bool(evaluation["decision"]["blessed"]),
            "metrics": evaluation["model"]["overall"],
            "window": lineage["window"],
            "registered_at": lineage["registered_at"],
        }
        version, created = registry.create_version(files, record, numbered=lambda n: card_files(build_card(
            registry.name, n, files, evaluation, lineage, lineage["registered_at"]))), True
    blessed = bool(registry.get(version)["blessed"])
    promoted = False
    if params.promote and blessed:
        promoted = registry.aliases()[0].get("champion") != version
        registry.promote(version)
    doc, _ = registry.aliases()
    log.info("register %s: version %d (%s), blessed=%s, champion=%s", registry.name, version,
             "new" if created else "already registered", blessed, doc.get("champion"))
    return {
        "model_name": registry.name,
        "version": version,
        "created": created,
        "blessed": blessed,
        "promoted": promoted,
        "champion": doc.get("champion"),
        "uri": store.uri(registry.version_prefix(version)),
        "roc_auc": evaluation["model"]["overall"].get("roc_auc"),
    }

