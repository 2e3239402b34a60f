"""Run what the Triton image's online model imports, with only the packages of one lock file.

    python -m tests.infra.lock_closure containers/locks/triton.lock

The image cannot be built here (no Docker engine), so this stands in for "does the online model
start inside it": in this environment, every import of a distribution that the lock does not
pin fails as if it were not installed (ModuleNotFoundError, which optional imports catch), then
it imports every module components/triton/online_model.py names (at any depth: the request path
imports lazily) and does what the model's initialize() does on the aws profile: open the S3
artifact store and load Feast's configuration (which imports the offline and online store
classes that feature_store.yaml names). `triton_python_backend_utils` is provided by Triton's
python backend, not by pip: it is the only module stood in for. Prints one JSON line; exit 1 if
something is missing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.metadata as metadata
import json
import re
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONLINE_MODEL = REPO / "components" / "triton" / "online_model.py"
PROVIDED_BY_TRITON = "triton_python_backend_utils"
LOCAL_PACKAGES = {"components", "feature_repo", "tests"}


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


def main(lock: Path) -> int:
    modules = imported_modules(ONLINE_MODEL)  # resolved before any import is refused
    finder = OnlyLocked(locked(lock))
    sys.meta_path.insert(0, finder)
    sys.modules[PROVIDED_BY_TRITON] = types.ModuleType(PROVIDED_BY_TRITON)
    errors = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"import {name}: {exc}")
    if not errors:
        try:
            from components import features
            from components.settings import load_settings
            from components.store import open_store

            settings = load_settings()
            open_store(settings)
            store = features.feature_store(settings)
            store.config.offline_store  # noqa: B018 -- resolving these imports the store classes
            store.config.online_store  # noqa: B018
        except Exception as exc:  # an ImportError wrapped by Feast, most likely
            errors.append(f"initialize: {type(exc).__name__}: {exc}")
    print(json.dumps({"modules": modules, "refused": finder.refused, "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
