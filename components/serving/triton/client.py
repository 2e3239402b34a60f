"""Talking to one Triton server over gRPC: model control (with the admin key) and scoring.

Batch scoring splits the rows into large requests (up to the model's max_batch_size) and
keeps several in flight; a server that cannot be reached is retried with exponential
backoff, then the caller gets TritonUnavailable with a message that says what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np

from components.contracts import signature
from components.contracts.errors import StageFailed
from components.serving.triton.server import ADMIN_HEADER

log = logging.getLogger(__name__)

# Triton prefixes the restricted-protocol header on gRPC.
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"
UNREACHABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "failed to connect", "Connection refused")


class TritonUnavailable(StageFailed):
    """Triton could not be reached after the retries."""


class TritonRequestFailed(StageFailed):
    """Triton answered, with an error (model not ready, bad input, the model raised...)."""


class TritonTimeout(TritonRequestFailed):
    """A call that is not retried (a model load) did not finish within its deadline; the server may still be at it."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delays(self):
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay_s)


def _unreachable(exc: Exception) -> bool:
    text = f"{getattr(exc, 'status', lambda: '')()} {exc}"
    if "is restricted" in text:  # Triton refuses a restricted protocol with UNAVAILABLE: not a network problem
        return False
    return any(marker in text for marker in UNREACHABLE)


class TritonClient:
    def __init__(self, url: str, admin_key: str | None = None, retry: RetryPolicy | None = None,
                 timeout_s: float = 60.0):
        import tritonclient.grpc as grpcclient

        self.url = url
        self._grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(url)
        self.admin_headers = {GRPC_ADMIN_HEADER: admin_key} if admin_key else None
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self._max_batch: dict[str, int] = {}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- calls with retry ----------------------------------------------------------------
    def _call(self, what: str, fn, *args, _retry_deadline: bool = True, **kwargs):
        from tritonclient.utils import InferenceServerException

        delays = self.retry.delays()
        while True:
            try:
                return fn(*args, **kwargs)
            except InferenceServerException as exc:
                if not _retry_deadline and "DEADLINE_EXCEEDED" in f"{getattr(exc, 'status', lambda: '')()} {exc}":
                    raise TritonTimeout(f"Triton at {self.url} did not finish {what} within "
                                        f"{kwargs.get('client_timeout')} s") from exc
                if not _unreachable(exc):
                    raise TritonRequestFailed(f"Triton at {self.url} refused {what}: {exc.message()}") from exc
                delay = next(delays, None)
                if delay is None:
                    raise TritonUnavailable(
                        f"Triton at {self.url} could not be reached for {what} after {self.retry.attempts} "
                        f"attempts ({exc.message()}). Check that the server runs (`flightdeck serve` locally, the "
                        "Triton pods and Service in the cluster) and that FLIGHTDECK_TRITON_URL points to its gRPC port."
                    ) from exc
                log.warning("Triton at %s unreachable for %s, retrying in %.1f s", self.url, what, delay)
                time.sleep(delay)

    # -- health and model control --------------------------------------------------------
    def server_ready(self) -> bool:
        return bool(self._call("a readiness check", self.client.is_server_ready))

    def model_ready(self, model: str, version: int | str = "") -> bool:
        try:
            return bool(self.client.is_model_ready(model, str(version), client_timeout=5))
        except Exception:
            return False

    def load(self, model: str, timeout_s: float | None = None) -> None:
        """(Re)load a model: Triton reads config.pbtxt, loads new versions of the policy, drops the others.

        Returns when Triton has finished. A load that outlasts timeout_s (default 5x the client's
        timeout) raises TritonTimeout and is not retried: the server goes on loading regardless.
        """
        self._call(f"loading model {model!r}", self.client.load_model, model, headers=self.admin_headers,
                   client_timeout=timeout_s if timeout_s is not None else self.timeout_s * 5, _retry_deadline=False)
        self._max_batch.pop(model, None)

    def unload(self, model: str) -> None:
        self._call(f"unloading model {model!r}", self.client.unload_model, model, headers=self.admin_headers,
                   client_timeout=self.timeout_s)
        self._max_batch.pop(model, None)

    def repository_index(self) -> list[dict]:
        index = self._call("the repository index", self.client.get_model_repository_index,
                           headers=self.admin_headers, as_json=True)
        return index.get("models", [])

    def loaded_versions(self, model: str) -> list[int]:
        return sorted(int(m["version"]) for m in self.repository_index()
                      if m.get("name") == model and m.get("state") == "READY" and m.get("version"))

    def wait_model_ready(self, model: str, version: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.model_ready(model, version):
                return True
            time.sleep(0.2)
        return False

    def max_batch_size(self, model: str) -> int:
        if model not in self._max_batch:
            cfg = self._call(f"the config of {model!r}", self.client.get_model_config, model, as_json=True)
            self._max_batch[model] = int(cfg["config"].get("max_batch_size", 0)) or 0
        return self._max_batch[model]

    # -- scoring -------------------------------------------------------------------------
    def infer(self, model: str, version: int | str, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """One request: [n, len(NUMERIC)] FP32 and [n, len(CATEGORICAL)] INT64 -> [n] probabilities."""
        g = self._grpc
        a = g.InferInput(signature.INPUT_NUMERIC, list(numeric.shape), "FP32")
        a.set_data_from_numpy(np.ascontiguousarray(numeric, dtype=np.float32))
        b = g.InferInput(signature.INPUT_CATEGORICAL, list(categorical.shape), "INT64")
        b.set_data_from_numpy(np.ascontiguousarray(categorical, dtype=np.int64))
        out = self._call(
            f"scoring {len(numeric)} rows with {model!r} version {version}", self.client.infer, model, [a, b],
            model_version=str(version), outputs=[g.InferRequestedOutput(signature.OUTPUT)],
            client_timeout=self.timeout_s,
        )
        return out.as_numpy(signature.OUTPUT).reshape(-1)

    def score(self, model: str, version: int | str, numeric: np.ndarray, categorical: np.ndarray,
              rows_per_request: int = 4096, in_flight: int = 4, timings: list[float] | None = None) -> np.ndarray:
        """Many rows: large requests, several in flight, results in input order.

        timings: when given, each request's round trip (ms) is appended to it (the rollout's latency guardrail)."""
        infer = self.infer if timings is None else self._timed(timings)
        n = len(numeric)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        limit = self.max_batch_size(model)
        step = min(rows_per_request, limit) if limit else rows_per_request
        bounds = [(i, min(i + step, n)) for i in range(0, n, step)]
        if len(bounds) == 1:
            return infer(model, version, numeric, categorical)
        out = np.empty(n, dtype=np.float32)
        with ThreadPoolExecutor(max_workers=max(1, in_flight)) as pool:
            futures = {pool.submit(infer, model, version, numeric[a:b], categorical[a:b]): (a, b) for a, b in bounds}
            for fut, (a, b) in futures.items():
                out[a:b] = fut.result()
        return out

    def _timed(self, timings: list[float]):
        def infer(*args):
            t0 = time.perf_counter()
            out = self.infer(*args)
            timings.append((time.perf_counter() - t0) * 1000.0)  # list.append is atomic across the pool's threads
            return out
        return infer


@contextmanager
def clients(urls: Iterable[str], admin_key: str | None = None, timeout_s: float = 60.0) -> Iterator[list[TritonClient]]:
    """One client per URL, in order; every one is closed on exit, also when a later one fails to open."""
    with ExitStack() as stack:
        yield [stack.enter_context(TritonClient(url, admin_key=admin_key, timeout_s=timeout_s)) for url in urls]
