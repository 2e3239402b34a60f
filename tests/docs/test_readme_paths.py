"""Every repository path and components.* module the README, the RUNBOOK and docs/*.md name exists.

Modules are moved and split; a document that still names the old place sends a reader nowhere.
Checked: paths under components/, dags/, pipelines/, feature_repo/, infra/, containers/, docs/,
tests/, benchmarks/, scripts/ and requirements/ (a `*` or `{a,b}` in one must match something; one
with a `<placeholder>` or `...` is skipped), and dotted names `components.<layer>.<module>[.<name>]`
or `...:<function>` (the module file exists and defines the name).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", REPO / "RUNBOOK.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = ("components", "dags", "pipelines", "feature_repo", "infra", "containers", "docs", "tests", "benchmarks",
       "scripts", "requirements")
# Not preceded by a path or URL character: `github.com/kubeflow/pipelines/...` is not ours.
PATH = re.compile(r"(?<![\w./$-])((?:" + "|".join(TOP) + r")/[\w./<>{},*-]*)")
MODULE = re.compile(r"(?<![\w./-])(components(?:\.(?!py\b)\w+)+(?::\w+)?)")  # not pipelines' components.py
# Files the documents name that a command writes (not in the repository), each with the code that
# writes it: the test checks that code still names the file, so this list cannot hide a typo.
WRITTEN = {"containers/image-digests.json": "containers/build_images.py"}


def mentions(pattern: re.Pattern) -> list[tuple[str, str]]:
    found = []
    for doc in DOCUMENTS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in pattern.finditer(line):
                found.append((f"{doc.name}:{number}", match.group(1).rstrip(".,:;")))
    return found


def expand_braces(path: str) -> list[str]:
    """`infra/terraform/environments/{dev,prod}` -> both paths (glob does not expand braces)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [p for alt in match.group(1).split(",")
            for p in expand_braces(path[:match.start()] + alt + path[match.end():])]


def path_exists(path: str) -> bool:
    if path in WRITTEN:
        return Path(path).name in (REPO / WRITTEN[path]).read_text()
    return all(glob.glob(str(REPO / p)) if "*" in p else (REPO / p).exists() for p in expand_braces(path))


def module_names_exist(name: str) -> bool:
    """The longest prefix that is a module file must exist; the next part, if any, is defined in it."""
    dotted, _, function = name.partition(":")
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:end])
        source = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if source.exists():
            break
    else:
        return False
    rest = parts[end:] + ([function] if function else [])
    if not rest:
        return True
    return re.search(rf"^\s*(?:def|class)\s+{rest[0]}\b|^\s*{rest[0]}\s*[:=]|^(?:from|import)\s.*\b{rest[0]}\b",
                     source.read_text(), re.M) is not None


def test_the_documents_name_paths_and_modules():
    """The patterns find what they are meant to (a check that finds nothing checks nothing)."""
    paths = {p for _, p in mentions(PATH)}
    assert {"components/core/cluster.py", "docs/AIRFLOW.md", "tests/core/test_layers.py"} <= paths
    assert len(paths) > 40
    assert any(m.startswith("components.") for _, m in mentions(MODULE))
    assert not PATH.search("https://github.com/kubeflow/pipelines/tree/master")


@pytest.mark.parametrize("where,path", [m for m in mentions(PATH) if "<" not in m[1] and "..." not in m[1]],
                         ids=lambda v: v if "/" in v else None)
def test_named_path_exists(where, path):
    assert path_exists(path), f"{where} names {path}, which is not in the repository"


@pytest.mark.parametrize("where,name", mentions(MODULE), ids=lambda v: v if "." in v else None)
def test_named_module_exists(where, name):
    assert module_names_exist(name), f"{where} names {name}, which is not a module (or a name defined in one)"


def test_the_checks_see_a_missing_path_and_module():
    assert not path_exists("components/features/no_such_module.py")
    assert not path_exists("infra/terraform/environments/{dev,nowhere}")
    assert path_exists("infra/terraform/environments/{dev,prod}")
    assert not module_names_exist("components.core.no_such_module")
    assert not module_names_exist("components.core.store:no_such_function")
    assert module_names_exist("components.core.store")
