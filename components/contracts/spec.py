"""Typed stage specs, separate from the code that does the work (as in TFX / KFP components).

A spec names the stage's parameters (a frozen dataclass), its input and output artifacts
and its entry function as an import string, so that the CLI, the Airflow DAGs and the KFP
pipelines can all be wired from specs without importing torch, feast or great_expectations.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageSpec:
    name: str  # unique id, e.g. "features-build"
    command: tuple[str, ...]  # CLI words, e.g. ("features", "build")
    help: str
    params: type  # a frozen dataclass; its fields become CLI options
    entry: str  # "module:function", called as function(params) -> a TypedDict of contracts/results.py
    inputs: dict[str, str] = field(default_factory=dict)  # artifact -> what it is (store key pattern)
    outputs: dict[str, str] = field(default_factory=dict)
    image: str = "stage"  # key in containers/images.yaml
    gpu: bool = False  # may ask for a GPU node in Kubernetes

    def load_entry(self) -> Callable[[Any], dict]:
        module, func = self.entry.split(":")
        return getattr(importlib.import_module(module), func)

    def make_params(self, **kwargs) -> Any:
        return self.params(**kwargs)

    def run(self, **kwargs) -> dict:
        """Build the typed parameters and call the entry function: what every runtime does."""
        return self.load_entry()(self.make_params(**kwargs))

    def cli_args(self, **kwargs) -> list[str]:
        """The container arguments that run this stage with these parameters (pods, KFP)."""
        args = list(self.command)
        for f in dataclasses.fields(self.params):
            if f.name not in kwargs or kwargs[f.name] is None:
                continue
            value = kwargs[f.name]
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                if value != f.default:
                    args.append(flag if value else "--no-" + f.name.replace("_", "-"))
            else:
                args += [flag, str(value)]
        return args


def add_param_arguments(parser: argparse.ArgumentParser, params_cls: type) -> None:
    """One CLI option per field of a params dataclass (--field-name; bools as --x/--no-x)."""
    for f in dataclasses.fields(params_cls):
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        help_text = f.metadata.get("help", "")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=help_text)
            continue
        kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        if not required:
            help_text += f" (default: {f.default!r})"
        parser.add_argument(flag, dest=f.name, type=kind, required=required,
                            default=None if required else f.default, help=help_text)


def params_from_args(params_cls: type, args: argparse.Namespace):
    """The typed parameters from parsed CLI options."""
    return params_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(params_cls)})


def field_help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def param(default=dataclasses.MISSING, help: str = "", **kw):
    """A dataclass field with CLI help text."""
    if default is dataclasses.MISSING:
        return field(metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)
