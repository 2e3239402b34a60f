"""The Triton server process, the restricted model-control API, the repository configs, replica discovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from components.contracts import signature
from components.serving.triton import repository
from components.serving.triton.client import TritonClient, TritonRequestFailed
from components.serving.triton.routing import canary_mask
from components.serving.triton.server import ADMIN_HEADER, TritonServer
from tests.conftest import REPO, free_port
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import in_process, scripted_bytes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_starts_serves_health_and_metrics_then_stops_cleanly(tmp_path):
    ports = [free_port() for _ in range(3)]
    server = TritonServer(str(tmp_path / "repo"), http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                          work_dir=tmp_path / "work")
    with server:
        pid = server.pid
        assert server.endpoints["grpc"] == f"127.0.0.1:{ports[1]}"
        with urllib.request.urlopen(f"http://{server.endpoints['http']}/v2/health/live", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://{server.endpoints['http']}/v2", timeout=5) as r:
            assert "model_repository" in json.load(r)["extensions"]
        with urllib.request.urlopen(server.endpoints["metrics"], timeout=5) as r:
            assert "nv_" in r.read().decode()
        assert server.rss_bytes() > 10 * 2**20
    assert server.proc is None and not _alive(pid)
    # A port that is taken is refused with a clear message instead of a half-started server.
    with TritonServer(str(tmp_path / "repo"), http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                      work_dir=tmp_path / "work"):
        with pytest.raises(Exception, match="already in use"):
            TritonServer(str(tmp_path / "repo"), http_port=ports[0], grpc_port=free_port(),
                         metrics_port=free_port(), work_dir=tmp_path / "work2").start()


def test_flightdeck_serve_command_prints_endpoints_and_stops_on_sigterm(tmp_path):
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    env = {**os.environ, "FLIGHTDECK_HOME": str(tmp_path / "home"), "FLIGHTDECK_PROFILE": "local"}
    env.pop("FLIGHTDECK_TRITON_ADMIN_KEY", None)
    cmd = [sys.executable, "-m", "components.ops.cli", "serve"] + [f"--{k}-port={v}" for k, v in ports.items()]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("}"):
                break
        ready = json.loads("".join(lines))
        assert ready["status"] == "ready" and ready["grpc"] == f"127.0.0.1:{ports['grpc']}"
        assert ready["metrics"].endswith(f":{ports['metrics']}/metrics")
        # No key in the environment: a local key file was made, private to the user.
        key_file = tmp_path / "home" / "triton" / "admin.key"
        assert key_file.stat().st_mode & 0o077 == 0
        req = urllib.request.Request(f"http://{ready['http']}/v2/repository/index", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        assert refused.value.code == 403
        req.add_header(ADMIN_HEADER, key_file.read_text())
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in out


def test_model_control_is_refused_without_the_key_and_inference_is_open(triton, serving_env):
    import torch

    from components.model.network import DelayModel, build_vocabularies, export_bytes, numeric_statistics
    from components.serving.parity import parity_sample

    # The real architecture (embeddings, searchsorted vocabularies, NaN handling inside the module).
    num, cat = parity_sample(2000, seed=3)
    torch.manual_seed(0)
    data = export_bytes(DelayModel(build_vocabularies(torch.from_numpy(cat), 1), *numeric_statistics(torch.from_numpy(num))))
    repo_store, _ = repository.repository_location()
    repository.write_version(repo_store, "keyed", 1, data, "cpu")
    repository.write_config(repo_store, "keyed", repository.config_pbtxt("keyed", "cpu", [1]))
    with TritonClient(triton.endpoints["grpc"]) as anonymous, pytest.raises(TritonRequestFailed, match="restricted"):
        anonymous.load("keyed")
    with TritonClient(triton.endpoints["grpc"], admin_key="wrong-key") as wrong, pytest.raises(TritonRequestFailed):
        wrong.load("keyed")
    with TritonClient(triton.endpoints["grpc"], admin_key=serving_env["key"]) as admin:
        admin.load("keyed")
        assert admin.loaded_versions("keyed") == [1]
    # The key works, yet no process shows it: not on any command line of the machine (what `ps` reads),
    # not in the environment of the server or of what it started (stubs); the server's own command line
    # carries the placeholder its preloaded library filled in.
    from components.serving.triton.argv_key import PLACEHOLDER
    from components.serving.triton.server import _descendants

    key = serving_env["key"].encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert key not in cmdline.read_bytes(), f"the admin key is on the command line of {cmdline}"
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    assert PLACEHOLDER.encode() in Path(f"/proc/{triton.pid}/cmdline").read_bytes()
    for pid in [triton.pid, *_descendants(triton.pid)]:
        assert key not in Path(f"/proc/{pid}/environ").read_bytes(), f"the admin key is in the environment of {pid}"
    # Inference needs no key; the cpu target, loaded for real, matches in-process TorchScript.
    numeric, categorical = signature.to_tensors(flights_frame(300))
    with TritonClient(triton.endpoints["grpc"]) as anonymous:
        out = anonymous.score("keyed", 1, numeric, categorical, rows_per_request=64, in_flight=3)
        np.testing.assert_allclose(out, in_process(data, numeric, categorical), atol=1e-6)
        with pytest.raises(TritonRequestFailed, match="restricted"):
            anonymous.unload("keyed")


def test_gpu_and_cpu_configs_from_the_same_file(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    store = repository.LocalStore(tmp_path / "repo")
    data = scripted_bytes(3)
    repository.write_version(store, "m", 3, data, "gpu")
    repository.write_version(store, "m", 4, data, "cpu")
    assert store.read_bytes("m/3/model.pt") == store.read_bytes("m/4/model.pt") == data
    assert not store.exists("m/3/model.py") and store.exists("m/4/model.py")

    gpu = text_format.Parse(repository.config_pbtxt("m", "gpu", [4, 3]), mc.ModelConfig())
    assert gpu.platform == "pytorch_libtorch" and not gpu.backend
    assert [g.kind for g in gpu.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert list(gpu.dynamic_batching.preferred_batch_size) == [1024, 8192, 32768]
    assert 0 < gpu.dynamic_batching.max_queue_delay_microseconds <= 1000
    assert all(b <= gpu.max_batch_size for b in gpu.dynamic_batching.preferred_batch_size)
    assert [w.batch_size for w in gpu.model_warmup] == [1, 1024]
    assert set(gpu.model_warmup[0].inputs) == {signature.INPUT_NUMERIC, signature.INPUT_CATEGORICAL}
    assert list(gpu.version_policy.specific.versions) == [3, 4]
    assert [(i.name, i.data_type, list(i.dims)) for i in gpu.input] == [
        (signature.INPUT_NUMERIC, mc.TYPE_FP32, [len(signature.NUMERIC)]),
        (signature.INPUT_CATEGORICAL, mc.TYPE_INT64, [len(signature.CATEGORICAL)]),
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in gpu.output] == [(signature.OUTPUT, mc.TYPE_FP32, [1])]

    cpu = text_format.Parse(repository.config_pbtxt("m", "cpu", [4]), mc.ModelConfig())
    assert cpu.backend == "python" and [g.kind for g in cpu.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert list(cpu.version_policy.specific.versions) == [4] and cpu.input == gpu.input
    # Identical bytes are not rewritten: Triton would take the model as modified and reload every version.
    assert repository.write_version(store, "m", 4, data, "cpu") == []
    assert repository.remove_versions(store, "m", keep={4}) == [3]


def test_triton_s3_uri_syntax():
    assert repository.triton_s3_uri("b", "fd/triton/model_repository") == "s3://b/fd/triton/model_repository"
    assert (repository.triton_s3_uri("b", "p", "http://127.0.0.1:9000")
            == "s3://http://127.0.0.1:9000/b/p")


def test_canary_assignment_is_stable_and_close_to_the_fraction():
    keys = np.array([f"2013-06-{d:02d}_B6_{n}_JFK" for d in range(1, 29) for n in range(400)])
    first = canary_mask(keys, 0.1, "flight_delay:7")
    again = canary_mask(keys[::-1], 0.1, "flight_delay:7")[::-1]
    np.testing.assert_array_equal(first, again)
    assert 0.09 < first.mean() < 0.11
    wider = canary_mask(keys, 0.3, "flight_delay:7")
    assert (wider | ~first).all()  # raising the fraction only adds flights
    other = canary_mask(keys, 0.1, "flight_delay:8")
    assert (first != other).any()  # another challenger gets another sample
    assert not canary_mask(keys, 0.0, "s").any() and canary_mask(keys, 1.0, "s").all()


def test_replicas_from_kubernetes_endpoint_objects():
    from kubernetes import client as k

    from components.serving.triton.replicas import from_endpoint_slices, from_endpoints

    ref = lambda name: k.V1ObjectReference(kind="Pod", name=name)  # noqa: E731
    endpoints = k.V1Endpoints(subsets=[k.V1EndpointSubset(
        addresses=[k.V1EndpointAddress(ip="10.0.1.7", target_ref=ref("triton-b")),
                   k.V1EndpointAddress(ip="10.0.0.5", target_ref=ref("triton-a"))],
        not_ready_addresses=[k.V1EndpointAddress(ip="10.0.2.9", target_ref=ref("triton-c"))],
        ports=[k.CoreV1EndpointPort(name="http", port=8000), k.CoreV1EndpointPort(name="grpc", port=8001),
               k.CoreV1EndpointPort(name="metrics", port=8002)],
    )])
    ready, not_ready = from_endpoints(endpoints)
    assert [(r.name, r.grpc_url) for r in ready] == [("triton-a", "10.0.0.5:8001"), ("triton-b", "10.0.1.7:8001")]
    assert not_ready == ["triton-c"]

    ports = [k.DiscoveryV1EndpointPort(name="grpc", port=8001), k.DiscoveryV1EndpointPort(name="http", port=8000)]
    slices = [
        k.V1EndpointSlice(address_type="IPv4", metadata=k.V1ObjectMeta(name="triton-x1"), ports=ports, endpoints=[
            k.V1Endpoint(addresses=["10.0.0.5"], conditions=k.V1EndpointConditions(ready=True), target_ref=ref("triton-a")),
            k.V1Endpoint(addresses=["10.0.3.3"], conditions=k.V1EndpointConditions(ready=True, terminating=True),
                         target_ref=ref("triton-old")),
        ]),
        k.V1EndpointSlice(address_type="IPv6", metadata=k.V1ObjectMeta(name="triton-x2"), ports=ports, endpoints=[
            k.V1Endpoint(addresses=["fd00::4"], conditions=k.V1EndpointConditions(ready=None), target_ref=ref("triton-d")),
            k.V1Endpoint(addresses=["10.0.2.9"], conditions=k.V1EndpointConditions(ready=False), target_ref=ref("triton-c")),
        ]),
    ]
    ready, not_ready = from_endpoint_slices(slices)
    assert [(r.name, r.grpc_url) for r in ready] == [("triton-a", "10.0.0.5:8001"), ("triton-d", "[fd00::4]:8001")]
    assert not_ready == ["triton-c", "triton-old"]

    no_grpc = k.V1Endpoints(subsets=[k.V1EndpointSubset(
        addresses=[k.V1EndpointAddress(ip="10.0.0.5")],
        ports=[k.CoreV1EndpointPort(name="http", port=8000), k.CoreV1EndpointPort(name="metrics", port=8002)])])
    with pytest.raises(Exception, match="no port named 'grpc'"):
        from_endpoints(no_grpc)


def test_deploy_lock_serialises_deploys_of_one_model_and_expires(local_store):
    from components.serving.deploy_lock import DeployFailed, deploy_lock

    with deploy_lock(local_store, "m"):
        with pytest.raises(DeployFailed, match="holds its lock"):
            with deploy_lock(local_store, "m", wait_s=0.6):
                pass
        with deploy_lock(local_store, "other-model", wait_s=0.6):
            pass  # another model is not blocked
    with deploy_lock(local_store, "m", wait_s=0.6):
        pass  # released on exit
    # A lease left behind by a killed deploy is taken over once it expires.
    local_store.write_bytes("serving/m/deploy.lock", json.dumps(
        {"owner": "dead:1", "expires": "2000-01-01T00:00:00+00:00"}).encode())
    with deploy_lock(local_store, "m", wait_s=0.6) as lease:
        assert json.loads(local_store.read_bytes("serving/m/deploy.lock"))["owner"] == lease.owner
    assert not local_store.exists("serving/m/deploy.lock")


def test_deploy_lease_is_renewed_while_held_and_a_second_deployer_waits(local_store):
    """A deploy longer than the lease keeps it (the heartbeat extends `expires`); a second deployer
    waits for it and gets it as soon as the first exits."""
    import threading

    from components.serving.deploy_lock import DeployFailed, deploy_lock

    got: list[float] = []
    with deploy_lock(local_store, "m", lease_s=1.5) as lease:
        first_expiry = json.loads(local_store.read_bytes("serving/m/deploy.lock"))["expires"]
        waiter = threading.Thread(target=lambda: _take(local_store, got))
        waiter.start()
        time.sleep(4.5)  # three leases long
        lease.check()  # still ours
        assert json.loads(local_store.read_bytes("serving/m/deploy.lock"))["expires"] > first_expiry
        with pytest.raises(DeployFailed, match="holds its lock"):
            with deploy_lock(local_store, "m", wait_s=0.3, lease_s=1.5):
                pass
        assert not got  # the waiter is still waiting
        released = time.monotonic()
    waiter.join(timeout=10)
    assert got and got[0] - released < 2.0


def _take(store, got: list[float]) -> None:
    from components.serving.deploy_lock import deploy_lock

    with deploy_lock(store, "m", wait_s=20, lease_s=1.5):
        got.append(time.monotonic())


def _hold_lease_forever(home: str) -> None:
    os.environ["FLIGHTDECK_HOME"] = home
    from components.core.store import open_store
    from components.serving.deploy_lock import deploy_lock

    with deploy_lock(open_store(), "m", lease_s=2.0):
        time.sleep(600)


def test_a_killed_deployers_lease_is_taken_over_once_expired_and_not_before(local_store, home):
    import multiprocessing

    from components.serving.deploy_lock import DeployFailed, deploy_lock

    proc = multiprocessing.get_context("spawn").Process(target=_hold_lease_forever, args=(str(home),))
    proc.start()
    deadline = time.monotonic() + 60
    while not local_store.exists("serving/m/deploy.lock") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)  # a live holder past its first lease: renewed, so not taken over
    with pytest.raises(DeployFailed, match="holds its lock"):
        with deploy_lock(local_store, "m", wait_s=1.0, lease_s=2.0):
            pass
    os.kill(proc.pid, signal.SIGKILL)  # no heartbeat any more, no release
    proc.join()
    t0 = time.monotonic()
    with deploy_lock(local_store, "m", wait_s=20, lease_s=2.0) as lease:
        assert json.loads(local_store.read_bytes("serving/m/deploy.lock"))["owner"] == lease.owner
    assert time.monotonic() - t0 < 6  # expiry (2 s) + margin (2/3 s) + a poll


def test_a_lease_taken_over_mid_deploy_fails_the_holder_cleanly(local_store):
    from components.serving.deploy_lock import DeployFailed, deploy_lock

    with deploy_lock(local_store, "m", lease_s=1.5) as lease:
        # Somebody took it over (as after a long pause of this process): the next renewal notices.
        local_store.write_bytes("serving/m/deploy.lock", json.dumps(
            {"owner": "other:2", "expires": "2999-01-01T00:00:00+00:00"}).encode())
        time.sleep(1.0)
        with pytest.raises(DeployFailed, match="taken over by other:2.*serving state unchanged"):
            lease.check()
    # The holder that lost it leaves the new owner's lease alone on exit.
    assert json.loads(local_store.read_bytes("serving/m/deploy.lock"))["owner"] == "other:2"
