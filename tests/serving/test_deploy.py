"""deploy against a real Triton: success with parity, rollbacks, shadow and canary, scoring through the client."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.contracts import signature
from components.contracts.errors import StageFailed
from components.contracts.results import DeployResult
from components.contracts.stages import DeployParams
from components.core.store import open_store, sha256_bytes
from components.model.card import register_unevaluated
from components.model.network import ModelIntegrityError
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from components.serving.triton import repository
from components.serving.triton.client import RetryPolicy, TritonClient, TritonUnavailable
from components.serving.triton.routing import canary_mask, canary_salt, comparison_report, read_state
from components.serving.triton.scoring import score_frame, score_frame_detailed
from tests.conftest import free_port
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import in_process, scripted_bytes, wrong_signature_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

MODEL = "flight_delay"


@pytest.fixture(scope="module")
def store(serving_env):
    return open_store()


@pytest.fixture(scope="module")
def client(triton, serving_env):
    with TritonClient(triton.endpoints["grpc"], admin_key=serving_env["key"]) as c:
        yield c


@pytest.fixture(scope="module")
def registry(store):
    return Registry(store, MODEL)


def add_version(registry, data: bytes, **record) -> int:
    return register_unevaluated(registry, {"model.pt": data}, {"blessed": True, **record}, HAND_MADE)


@pytest.fixture(scope="module")
def champion(registry, triton):
    """Three versions registered through the real registry; the second is promoted and deployed
    (the first deploy of the model), the third is the challenger of the shadow and canary tests."""
    from components.serving.deploy import deploy

    add_version(registry, scripted_bytes(1))
    champ = add_version(registry, scripted_bytes(2))
    registry.promote(champ)
    challenger = add_version(registry, scripted_bytes(6))
    result = deploy(DeployParams(online=False))  # the champion
    return {**result, "challenger_version": challenger}


def serving_snapshot(store, client):
    state, _ = read_state(store, MODEL)
    df = flights_frame(64, seed=3)
    probs = score_frame(df, record=False)
    deployed = Registry(store, MODEL).deployed("triton-local")
    return state, client.loaded_versions(MODEL), probs, deployed


def assert_unchanged(before, store, client):
    state, loaded, probs, deployed = serving_snapshot(store, client)
    assert state.to_json() == before[0].to_json()  # the serving state was not rewritten
    assert loaded == before[1]
    np.testing.assert_array_equal(probs, before[2])
    assert deployed == before[3]  # the registry's deployment record is the one from before


@pytest.fixture
def before_load(monkeypatch):
    """Run a function on the model repository once deploy has written the new version's files, just
    before it writes the config and loads (the rollback's own config write passes through untouched)."""
    hooks = []
    real = repository.write_config

    def write_config(store, model, text):
        while hooks:
            hooks.pop()(store)
        return real(store, model, text)

    monkeypatch.setattr(repository, "write_config", write_config)
    return hooks.append


def test_first_deploy_loads_checks_parity_and_records(champion, store, client):
    assert set(champion) - {"challenger_version"} == set(DeployResult.__annotations__)  # the declared result
    assert champion["version"] == 2 and champion["previous"] is None and champion["loaded_versions"] == [2]
    assert champion["parity_max_abs_diff"] <= 1e-5
    assert client.loaded_versions(MODEL) == [2]
    state, _ = read_state(store, MODEL)
    assert (state.serving, state.previous, state.challenger) == (2, None, None)
    deployed = Registry(store, MODEL).deployed("triton-local")
    assert deployed["version"] == 2 and deployed["info"]["sha256"] == champion["sha256"]
    repo_store, _ = repository.repository_location()
    assert repository.versions_on_disk(repo_store, MODEL) == [2]
    assert sorted(repo_store.list(f"{MODEL}/2/")) == [f"{MODEL}/2/{n}" for n in (
        "__pycache__", "model.pt", "model.pt.sha256", "model.py")]
    assert repo_store.read_bytes(f"{MODEL}/2/model.pt.sha256").decode().split()[0] == champion["sha256"]
    # Served probabilities are the champion's, row for row, equal to the in-process TorchScript.
    df = flights_frame(20_000)
    numeric, categorical = signature.to_tensors(df)
    served = score_frame(df, rows_per_request=4096, in_flight=3)
    np.testing.assert_allclose(served, in_process(scripted_bytes(2), numeric, categorical), atol=1e-6)


def test_sha256_mismatch_is_refused_and_nothing_changes(champion, registry, store, client):
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    v = add_version(registry, scripted_bytes(3))
    store.write_bytes(f"models/{MODEL}/versions/{v}/model.pt", scripted_bytes(4))  # changed after registration
    with pytest.raises(ModelIntegrityError, match="sha256"):
        deploy(DeployParams(version=str(v), online=False))
    # A declared signature that is not the serving contract is refused before Triton is touched, too.
    bad = register_unevaluated(registry, {"model.pt": scripted_bytes(5),
                                          "signature.json": b'{"inputs": [], "outputs": []}'}, {"blessed": True}, HAND_MADE)
    with pytest.raises(StageFailed, match="serving contract"):
        deploy(DeployParams(version=str(bad), online=False))
    repo_store, _ = repository.repository_location()
    assert repository.versions_on_disk(repo_store, MODEL) == [2]
    assert_unchanged(before, store, client)


def test_a_version_without_its_model_card_is_refused_before_triton_is_touched(champion, registry, store, client,
                                                                             capsys, monkeypatch):
    from components.model.card import CARD_JSON, CARD_MD
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    # as register wrote versions before model cards existed
    bare = registry.create_version({"model.pt": scripted_bytes(8)}, {"blessed": True, "evaluation_id": "e-1"})
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(bare), online=False))
    message = str(err.value)
    assert f"cannot deploy version {bare} of {MODEL}: version {bare} of {MODEL} has no model card" in message
    assert "To fix: register its evaluation again (`flightdeck register --evaluation e-1`)" in message
    assert message.endswith("Nothing was deployed.")
    assert cli_main(["deploy", "--version", str(bare), "--no-online"]) == 1  # the operator sees the same sentence
    assert f"version {bare} of {MODEL} has no model card" in capsys.readouterr().err
    # another version's card is no card for this one
    borrowed = registry.create_version({"model.pt": scripted_bytes(8), **{n: registry.read_file(2, n)
                                                                          for n in (CARD_JSON, CARD_MD)}},
                                       {"blessed": True})
    with pytest.raises(StageFailed, match="is not this version's: it describes version 2"):
        deploy(DeployParams(version=str(borrowed), online=False))
    # refused before any Triton I/O: with no server at all, the card is still what stops it
    with monkeypatch.context() as mp:
        mp.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{free_port()}")
        with pytest.raises(StageFailed, match="has no model card"):
            deploy(DeployParams(version=str(bare), online=False))
    repo_store, _ = repository.repository_location()
    assert repository.versions_on_disk(repo_store, MODEL) == [2]
    assert_unchanged(before, store, client)


