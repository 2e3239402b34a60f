"""The typed result of every stage entry function: what the CLI prints as JSON, what an Airflow task
pushes to XCom and what a KFP component reads, each by name.

TypedDicts, so a result stays a plain JSON-able dict on the wire (XCom, the pod's result file)
while its keys are declared and checked (mypy, and tests/core/test_results.py reads them back).
Each stage's section is kept by its layer.
"""

from __future__ import annotations

from typing import Any, TypedDict

# -- data: ingest, validate -----------------------------------------------------------------------
# (the data layer's results)


# -- features: build, training set, materialize ------------------------------------------------------
class FeaturesBuildResult(TypedDict):
    """components.features.build.build"""

    start: str  # first day built (YYYY-MM-DD)
    end: str  # last day built, inclusive
    flights_read: int  # validated flights read, the history before `start` included
    rows_built: dict[str, int]  # per view: rows computed for the range
    table_rows: dict[str, int]  # per view: rows of features/<view>.parquet after the upsert
    applied_views: list[str]  # the feature views `feast apply` registered
    seconds: float
    read_seconds: float  # reading the validated partitions
    apply_seconds: float  # feast apply
    uri: str  # the features/ prefix: features/<view>.parquet, one table per view


class TrainingSetResult(TypedDict):
    """components.features.training_set.training_set"""

    out: str  # URI of the training-set parquet (same as `uri`)
    uri: str
    rows: int
    columns: int
    shape: list[int]  # [rows, columns]
    label_rate: float  # share of late flights
    missing_rate: dict[str, float]  # per numeric column with missing values: their share
    seconds: float


# One view's part of a materialize run ("from" is a Python keyword: the functional form).
MaterializedView = TypedDict("MaterializedView", {
    "from": str | None,  # where the view's interval started; None: nothing to do for it
    "to": str | None,  # the interval's end; with nothing to do, the view's materialized_until (or None)
    "chunks": int,  # chunks that loaded data new to the view
    "repair_chunks": int,  # chunks that rewrote data it had (a backfill on a last-write-wins store)
})


class MaterializeResult(TypedDict):
    """components.features.materialize.materialize"""

    start: str | None  # the requested start (UTC, ISO); None: each view continued from its progress
    end: str  # the interval's end (UTC, ISO): the end of local day `end`
    views: dict[str, MaterializedView]
    chunk_days: int
    chunks: int  # Feast materialize calls that loaded new data
    repair_chunks: int  # calls that only rewrote newer data after a backfill
    online_store_keeps_newest: bool  # the online store skips older rows itself (Redis), no repair needed
    seconds: float
    progress: str  # URI of features/materialization.json


# -- model: train, evaluate, register ----------------------------------------------------------------
# (the model layer's results)


# -- serving: deploy, predict batch, predict online ----------------------------------------------------
# (the serving layer's results)


# -- monitoring: monitor ---------------------------------------------------------------------------------
# (the monitoring layer's results)


__all__ = ["Any", "TypedDict"]
