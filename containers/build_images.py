"""`make images` / `make pin-base-images`: build and tag every image of containers/images.yaml.

    python containers/build_images.py            # build + tag each image (needs a Docker engine)
    python containers/build_images.py --dry-run  # print the docker commands, build nothing
    python containers/build_images.py --push     # build, push, record digests in image-digests.json
    python containers/build_images.py --check-bases  # resolve each base tag's digest in its registry

Tags: <registry>/<repository>:<version> and :<git sha>; the registry is FLIGHTDECK_IMAGE_REGISTRY
(empty: local names only). Base digests come from images.yaml and go in as BASE_DIGEST.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGES_YAML = ROOT / "containers" / "images.yaml"
DIGESTS_JSON = ROOT / "containers" / "image-digests.json"  # read by components.core.images
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class BuildError(RuntimeError):
    pass


def load_images(path: Path = IMAGES_YAML) -> dict:
    return yaml.safe_load(path.read_text())


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return match.group(1) if match else "0.0.0"


def registry_prefix(config: dict) -> str:
    registry = os.path.expandvars(str(config.get("registry") or ""))
    return "" if "$" in registry or not registry.strip() else registry.strip().rstrip("/") + "/"


def build_commands(config: dict, docker: str = "docker", allow_unpinned: bool = False) -> list[list[str]]:
    """One `docker build` per image; refuses images whose base digest is not pinned."""
    prefix = registry_prefix(config)
    version, revision = _version(), _git("rev-parse", "--short=12", "HEAD")
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    unpinned = [
        name for name, image in config["images"].items() if not DIGEST.match(str(image["base"].get("digest")))
    ]
    if unpinned and not allow_unpinned:
        raise BuildError(
            f"images {', '.join(unpinned)}: the base image has no sha256 digest in {IMAGES_YAML.relative_to(ROOT)}. "
            "Resolve it where the registry can be reached (`make pin-base-images`), write it under "
            "images.<name>.base.digest, and build again; an unpinned base is not built."
        )
    commands = []
    for image in config["images"].values():
        ref = prefix + image["repository"]
        commands.append([
            docker, "build",
            "--file", str(ROOT / image["dockerfile"]),
            "--build-arg", f"BASE_DIGEST={image['base'].get('digest') or '<unpinned>'}",
            "--build-arg", f"VERSION={version}",
            "--build-arg", f"REVISION={revision}",
            "--build-arg", f"CREATED={created}",
            "--tag", f"{ref}:{version}",
            "--tag", f"{ref}:{revision}",
            str(ROOT),
        ])  # fmt: skip
    return commands


def docker_answers(docker: str) -> bool:
    if shutil.which(docker) is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True).returncode == 0


def check_bases(config: dict, docker: str) -> int:
    """Compare each base digest in images.yaml with what the registry says the tag is now."""
    stale = 0
    for name, image in config["images"].items():
        base = image["base"]
        out = subprocess.run(
            [docker, "buildx", "imagetools", "inspect", base["image"], "--format", "{{json .Manifest.Digest}}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode:
            print(f"{name}: cannot resolve {base['image']}: {out.stderr.strip()}", file=sys.stderr)
            stale += 1
            continue
        digest = out.stdout.strip().strip('"')
        if digest != base.get("digest"):
            stale += 1
            print(f"{name}: {base['image']} is {digest}; images.yaml has {base.get('digest')}: update it")
        else:
            print(f"{name}: {base['image']}@{digest} ok")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="print the docker commands only")
    parser.add_argument("--push", action="store_true", help="push the tags and record the pushed digests")
    parser.add_argument("--check-bases", action="store_true", help="compare base digests with the registries")
    args = parser.parse_args(argv)
    docker = os.environ.get("DOCKER", "docker")
    config = load_images()
    if not args.dry_run and not docker_answers(docker):
        print(
            f"make images: no Docker engine answers `{docker} info` on this machine, so no image can be "
            "built here. Run it where Docker (or a compatible engine: set DOCKER=podman) is available; "
            "`python containers/build_images.py --dry-run` prints the commands it would run.",
            file=sys.stderr,
        )
        return 2
    if args.check_bases:
        return check_bases(config, docker)
    try:
        commands = build_commands(config, docker, allow_unpinned=args.dry_run)
    except BuildError as exc:
        print(f"make images: {exc}", file=sys.stderr)
        return 2
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not args.dry_run:
            subprocess.run(command, check=True)
    if args.push and not args.dry_run:
        record_pushed_digests(config, commands, docker)
    return 0


def record_pushed_digests(config: dict, commands: list[list[str]], docker: str) -> None:
    """Push each image and write {image key: sha256 digest} so DAGs and KFP pin images by digest."""
    digests = {}
    for key, command in zip(config["images"], commands, strict=True):
        tags = [command[i + 1] for i, arg in enumerate(command) if arg == "--tag"]
        for tag in tags:
            subprocess.run([docker, "push", tag], check=True)
        repo_digests = subprocess.run(
            [docker, "image", "inspect", "--format", "{{json .RepoDigests}}", tags[0]],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        digests[key] = json.loads(repo_digests)[0].split("@", 1)[1]
    DIGESTS_JSON.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    print(f"pushed; digests written to {DIGESTS_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
