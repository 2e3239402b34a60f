"""Rollouts on a real Triton, over replayed days: every flight scored through the routing (batch scoring's
path), labels landing in the validated partitions, the rollout stage deciding each day.

One server for the module; the scenarios run in order on it, each starting from what the previous left serving:
the first champion goes to full directly; a better challenger is promoted shadow -> canary 10% -> canary 50% ->
full (holding while too few labels landed); a stale one and a slow one are rolled back in shadow with every
request answered; a rollout killed between its decision and its deploy resumes to the same decision.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.contracts import layout, signature
from components.contracts.rollout_stages import (
    RolloutAdvanceParams,
    RolloutStartParams,
    RolloutStatusParams,
)
from components.core.store import open_store
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from components.serving import rollout_stage as S
from components.serving.triton.client import TritonClient
from components.serving.triton.routing import read_state
from components.serving.triton.scoring import score_frame_detailed
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import known_risk_bytes

pytestmark = pytest.mark.slow
MODEL = "flight_delay"
HAND_MADE = "a hand-made model of the rollout tests (tests/serving), not evaluated"
TRUE_SLOPE = 1.5  # labels are drawn from this slope (KnownRisk)
START = RolloutStartParams(online=False, timeout_s=60.0)


@pytest.fixture(scope="module")
def env(serving_env, triton):
    store = open_store()
    with TritonClient(triton.endpoints["grpc"], admin_key=serving_env["key"]) as client:
        yield {"store": store, "client": client, "registry": Registry(store, MODEL), "n": iter(range(1, 60))}


def add(env, slope: float, spin: int = 0, promote: bool = True) -> int:
    """Register a version (as register does for a blessed one: promoted to the champion alias)."""
    v = register_unevaluated(env["registry"], {"model.pt": known_risk_bytes(slope, spin)}, {"blessed": True}, HAND_MADE)
    if promote:
        env["registry"].promote(v)
    return v


def replay_day(env, rows: int) -> tuple[str, np.ndarray]:
    """A new day: `rows` flights scored through the serving routing (3 rows a request, so the latency
    guardrail has its 100 requests), then their outcomes land as a validated partition."""
    k = next(env["n"])
    day = (pd.Timestamp("2013-02-01") + pd.Timedelta(days=k)).date().isoformat()
    df = flights_frame(rows, seed=100 + k)
    df["flight_id"] = [f"{day}_UA{i}_EWR" for i in range(rows)]
    scored = score_frame_detailed(df, store=env["store"], client=env["client"], rows_per_request=3, in_flight=4)
    z = (df[signature.NUMERIC[0]].fillna(50.0).to_numpy(np.float64) - 50.0) / 20.0
    late = np.random.default_rng(k).random(rows) < 1 / (1 + np.exp(-(TRUE_SLOPE * z - 1.0)))
    outcomes = pd.DataFrame({"flight_id": df["flight_id"], "arr_delay": np.where(late, 30.0, 0.0)})
    env["store"].publish(layout.validated_prefix("flights", pd.Timestamp(day).date()),
                         {"part.parquet": outcomes.to_parquet(index=False)})  # as validate publishes a partition
    return day, scored.probability


def offline_holdout(champion_slope: float, challenger_slope: float) -> dict:
    """The offline side of the comparison: both versions' TorchScript files scored in-process on a held-out
    sample drawn like the replayed days (own seed, never served), paired as the rollout pairs its flights."""
    import io

    import torch

    from components.model.network import predict
    from components.serving.rollout import RolloutPolicy, paired_outcomes

    df = flights_frame(4000, seed=7)
    z = (df[signature.NUMERIC[0]].fillna(50.0).to_numpy(np.float64) - 50.0) / 20.0
    y = (np.random.default_rng(7).random(len(df)) < 1 / (1 + np.exp(-(TRUE_SLOPE * z - 1.0)))).astype(np.float64)
    p = [predict(torch.jit.load(io.BytesIO(known_risk_bytes(s))), df) for s in (champion_slope, challenger_slope)]
    return paired_outcomes(y, p[0], p[1], RolloutPolicy())


def agree(online: dict, offline: dict) -> None:
    """ML Test Score, Model 2: the online log-loss difference (live traffic, labels landed later, paired per flight)
    has the offline holdout's sign, and the two intervals overlap: offline quality predicts the online one."""
    on, off = online["log_loss"], offline["log_loss"]
    assert np.sign(on["diff"]) == np.sign(off["diff"]) != 0, (on, off)
    assert on["ci"][0] <= off["ci"][1] and off["ci"][0] <= on["ci"][1], (on, off)


def advance(env, day: str) -> dict:
    return S.rollout_advance(RolloutAdvanceParams(date=day), env["store"])


def serving(env):
    return read_state(env["store"], MODEL)[0]


def test_first_champion_goes_to_full_directly(env):
    v = add(env, 1.0)
    result = S.rollout_start(START, env["store"])
    assert (result["action"], result["status"], result["step"]) == ("start", "promoted", "full")
    state = serving(env)
    assert state.serving == v and state.challenger is None
    env["champion"] = v


