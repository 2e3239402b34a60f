"""Run what a module imports, with only the packages of one lock file.

    python -m tests.infra.lock_closure containers/locks/triton.lock
    python -m tests.infra.lock_closure containers/locks/stage.lock --entry components/model/evaluate.py \
        --optional lightgbm -- evaluate --run-id <run>

Without --entry it checks the Triton image's online model (below). With --entry it imports every
module that file names (at any depth); a module given with --optional may be refused (the entry must
work without it: it is reported under "optional_refused", not as an error); the words after `--` are
then run through the flightdeck CLI (the stage images' entrypoint) in the same restricted process,
and a non-zero exit is an error ("stage" holds its exit code and stdout).

The online model check:
The image cannot be built here (no Docker engine), so this stands in for "does the online model
start inside it": in this environment, every import of a distribution that the lock does not
pin fails as if it were not installed (ModuleNotFoundError, which optional imports catch), then
it imports every module components/serving/triton/online_model.py names (at any depth: the request path
imports lazily) and does what the model's initialize() does on the aws profile: open the S3
artifact store and load Feast's configuration (which imports the offline and online store
classes that feature_store.yaml names). `triton_python_backend_utils` is provided by Triton's
python backend, not by pip: it is the only module stood in for. Prints one JSON line; exit 1 if
something is missing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.metadata as metadata
import io
import json
import re
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONLINE_MODEL = REPO / "components" / "serving" / "triton" / "online_model.py"
PROVIDED_BY_TRITON = "triton_python_backend_utils"
LOCAL_PACKAGES = {"components", "pipelines", "feature_repo", "tests"}  # this repository's own


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> set[str]:
    return {normalise(n) for n in re.findall(r"^([A-Za-z0-9_.-]+)==", lock.read_text(), re.M)}


class OnlyLocked(importlib.abc.MetaPathFinder):
    """Refuses top-level imports whose distribution is installed here but not pinned in the lock."""

    def __init__(self, allowed: set[str]):
        self.allowed = allowed
        self.owners = metadata.packages_distributions()
        self.refused: dict[str, list[str]] = {}

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in sys.stdlib_module_names or top in LOCAL_PACKAGES or top == PROVIDED_BY_TRITON:
            return None
        owners = {normalise(d) for d in self.owners.get(top, [])}
        if owners and not owners & self.allowed:
            self.refused[top] = sorted(owners)
            raise ModuleNotFoundError(f"No module named {top!r} (not in the lock)", name=top)
        return None


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            # `from components import features` imports a module, not an attribute.
            names += [f"{node.module}.{a.name}" for a in node.names
                      if importlib.util.find_spec(node.module) and _is_submodule(node.module, a.name)]
    return sorted(set(names) - {PROVIDED_BY_TRITON})


def _is_submodule(package: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def _import_all(modules: list[str], optional: set[str], finder: OnlyLocked) -> tuple[list[str], list[str]]:
    errors, optional_refused = [], []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            top = name.partition(".")[0]
            if top in optional and top in finder.refused:
                optional_refused.append(name)
            else:
                errors.append(f"import {name}: {exc}")
    return errors, optional_refused


def _online_model_initialize() -> list[str]:
    """What the online model's initialize() does on the aws profile."""
    try:
        from components.core.settings import load_settings
        from components.core.store import open_store
        from components.features.feast_repo import feature_store

        settings = load_settings()
        open_store(settings)
        store = feature_store(settings)
        store.config.offline_store  # noqa: B018 -- resolving these imports the store classes
        store.config.online_store  # noqa: B018
    except Exception as exc:  # an ImportError wrapped by Feast, most likely
        return [f"initialize: {type(exc).__name__}: {exc}"]
    return []


def _run_cli(args: list[str]) -> tuple[dict, list[str]]:
    from components.ops.cli import main as cli

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = cli(args)
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        return {"rc": None, "stdout": out.getvalue()}, [f"flightdeck {' '.join(args)}: {type(exc).__name__}: {exc}"]
    stage = {"rc": rc, "stdout": out.getvalue()}
    return stage, [] if rc == 0 else [f"flightdeck {' '.join(args)} exited {rc}"]


def check(lock: Path, entry: Path = ONLINE_MODEL, optional: set[str] = frozenset(),
          cli_args: list[str] | None = None) -> dict:
    """Import `entry`'s modules (and run the CLI) with only `lock`'s packages: {modules, refused, errors, ...}."""
    modules = imported_modules(entry)  # resolved before any import is refused
    finder = OnlyLocked(locked(lock))
    sys.meta_path.insert(0, finder)
    if entry == ONLINE_MODEL:
        sys.modules[PROVIDED_BY_TRITON] = types.ModuleType(PROVIDED_BY_TRITON)
    errors, optional_refused = _import_all(modules, set(optional), finder)
    result: dict = {"modules": modules, "optional_refused": optional_refused}
    if not errors and entry == ONLINE_MODEL:
        errors += _online_model_initialize()
    if not errors and cli_args:
        result["stage"], more = _run_cli(cli_args)
        errors += more
    result.update(refused=finder.refused, errors=errors)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.lock_closure")
    parser.add_argument("lock", type=Path)
    parser.add_argument("--entry", type=Path, default=ONLINE_MODEL, help="the module whose imports are checked")
    parser.add_argument("--optional", action="append", default=[], help="a top-level module the entry can do without")
    cli = argv[argv.index("--") + 1:] if "--" in argv else []  # flightdeck CLI arguments, run restricted
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    entry = args.entry if args.entry.is_absolute() else REPO / args.entry
    result = check(args.lock, entry.resolve(), set(args.optional), cli)
    print(json.dumps(result, default=str))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
