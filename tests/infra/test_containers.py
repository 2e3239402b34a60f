"""Container images: every stage maps to an image whose Dockerfile exists, lints clean and whose
entrypoint reaches the `flightdeck` CLI; base images pinned by tag and digest; `make images`
fails clearly without a Docker engine."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
IMAGES = yaml.safe_load((REPO / "containers" / "images.yaml").read_text())
DOCKERFILES = sorted((REPO / "containers").glob("*.Dockerfile"))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    ins = instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def all_stages() -> dict:
    """Every StageSpec, including stages registered by the extra-command modules."""
    from components import cli
    from components.stages import STAGES

    cli._load_extra_commands()
    return STAGES


def test_every_stage_has_an_image_with_a_dockerfile():
    stages = all_stages()
    missing = sorted(set(stages) - set(IMAGES["stages"]))
    assert not missing, f"stages without an image in containers/images.yaml: {missing}"
    for stage, key in IMAGES["stages"].items():
        assert key in IMAGES["images"], f"stage {stage} maps to unknown image {key!r}"
    for key, image in IMAGES["images"].items():
        assert (REPO / image["dockerfile"]).is_file(), f"image {key}: {image['dockerfile']} does not exist"
        assert (REPO / image["lock"]).is_file(), f"image {key}: {image['lock']} does not exist"
    # The spec's image field (what runtimes read without the YAML) agrees with the mapping.
    disagree = {
        n: (s.image, IMAGES["stages"][n]) for n, s in stages.items() if s.image != IMAGES["stages"][n]
    }
    assert not disagree, f"StageSpec.image differs from containers/images.yaml: {disagree}"


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_entrypoint_reaches_the_cli(key):
    image = IMAGES["images"][key]
    stage = final_stage(REPO / image["dockerfile"])
    entrypoints = [json.loads(args) for word, args in stage if word == "ENTRYPOINT"]
    assert entrypoints, f"{image['dockerfile']}: the final stage has no ENTRYPOINT"
    entrypoint = entrypoints[-1]
    expected = image.get("entrypoint", "flightdeck")
    assert entrypoint == [expected], (
        f"{image['dockerfile']}: ENTRYPOINT {entrypoint}, expected [{expected!r}]"
    )
    if expected != "flightdeck":
        return  # the Triton image serves models: its entrypoint is tritonserver
    # The `flightdeck` executable is the console script of pyproject.toml, installed by the
    # Dockerfile with the code; the same script here answers --help and lists every stage.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^flightdeck\s*=\s*"components\.cli:main"', pyproject, re.M)
    assert any(word == "RUN" and "-e /app" in args for word, args in instructions(REPO / image["dockerfile"]))
    out = subprocess.run(
        [str(VENV_BIN / "flightdeck"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for spec in all_stages().values():
        if IMAGES["stages"].get(spec.name) == key:
            assert spec.command[0] in out.stdout, f"`flightdeck --help` does not list {spec.command[0]}"


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_base_pinned_by_tag_and_digest(key):
    image = IMAGES["images"][key]
    base = image["base"]
    assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", base["image"]), (
        f"{key}: base {base['image']} has no tag"
    )
    froms = [args.split()[0] for word, args in instructions(REPO / image["dockerfile"]) if word == "FROM"]
    assert froms and all(f == f"{base['image']}@${{BASE_DIGEST}}" for f in froms), froms
    if base["digest"] is not None:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", base["digest"])
    else:
        # Only allowed where the registry was out of reach; `make images` then refuses to build.
        assert key == "triton", f"{key}: base digest missing"


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_runs_as_non_root_with_oci_labels(key):
    stage = final_stage(REPO / IMAGES["images"][key]["dockerfile"])
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    labels = " ".join(args for word, args in stage if word == "LABEL")
    for label in ("title", "source", "version", "revision", "created", "licenses", "base.digest"):
        assert f"org.opencontainers.image.{label}=" in labels


@pytest.mark.parametrize("key", sorted({IMAGES["stages"][s] for s in IMAGES["stages"]}))
def test_stage_images_run_as_the_uid_the_pods_ask_for(key):
    """Stage pods (Airflow and KFP, components/cluster.py) set runAsUser/runAsGroup: the image's
    user must be that uid, and FLIGHTDECK_HOME must lie in the pods' scratch emptyDir."""
    from components import cluster

    stage = final_stage(REPO / IMAGES["images"][key]["dockerfile"])
    assert [args for word, args in stage if word == "USER"][-1] == f"{cluster.STAGE_UID}:{cluster.STAGE_GID}"
    run = " ".join(args for word, args in stage if word == "RUN")
    assert f"--uid {cluster.STAGE_UID}" in run and f"--gid {cluster.STAGE_GID}" in run
    env = " ".join(args for word, args in stage if word == "ENV")
    assert f"FLIGHTDECK_HOME={cluster.SCRATCH_ENV['FLIGHTDECK_HOME']}" in env
    assert cluster.SCRATCH_ENV["FLIGHTDECK_HOME"].startswith(cluster.SCRATCH_PATH + "/")


