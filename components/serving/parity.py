"""Prediction parity: Triton's outputs on a fixed sample must equal the in-process TorchScript's.

deploy checks every replica with it before the version may serve (components.serving.deploy); a
model whose signature does not match fails here, on Triton and in-process alike. The sample is also
what the serving tests and benchmarks score.
"""

from __future__ import annotations

import io

import numpy as np

from components.contracts import signature
from components.contracts.errors import StageFailed
from components.serving.triton.client import TritonClient

PARITY_TOLERANCE = 1e-5
PARITY_ROWS = 512


class ParityFailed(StageFailed):
    """Triton's outputs differ from the in-process TorchScript's, or the model does not run on the signature."""


def parity_sample(rows: int = PARITY_ROWS, seed: int = 20130101) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample in the signature's shape: plausible values, missing values, unseen categories."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(0.0, 1.0, (rows, len(signature.NUMERIC))).astype(np.float32)
    scale = {"distance": 1000.0, "temp": 50.0, "pressure": 1015.0, "visib": 10.0, "plane_year": 2000.0,
             "plane_seats": 150.0, "route_flights_28d": 100.0}
    for j, name in enumerate(signature.NUMERIC):
        if name in scale:
            numeric[:, j] = scale[name] * (1 + 0.2 * numeric[:, j])
    numeric[rng.random(numeric.shape) < 0.08] = np.nan
    pools = {
        "carrier": ["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX", "ZZ"],
        "origin": ["EWR", "JFK", "LGA"],
        "dest": ["ORD", "ATL", "LAX", "BOS", "MCO", "SFO", "XXX"],
    }
    categorical = np.zeros((rows, len(signature.CATEGORICAL)), dtype=np.int64)
    for j, name in enumerate(signature.CATEGORICAL):
        if name in pools:
            codes = np.array([signature.encode_category(v) for v in pools[name]] + [0], dtype=np.int64)
            categorical[:, j] = codes[rng.integers(0, len(codes), rows)]
        elif name == "sched_hour":
            categorical[:, j] = rng.integers(5, 24, rows)
        else:
            categorical[:, j] = rng.integers(0, 7, rows)
    return numeric, categorical


def reference_outputs(model_bytes: bytes, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    import torch

    module = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    with torch.inference_mode():
        out = module(torch.from_numpy(numeric), torch.from_numpy(categorical))
    if tuple(out.shape) != (len(numeric), 1):
        raise ValueError(f"in-process the model returns shape {tuple(out.shape)}, the signature says [{len(numeric)}, 1]")
    return out[:, 0].float().numpy()


def check_parity(client: TritonClient, model: str, version: int, model_bytes: bytes) -> float:
    numeric, categorical = parity_sample()
    served = client.score(model, version, numeric, categorical, rows_per_request=128, in_flight=2)
    try:
        expected = reference_outputs(model_bytes, numeric, categorical)
    except Exception as exc:
        raise ParityFailed(f"the model does not run on the signature's inputs in-process either: {exc}") from exc
    if served.shape != expected.shape or not np.isfinite(served).all():
        raise ParityFailed(f"Triton returned {served.shape} outputs (finite: {np.isfinite(served).all()}), "
                           f"expected {expected.shape} finite probabilities")
    diff = float(np.max(np.abs(served - expected)))
    if not diff <= PARITY_TOLERANCE:
        raise ParityFailed(f"prediction parity failed: Triton and in-process TorchScript differ by up to {diff:.3g} "
                           f"on the {len(expected)}-row parity sample (tolerance {PARITY_TOLERANCE})")
    return diff
