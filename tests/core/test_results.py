"""Every stage entry function is documented like a TFX executor and returns a typed result.

Read from the source (ast), so the check needs neither torch nor feast: the function named by each
StageSpec's entry exists, its return annotation is a TypedDict of components/contracts/results.py,
and its docstring says what it reads, what it writes and how it fails. That the keys a real run
returns are exactly the declared ones is checked beside each stage's own tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from components.contracts import results
from components.contracts.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
RESULT_TYPES = {name for name, value in vars(results).items()
                if isinstance(value, type) and issubclass(value, dict) and name.endswith("Result")}


def entry_function(spec) -> ast.FunctionDef:
    module, func = spec.entry.split(":")
    path = REPO.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(), str(path))
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func]
    assert found, f"{spec.entry}: no top-level function {func} in {path.relative_to(REPO)}"
    return found[0]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_entry_returns_a_declared_typed_result(name):
    fn = entry_function(STAGES[name])
    returns = ast.unparse(fn.returns) if fn.returns is not None else None
    assert returns in RESULT_TYPES, f"{STAGES[name].entry} returns {returns!r}, not one of {sorted(RESULT_TYPES)}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_entry_docstring_names_inputs_outputs_and_failures(name):
    doc = ast.get_docstring(entry_function(STAGES[name])) or ""
    missing = [part for part in ("Inputs", "Outputs", "Failures") if part not in doc]
    assert not missing, f"{STAGES[name].entry}: the docstring has no {missing} section"


def test_result_types_are_typed_dicts_with_declared_keys():
    for name in RESULT_TYPES:
        cls = getattr(results, name)
        assert cls.__annotations__, f"{name} declares no key"
        assert hasattr(cls, "__required_keys__"), f"{name} is not a TypedDict"
