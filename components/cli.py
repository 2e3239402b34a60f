"""The `flightdeck` command: one sub-command per stage, built from the stage specs.

The same entry functions run here, in Airflow tasks and in KFP components; a container
runs this CLI with the stage's arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

from components.errors import BadInput, StageFailed
from components.stages import STAGES

EXIT_STAGE_FAILED = 1
EXIT_BAD_INPUT = 3  # the input was refused (quarantined): retrying the same data cannot help
# When set, the JSON result is also written to this file (KubernetesPodOperator's xcom sidecar reads it).
RESULT_PATH_ENV = "FLIGHTDECK_RESULT_PATH"


def _add_params(parser: argparse.ArgumentParser, params_cls) -> None:
    for f in dataclasses.fields(params_cls):
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        help_text = f.metadata.get("help", "")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        if not required:
            help_text += f" (default: {f.default!r})"
        parser.add_argument(flag, dest=f.name, type=kind, required=required, default=None if required else f.default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    _load_extra_commands()  # the parser names every command, whoever builds it (main, tests, docs)
    parser = argparse.ArgumentParser(
        prog="flightdeck",
        description="flightdeck: the ML lifecycle (ingest, validate, features, train, evaluate, register, "
        "deploy, predict, monitor) on the local profile or on AWS. Settings come from FLIGHTDECK_* "
        "environment variables or the TOML file named by FLIGHTDECK_CONFIG; see the README.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for spec in STAGES.values():
        sub = top
        for word in spec.command[:-1]:
            if word not in groups:
                groups[word] = top.add_parser(word, help=f"{word} stages").add_subparsers(
                    dest=f"{word}_command", metavar="STAGE", required=True
                )
            sub = groups[word]
        p = sub.add_parser(spec.command[-1], help=spec.help, description=spec.help)
        _add_params(p, spec.params)
        p.set_defaults(_stage=spec.name)
    for name, (help_text, add, _func) in EXTRA_COMMANDS.items():
        p = top.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_extra=name)
    return parser


# Commands that are not stages (serve, status, registry, kfp, backtest...) register here:
# name -> (help, add_arguments(parser), run(args) -> int exit code).
EXTRA_COMMANDS: dict[str, tuple] = {}
# Modules that fill EXTRA_COMMANDS when imported (keep their top-level imports cheap).
EXTRA_COMMAND_MODULES: list[str] = ["components.serve", "components.registry_cli", "pipelines.cli", "components.oncall",
                                   "components.backtest"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from components.settings import SettingsError

    try:
        if getattr(args, "_extra", None):
            return EXTRA_COMMANDS[args._extra][2](args)
        spec = STAGES[args._stage]
        kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(spec.params)}
        result = spec.run(**kwargs)
    except (StageFailed, SettingsError, ValueError) as exc:
        # ValueError: a parameter a person typed (a date, a number) was refused with its reason.
        logging.getLogger("flightdeck").debug("stage failed", exc_info=True)
        print(f"flightdeck {' '.join(sys.argv[1:3])}: FAILED\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, BadInput) else EXIT_STAGE_FAILED
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    if os.environ.get(RESULT_PATH_ENV):
        from pathlib import Path

        Path(os.environ[RESULT_PATH_ENV]).parent.mkdir(parents=True, exist_ok=True)
        Path(os.environ[RESULT_PATH_ENV]).write_text(text)
    print(text)
    return 0


def _load_extra_commands() -> None:
    """Import the modules that define extra commands (cheap modules only)."""
    import importlib

    for module in EXTRA_COMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


if __name__ == "__main__":
    # `python -m components.cli` runs this file as __main__, a second copy of the module: the
    # extra-command modules fill components.cli.EXTRA_COMMANDS, so call that module's main.
    from components.cli import main as _main

    sys.exit(_main())
