"""A partition made of independently published parts (one per run), read as one table.

Batch prediction publishes each scoring interval's rows as its own part of the day's partition:
<prefix>/<part>/ is an ordinary published artifact (components.core.artifact_store: objects under a
version folder, then a pointer by compare-and-swap). Parts are separate objects with separate
pointers, so
- a rerun of a run replaces only its own part (same part name: one pointer swap),
- runs of different parts of one partition may publish at the same time without dropping each
  other's rows (they never write the same key),
- a reader sees every part that was published, each whole or not at all.
`read_parts` concatenates them; where parts overlap (the same rows published by runs of different
granularity, e.g. one whole-day run beside hourly ones), `key` keeps each row once, from the part
published last.
"""

from __future__ import annotations

import io

import pandas as pd

from components.core.artifact_store import POINTER, ArtifactNotFound, ArtifactStore


def publish_part(store: ArtifactStore, prefix: str, part: str, files: dict[str, bytes],
                 meta: dict | None = None) -> dict:
    """Publish one part of the partition at prefix (a rerun of the same part replaces it, only it)."""
    if not part or "/" in part:
        raise ValueError(f"a part name is one path segment, not {part!r}")
    return store.publish(f"{prefix.strip('/')}/{part}", files, meta=meta)


def parts(store: ArtifactStore, prefix: str) -> dict[str, dict]:
    """Every published part of the partition at prefix: part name -> its pointer record, by name."""
    prefix = prefix.strip("/")
    out = {}
    for key in store.list(prefix + "/"):
        rest = key[len(prefix) + 1:]
        segments = rest.split("/")
        if len(segments) == 2 and segments[1] == POINTER:
            record = store.published(f"{prefix}/{segments[0]}")
            if record is not None:
                out[segments[0]] = record
    return dict(sorted(out.items()))


def published_at(store: ArtifactStore, prefix: str) -> float | None:
    """When the partition last changed (its newest part's publish time), None with no parts."""
    times = [r.get("published_at") for r in parts(store, prefix).values() if r.get("published_at") is not None]
    return max(times) if times else None


def read_parts(store: ArtifactStore, prefix: str, name: str, key: list[str] | str | None = None) -> pd.DataFrame:
    """The file `name` of every part, concatenated in publish order (oldest first); with `key`, a row
    published by several parts is kept once, from the newest. ArtifactNotFound when no part exists."""
    found = parts(store, prefix)
    if not found:
        raise ArtifactNotFound(f"nothing is published at {store.uri(prefix)}")
    ordered = sorted(found.items(), key=lambda item: (item[1].get("published_at") or 0.0, item[0]))
    frames = []
    for part, _record in ordered:
        try:
            data = store.read_published(f"{prefix.strip('/')}/{part}", name)
        except ArtifactNotFound:
            continue  # the part was removed since it was listed
        frames.append(pd.read_parquet(io.BytesIO(data)))
    nonempty = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame()
    if key is not None and len(out):
        out = out.drop_duplicates(key, keep="last").reset_index(drop=True)
    return out