def test_better_challenger_is_promoted_through_every_step(env):
    v = add(env, TRUE_SLOPE)
    assert S.rollout_start(START, env["store"])["step"] == "shadow"
    assert serving(env).challenger.mode == "shadow"
    day, _ = replay_day(env, 300)  # fewer labelled flights than the sample-size rule's floor (500)
    held = advance(env, day)
    assert held["action"] == "hold" and "labelled flights needed" in held["reason"], held
    assert advance(env, day)["reason"].startswith(f"{day} was already decided")  # a rerun decides nothing new
    seen = []
    for share in (0.1, 0.5, None):
        day, probs = replay_day(env, 600)
        assert np.isfinite(probs).all()
        got = advance(env, day)
        assert got["action"] == "advance", got
        ch = serving(env).challenger
        seen.append(ch.fraction if ch else None)
        if share is not None:
            assert ch.mode == "canary" and ch.fraction == share
    assert seen == [0.1, 0.5, None]
    state = serving(env)
    assert state.serving == v and state.previous == env["champion"] and state.challenger is None
    status = S.rollout_status(RolloutStatusParams(), env["store"])
    assert (status["status"], status["step"]) == ("promoted", "full") and status["report"]
    report = env["store"].read_json(f"{layout.rollout_report_prefix(MODEL, env['champion'], v)}/report.json")
    outcomes = [c for h in report["history"] for c in h["checks"] if c["name"] == "outcomes" and c["verdict"] == "pass"]
    assert len(outcomes) == 3
    for o in outcomes:  # challenger better on the same flights: log loss lower, with its interval and n
        print("outcomes:", o["reason"], "n", o["numbers"]["n"], "required", o["numbers"]["required_n"])
        ll = o["numbers"]["log_loss"]
        assert ll["diff"] < 0 and ll["ci"][1] < 0.02 and o["numbers"]["n"] >= o["numbers"]["required_n"] >= 500
    offline = offline_holdout(1.0, TRUE_SLOPE)
    print("offline holdout log-loss difference:", offline["log_loss"]["diff"], offline["log_loss"]["ci"])
    for o in outcomes:
        agree(o["numbers"], offline)
    env["champion"] = v


def test_stale_challenger_rolls_back_in_shadow_with_no_request_failing(env, monkeypatch):
    champion = env["champion"]
    stale = add(env, 0.3)  # underfits: much worse log loss once labels land
    S.rollout_start(START, env["store"])
    day, probs = replay_day(env, 600)
    assert len(probs) == 600 and np.isfinite(probs).all()  # every flight answered, by the champion
    real = S._deploy
    monkeypatch.setattr(S, "_deploy", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):  # killed after recording the rollback, before its deploy
        advance(env, day)
    assert serving(env).challenger is not None  # still shadowing: the deploy never ran
    monkeypatch.setattr(S, "_deploy", real)
    got = advance(env, day)  # the rerun of the day applies the recorded rollback, deciding nothing new
    assert got["action"] == "rollback" and "outcomes" in got["reason"] and got["applied"], got
    state = serving(env)
    assert state.serving == champion and state.challenger is None
    assert env["registry"].resolve("champion") == champion  # the alias register moved is restored
    prom = env["store"].read_bytes(f"{layout.rollout_report_prefix(MODEL, champion, stale)}/metrics.prom").decode()
    assert f'flightdeck_rollout_rolled_back{{challenger="{stale}",model="flight_delay"}} 1.0' in prom
    report = env["store"].read_json(f"{layout.rollout_report_prefix(MODEL, champion, stale)}/report.json")
    [online] = [c["numbers"] for h in report["history"] for c in h["checks"] if c["name"] == "outcomes"]
    agree(online, offline_holdout(TRUE_SLOPE, 0.3))  # worse offline, worse once serving
    assert advance(env, replay_day(env, 10)[0])["action"] == "none"  # nothing active any more


def test_slow_challenger_breaches_the_latency_guardrail(env):
    champion = env["champion"]
    add(env, TRUE_SLOPE, spin=60)  # same outputs as the champion, ~35 ms more per request
    S.rollout_start(START, env["store"])
    day, probs = replay_day(env, 300)
    assert np.isfinite(probs).all()
    got = advance(env, day)
    assert got["action"] == "rollback" and "p99" in got["reason"], got
    health = next(c for c in S.read_rollout(env["store"], MODEL)[0]["history"][-1]["checks"] if c["name"] == "health")
    print("latency guardrail:", health["numbers"])
    assert health["numbers"]["challenger_p99_ms"] > health["numbers"]["bound_ms"]
    assert serving(env).serving == champion and serving(env).challenger is None


def test_killed_step_resumes_to_the_same_decision(env, monkeypatch, capsys):
    champion = env["champion"]
    twin = add(env, TRUE_SLOPE)  # as good as the champion: non-inferior, advances
    S.rollout_start(START, env["store"])
    day, _ = replay_day(env, 600)
    real = S._deploy

    def killed(*a, **k):
        raise KeyboardInterrupt("killed between the decision and its deploy")

    monkeypatch.setattr(S, "_deploy", killed)
    with pytest.raises(KeyboardInterrupt):
        advance(env, day)
    state, _ = S.read_rollout(env["store"], MODEL)
    assert state["pending"]["action"] == "advance" and not state["pending"]["applied"]
    assert serving(env).challenger.mode == "shadow"  # the deploy never ran
    monkeypatch.setattr(S, "_deploy", real)
    again = advance(env, day)
    assert again["action"] == "advance" and again["applied"], again
    assert serving(env).challenger.fraction == 0.1
    assert [h["day"] for h in S.read_rollout(env["store"], MODEL)[0]["history"]].count(day) == 1
    # People use the CLI (the same entry functions): status, then abort.
    assert cli_main(["rollout", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == "canary 10%"
    assert cli_main(["rollout", "abort", "--reason", "test over"]) == 0
    aborted = json.loads(capsys.readouterr().out)
    assert aborted["status"] == "aborted" and serving(env).serving == champion and serving(env).challenger is None
    assert twin != champion
