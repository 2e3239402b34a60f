"""docs/ARCHITECTURE.md and the README's layout table say what the code is: the stage table lists
every StageSpec with its current entry function, each entry function is defined where it says,
and the README's layer rows follow the ranks that tests/core/test_layers.py enforces.

The stage table is generated: `python -m tests.docs.test_architecture --write` rewrites it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from components.contracts.stages import STAGES
from tests.core.test_layers import RANK, RANKS

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
README = REPO / "README.md"
BEGIN = "<!-- stages: generated from components/contracts/stages.py; " \
        "rewrite with `python -m tests.docs.test_architecture --write` -->"
END = "<!-- /stages -->"


def entry_layer(entry: str) -> str:
    """`components.<layer>.<module...>:<function>` -> `<layer>`."""
    parts = entry.split(":")[0].split(".")
    if len(parts) < 3 or parts[0] != "components":
        raise ValueError(f"entry {entry!r} is not components.<layer>.<module>:<function>")
    return parts[1]


def stage_table() -> str:
    """The stage -> entry function table, from STAGES (in their order)."""
    lines = [BEGIN, "| stage | CLI | entry | layer |", "|---|---|---|---|"]
    for spec in STAGES.values():
        lines.append(f"| `{spec.name}` | `flightdeck {' '.join(spec.command)}` | `{spec.entry}` | "
                     f"`components/{entry_layer(spec.entry)}/` |")
    return "\n".join([*lines, END])


def documented_table(text: str) -> str:
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise AssertionError(f"docs/ARCHITECTURE.md must hold the stage table once, between {BEGIN!r} and {END!r}")
    return text[text.index(BEGIN):text.index(END) + len(END)]


def test_stage_table_lists_every_stage_with_its_entry():
    expected = stage_table()
    assert documented_table(ARCHITECTURE.read_text()) == expected, (
        "docs/ARCHITECTURE.md's stage table differs from components/contracts/stages.py; run "
        "`python -m tests.docs.test_architecture --write` or paste:\n" + expected)


def test_every_entry_function_is_defined_in_its_layer_module():
    """Without importing the stage modules (torch, feast...): the module file defines the function."""
    missing = []
    for spec in STAGES.values():
        module, function = spec.entry.split(":")
        assert entry_layer(spec.entry) in RANK, f"{spec.name}: {spec.entry} is not in a layer of {sorted(RANK)}"
        path = REPO.joinpath(*module.split(".")).with_suffix(".py")
        defined = path.exists() and any(
            isinstance(node, ast.FunctionDef) and node.name == function
            for node in ast.parse(path.read_text()).body)
        if not defined:
            missing.append(f"{spec.name}: no top-level function {function!r} in {path.relative_to(REPO)}")
    assert missing == [], "\n".join(missing)


def layout_rows() -> dict[str, list[str]]:
    """The README's layout table: the first cell's path -> the other cells, for components/<layer>/ rows."""
    section = README.read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`components/(\w+)/`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def test_readme_layout_has_every_layer_in_rank_order_with_what_it_may_import():
    rows = layout_rows()
    folders = sorted(p.name for p in (REPO / "components").iterdir() if (p / "__init__.py").exists())
    assert sorted(rows) == folders == sorted(RANK), "README's layout table must have one row per layer folder"
    assert [RANK[layer] for layer in rows] == sorted(RANK[layer] for layer in rows), \
        f"README's layer rows must go bottom to top, as in tests/core/test_layers.py: {RANKS}"
    wrong = []
    for layer, cells in rows.items():
        below = {other for other in RANK if RANK[other] < RANK[layer]}
        cell = cells[-1]
        said = below if cell == "every layer below" else (set() if cell == "nothing" else
                                                             {c.strip() for c in cell.split(",")})
        if set(said) != below:
            wrong.append(f"{layer}: README says it may import {sorted(said)}, the layering allows {sorted(below)}")
    assert wrong == [], "\n".join(wrong)


def test_readme_names_the_layering_check():
    text = README.read_text()
    assert "tests/core/test_layers.py" in text and "flightdeck --help" in text


def write() -> None:
    text = ARCHITECTURE.read_text()
    ARCHITECTURE.write_text(text.replace(documented_table(text), stage_table()))
    print(f"rewrote the stage table of {ARCHITECTURE.relative_to(REPO)} ({len(STAGES)} stages)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.docs.test_architecture --write")
    write()