def test_locks_pin_the_right_torch():
    locks = {k: (REPO / v["lock"]).read_text() for k, v in IMAGES["images"].items()}
    assert re.search(r"^torch==2\.13\.0\+cpu$", locks["stage"], re.M)
    # The CUDA build: PyPI's Linux wheel, with its CUDA runtime wheels pinned too.
    assert re.search(r"^torch==2\.13\.0$", locks["train"], re.M)
    assert re.search(r"^nvidia-cudnn-cu\d+==", locks["train"], re.M)
    assert re.search(r"^feast==0\.67\.0$", locks["triton"], re.M)
    # The images run the versions the tests ran (requirements/dev.lock), torch aside.
    dev = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "requirements" / "dev.lock").read_text(), re.M)
    )
    for key in ("stage", "train"):
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", locks[key], re.M))
        drift = {p: (v, dev[p]) for p, v in pins.items() if p in dev and p != "torch" and v != dev[p]}
        assert not drift, f"{key}.lock differs from dev.lock: {drift}"


def test_hadolint_passes_and_every_ignored_rule_has_a_reason():
    config = REPO / ".hadolint.yaml"
    ignored_lines = []
    in_ignored = False
    for line in config.read_text().splitlines():
        if line.startswith("ignored:"):
            in_ignored = "[]" not in line
            continue
        if in_ignored:
            if not line.startswith("  "):
                in_ignored = False
            elif line.strip().startswith("-"):
                ignored_lines.append(line)
    for line in ignored_lines:
        assert re.search(r"#\s*reason:\s*\S", line), (
            f".hadolint.yaml ignores a rule without a reason: {line.strip()}"
        )
    assert len(yaml.safe_load(config.read_text())["ignored"] or []) == len(ignored_lines)
    assert DOCKERFILES
    out = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--config", str(config), *map(str, DOCKERFILES)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The config really applies: missing labels, root user and unpinned installs are findings."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install requests\n")
    out = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert "DL3013" in out.stdout and "DL3049" in out.stdout


def test_dockerignore_lets_every_copied_path_through():
    allowed = [
        line.lstrip("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for dockerfile in DOCKERFILES:
        for word, args in instructions(dockerfile):
            if word != "COPY" or args.startswith("--from"):
                continue
            for source in shlex.split(args)[:-1]:
                assert any(
                    source == a or source.startswith(a + "/") or Path(source).match(a) for a in allowed
                ), f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"


def test_make_images_fails_clearly_without_docker():
    out = subprocess.run(
        [sys.executable, str(REPO / "containers" / "build_images.py")],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "DOCKER": "no-such-docker"},
    )  # fmt: skip
    assert out.returncode == 2
    assert "no Docker engine answers" in out.stderr


def test_build_commands_tag_every_image_with_its_pinned_base():
    out = subprocess.run(
        [sys.executable, str(REPO / "containers" / "build_images.py"), "--dry-run"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "FLIGHTDECK_IMAGE_REGISTRY": "reg.example"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line[2:]) for line in out.stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) == len(IMAGES["images"])
    for command, (key, image) in zip(commands, IMAGES["images"].items(), strict=True):
        assert command[command.index("--file") + 1].endswith(image["dockerfile"])
        tags = [command[i + 1] for i, a in enumerate(command) if a == "--tag"]
        assert tags and all(t.startswith(f"reg.example/{image['repository']}:") for t in tags), (key, tags)
        digest = image["base"]["digest"] or "<unpinned>"
        assert f"BASE_DIGEST={digest}" in command


def _online_model_closure(lock: Path, tmp_path: Path) -> tuple[int, dict]:
    # The aws profile, as in the Triton pods: S3 artifact store, Feast with the Redis online store.
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLIGHTDECK_HOME": str(tmp_path / "home"),
        "FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "flightdeck-test-artifacts",
        "FLIGHTDECK_REDIS_URL": "localhost:6379", "AWS_DEFAULT_REGION": "us-east-1",
    }  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "tests.infra.lock_closure", str(lock)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )  # fmt: skip
    assert out.stdout.strip(), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_triton_lock_has_everything_the_online_model_imports(tmp_path):
    """The Triton image runs components/triton/online_model.py with only triton.lock installed."""
    rc, result = _online_model_closure(REPO / IMAGES["images"]["triton"]["lock"], tmp_path)
    assert rc == 0 and not result["errors"], result["errors"]
    # The list comes from online_model.py's own imports; these two are what it is for.
    assert {"torch", "components.features"} <= set(result["modules"]), result["modules"]


def test_lock_closure_check_catches_a_missing_package(tmp_path):
    lock = (REPO / IMAGES["images"]["triton"]["lock"]).read_text()
    without_duckdb = tmp_path / "triton.lock"
    without_duckdb.write_text(re.sub(r"^duckdb==.*$", "", lock, flags=re.M))
    rc, result = _online_model_closure(without_duckdb, tmp_path)
    assert rc == 1 and "duckdb" in result["refused"]
    assert any("duckdb" in e for e in result["errors"])


def test_make_images_push_is_a_make_variable():
    """`make images --push` is not make syntax (make takes --push as its own option): the docs say
    `make images PUSH=1`, which passes --push to build_images.py."""
    def dry(*args):
        out = subprocess.run(["make", "-n", "-s", "images", *args], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "containers/build_images.py --push" in dry("PUSH=1")
    assert "--push" not in dry()
    documented = [REPO / "README.md", *sorted((REPO / "infra").rglob("*.tf")), *sorted((REPO / "infra").rglob("*.tfvars")),
                  *sorted((REPO / "docs").glob("*.md"))]
    for path in documented:
        assert "make images --push" not in path.read_text(), f"{path.relative_to(REPO)}: use `make images PUSH=1`"
    assert "make images PUSH=1" in (REPO / "README.md").read_text()
