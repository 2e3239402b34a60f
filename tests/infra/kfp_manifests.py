"""The Kubeflow Pipelines manifests modules/platform installs, kept as test data so the real
`kubectl kustomize` builds them offline: tests/infra/data/kfp-manifests holds only the files the
two kustomizations Terraform builds need (cluster-scoped-resources, env/platform-agnostic) at
kubeflow/pipelines commit KFP_COMMIT, and the argo-workflows directories they pull from GitHub at
ARGO_TAG. `prepared()` copies them to a temporary folder and points each remote reference at the
local argo copy; nothing else is changed.

To move to another release (the data folder's README.md says the same):
set the constants below (and modules/platform's kubeflow_pipelines_commit), then run
    .venv/bin/python -m tests.infra.kfp_manifests --kfp-git <git dir of a kubeflow/pipelines clone> \
        --argo-git <git dir of an argoproj/argo-workflows clone>
It rewrites the data folder from the two clones and checks
that the kept subset builds exactly what the whole upstream trees build."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.infra.helm import TOOLS_BIN, _tool
from tests.infra.vendored import DATA, write_blobs

KFP_TAG = "2.14.3"
KFP_COMMIT = "fc3214d4b4d395cb2d5de940d3dbd7ebc295c330"  # '2.14.3^{}' in kubeflow/pipelines
ARGO_TAG = "v3.6.7"  # the ref KFP's third-party/argo kustomizations pull
ARGO_COMMIT = "8d7dae690e152d19fb40f7affbb68fb783b32172"  # 'v3.6.7^{}' in argoproj/argo-workflows
ARGO_REPO = "argoproj/argo-workflows"
OVERLAYS = ("cluster-scoped-resources", "env/platform-agnostic")  # modules/platform, in this order
COPY = DATA / "kfp-manifests"
KFP_DIR = "kubeflow-pipelines"
ARGO_DIR = "argo-workflows"
KUSTOMIZE_ROOT = "manifests/kustomize"
KUBECTL = TOOLS_BIN / "kubectl"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
REMOTE = re.compile(r"^(?:https://|git::https://)?github\.com/(?P<repo>[^/]+/[^/?]+?)(?:\.git)?"
                    r"/(?P<path>[^?]+)\?ref=(?P<ref>[^&\s]+)$")


class KustomizeError(RuntimeError):
    """kubectl kustomize refused to build (the message is the tool's own)."""


class RemoteReference(RuntimeError):
    """A kustomization refers to something on the network that is not kept here."""


def is_remote(entry: str) -> bool:
    return "://" in entry or entry.startswith(("github.com/", "git@", "git::"))


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no kustomization file")


def _referenced(kustomization: dict) -> tuple[list[str], list[str]]:
    """(resource-like entries: files, folders or URLs; plain files) a kustomization names."""
    resources = [*kustomization.get("resources", []), *kustomization.get("bases", []),
                 *kustomization.get("components", []), *kustomization.get("generators", []),
                 *kustomization.get("transformers", [])]
    files = [*kustomization.get("configurations", []), *kustomization.get("crds", []),
             *kustomization.get("patchesStrategicMerge", [])]
    for key in ("patches", "patchesJson6902", "replacements"):
        files += [p["path"] for p in kustomization.get(key, []) if isinstance(p, dict) and "path" in p]
    for key in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(key, []):
            files += [f.split("=", 1)[-1] for f in generator.get("files", [])]
            files += list(generator.get("envs", [])) + ([generator["env"]] if "env" in generator else [])
    if isinstance(kustomization.get("openapi"), dict) and "path" in kustomization["openapi"]:
        files.append(kustomization["openapi"]["path"])
    return resources, files


def closure(directory: Path) -> tuple[set[Path], set[tuple[str, str, str]]]:
    """Every local file the kustomization in `directory` needs, and its remote references as
    (owner/repo, path, ref). Inline patches and YAML strings in patchesStrategicMerge need no file."""
    files: set[Path] = set()
    remotes: set[tuple[str, str, str]] = set()
    pending, seen = [directory.resolve()], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        kfile = kustomization_file(current)
        files.add(kfile)
        resources, plain = _referenced(yaml.safe_load(kfile.read_text()) or {})
        for entry in resources:
            if is_remote(entry):
                match = REMOTE.match(entry)
                if not match:
                    raise RemoteReference(f"{kfile}: {entry} is not a github.com/<repo>/<path>?ref=<ref> reference")
                remotes.add((match["repo"], match["path"], match["ref"]))
            elif (current / entry).is_dir():
                pending.append((current / entry).resolve())
            else:
                files.add((current / entry).resolve())
        for entry in plain:
            if "\n" not in entry:  # a patchesStrategicMerge entry may be the patch itself
                files.add((current / entry).resolve())
    return files, remotes


def localize(root: Path) -> list[str]:
    """Point every remote reference of the kustomizations the overlays use, under `root` (a copy of
    COPY), at the argo copy beside it; refuse any other remote reference or another argo ref.
    Returns what it rewrote."""
    argo = root / ARGO_DIR
    used = {f for overlay in OVERLAYS for f in closure(root / KFP_DIR / KUSTOMIZE_ROOT / overlay)[0]}
    rewritten = []
    for kfile in sorted(f for f in used if f.name in KUSTOMIZATION_NAMES):
        text = kfile.read_text()
        lines = []
        for line in text.splitlines(keepends=True):
            entry = re.match(r"^(\s*-\s+)(\S+)(\s*)$", line)
            if entry and is_remote(entry[2]):
                match = REMOTE.match(entry[2])
                if not match or match["repo"] != ARGO_REPO:
                    raise RemoteReference(f"{kfile.relative_to(root)}: {entry[2]} is not kept here")
                if match["ref"] != ARGO_TAG:
                    raise RemoteReference(f"{kfile.relative_to(root)}: {entry[2]} wants {ARGO_REPO} at "
                                          f"{match['ref']}, the copy is {ARGO_TAG}")
                local = argo / match["path"]
                if not local.is_dir():
                    raise RemoteReference(f"{kfile.relative_to(root)}: {match['path']} of {ARGO_REPO} is not kept here")
                line = f"{entry[1]}{os.path.relpath(local, kfile.parent)}{entry[3]}"
                rewritten.append(f"{kfile.relative_to(root)}: {match['path']}")
            lines.append(line)
        kfile.write_text("".join(lines))
    return rewritten


def prepared(destination: Path, source: Path = COPY) -> Path:
    """A copy of `source` under `destination` with remote references made local; returns the copy's
    kustomize root (kubeflow-pipelines/manifests/kustomize)."""
    root = destination / "kfp-manifests"
    shutil.copytree(source, root)
    localize(root)
    return root / KFP_DIR / KUSTOMIZE_ROOT


def kustomize(directory: Path) -> str:
    """`kubectl kustomize` of `directory`, with no network (a remote reference it still has fails)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    out = subprocess.run([_tool(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True,
                         timeout=120, env=env)
    if out.returncode != 0:
        raise KustomizeError(f"kubectl kustomize {directory.name} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def build(root: Path) -> dict[str, list[dict]]:
    """{overlay: its objects} for the overlays modules/platform applies."""
    return {overlay: [d for d in yaml.safe_load_all(kustomize(root / overlay)) if d] for overlay in OVERLAYS}


# -- updating the copy -------------------------------------------------------------------------------


def _export(git_dir: Path, commit: str, into: Path) -> None:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def _resolve(git_dir: Path, ref: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", f"{ref}^{{commit}}"], capture_output=True,
                          text=True, check=True).stdout.strip()


def vendor(kfp_git: Path, argo_git: Path) -> None:
    """Rewrite COPY from the two clones (see the module's docstring)."""
    if _resolve(kfp_git, KFP_TAG) != KFP_COMMIT or _resolve(argo_git, ARGO_TAG) != ARGO_COMMIT:
        raise SystemExit("a tag no longer points to the commit recorded here: check before updating")
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full"
        _export(kfp_git, KFP_COMMIT, full / KFP_DIR)
        _export(argo_git, ARGO_COMMIT, full / ARGO_DIR)
        kfp_root = full / KFP_DIR / KUSTOMIZE_ROOT
        keep: set[Path] = set()
        remotes: set[tuple[str, str, str]] = set()
        for overlay in OVERLAYS:
            files, found = closure(kfp_root / overlay)
            keep |= files
            remotes |= found
        if {(repo, ref) for repo, _, ref in remotes} != {(ARGO_REPO, ARGO_TAG)}:
            raise SystemExit(f"remote references other than {ARGO_REPO}@{ARGO_TAG}: {sorted(remotes)}")
        for _, path, _ in sorted(remotes):
            files, nested = closure(full / ARGO_DIR / path)
            if nested:
                raise SystemExit(f"{ARGO_REPO}/{path} has remote references of its own: {sorted(nested)}")
            keep |= files
        keep |= {full / KFP_DIR / "LICENSE", full / ARGO_DIR / "LICENSE"}
        subset = Path(tmp) / "subset"
        for path in sorted(keep):
            target = subset / path.relative_to(full)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        # The kept files build exactly what the whole trees build.
        whole, kept = build(prepared(Path(tmp) / "a", full)), build(prepared(Path(tmp) / "b", subset))
        if whole != kept:
            raise SystemExit("the kept subset does not build what the whole trees build")
        readme = (COPY / "README.md").read_text() if (COPY / "README.md").exists() else None
        shutil.rmtree(COPY, ignore_errors=True)
        shutil.copytree(subset, COPY)
        if readme:
            (COPY / "README.md").write_text(readme)
        write_blobs(COPY / KFP_DIR, f"kubeflow/pipelines {KFP_TAG} = {KFP_COMMIT}: git blob id, path")
        write_blobs(COPY / ARGO_DIR, f"argoproj/argo-workflows {ARGO_TAG} = {ARGO_COMMIT}: git blob id, path")
    print(f"kept {len(keep)} files under {COPY}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kfp-git", type=Path, required=True, help="git dir of a kubeflow/pipelines clone")
    parser.add_argument("--argo-git", type=Path, required=True, help="git dir of an argoproj/argo-workflows clone")
    args = parser.parse_args()
    vendor(args.kfp_git, args.argo_git)
