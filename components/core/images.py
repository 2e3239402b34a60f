"""The stage -> container image mapping (containers/images.yaml), shared by the Airflow DAGs,
the KFP pipelines, `make images` and the tests.

Images are referenced by digest when `make images` recorded one in containers/image-digests.json
(KFP's cache key and Kubernetes both treat a mutable tag as "the same image"); else by tag.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import yaml

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"


@lru_cache
def load_mapping() -> dict:
    return yaml.safe_load((CONTAINERS / "images.yaml").read_text())


def image_key(stage: str) -> str:
    stages = load_mapping()["stages"]
    if stage not in stages:
        raise KeyError(f"stage {stage!r} has no image in containers/images.yaml")
    return stages[stage]


def image_ref(key: str, settings=None) -> str:
    from components import __version__
    from components.core.settings import load_settings

    settings = settings or load_settings()
    images = load_mapping()["images"]
    if key not in images:
        raise KeyError(f"containers/images.yaml has no image {key!r}")
    repo = f"{settings.image_registry.rstrip('/')}/{images[key]['repository']}"
    digests_file = CONTAINERS / "image-digests.json"
    if digests_file.exists():
        digest = json.loads(digests_file.read_text()).get(key)
        if digest:
            return f"{repo}@{digest}"
    return f"{repo}:{settings.image_tag or __version__}"


def image_for_stage(stage: str, settings=None) -> str:
    return image_ref(image_key(stage), settings)


def service_account_for_stage(stage: str) -> str:
    accounts = load_mapping().get("service_accounts", {})
    if stage not in accounts:
        raise KeyError(f"stage {stage!r} has no service account in containers/images.yaml")
    return accounts[stage]


# GPU placement, shared by the Airflow pods and the KFP steps; matches the GPU node group in
# infra/terraform/modules/eks (label flightdeck.io/node-pool=gpu, taint nvidia.com/gpu=true:NoSchedule).
GPU_NODE_SELECTOR = {"flightdeck.io/node-pool": "gpu"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
