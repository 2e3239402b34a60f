"""Container images: every stage maps to an image whose Dockerfile exists, lints clean (every
ignored hadolint rule, in .hadolint.yaml or inline, explained) and whose entrypoint reaches the
`flightdeck` CLI; multi-stage builds whose final stage only copies the build; installs from the
image's own lock with --no-deps, the lock a complete closure; base images pinned by tag and
digest; `make images` fails clearly without a Docker engine."""

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
    """Every StageSpec."""
    from components.contracts.stages import STAGES

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
    expected = expected if isinstance(expected, list) else [expected]
    assert entrypoint == expected, (
        f"{image['dockerfile']}: ENTRYPOINT {entrypoint}, expected {expected!r}"
    )
    if expected != ["flightdeck"]:
        return  # Triton serves models (tritonserver); Airflow keeps the official image's entrypoint
    # The `flightdeck` executable is the console script of pyproject.toml, installed by the
    # Dockerfile with the code; the same script here answers --help and lists every stage.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^flightdeck\s*=\s*"components\.ops\.cli:main"', pyproject, re.M)
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
        # Only allowed where the registry was out of reach (nvcr.io, Docker Hub for apache/airflow);
        # `make images` then refuses to build.
        assert key in {"triton", "airflow"}, f"{key}: base digest missing"


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
    """Stage pods (Airflow and KFP, components/core/cluster.py) set runAsUser/runAsGroup: the image's
    user must be that uid, and FLIGHTDECK_HOME must lie in the pods' scratch emptyDir."""
    from components.core import cluster
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
    for key in ("stage", "train", "airflow"):
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
            for source in [a for a in shlex.split(args)[:-1] if not a.startswith("--")]:  # flags: --chown=...
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
    """The Triton image runs components/serving/triton/online_model.py with only triton.lock installed."""
    rc, result = _online_model_closure(REPO / IMAGES["images"]["triton"]["lock"], tmp_path)
    assert rc == 0 and not result["errors"], result["errors"]
    # The list comes from online_model.py's own imports; these two are what it is for.
    assert {"torch", "components.features.retrieval"} <= set(result["modules"]), result["modules"]


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


# -- multi-stage builds, installs from the lock, inline hadolint ignores --------------------------

def stages(dockerfile: Path) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(stage name, instructions) of every build stage, in order."""
    out: list[tuple[str | None, list[tuple[str, str]]]] = []
    for word, args in instructions(dockerfile):
        if word == "FROM":
            match = re.search(r"\s+AS\s+([A-Za-z0-9_.-]+)\s*$", args, re.I)
            out.append((match.group(1) if match else None, []))
        elif out:
            out[-1][1].append((word, args))
    return out


def install_commands(run: str) -> list[str]:
    """The package-install commands of a RUN line (split at && and ;)."""
    return [c.strip() for c in re.split(r"&&|;", run) if re.search(r"\bpip3?\s+install\b|\bpip\s+install\b", c)]


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_dockerfile_is_multi_stage_and_the_final_stage_only_copies_the_build(key):
    """README: the Dockerfiles are multi-stage. A build stage installs; the final stage starts from
    the base again and copies the results from an earlier, named stage; no installer runs there."""
    dockerfile = REPO / IMAGES["images"][key]["dockerfile"]
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2, f"{dockerfile.name}: one FROM, not a multi-stage build"
    names = [name for name, _ in all_stages]
    assert all(names) and len(set(names)) == len(names), f"{dockerfile.name}: name every stage (FROM ... AS <name>)"
    final_name, final = all_stages[-1]
    copied_from = {re.match(r"--from=(\S+)", args).group(1) for word, args in final
                   if word == "COPY" and args.startswith("--from=")}
    assert copied_from and copied_from <= set(names[:-1]), (
        f"{dockerfile.name}: the final stage {final_name} must COPY --from= an earlier stage, got {copied_from}")
    builders = {name for name, body in all_stages[:-1] if any(install_commands(a) for w, a in body if w == "RUN")}
    assert copied_from & builders, f"{dockerfile.name}: nothing is copied from the stage that installs"
    assert not [a for w, a in final if w == "RUN" and install_commands(a)], (
        f"{dockerfile.name}: the final stage installs packages; install in the build stage and copy")


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_dockerfile_installs_from_its_own_lock_without_resolving(key):
    """The build copies containers/locks/<image>.lock and installs exactly it, with --no-deps (the
    lock is the resolved set) or --require-hashes; every other install is --no-deps too, except the
    pinned installer itself (uv==X.Y.Z)."""
    image = IMAGES["images"][key]
    dockerfile = REPO / image["dockerfile"]
    assert image["lock"] == f"containers/locks/{key}.lock"
    ins = instructions(dockerfile)
    copies = [shlex.split(args) for word, args in ins if word == "COPY" and not args.startswith("--from")]
    (lock_copy,) = [c for c in copies if any(s.startswith("containers/locks/") for s in c[:-1])]
    assert lock_copy[:-1] == [image["lock"]], f"{dockerfile.name} copies {lock_copy[:-1]}, not its own lock"
    target = lock_copy[-1]
    commands = [c for word, args in ins if word == "RUN" for c in install_commands(args)]
    from_lock = [c for c in commands if re.search(rf"(-r|--requirement)\s+{re.escape(target)}(\s|$)", c)]
    assert len(from_lock) == 1, f"{dockerfile.name}: expected one install of {target}, got {from_lock}"
    assert re.search(r"--no-deps\b|--require-hashes\b", from_lock[0]), f"{dockerfile.name}: {from_lock[0]}"
    for command in commands:
        installer = re.fullmatch(r"python3? -m pip install uv==\d+\.\d+\.\d+", command)
        assert installer or "--no-deps" in command or "--require-hashes" in command, (
            f"{dockerfile.name}: `{command}` may resolve packages outside the lock")
    if "uv pip install" in from_lock[0]:
        run = next(args for word, args in ins if word == "RUN" and from_lock[0] in args)
        assert "uv pip check" in run, f"{dockerfile.name}: check the --no-deps install is consistent (uv pip check)"


@pytest.mark.parametrize("key", sorted(IMAGES["images"]))
def test_lock_is_a_complete_closure(key):
    """--no-deps installs only what the lock names, so the lock must hold every dependency of every
    package in it: checked against the installed metadata of each pin this environment has at the
    same version (the images run dev.lock's versions), markers evaluated for the image's Python."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    text = (REPO / IMAGES["images"][key]["lock"]).read_text()
    pins = {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.M)}
    python = "3.12" if key == "triton" else "3.11"  # containers/lock.sh --python-version
    marker_env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    checked, problems = 0, []
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(marker_env):
                continue
            dep = canonicalize_name(req.name)
            if dep not in pins:
                problems.append(f"{name} {version} needs {req}: not in the lock")
            elif not req.specifier.contains(pins[dep], prereleases=True):
                problems.append(f"{name} {version} needs {req}: the lock has {pins[dep]}")
    assert checked >= 0.75 * len(pins), f"only {checked} of {len(pins)} pins could be checked here"
    assert not problems, "\n".join(problems)


