"""`flightdeck registry list|show|promote|rollback`: the model registry from the command line.

Imported by the CLI at start-up, so only argparse at the top; the registry loads when a command runs.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-name", default="", help="registry model name (default: the settings' model_name)")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="every version with its blessing, ROC AUC, window and aliases")
    show = sub.add_parser("show", help="one version's record and lineage as JSON (default: the champion); "
                                       "--card: its model card")
    show.add_argument("version", nargs="?", default="champion", help="a version number, champion or previous")
    show.add_argument("--card", action="store_true",
                      help="print the version's model card (model_card.md, sha256-checked) instead of the record")
    promote = sub.add_parser("promote", help="make a version champion (compare-and-swap on the alias document)")
    promote.add_argument("version", help="a version number")
    promote.add_argument("--force", action="store_true", help="promote even if its evaluation did not bless it")
    sub.add_parser("rollback", help="restore the previous champion")


def run(args: argparse.Namespace) -> int:
    from components.model.registry import open_registry

    registry = open_registry(args.model_name)
    action = args.registry_command
    if action == "list":
        out = registry.summary()
    elif action == "show" and args.card:
        from components.model.card import CARD_MD, verified_card

        version = registry.resolve(args.version)
        verified_card(registry, version)  # no card, or another version's: the error says how to get one
        print(registry.read_file(version, CARD_MD).decode(), end="")
        return 0
    elif action == "show":
        version = registry.resolve(args.version)
        record = registry.get(version)
        record["lineage"] = json.loads(registry.read_file(version, "lineage.json"))
        doc, _ = registry.aliases()
        record["aliases"] = {k: doc.get(k) for k in ("champion", "previous")}
        record["deployed"] = doc.get("deployed", {})
        out = record
    elif action == "promote":
        doc = registry.promote(args.version, force=args.force)
        out = {k: doc.get(k) for k in ("champion", "previous", "champion_history")}
    else:
        doc = registry.rollback()
        out = {k: doc.get(k) for k in ("champion", "previous", "champion_history")}
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return 0