def test_file_that_is_not_torchscript_fails_to_load_and_rolls_back(champion, registry, store, client, capsys):
    before = serving_snapshot(store, client)
    v = add_version(registry, b"PK\x03\x04 this is not a TorchScript archive")  # its sha256 is recorded: it passes
    # Through the CLI: non-zero exit, the reason printed.
    assert cli_main(["deploy", "--version", str(v), "--timeout-s", "60", "--no-online"]) == 1
    err = capsys.readouterr().err
    assert f"while loading version {v}" in err and "version 2 keeps serving" in err
    repo_store, _ = repository.repository_location()
    assert v not in repository.versions_on_disk(repo_store, MODEL)
    assert repository.policy_versions(repository.read_config(repo_store, MODEL)) == [2]
    assert_unchanged(before, store, client)


def test_wrong_signature_fails_parity_and_rolls_back(champion, registry, store, client):
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    v = add_version(registry, wrong_signature_bytes())
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(v), timeout_s=60, online=False))
    message = str(err.value)
    assert "parity" in message and "version 2 keeps serving" in message
    assert not client.model_ready(MODEL, v)
    assert_unchanged(before, store, client)


def test_served_outputs_that_differ_from_the_registered_file_fail_parity_and_roll_back(champion, registry, store,
                                                                                       client, before_load):
    """The repository holds another model under the new version (consistent with its checksum, so it loads):
    Triton's outputs differ from the registered file's and the parity check stops the deploy."""
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    v = add_version(registry, scripted_bytes(7))
    other = scripted_bytes(8)

    def swap(repo_store):
        repo_store.write_bytes(f"{MODEL}/{v}/model.pt", other)
        repo_store.write_bytes(f"{MODEL}/{v}/{repository.CHECKSUM}", repository.checksum_file(sha256_bytes(other)))

    before_load(swap)
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(v), timeout_s=60, online=False))
    message = str(err.value)
    assert f"while checking prediction parity of version {v} on local" in message
    assert "prediction parity failed: Triton and in-process TorchScript differ by up to" in message
    assert "version 2 keeps serving (local: serving [2])" in message
    assert not client.model_ready(MODEL, v)
    repo_store, _ = repository.repository_location()
    assert v not in repository.versions_on_disk(repo_store, MODEL)
    assert_unchanged(before, store, client)


