"""The Triton model repository: <repo>/<model>/<version>/model.pt and <repo>/<model>/config.pbtxt.

One TorchScript file, two targets:
  gpu  platform pytorch_libtorch, KIND_GPU instances, dynamic batching with preferred batch
       sizes and a queue-delay bound, warmup requests (production, the Triton container)
  cpu  the python backend running the same model.pt (backend_model.py as model.py), tensors
       by DLPack, dynamic batching (local, the Triton from the nvidia-pytriton wheel)
The version policy names the versions to keep loaded (serving + previous, or serving +
challenger); Triton unloads the rest when the model is (re)loaded.

Where it lives: FLIGHTDECK_HOME/triton/model_repository locally; on the aws profile
s3://<models bucket>/triton/model_repository, which Triton reads natively (its S3
credentials come from the pod's IAM role; a non-AWS endpoint is written s3://http://host:port/...).
Objects are written through the artifact store, one atomic write each; the config is written
last, so a load never sees a config naming a version whose files are not complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from components.contracts import signature
from components.core.store import ArtifactNotFound, ArtifactStore, LocalStore, S3Store, sha256_bytes

TARGETS = ("cpu", "gpu")
BACKEND_MODEL = Path(__file__).with_name("backend_model.py")


@dataclass(frozen=True)
class TargetOptions:
    max_batch_size: int = 32768
    preferred_batch_sizes: tuple[int, ...] = (1024, 8192, 32768)
    max_queue_delay_us: int = 200
    instances: int = 1
    torch_threads: int = 1  # cpu target: threads per instance (instances x threads <= cores)
    # cpu target: rows per forward pass inside a request; None = components.model.network.FORWARD_CHUNK
    forward_chunk: int | None = None
    warmup_batch_sizes: tuple[int, ...] = (1, 1024)


DEFAULT_OPTIONS = TargetOptions()  # what deploy writes; benchmarks swap it to try other settings


def repository_location(settings=None) -> tuple[ArtifactStore, str]:
    """The store to write the repository with, and the path/URI Triton reads it from."""
    from components.core.settings import load_settings

    settings = settings or load_settings()
    if settings.profile == "local":
        path = settings.home_path / "triton" / "model_repository"
        return LocalStore(path), str(path)
    # "triton" is a model area: the models bucket when there is one (components.core.store.MODEL_AREAS).
    bucket = settings.s3_models_bucket or settings.s3_bucket
    prefix = f"{settings.s3_prefix.strip('/')}/triton/model_repository".strip("/")
    store = S3Store(bucket, prefix=prefix, endpoint_url=settings.s3_endpoint_url or None, region=settings.aws_region)
    return store, triton_s3_uri(bucket, prefix, settings.s3_endpoint_url)


MARKER = "README.txt"


def prepare_repository(settings=None) -> tuple[ArtifactStore, str]:
    """repository_location, plus a marker object so the repository exists before the first model.

    Triton refuses to start on an S3 prefix that holds no object ("not a valid directory");
    files at the repository root are not models, so the marker is harmless.
    """
    store, uri = repository_location(settings)
    if not store.exists(MARKER):
        store.write_bytes(MARKER, b"Triton model repository written by flightdeck deploy "
                                  b"(components/serving/triton/repository.py): <model>/config.pbtxt, <model>/<version>/\n")
    return store, uri


def triton_s3_uri(bucket: str, prefix: str, endpoint_url: str = "") -> str:
    """Triton's own S3 path syntax: s3://bucket/path on AWS, s3://http://host:port/bucket/path elsewhere."""
    if not endpoint_url:
        return f"s3://{bucket}/{prefix}"
    ep = urlparse(endpoint_url)
    port = ep.port or (443 if ep.scheme == "https" else 80)
    return f"s3://{ep.scheme}://{ep.hostname}:{port}/{bucket}/{prefix}"


# -- config.pbtxt -----------------------------------------------------------------------------
def _io_block(kind: str, name: str, dtype: str, dims: list[int]) -> str:
    return f'{kind} [\n  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}\n]'


def _warmup(opts: TargetOptions) -> str:
    n_num, n_cat = len(signature.NUMERIC), len(signature.CATEGORICAL)
    blocks = []
    for bs in opts.warmup_batch_sizes:
        # Zeros are valid inputs: 0 in a categorical column is the "missing" code.
        blocks.append(
            f'  {{\n    name: "zeros_batch_{bs}"\n    batch_size: {bs}\n'
            f'    inputs {{ key: "{signature.INPUT_NUMERIC}" value: {{ data_type: TYPE_FP32 dims: [ {n_num} ] zero_data: true }} }}\n'
            f'    inputs {{ key: "{signature.INPUT_CATEGORICAL}" value: {{ data_type: TYPE_INT64 dims: [ {n_cat} ] zero_data: true }} }}\n'
            "  }"
        )
    return "model_warmup [\n" + ",\n".join(blocks) + "\n]"


