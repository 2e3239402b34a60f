"""The cpu target's python-backend model (components/serving/triton/backend_model.py) on a real Triton: forward passes
of `forward_chunk` rows per request, one request's error answering that request only, bit-for-bit parity
with in-process scoring, buffers reused across passes, and the sha256 check of model.pt at load time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from components.contracts import signature
from components.model.network import FORWARD_CHUNK
from components.serving.triton import repository
from components.serving.triton.client import TritonClient, TritonRequestFailed
from tests.serving.fixture_models import PassSizeEcho, delay_model_bytes, pass_size_echo_bytes, scripted_bytes

N_NUM, N_CAT = len(signature.NUMERIC), len(signature.CATEGORICAL)


@pytest.fixture(scope="module")
def admin(triton, serving_env):
    with TritonClient(triton.endpoints["grpc"], admin_key=serving_env["key"]) as c:
        yield c


def publish(name: str, data: bytes, opts: repository.TargetOptions | None = None, version: int = 1):
    repo_store, _ = repository.repository_location()
    repository.write_version(repo_store, name, version, data, "cpu")
    repository.write_config(repo_store, name, repository.config_pbtxt(name, "cpu", [version], opts))
    return repo_store


def rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, N_NUM)).astype(np.float32), rng.integers(0, 50, (n, N_CAT)).astype(np.int64)


def stats(client: TritonClient, name: str) -> tuple[int, int]:
    s = client.client.get_inference_statistics(name, "1", as_json=True)["model_stats"][0]
    return int(s["inference_stats"]["success"].get("count", 0)), int(s.get("execution_count", 0))


def test_config_carries_the_forward_chunk_of_in_process_scoring():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    cpu = text_format.Parse(repository.config_pbtxt("m", "cpu", [1]), mc.ModelConfig())
    assert cpu.parameters["forward_chunk"].string_value == str(FORWARD_CHUNK)
    other = repository.config_pbtxt("m", "cpu", [1], repository.TargetOptions(forward_chunk=1000))
    assert text_format.Parse(other, mc.ModelConfig()).parameters["forward_chunk"].string_value == "1000"
    with pytest.raises(ValueError, match="forward_chunk"):
        repository.config_pbtxt("m", "cpu", [1], repository.TargetOptions(forward_chunk=0))
    # model.predict_arrays uses the same constant by default.
    import inspect

    from components.model import network as model
    assert inspect.signature(model.predict_arrays).parameters["batch_size"].default == FORWARD_CHUNK


ECHO_OPTIONS = repository.TargetOptions(forward_chunk=1000, max_queue_delay_us=500_000)


def in_one_execution(client: TritonClient, calls: list, attempts: int = 5) -> list:
    """Send the calls concurrently until Triton's dynamic batcher ran them all in one execution (the long
    queue delay makes that the rule; on a busy machine a straggler can miss it); their results."""
    for _ in range(attempts):
        requests0, executions0 = stats(client, "echo")
        with ThreadPoolExecutor(len(calls)) as pool:
            results = list(pool.map(lambda call: call(), calls))
        requests1, executions1 = stats(client, "echo")
        failed = sum(isinstance(r, Exception) for r in results)
        if requests1 - requests0 == len(calls) - failed and executions1 - executions0 == 1:
            return results
    pytest.fail(f"the {len(calls)} concurrent requests never ran in one execution in {attempts} attempts")


def test_each_request_is_scored_in_chunks_even_when_batched_with_others(admin):
    publish("echo", pass_size_echo_bytes(), ECHO_OPTIONS)
    admin.load("echo")
    numeric, categorical = rows(3001)
    single = admin.infer("echo", 1, numeric[:2500], categorical[:2500])
    np.testing.assert_array_equal(single, [1000.0] * 2000 + [500.0] * 500)

    sizes = [2500, 700, 1000, 3001]
    answers = in_one_execution(admin, [lambda n=n: admin.infer("echo", 1, numeric[:n], categorical[:n]) for n in sizes])
    for n, out in zip(sizes, answers, strict=True):
        expected = np.concatenate([np.full(min(1000, n - i), float(min(1000, n - i))) for i in range(0, n, 1000)])
        np.testing.assert_array_equal(out, expected)  # never one pass over the concatenated batch


def test_an_error_in_one_request_answers_that_request_only(admin):
    publish("echo", pass_size_echo_bytes(), ECHO_OPTIONS)
    admin.load("echo")
    numeric, categorical = rows(1500, seed=1)
    poisoned = categorical.copy()
    poisoned[1200, 2] = PassSizeEcho.POISON  # in the request's second chunk

    def call(cat):
        try:
            return admin.infer("echo", 1, numeric, cat)
        except TritonRequestFailed as exc:
            return exc

    # The poisoned request shares one execution with two good ones.
    good, bad, good2 = in_one_execution(admin, [lambda c=c: call(c) for c in (categorical, poisoned, categorical)])
    assert isinstance(bad, TritonRequestFailed) and "poisoned row in this request" in str(bad)
    for out in (good, good2):
        np.testing.assert_array_equal(out, [1000.0] * 1000 + [500.0] * 500)
    assert admin.model_ready("echo", 1)


def test_chunked_scoring_equals_in_process_bit_for_bit(admin):
    import io

    import torch

    from components.model.network import predict_arrays

    data = delay_model_bytes()
    publish("delay", data)
    admin.load("delay")
    from components.serving.parity import parity_sample

    numeric, categorical = parity_sample(20_000, seed=5)
    served = admin.score("delay", 1, numeric, categorical, rows_per_request=8192, in_flight=3)  # 4096-row passes
    module = torch.jit.load(io.BytesIO(data)).eval()
    in_process = predict_arrays(module, numeric, categorical)
    assert in_process.dtype == np.float32 and in_process.shape == (20_000,)
    assert float(np.max(np.abs(served - in_process))) == 0.0
    with torch.inference_mode():  # and one pass over everything gives the same numbers
        whole = module(torch.from_numpy(numeric), torch.from_numpy(categorical))[:, 0].numpy()
    np.testing.assert_array_equal(in_process, whole)
    np.testing.assert_array_equal(predict_arrays(module, numeric[:0], categorical[:0]), np.zeros(0, np.float32))


def _stub_pids(server) -> list[int]:
    from components.serving.triton.server import _descendants

    return [p for p in _descendants(server.pid) if "triton_python_backend_stub" in Path(f"/proc/{p}/cmdline").read_text()]


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_forward_passes_reuse_their_buffers(admin, triton):
    """glibc in the stub hands freed activation buffers back at once unless told otherwise: ~1,000 fresh
    page faults per 4096-row pass of this model (measured), about half the rows/s. keep_freed_memory stops that."""
    publish("delay", delay_model_bytes())
    admin.load("delay")
    from components.serving.parity import parity_sample

    numeric, categorical = parity_sample(8192, seed=6)
    for _ in range(3):  # warm: the allocator's heap grows to its working size
        admin.infer("delay", 1, numeric, categorical)
    before = {p: _minor_faults(p) for p in _stub_pids(triton)}
    passes = 0
    for _ in range(20):
        admin.infer("delay", 1, numeric, categorical)
        passes += 2
    faults = sum(_minor_faults(p) - f for p, f in before.items() if Path(f"/proc/{p}").exists())
    assert faults / passes < 100, f"{faults} minor page faults in {passes} forward passes of 4096 rows"


def test_a_model_file_that_differs_from_its_checksum_is_not_loaded(admin):
    repo_store = publish("guarded", scripted_bytes(1))
    repo_store.write_bytes("guarded/1/model.pt", scripted_bytes(2))  # changed on disk after deploy wrote it
    with pytest.raises(TritonRequestFailed, match="sha256 checksum mismatch"):
        admin.load("guarded")
    assert not admin.model_ready("guarded", 1)
    repo_store.delete("guarded/1/model.pt.sha256")
    with pytest.raises(TritonRequestFailed, match="checksum file model.pt.sha256 is missing"):
        admin.load("guarded")
    repository.write_version(repo_store, "guarded", 1, scripted_bytes(2), "cpu")  # consistent again: loads
    admin.load("guarded")
    assert admin.model_ready("guarded", 1)
