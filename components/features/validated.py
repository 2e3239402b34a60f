"""Reading the validated partitions the features are computed from (published by the validate stage)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.store import ArtifactNotFound, ArtifactStore


def read_days(store: ArtifactStore, table: str, days: list[date], required: bool) -> pd.DataFrame:
    """The validated partitions of `table` for these days, as one frame (missing days are skipped or refused)."""
    def one(day: date) -> pa.Table | None:
        try:
            data = store.read_published(layout.validated_prefix(table, day), "part.parquet")
        except ArtifactNotFound:
            return None
        return pq.read_table(pa.BufferReader(data))

    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = list(pool.map(one, days))
    missing = [d for d, p in zip(days, parts, strict=True) if p is None]
    if required and missing:
        shown = ", ".join(d.isoformat() for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StageFailed(
            f"features need validated {table} partitions for every date in the range, but {len(missing)} "
            f"are not validated ({shown}). Run `flightdeck ingest` and `flightdeck validate` for those dates "
            "first; a date whose batch failed validation stays unpublished until a good batch passes."
        )
    tables = [p for p in parts if p is not None and p.num_rows]
    if not tables:
        return pd.DataFrame()
    # One conversion of the concatenated table: far cheaper than concatenating hundreds of frames.
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def read_reference(store: ArtifactStore, table: str) -> pd.DataFrame:
    """The validated reference table (not partitioned by date, e.g. planes)."""
    try:
        data = store.read_published(layout.validated_prefix(table), "part.parquet")
    except ArtifactNotFound:
        raise StageFailed(
            f"features need the validated {table} reference table, which is not published. "
            "Run `flightdeck ingest` and `flightdeck validate` first."
        ) from None
    return pd.read_parquet(io.BytesIO(data))