HADOLINT_IGNORE = re.compile(r"#\s*hadolint\s+(global\s+)?ignore=([A-Z0-9, ]+)")


def unexplained_ignores(text: str) -> list[str]:
    """Inline `# hadolint ignore=` pragmas whose reason is not on the comment line just above them
    (`# reason: ...`), or that name something other than hadolint/ShellCheck rules."""
    lines = text.splitlines()
    problems = []
    for n, line in enumerate(lines):
        match = HADOLINT_IGNORE.search(line)
        if not match:
            continue
        rules = [r.strip() for r in match.group(2).split(",") if r.strip()]
        if not rules or not all(re.fullmatch(r"(DL|SC)\d{4}", r) for r in rules):
            problems.append(f"line {n + 1}: unknown rules {rules}")
        above = lines[n - 1].strip() if n else ""
        if not re.fullmatch(r"#\s*reason:\s*\S.{9,}", above):
            problems.append(f"line {n + 1}: `{line.strip()}` without a `# reason: ...` line above it")
    return problems


def test_every_inline_hadolint_ignore_is_explained():
    for dockerfile in DOCKERFILES:
        assert unexplained_ignores(dockerfile.read_text()) == [], dockerfile.name


def test_inline_ignore_check_catches_a_bare_pragma_and_hadolint_honours_the_explained_form(tmp_path):
    bare = "FROM python:3.11-slim\n# hadolint ignore=DL3013\nRUN pip install requests\n"
    assert len(unexplained_ignores(bare)) == 1
    assert len(unexplained_ignores("FROM x\n# reason: short\n# hadolint ignore=DL3013\n")) == 1
    assert unexplained_ignores("FROM x\n# reason: the wheel cache is mounted at build time\n# hadolint ignore=DL3013\n") == []
    # The reason line above does not stop hadolint from applying the pragma.
    explained = tmp_path / "explained.Dockerfile"
    explained.write_text("FROM python:3.11-slim\n# reason: a test of the pragma form, nothing is built\n"
                         "# hadolint ignore=DL3013,DL3042\nRUN pip install requests\n")
    out = subprocess.run([str(VENV_BIN / "hadolint"), "--no-fail", "-f", "json", str(explained)],
                         capture_output=True, text=True, timeout=120)
    codes = {f["code"] for f in json.loads(out.stdout or "[]")}
    assert "DL3013" not in codes and "DL3042" not in codes, codes
