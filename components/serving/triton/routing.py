"""Which version serves which request, and what the challenger said about the same traffic.

The serving state (serving/<model>/state.json in the artifact store, written by deploy)
names the serving version, the previous one and an optional challenger with its mode:
  shadow  every row is scored by both; the challenger's outputs are recorded, never served
  canary  a stable fraction of flights (hash of flight_id and the challenger version) is
          served by the challenger; both are still scored on every row and recorded, so
          the comparison report sees the two versions on the same traffic
Every request names its version explicitly: with several versions loaded, Triton would
otherwise pick the highest, which may be the challenger.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from components.contracts import layout, signature
from components.contracts.errors import StageFailed
from components.core.store import ArtifactStore

MODES = ("full", "shadow", "canary")


@dataclass
class Challenger:
    version: int
    mode: str  # shadow | canary
    fraction: float = 0.0  # canary: share of flights served by the challenger


@dataclass
class ServingState:
    model: str
    target: str
    serving: int
    previous: int | None = None
    challenger: Challenger | None = None
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    replicas: list[str] = field(default_factory=list)

    @property
    def loaded_versions(self) -> list[int]:
        """The version policy: serving and previous, or serving and challenger."""
        if self.challenger is not None:
            return sorted({self.serving, self.challenger.version})
        return sorted({self.serving} | ({self.previous} if self.previous is not None else set()))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ServingState:
        d = dict(d)
        ch = d.pop("challenger", None)
        return cls(challenger=Challenger(**ch) if ch else None, **d)


def read_state(store: ArtifactStore, model: str) -> tuple[ServingState | None, str | None]:
    """The state and its version token (for a conditional write)."""
    got = store.read_versioned(layout.serving_state_key(model))
    if got is None:
        return None, None
    return ServingState.from_json(json.loads(got[0])), got[1]


def write_state(store: ArtifactStore, state: ServingState, expected_token: str | None) -> None:
    state.updated_at = datetime.now(UTC).isoformat()
    store.write_if(layout.serving_state_key(state.model), json.dumps(state.to_json(), indent=2, sort_keys=True).encode(),
                   expected_token)


# -- canary ---------------------------------------------------------------------------------
def canary_mask(flight_ids, fraction: float, salt: str) -> np.ndarray:
    """True where the challenger serves: a stable function of (flight_id, salt), about `fraction` of keys."""
    if fraction <= 0:
        return np.zeros(len(flight_ids), dtype=bool)
    if fraction >= 1:
        return np.ones(len(flight_ids), dtype=bool)
    threshold = int(fraction * 2**64)
    salt_b = salt.encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8, key=salt_b).digest(), "big") < threshold
         for k in flight_ids),
        dtype=bool, count=len(flight_ids),
    )


def canary_salt(state: ServingState) -> str:
    return f"{state.model}:{state.challenger.version if state.challenger else 0}"


# -- scoring through the routing --------------------------------------------------------------
@dataclass
class Scored:
    probability: np.ndarray  # what is served
    version: np.ndarray  # which version served each row
    challenger_probability: np.ndarray | None = None
    record_key: str | None = None


def score_routed(df: pd.DataFrame, state: ServingState, client, store: ArtifactStore | None = None,
                 record: bool = True, rows_per_request: int = 4096, in_flight: int = 4) -> Scored:
    """Score with the champion and, when a challenger is active, with it too; route per the mode.

    A challenger that fails never fails the request: the champion's scores are served for every row
    and the failure is counted in the health record the rollout's guardrails read."""
    numeric, categorical = signature.to_tensors(df)
    ch = state.challenger
    champion_ms: list[float] = []
    champion = client.score(state.model, state.serving, numeric, categorical, rows_per_request, in_flight,
                            timings=champion_ms if ch is not None else None)
    served_version = np.full(len(df), state.serving, dtype=np.int64)
    if ch is None:
        return Scored(champion, served_version)
    if "flight_id" not in df.columns:
        raise StageFailed(f"a {ch.mode} of version {ch.version} is active, and routing it needs a flight_id column")
    challenger_ms: list[float] = []
    try:
        challenger = client.score(state.model, ch.version, numeric, categorical, rows_per_request, in_flight,
                                  timings=challenger_ms)
        errors = 0
    except StageFailed as exc:  # TritonRequestFailed / TritonUnavailable for the challenger alone
        logging.getLogger(__name__).warning("challenger v%s failed, the champion serves: %s", ch.version, exc)
        challenger, errors = np.full(len(df), np.nan, dtype=np.float32), 1
    served = champion.copy()
    if ch.mode == "canary" and not errors:
        mask = canary_mask(df["flight_id"].to_numpy(), ch.fraction, canary_salt(state))
        served[mask] = challenger[mask]
        served_version[mask] = ch.version
    key = None
    if record and store is not None:
        key = record_challenger(store, state, df["flight_id"].to_numpy(), champion, challenger, served_version,
                                health={"champion_ms": champion_ms, "challenger_ms": challenger_ms,
                                        "challenger_errors": errors})
    return Scored(served, served_version, challenger, key)


