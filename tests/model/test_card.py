"""The model card: written by register into every version from its evaluation and lineage, shown by
`flightdeck registry show N --card`, and verified (this version's, every section, checksummed)."""

from __future__ import annotations

import json

import pytest

from components.contracts import layout
from components.contracts.stages import RegisterParams
from components.model.card import (
    CARD_JSON,
    CARD_MD,
    SECTIONS,
    ModelCardMissing,
    register_unevaluated,
    verified_card,
)
from components.model.network import ModelIntegrityError
from components.model.register import register
from components.model.registry import Registry

pytestmark = pytest.mark.slow  # the session's real training run and evaluation (tests/model/conftest.py)

TITLES = ("## Intended use", "## Data", "## Features", "## Holdout metrics", "## Slices", "## Feature importance",
          "## Blessing", "## Known limitations", "## Lineage")


def test_register_writes_a_card_whose_numbers_are_the_evaluation_s(evaluated, monkeypatch, capsys):
    store, eval_id = evaluated["store"], evaluated["evaluation"]["eval_id"]
    version = register(RegisterParams(evaluation=eval_id, model_name="delay_card", promote=False), store)["version"]
    registry = Registry(store, "delay_card")
    record = registry.get(version)
    assert {CARD_JSON, CARD_MD} <= set(record["files"])  # checksummed in version.json like every other file
    card = verified_card(registry, version)  # read through its sha256; this version's
    evaluation = json.loads(store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"))
    lineage = json.loads(registry.read_file(version, "lineage.json"))
    assert set(card) == set(SECTIONS) | {"format"}
    assert card["model"]["version"] == version and card["model"]["model_sha256"] == record["model_sha256"]
    assert "seed ensemble of 2 MLPs (32,16" in card["model"]["architecture"]

    # every number is the evaluation's
    metrics = card["holdout_metrics"]
    assert metrics["model"] == evaluation["model"]["overall"]
    assert metrics["roc_auc_interval"] == evaluation["model"]["roc_auc_interval"]
    assert metrics["comparisons"] == evaluation["decision"]["comparisons"]
    assert {k: v["roc_auc"] for k, v in metrics["baselines"].items()} == \
        {k: v["roc_auc"] for k, v in evaluation["baselines"].items()}
    assert card["slices"]["slices"] == evaluation["model"]["slices"]
    assert set(card["slices"]["slices"]) == {"carrier", "origin", "hour_band", "month"}
    assert card["slices"]["parity"] == evaluation["model"]["parity"]
    assert card["slices"]["slice_auc_floor"] == evaluation["decision"]["policy"]["slice_auc_floor"] == 0.55
    blessing = card["blessing"]
    assert (blessing["blessed"], blessing["reasons"], blessing["failed"], blessing["policy"]) == (
        evaluation["decision"]["blessed"], evaluation["decision"]["reasons"], evaluation["decision"]["failed"],
        evaluation["decision"]["policy"])
    # data, features, lineage: the training run's
    data = card["data"]
    assert data["window"] == {"start": "2013-01-01", "end": "2013-01-14"}
    assert data["partitions"]["holdout"] == {"from": evaluation["holdout"]["start"], "to": evaluation["holdout"]["end"],
                                             "rows": evaluation["holdout"]["rows"]}
    assert data["partitions"]["validation"]["from"] == lineage["window"]["val_start"]
    assert data["validated_partitions"]["flights"] == {
        "partitions": 14, "first": "2013-01-01", "last": "2013-01-14",
        "rows": sum(p["rows"] for p in lineage["validated_partitions"] if p["table"] == "flights")}
    assert data["training_set"] == lineage["training_set"]
    assert card["features"]["feature_service"] == "delay_model_v1" and "carrier_late_rate_7d" in card["features"]["numeric"]
    assert card["intended_use"]["lead_time_hours"] == 2.0 and "minus 2 h" in card["intended_use"]["prediction_time"]
    assert card["importance"] == {"computed": True, "importance": evaluation["importance"]}
    assert card["lineage"]["evaluation_id"] == eval_id and card["lineage"]["run_id"] == evaluation["run_id"]
    for name in ("model.pt", "evaluation.json", "lineage.json", "signature.json"):
        assert card["lineage"]["files"][name] == record["files"][name]["sha256"], name
    # limitations state what the numbers say: this run is not blessed, and why
    assert any(x.startswith("NOT BLESSED: ") and evaluation["decision"]["failed"][0] in x for x in card["limitations"])
    assert any("trained on 14 days (2013-01-01..2013-01-14)" in x for x in card["limitations"])

    md = registry.read_file(version, CARD_MD).decode()
    assert md.startswith(f"# Model card: delay_card version {version}\n")
    positions = [md.index(t) for t in TITLES]
    assert positions == sorted(positions)  # every section, in order
    overall, lga = evaluation["model"]["overall"], evaluation["model"]["slices"]["origin"]["LGA"]
    assert f"| this model | {overall['roc_auc']:.4f} | {overall['pr_auc']:.4f} |" in md
    assert f"| origin | LGA | {lga['rows']} |" in md and f"[{lga['lower']:.4f}, {lga['upper']:.4f}]" in md
    assert "**NOT BLESSED**" in md and f"- failed: {evaluation['decision']['failed'][0]}" in md
    imp = evaluation["importance"]
    route = imp["groups"]["route_daily_stats"]
    assert f"| route_daily_stats ({', '.join(route['features'])}) | {route['drop']:+.4f} |" in md
    temp = imp["features"]["temp"]
    assert f"| temp | {temp['drop']:+.4f} | {temp['std']:.4f} | {temp['min']:+.4f} .. {temp['max']:+.4f} |" in md
    nothing = imp["costs_nothing"]
    if nothing["features"]:  # the limitations name what costs AUC nothing
        assert any(x.startswith("inputs that cost no ROC AUC") and nothing["features"][0] in x
                   for x in card["limitations"])

    # `flightdeck registry show N --card` prints it; without --card the JSON record, as before
    monkeypatch.setenv("FLIGHTDECK_HOME", str(evaluated["home"]))
    from components.ops.cli import main

    capsys.readouterr()
    assert main(["registry", "--model-name", "delay_card", "show", str(version), "--card"]) == 0
    assert capsys.readouterr().out == md
    assert main(["registry", "--model-name", "delay_card", "show", str(version)]) == 0
    assert json.loads(capsys.readouterr().out)["files"][CARD_JSON]["sha256"] == record["files"][CARD_JSON]["sha256"]


def test_a_version_registered_before_cards_is_registered_again_with_one(evaluated):
    """register is idempotent, but not for a version without a card: that evaluation gets a new version."""
    store, eval_id = evaluated["store"], evaluated["evaluation"]["eval_id"]
    first = register(RegisterParams(evaluation=eval_id, model_name="delay_old", promote=False), store)
    registry = Registry(store, "delay_old")
    old_files = {name: registry.read_file(first["version"], name) for name in registry.get(first["version"])["files"]
                 if name not in (CARD_JSON, CARD_MD)}
    old_record = {k: v for k, v in registry.get(first["version"]).items() if k not in ("files", "version")}
    old = registry.create_version(old_files, old_record)  # as register wrote it before cards existed
    with pytest.raises(ModelCardMissing) as err:
        verified_card(registry, old)
    assert f"version {old} of delay_old has no model card" in str(err.value)
    assert f"flightdeck register --evaluation {eval_id}" in str(err.value)
    again = register(RegisterParams(evaluation=eval_id, model_name="delay_old", promote=False), store)
    assert again["created"] and again["version"] == old + 1  # the same evaluation and model, now with its card
    assert verified_card(registry, again["version"])["model"]["model_sha256"] == old_record["model_sha256"]
    assert not register(RegisterParams(evaluation=eval_id, model_name="delay_old", promote=False), store)["created"]


def test_a_card_must_be_whole_unchanged_and_the_version_s_own(local_store, tiny_model_bytes):
    registry = Registry(local_store, "flight_delay")
    why = "a registry test's model, not evaluated"
    v1 = register_unevaluated(registry, {"model.pt": tiny_model_bytes}, {"blessed": True}, why)
    card = verified_card(registry, v1)
    assert card["blessing"] == {"evaluated": False, "blessed": None, "reasons": [], "failed": [f"not evaluated: {why}"],
                                "policy": None}
    assert card["holdout_metrics"] == {"evaluated": False} and card["limitations"][0].startswith(f"not evaluated: {why}")
    assert registry.get(v1)["registered_by_hand"] == why
    with pytest.raises(ValueError, match="must say why"):
        register_unevaluated(registry, {"model.pt": tiny_model_bytes}, {"blessed": True}, "")

    v1_card = {name: registry.read_file(v1, name) for name in (CARD_JSON, CARD_MD)}
    v2 = registry.create_version({"model.pt": tiny_model_bytes, **v1_card}, {"blessed": True})  # another's card
    with pytest.raises(ModelCardMissing, match=f"is not this version's: it describes version {v1}"):
        verified_card(registry, v2)
    partial = json.dumps({k: v for k, v in card.items() if k != "limitations"} | {"model": {**card["model"], "version": 3}})
    v3 = registry.create_version({"model.pt": tiny_model_bytes, CARD_JSON: partial.encode(), CARD_MD: b"#"},
                                 {"blessed": True})
    with pytest.raises(ModelCardMissing, match="it lacks the sections limitations"):
        verified_card(registry, v3)
    local_store.write_bytes(f"{registry.version_prefix(v1)}/{CARD_JSON}", v1_card[CARD_JSON].replace(b"not", b"NOT"))
    with pytest.raises(ModelIntegrityError, match="model_card.json of flight_delay version 1 has sha256"):
        verified_card(registry, v1)  # changed after registration