def test_a_model_file_changed_before_the_load_fails_its_checksum_and_rolls_back(champion, registry, store, client,
                                                                                before_load):
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    v = add_version(registry, scripted_bytes(9))
    before_load(lambda repo_store: repo_store.write_bytes(f"{MODEL}/{v}/model.pt", scripted_bytes(10)))
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(v), timeout_s=60, online=False))
    message = str(err.value)
    assert f"while loading version {v}" in message and "sha256 checksum mismatch" in message
    assert "version 2 keeps serving (local: serving [2])" in message
    assert_unchanged(before, store, client)


def test_a_version_not_ready_in_time_is_rolled_back_and_the_previous_keeps_serving(champion, registry, store, client):
    from components.serving.deploy import deploy

    before = serving_snapshot(store, client)
    v = add_version(registry, scripted_bytes(11))
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(v), timeout_s=0.05, online=False))
    message = str(err.value)
    assert f"version {v} was not ready on local within 0.05 s" in message
    assert "version 2 keeps serving (local: serving [2])" in message
    # The load that outlasted the timeout went on in the server: the rollback waited for it to end (its
    # files still there: a python-backend load whose files vanish never ends, and blocks every later
    # load of the model), then reloaded the previous config. Nothing of the version is left loading.
    states = {m["version"]: m["state"] for m in client.repository_index() if m["name"] == MODEL}
    assert states.get(str(v)) not in ("LOADING", "READY") and states["2"] == "READY"
    assert_unchanged(before, store, client)
    repo_store, _ = repository.repository_location()
    assert v not in repository.versions_on_disk(repo_store, MODEL)
    assert repository.policy_versions(repository.read_config(repo_store, MODEL)) == [2]
    client.load(MODEL, timeout_s=120)  # the model is not wedged: a later load goes through
    assert client.loaded_versions(MODEL) == [2]


