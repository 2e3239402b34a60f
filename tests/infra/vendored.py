"""Upstream files kept as test data (tests/infra/data): each copy carries a BLOBS file listing the
git blob id of every upstream file at the pinned commit, so an edited or missing file is found
offline (`git hash-object FILE` gives the same id; upstream, `git ls-tree -r <commit>` lists them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def git_blob_id(data: bytes) -> str:
    """The id git gives this content as a blob (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_blobs(copy: Path) -> dict[str, str]:
    """{path relative to the copy: blob id} from the copy's BLOBS file."""
    blobs = {}
    for line in (copy / "BLOBS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            blob, path = line.split(maxsplit=1)
            blobs[path] = blob
    return blobs


def blob_mismatches(copy: Path) -> list[str]:
    """What differs between the copy's files and its BLOBS list: edited, missing and unlisted files
    (README.md and BLOBS are ours, not upstream's)."""
    listed = read_blobs(copy)
    present = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()} - {"README.md", "BLOBS"}
    problems = [f"{path}: missing" for path in sorted(set(listed) - present)]
    problems += [f"{path}: not upstream's (not in BLOBS)" for path in sorted(present - set(listed))]
    problems += [f"{path}: changed (blob {git_blob_id((copy / path).read_bytes())}, upstream {blob})"
                 for path, blob in sorted(listed.items())
                 if path in present and git_blob_id((copy / path).read_bytes()) != blob]
    return problems


def write_blobs(copy: Path, header: str) -> None:
    lines = [f"# {line}" for line in header.splitlines()]
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        relative = path.relative_to(copy).as_posix()
        if relative not in {"README.md", "BLOBS"}:
            lines.append(f"{git_blob_id(path.read_bytes())}  {relative}")
    (copy / "BLOBS").write_text("\n".join(lines) + "\n")
