"""The Redis online store with AUTH, as on the aws profile (ElastiCache with an AUTH token): a real
redis-server started with --requirepass, the aws profile's online store section (Redis) with the
local offline store, the real features stages and online lookup.

With FLIGHTDECK_REDIS_PASSWORD the stages materialize and read the store; without it, or with a
wrong one, every access fails with one clear message saying so (not Feast's NOAUTH traceback); the
password is never in a result, a log record or the command's output."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from components.contracts.errors import StageFailed
from components.contracts.stages import FeaturesBuildParams, MaterializeParams
from components.core.settings import SettingsError, load_settings
from components.features import feast_repo
from components.features.build import build
from components.features.feast_repo import expand_feast_yaml, feast_config
from components.features.materialize import materialize
from components.features.retrieval import online_features
from components.ops.cli import main as cli_main
from tests.conftest import redis_server
from tests.features.conftest import END, START
from tests.features.test_features import _assert_online_equals_offline, _day_end, _probe_flights, redis_yaml

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles


@pytest.fixture
def on_redis(fenv, redis_auth, monkeypatch, tmp_path):
    """fenv's feature tables, the online store on the password-protected redis-server, no password set."""
    monkeypatch.setenv("FLIGHTDECK_FEAST_YAML", str(redis_yaml(tmp_path)))
    monkeypatch.setenv("FLIGHTDECK_REDIS_URL", redis_auth.url)
    monkeypatch.delenv("FLIGHTDECK_REDIS_PASSWORD", raising=False)
    return fenv


def _flight(store) -> dict:
    probe = _probe_flights(store, "2013-01-17", _day_end("2013-01-16")).iloc[0]
    return probe.to_dict()


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_with_the_password_materialize_and_online_lookup_work_and_never_show_it(
        on_redis, redis_auth, monkeypatch, tmp_path, caplog, capsys):
    import redis

    monkeypatch.setenv("FLIGHTDECK_REDIS_PASSWORD", redis_auth.password)
    result_file = tmp_path / "result.json"
    monkeypatch.setenv("FLIGHTDECK_RESULT_PATH", str(result_file))
    caplog.set_level(logging.DEBUG)  # every logger, Feast's and redis-py's included, at debug
    shown = []  # every output of every command: stdout (the result JSON), stderr, the result file

    def cli(args: list[str]) -> str:
        code, out, err = _cli(args, capsys)
        assert code == 0, err[-3000:]
        shown.extend([out, err, result_file.read_text()])
        return out

    result = json.loads(cli(["-v", "features", "materialize", "--start", "2013-01-15", "--end", "2013-01-16",
                             "--chunk-days", "1"]))
    assert result["chunks"] == 2 and result["online_store_keeps_newest"] is True
    assert json.loads(result_file.read_text()) == result
    # The rows are in the protected server, and online lookups (the online prediction path, also the
    # one Triton's online model takes with the settings of its environment) read them back == offline.
    client = redis.Redis.from_url(f"redis://{redis_auth.url}", password=redis_auth.password)
    assert client.dbsize() > 0
    assert _assert_online_equals_offline(on_redis.store, _day_end("2013-01-16"), "2013-01-17") > 10
    # feast apply through the build stage, on the same store.
    cli(["-v", "features", "build", "--start", START, "--end", END])
    # Status reads the materialization record, never the password.
    assert json.loads(cli(["status", "--json"]))["freshness"]
    cli(["status"])
    assert len(shown) == 3 * 4
    shown += [caplog.text, *(str(r.args) for r in caplog.records), repr(load_settings())]
    assert caplog.records
    assert not [s for s in shown if redis_auth.password in s]


def test_without_the_password_every_access_fails_saying_so(on_redis, redis_auth, capsys):
    missing = "requires a password and FLIGHTDECK_REDIS_PASSWORD is not set"
    with pytest.raises(StageFailed, match=missing) as refused:
        materialize(MaterializeParams(start="2013-01-15", end="2013-01-15"), on_redis.store)
    assert redis_auth.url in str(refused.value) and refused.value.__cause__ is None
    with pytest.raises(StageFailed, match=missing):
        online_features(_flight(on_redis.store))
    # The CLI (the stage pods' entrypoint): the message, exit code 1, no traceback.
    code, out, err = _cli(["features", "materialize", "--end", "2013-01-15"], capsys)
    assert code == 1 and out == ""
    assert missing in err and "Traceback" not in err and "NOAUTH" not in err, err[-3000:]