def test_shadow_scores_with_both_and_records_the_challenger(champion, store, client, capsys):
    from components.serving.deploy import deploy

    ch = champion["challenger_version"]
    result = deploy(DeployParams(version=str(ch), mode="shadow", online=False))
    assert set(result) == set(DeployResult.__annotations__)
    assert result["serving"] == 2 and result["challenger"]["version"] == ch
    assert client.loaded_versions(MODEL) == [2, ch]
    df = flights_frame(3000, seed=11)
    numeric, categorical = signature.to_tensors(df)
    scored = score_frame_detailed(df)
    np.testing.assert_allclose(scored.probability, in_process(scripted_bytes(2), numeric, categorical), atol=1e-6)
    assert (scored.version == 2).all()  # shadow never serves the challenger
    rec = store.read_parquet(scored.record_key)
    assert len(rec) == len(df) and list(rec["flight_id"]) == list(df["flight_id"])
    np.testing.assert_allclose(rec["challenger_probability"], in_process(scripted_bytes(6), numeric, categorical),
                               atol=1e-6)
    np.testing.assert_array_equal(rec["champion_probability"], scored.probability)
    report = comparison_report(store, MODEL, 2, ch)
    assert report["rows"] == len(df) and report["served_by_challenger"] == 0
    assert report["abs_diff"]["max"] > 0  # two different models
    assert store.exists(report["report_key"].replace(".json", ".md"))
    assert cli_main(["compare-challenger"]) == 0  # the same report from the CLI, for the active challenger
    assert json.loads(capsys.readouterr().out)["rows"] == len(df)


def test_canary_serves_a_stable_share_of_flights(champion, store, client):
    from components.serving.deploy import deploy

    ch = champion["challenger_version"]
    result = deploy(DeployParams(version=str(ch), mode="canary", canary_fraction=0.25, online=False))
    assert result["challenger"] == {"version": ch, "mode": "canary", "fraction": 0.25}
    df = flights_frame(4000, seed=12)
    first = score_frame_detailed(df)
    again = score_frame_detailed(df.sample(frac=1.0, random_state=1))  # same flights, another order
    by_flight = dict(zip(df["flight_id"], first.version, strict=True))
    assert all(by_flight[f] == v for f, v in zip(df.sample(frac=1.0, random_state=1)["flight_id"], again.version, strict=True))
    share = (first.version == ch).mean()
    assert 0.2 < share < 0.3
    # Canary rows carry the challenger's output, the rest the champion's.
    challenger_rows = first.version == ch
    np.testing.assert_array_equal(first.probability[challenger_rows], first.challenger_probability[challenger_rows])
    state, _ = read_state(store, MODEL)
    mask = canary_mask(df["flight_id"].to_numpy(), 0.25, canary_salt(state))
    np.testing.assert_array_equal(mask, challenger_rows)


def test_unreachable_triton_retries_then_fails_clearly(champion, serving_env):
    dead = TritonClient(f"127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=3, first_delay_s=0.05))
    with pytest.raises(TritonUnavailable, match="could not be reached .* after 3 attempts"):
        score_frame(flights_frame(10), client=dead, record=False)


def test_promoting_the_challenger_keeps_the_old_champion_as_previous(champion, store, client):
    from components.serving.deploy import deploy

    ch = champion["challenger_version"]
    result = deploy(DeployParams(version=str(ch), mode="full", online=False))
    assert (result["serving"], result["previous"], result["challenger"]) == (ch, 2, None)
    assert client.loaded_versions(MODEL) == [2, ch]
    df = flights_frame(500, seed=5)
    numeric, categorical = signature.to_tensors(df)
    scored = score_frame_detailed(df)
    assert (scored.version == ch).all() and scored.challenger_probability is None
    np.testing.assert_allclose(scored.probability, in_process(scripted_bytes(6), numeric, categorical), atol=1e-6)


def test_deploy_to_an_unreachable_triton_fails_before_touching_the_repository(champion, store, monkeypatch):
    from components.serving.deploy import deploy

    repo_store, _ = repository.repository_location()
    config = repository.read_config(repo_store, MODEL)
    monkeypatch.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(StageFailed, match="could not be reached"):
        deploy(DeployParams(version="1", online=False))
    assert repository.read_config(repo_store, MODEL) == config and 1 not in repository.versions_on_disk(repo_store, MODEL)
