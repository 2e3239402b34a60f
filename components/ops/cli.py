"""The `flightdeck` command: every stage (from its spec) and every other command, listed here.

The same entry functions run here, in Airflow tasks and in KFP components; a container runs this
CLI with the stage's arguments. Exit codes: 0 done, 1 the stage failed, 3 the input was refused
(components.contracts.errors).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from components.contracts.errors import EXIT_STAGE_FAILED, RESULT_PATH_ENV, StageFailed, exit_code
from components.contracts.spec import add_param_arguments, params_from_args
from components.contracts.stages import STAGES


@dataclass(frozen=True)
class Command:
    """A command that is not a stage: `module` has `add` (argparse setup) and `run` (args -> exit code)."""

    help: str
    module: str
    add: str = "add_arguments"
    run: str = "run"

    def function(self, name: str):
        return getattr(importlib.import_module(self.module), name)


# Every command that is not a stage, in the order `flightdeck --help` lists them. Their modules are
# imported only when the parser is built, and they keep their own top-level imports cheap.
COMMANDS: dict[str, Command] = {
    "serve": Command("start the local Triton Inference Server on the model repository (explicit model control), "
                     "until Ctrl-C", "components.ops.serve"),
    "compare-challenger": Command("compare the champion and the shadow/canary challenger on the same recorded "
                                  "traffic (report.json, report.md)", "components.ops.serve",
                                  "add_compare_arguments", "run_compare"),
    "registry": Command("the model registry: list, show, promote, rollback", "components.ops.registry_cli"),
    "monitor-report": Command("render Evidently's HTML drift report of a monitored day from the rows its drift "
                              "statistics were computed on (off the monitor's hot path; idempotent, --force "
                              "redraws)", "components.ops.report_cli"),
    "feature-report": Command("each feature view's cost (build seconds, storage bytes, online lookup p50) beside "
                              "its permutation importance on an evaluation's holdout", "components.ops.feature_report"),
    "status": Command("one screen for the on-call engineer: champion, serving versions, Triton health, pipeline "
                      "runs, drift and performance, feature freshness, what needs attention",
                      "components.ops.oncall", "add_status_arguments", "run_status"),
    "rollback": Command("restore the previous champion through the safe deploy path (deploy with parity checks "
                        "first, then the registry's aliases)", "components.ops.oncall",
                        "add_rollback_arguments", "run_rollback"),
    "backtest": Command("replay a period day by day with the real stages under the static, scheduled and drift "
                        "retraining policies; daily and monthly ROC AUC, log loss and calibration per policy, "
                        "retrains and compute", "components.backtest.run", run="run_cli"),
    "kfp": Command("Kubeflow Pipelines: compile, run locally, submit to a cluster", "pipelines.cli"),
}


def build_parser() -> argparse.ArgumentParser:
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
        add_param_arguments(p, spec.params)
        p.set_defaults(_stage=spec.name)
    for name, command in COMMANDS.items():
        p = top.add_parser(name, help=command.help, description=command.help)
        command.function(command.add)(p)
        p.set_defaults(_command=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from components.core import redact

    redact.install()  # connection URLs with passwords, webhook paths: masked in every log line
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from components.core.settings import SettingsError

    try:
        if getattr(args, "_command", None):
            command = COMMANDS[args._command]
            return command.function(command.run)(args)
        spec = STAGES[args._stage]
        result = spec.load_entry()(params_from_args(spec.params, args))
    except (StageFailed, SettingsError, ValueError) as exc:
        # ValueError: a parameter a person typed (a date, a number) was refused with its reason.
        logging.getLogger("flightdeck").debug("stage failed", exc_info=True)
        print(f"flightdeck {' '.join(sys.argv[1:3])}: FAILED\n{exc}", file=sys.stderr)
        return exit_code(exc) if isinstance(exc, StageFailed) else EXIT_STAGE_FAILED
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    if os.environ.get(RESULT_PATH_ENV):
        path = Path(os.environ[RESULT_PATH_ENV])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