def record_challenger(store: ArtifactStore, state: ServingState, flight_ids, champion, challenger,
                      served_version, health: dict | None = None) -> str:
    """One record file of both versions' scores per batch; with `health` (request latencies, failures),
    a health file beside it under health/ (what the rollout's serving guardrail reads)."""
    ch = state.challenger
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({
        "flight_id": flight_ids,
        "champion_version": state.serving,
        "champion_probability": champion.astype(np.float32),
        "challenger_version": ch.version,
        "challenger_probability": challenger.astype(np.float32),
        "served_version": served_version,
        "mode": ch.mode,
        # The canary share: tells the rollout's steps (canary 10%, canary 50%) apart in the records.
        "fraction": float(ch.fraction),
        "scored_at": now,
    })
    stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    prefix = layout.challenger_records_prefix(state.model, state.serving, ch.version)
    if health is not None:  # written first: a batch's records never exist without its health
        store.write_json(f"{prefix}/health/{stem}.json", {"mode": ch.mode, "fraction": float(ch.fraction),
                                                          "rows": len(frame), **health})
    key = f"{prefix}/{stem}.parquet"
    store.write_parquet(key, frame)
    return key


def comparison_report(store: ArtifactStore, model: str, champion: int, challenger: int,
                      labels: pd.DataFrame | None = None, threshold: float = 0.5) -> dict:
    """Champion vs challenger on the same recorded traffic; written as report.json and report.md.

    labels: optional frame with flight_id and label (1 = late/cancelled) for the flights that landed.
    """
    prefix = layout.challenger_records_prefix(model, champion, challenger)
    keys = [k for k in store.list(prefix + "/") if k.endswith(".parquet") and "/health/" not in k]
    if not keys:
        raise StageFailed(f"no challenger records under {store.uri(prefix)}: run a shadow or canary first")
    rec = pd.concat([store.read_parquet(k) for k in keys], ignore_index=True)
    rec = rec.dropna(subset=["challenger_probability"])  # batches the challenger failed (the champion served them)
    a = rec["champion_probability"].to_numpy(np.float64)
    b = rec["challenger_probability"].to_numpy(np.float64)
    diff = np.abs(a - b)
    report: dict = {
        "model": model, "champion": champion, "challenger": challenger, "rows": len(rec), "batches": len(keys),
        "modes": sorted(rec["mode"].unique().tolist()),
        "served_by_challenger": int((rec["served_version"] == challenger).sum()),
        "mean_probability": {"champion": float(a.mean()), "challenger": float(b.mean())},
        "abs_diff": {"mean": float(diff.mean()), "p99": float(np.quantile(diff, 0.99)), "max": float(diff.max())},
        "correlation": float(np.corrcoef(a, b)[0, 1]) if len(rec) > 1 and a.std() > 0 and b.std() > 0 else None,
        "decision_flips": float(((a >= threshold) != (b >= threshold)).mean()),
        "threshold": threshold,
    }
    if labels is not None and len(labels):
        joined = rec.merge(labels[["flight_id", "label"]], on="flight_id", how="inner").drop_duplicates("flight_id")
        if len(joined) and joined["label"].nunique() == 2:
            from sklearn.metrics import log_loss, roc_auc_score

            y = joined["label"].to_numpy()
            report["labelled_rows"] = len(joined)
            for name, col in (("champion", "champion_probability"), ("challenger", "challenger_probability")):
                p = joined[col].to_numpy(np.float64).clip(1e-7, 1 - 1e-7)
                report.setdefault("roc_auc", {})[name] = float(roc_auc_score(y, p))
                report.setdefault("log_loss", {})[name] = float(log_loss(y, p, labels=[0, 1]))
    report["generated_at"] = datetime.now(UTC).isoformat()
    store.write_json(f"{prefix}/report.json", report)
    lines = [f"# {model}: champion v{champion} vs challenger v{challenger}", "",
             f"{report['rows']} rows in {report['batches']} batches ({', '.join(report['modes'])}); "
             f"{report['served_by_challenger']} served by the challenger.", "",
             "| | champion | challenger |", "|---|---|---|",
             f"| mean probability | {a.mean():.4f} | {b.mean():.4f} |"]
    for metric in ("roc_auc", "log_loss"):
        if metric in report:
            lines.append(f"| {metric} | {report[metric]['champion']:.4f} | {report[metric]['challenger']:.4f} |")
    lines += ["", f"abs diff: mean {diff.mean():.4g}, p99 {report['abs_diff']['p99']:.4g}, max {diff.max():.4g}; "
              f"decisions flipped at {threshold}: {report['decision_flips']:.2%}"]
    store.write_bytes(f"{prefix}/report.md", ("\n".join(lines) + "\n").encode())
    report["report_key"] = f"{prefix}/report.json"
    return report
