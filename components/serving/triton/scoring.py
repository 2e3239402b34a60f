"""Scoring frames through Triton with the serving state's routing: what batch and online prediction call."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pandas as pd

from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore, open_store
from components.serving.triton.client import RetryPolicy, TritonClient
from components.serving.triton.routing import Scored, read_state, score_routed


def serving_state(store: ArtifactStore, model: str):
    state, _ = read_state(store, model)
    if state is None:
        raise StageFailed(f"no version of {model!r} is deployed: run `flightdeck deploy` first")
    return state


def score_frame_detailed(df: pd.DataFrame, *, settings=None, store: ArtifactStore | None = None,
                         client: TritonClient | None = None, record: bool = True, rows_per_request: int = 4096,
                         in_flight: int = 4, retry: RetryPolicy | None = None) -> Scored:
    """Probabilities, the version that served each row, and (shadow/canary) the challenger's outputs."""
    from components.core.settings import load_settings

    settings = settings or load_settings()
    store = store or open_store(settings)
    state = serving_state(store, settings.model_name)
    with ExitStack() as owned:  # a client opened here is closed here; a caller's stays open
        if client is None:
            client = owned.enter_context(TritonClient(settings.triton_url, retry=retry))
        return score_routed(df, state, client, store, record=record, rows_per_request=rows_per_request,
                            in_flight=in_flight)


def score_frame(df: pd.DataFrame, **kwargs) -> np.ndarray:
    """P(late) for every row of a frame with the signature's feature columns, through Triton over gRPC.

    Large requests with several in flight; retries with backoff, then TritonUnavailable (a StageFailed).
    """
    return score_frame_detailed(df, **kwargs).probability