def test_features_build_never_opens_the_online_store(on_redis, redis_auth, monkeypatch, tmp_path):
    """Its feast apply is partial (components.features.build.apply): Feast 0.67 gives the Redis store no
    tables to delete, and its update() connects only to delete. So the features-build pods get no
    password (components/core/cluster.py NEEDS_REDIS_PASSWORD); this fails the day apply connects. Here
    with a view replaced too (its table moved to another home), without the password."""
    import redis

    from components.core import cluster
    from components.core.store import open_store

    def connections() -> int:
        return int(watcher.info("stats")["total_connections_received"])

    watcher = redis.Redis.from_url(f"redis://{redis_auth.url}", password=redis_auth.password)
    before = connections()
    assert build(FeaturesBuildParams(start=START, end=END), on_redis.store)["applied_views"]
    moved = tmp_path / "moved-home"
    shutil.copytree(on_redis.home, moved)
    monkeypatch.setenv("FLIGHTDECK_HOME", str(moved))
    assert build(FeaturesBuildParams(start=START, end=END), open_store())["applied_views"]
    assert connections() == before
    # materialize, which starts with the same apply, does connect: the control for the count.
    with pytest.raises(StageFailed, match="FLIGHTDECK_REDIS_PASSWORD is not set"):
        materialize(MaterializeParams(start="2013-01-15", end="2013-01-15"), open_store())
    assert connections() > before
    assert cluster.NEEDS_REDIS_PASSWORD == ("features-materialize", "features-push-outcomes")


def test_a_wrong_password_is_refused_saying_so(on_redis, redis_auth, monkeypatch, caplog):
    wrong = "wrong-" + redis_auth.password[::-1]
    monkeypatch.setenv("FLIGHTDECK_REDIS_PASSWORD", wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StageFailed, match="refused the password in FLIGHTDECK_REDIS_PASSWORD") as refused:
        materialize(MaterializeParams(start="2013-01-15", end="2013-01-15"), on_redis.store)
    with pytest.raises(StageFailed, match="refused the password in FLIGHTDECK_REDIS_PASSWORD"):
        online_features(_flight(on_redis.store))
    assert wrong not in str(refused.value) and wrong not in caplog.text


def test_a_password_for_a_server_without_one_is_refused_saying_so(fenv, redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv("FLIGHTDECK_FEAST_YAML", str(redis_yaml(tmp_path)))
    monkeypatch.setenv("FLIGHTDECK_REDIS_URL", redis_url)
    monkeypatch.setenv("FLIGHTDECK_REDIS_PASSWORD", "pw-not-needed")
    with pytest.raises(StageFailed, match="has no password configured, but FLIGHTDECK_REDIS_PASSWORD is set"):
        materialize(MaterializeParams(start="2013-01-15", end="2013-01-15"), fenv.store)


@pytest.mark.parametrize("password", ["1e3", "true", "null", 'q"u\\o=te', "ünïcode"])
def test_feast_gets_the_password_exactly(password, monkeypatch, tmp_path):
    """Feast 0.67 json-decodes connection-string values: unquoted, "1e3" would reach Redis as 1000.0,
    "true" as a bool, "null" as no password. A real server with that password accepts the client
    Feast builds from feast_config's connection string."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    with redis_server(tmp_path, password) as url:
        monkeypatch.setenv("FLIGHTDECK_REDIS_URL", url)
        monkeypatch.setenv("FLIGHTDECK_REDIS_PASSWORD", password)
        monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
        config = feast_config(load_settings(), redis_yaml(tmp_path))
        _, params = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
        assert params["password"] == password
        client = RedisOnlineStore()._get_client(config.online_store)
        assert client.ping() is True


def test_connection_string_refusals_do_not_show_the_password(monkeypatch, tmp_path):
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    monkeypatch.setenv("FLIGHTDECK_REDIS_PASSWORD", "pw,with-comma")
    with pytest.raises(StageFailed, match="contains a comma") as refused:
        feast_config(load_settings(), redis_yaml(tmp_path))
    assert "pw,with-comma" not in str(refused.value)
    # The URL is a ConfigMap value: a password there is refused when the settings are read.
    with pytest.raises(SettingsError, match="FLIGHTDECK_REDIS_URL carries a password") as refused:
        load_settings({"FLIGHTDECK_REDIS_URL": "h:6379,ssl=true,password=pw-in-url"})
    assert "pw-in-url" not in str(refused.value)
    # A feature_store.yaml never names a secret setting: its text may be quoted by a parse error.
    with pytest.raises(StageFailed, match="a secret setting"):
        expand_feast_yaml("x: ${FLIGHTDECK_REDIS_PASSWORD}\n", load_settings())


def test_the_password_is_a_secret_setting():
    from components.core import cluster
    from components.core.settings import SECRET_SETTINGS, secret_env_names

    settings = load_settings({"FLIGHTDECK_REDIS_PASSWORD": "pw-secret-value", "FLIGHTDECK_HOME": "/x"})
    assert settings.redis_password == "pw-secret-value"
    assert SECRET_SETTINGS == ("redis_password", "tuning_storage_url")
    assert secret_env_names() == (cluster.REDIS_PASSWORD_ENV, cluster.TUNING_STORAGE_ENV)
    assert "pw-secret-value" not in repr(settings) and "redis_password" not in repr(settings)
    assert settings.redact("AUTH pw-secret-value") == "AUTH ***"
    assert cluster.REDIS_PASSWORD_ENV not in cluster.settings_env_names()
    assert "pw-secret-value" not in json.dumps(feast_repo._yaml_values(settings))
    assert os.environ.get("FLIGHTDECK_REDIS_PASSWORD") is None  # the tests above leave nothing behind
