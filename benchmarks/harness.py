"""Shared pieces of the benchmark suite: the result record, timing and peak-memory helpers."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Result:
    area: str  # e.g. "features"
    name: str  # what was measured
    value: float
    unit: str
    baseline_name: str = ""  # what it is compared with, measured in the same run
    baseline_value: float | None = None
    higher_is_better: bool = True
    target: str = ""  # the target from the issue, in words
    notes: str = ""
    peak_rss_mb: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


@dataclass
class Context:
    """What every benchmark gets: a scratch FLIGHTDECK_HOME and the output folder."""

    out_dir: Path
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fd-bench-")))
    quick: bool = False  # smaller data for a smoke run

    def env(self) -> dict:
        return {**os.environ, "FLIGHTDECK_HOME": str(self.home)}


class Timer:
    def __init__(self):
        self.seconds = 0.0


@contextmanager
def timed():
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process so far (Linux reports KiB); with `children`, the larger
    of that and the largest finished child process (work an area runs in subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024) if children else own
