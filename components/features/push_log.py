"""The offline logs of the pushed (day-so-far) views: features/<view>.parquet, the batch source of each
view's Feast PushSource. components.features.push writes the rows; this creates the empty logs."""

from __future__ import annotations

import pandas as pd

from components.contracts import layout
from components.core.store import ArtifactStore, ConflictError, parquet_bytes
from components.features import tables as ft
from components.features.feast_repo import definitions_module


def _empty_log(view) -> pd.DataFrame:
    cols = {k: pd.Series([], dtype=object) for k in view.entities}
    cols[view.bucket] = pd.Series([], dtype=object)
    cols[ft.TS] = pd.Series([], dtype="datetime64[us, UTC]")
    cols.update({f: pd.Series([], dtype="float64") for f in view.feature_names})
    return pd.DataFrame(cols)


def ensure_push_logs(store: ArtifactStore) -> list[str]:
    """Create each pushed view's offline log, empty, where it does not exist yet (Feast's offline store
    reads the file: a training set before the first push must find it). Returns the views created."""
    created = []
    for name, view in definitions_module().PUSHED_VIEWS.items():
        key = layout.feature_table_key(name)
        if store.read_versioned(key) is None:
            try:
                store.write_if(key, parquet_bytes(_empty_log(view)), None)
                created.append(name)
            except ConflictError:  # another run created it meanwhile
                pass
    return created