def config_pbtxt(model: str, target: str, versions: list[int], opts: TargetOptions | None = None) -> str:
    """The model configuration for one target, keeping exactly `versions` loaded."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    if not versions:
        raise ValueError("a Triton model config needs at least one version in its policy")
    opts = opts or DEFAULT_OPTIONS
    preferred = [b for b in opts.preferred_batch_sizes if b <= opts.max_batch_size]
    lines = [f'name: "{model}"']
    if target == "gpu":
        lines += ['platform: "pytorch_libtorch"']
    else:
        lines += ['backend: "python"']
    lines += [
        f"max_batch_size: {opts.max_batch_size}",
        _io_block("input", signature.INPUT_NUMERIC, "TYPE_FP32", [len(signature.NUMERIC)]),
        _io_block("input", signature.INPUT_CATEGORICAL, "TYPE_INT64", [len(signature.CATEGORICAL)]),
        _io_block("output", signature.OUTPUT, "TYPE_FP32", [1]),
        "version_policy: { specific: { versions: [ " + ", ".join(str(v) for v in sorted(set(versions))) + " ] } }",
    ]
    if target == "gpu":
        lines += [
            f"instance_group [ {{ count: {opts.instances} kind: KIND_GPU }} ]",
            "dynamic_batching {\n  preferred_batch_size: [ " + ", ".join(map(str, preferred)) + " ]\n"
            f"  max_queue_delay_microseconds: {opts.max_queue_delay_us}\n}}",
            _warmup(opts),
            # TorchScript profiling/fusion makes the first calls slow and rarely helps a small MLP.
            'parameters: { key: "DISABLE_OPTIMIZED_EXECUTION" value: { string_value: "true" } }',
        ]
    else:
        lines += [
            f"instance_group [ {{ count: {opts.instances} kind: KIND_CPU }} ]",
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {opts.max_queue_delay_us}\n}}",
            f'parameters: {{ key: "torch_threads" value: {{ string_value: "{opts.torch_threads}" }} }}',
            f'parameters: {{ key: "forward_chunk" value: {{ string_value: "{forward_chunk(opts)}" }} }}',
        ]
    return "\n".join(lines) + "\n"


def forward_chunk(opts: TargetOptions) -> int:
    """Rows per forward pass of the cpu target: the option, or the in-process scoring default (one constant)."""
    if opts.forward_chunk is not None:
        if opts.forward_chunk < 1:
            raise ValueError(f"forward_chunk must be a positive row count, got {opts.forward_chunk}")
        return opts.forward_chunk
    from components.model.network import FORWARD_CHUNK

    return FORWARD_CHUNK


# -- files ------------------------------------------------------------------------------------
CHECKSUM = "model.pt.sha256"  # beside model.pt: the cpu target's backend refuses a model.pt that differs


def checksum_file(sha256: str) -> bytes:
    """The checksum file's bytes (sha256sum's format, so `sha256sum -c` checks it too)."""
    return f"{sha256}  model.pt\n".encode()


def version_files(target: str, model_bytes: bytes) -> dict[str, bytes]:
    files = {"model.pt": model_bytes, CHECKSUM: checksum_file(sha256_bytes(model_bytes))}
    if target == "cpu":
        files["model.py"] = BACKEND_MODEL.read_bytes()
        # The stub's embedded Python ignores PYTHONDONTWRITEBYTECODE and would write
        # __pycache__/ beside model.py: that makes the model look modified, so the next load
        # (even a no-op) reloads every version. A plain file of that name makes the write fail
        # quietly (Python skips bytecode it cannot cache).
        files["__pycache__"] = b""
    return files


def write_if_changed(store: ArtifactStore, key: str, data: bytes) -> bool:
    """Write unless the object already holds these bytes.

    Triton reloads every version of a model when any file of it is newer than its last load
    (seconds per python-backend version: docs/BENCHMARKS.md, Figures the code relies on):
    rewriting identical files would turn a no-op load into a full reload.
    """
    try:
        if store.read_bytes(key) == data:
            return False
    except ArtifactNotFound:
        pass
    store.write_bytes(key, data)
    return True


def write_version(store: ArtifactStore, model: str, version: int, model_bytes: bytes, target: str) -> list[str]:
    """Write the version's files; returns the keys that changed."""
    return [key for name, data in version_files(target, model_bytes).items()
            if write_if_changed(store, key := f"{model}/{version}/{name}", data)]


def read_config(store: ArtifactStore, model: str) -> str | None:
    try:
        return store.read_bytes(f"{model}/config.pbtxt").decode()
    except ArtifactNotFound:
        return None


def write_config(store: ArtifactStore, model: str, text: str) -> bool:
    return write_if_changed(store, f"{model}/config.pbtxt", text.encode())


def policy_versions(config_text: str) -> list[int]:
    """The versions named by a config's specific version policy (as written by config_pbtxt)."""
    import re

    found = re.search(r"specific:\s*{\s*versions:\s*\[([^\]]*)\]", config_text)
    return sorted(int(v) for v in re.findall(r"\d+", found.group(1))) if found else []


def versions_on_disk(store: ArtifactStore, model: str) -> list[int]:
    out = set()
    for key in store.list(f"{model}/"):
        part = key.split("/")[1]
        if part.isdigit():
            out.add(int(part))
    return sorted(out)


def remove_versions(store: ArtifactStore, model: str, keep: set[int]) -> list[int]:
    """Delete the files of versions no longer in the policy (after Triton has unloaded them)."""
    removed = []
    for v in versions_on_disk(store, model):
        if v not in keep:
            store.delete_prefix(f"{model}/{v}/")
            removed.append(v)
    return removed
