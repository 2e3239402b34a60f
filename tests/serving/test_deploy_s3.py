"""The aws-profile path: registry and Triton model repository on S3 (a real S3 HTTP endpoint, moto),
read by Triton itself through its s3:// support; deploy and scoring end to end."""

from __future__ import annotations

import numpy as np

from components.contracts import signature
from components.contracts.stages import DeployParams
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.serving.triton import repository
from components.serving.triton.server import TritonServer
from tests.conftest import free_port
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"


def test_deploy_on_the_aws_profile_serves_from_the_s3_repository(s3_store, monkeypatch, tmp_path):
    from components.serving.deploy import deploy
    from components.serving.triton.scoring import score_frame

    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{ports['grpc']}")
    monkeypatch.setenv("FLIGHTDECK_TRITON_ADMIN_KEY", "s3-test-key")
    registry = Registry(s3_store, "flight_delay")
    data = scripted_bytes(21)
    version = register_unevaluated(registry, {"model.pt": data}, {"blessed": True}, HAND_MADE)
    registry.promote(version)

    repo_store, uri = repository.prepare_repository()
    assert uri.startswith("s3://http://127.0.0.1:") and uri.endswith("/triton/model_repository")
    with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                      admin_key="s3-test-key", work_dir=tmp_path / "triton"):
        result = deploy(DeployParams(online=False))
        assert result["version"] == version and result["repository"] == uri
        assert result["parity_max_abs_diff"] <= 1e-5
        assert repository.versions_on_disk(repo_store, "flight_delay") == [version]
        assert s3_store.exists("serving/flight_delay/state.json")
        assert registry.deployed("triton-aws")["version"] == version
        df = flights_frame(2000)
        numeric, categorical = signature.to_tensors(df)
        np.testing.assert_allclose(score_frame(df), in_process(data, numeric, categorical), atol=1e-6)
