"""The Redis online store's AUTH password: added to Feast's connection string, and a refused password
told apart from other connection failures (RUNBOOK.md, Redis AUTH token)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from components.contracts.errors import StageFailed
from components.core.settings import Settings


def redis_connection_string(connection_string: str, password: str) -> str:
    """Feast's Redis connection string (host:port[,key=value...]) with the AUTH password added.

    Feast 0.67 (RedisOnlineStore._parse_connection_string) splits the string at every comma, each
    key=value at its first `=`, and json-decodes each value when it can: a password is given as a
    JSON string literal, so it reaches redis-py exactly as set ("123", "true" or "null" would
    otherwise arrive as a number, a bool or no password). A comma cannot be carried at all.
    """
    if not password:
        return connection_string
    if "," in password:
        raise StageFailed("FLIGHTDECK_REDIS_PASSWORD contains a comma, which Feast's Redis connection string "
                          "(host:port,key=value,...) cannot carry: use a password without commas")
    if any(p.split("=", 1)[0].strip().lower() == "password" for p in connection_string.split(",") if "=" in p):
        raise StageFailed("the Redis connection string already has a password= parameter and "
                          "FLIGHTDECK_REDIS_PASSWORD is set: give the password only in FLIGHTDECK_REDIS_PASSWORD")
    return f"{connection_string},password={json.dumps(password)}"


def _in_chain(exc: BaseException | None, kind: type) -> BaseException | None:
    """`exc` or the first of its causes (Feast wraps some) that is a `kind`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _redis_auth_probe(cfg) -> BaseException | None:
    """One PING with the online store's own connection parameters: its AuthenticationError, if any.

    Redis answers an unauthenticated client's first commands with NOAUTH, but closes the connection
    on a request of more than a few arguments (Feast's HMGETs of a whole view): redis-py then reports
    "Connection closed by server", which says nothing about the password. The probe tells them apart.
    """
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    if str(getattr(getattr(cfg, "redis_type", "redis"), "value", "redis")) != "redis":
        return None
    nodes, params = RedisOnlineStore._parse_connection_string(cfg.connection_string)
    if not nodes:
        return None
    with redis.Redis(**{**params, "host": nodes[0]["host"], "port": int(nodes[0]["port"]),
                        "socket_timeout": 5, "socket_connect_timeout": 5}) as client:
        try:
            client.ping()
        except redis.exceptions.AuthenticationError as exc:
            return exc
        except Exception:  # down, unreachable, TLS: not a password problem
            return None
    return None


def _redis_auth_error(exc: BaseException, fs) -> BaseException | None:
    """The redis-py AuthenticationError behind `exc`, or behind a dropped connection (see the probe)."""
    cfg = fs.config.online_store
    if getattr(cfg, "type", "") != "redis":
        return None
    try:
        from redis.exceptions import AuthenticationError
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:
        return None
    auth = _in_chain(exc, AuthenticationError)
    if auth is None and _in_chain(exc, RedisConnectionError) is not None:
        auth = _redis_auth_probe(cfg)
    return auth


class OnlineStoreRefused(StageFailed):
    """The Redis online store refused the password (or its absence). `problem` says what is wrong in plain
    words, without the server's address or reply: what a client of the online model may be told."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def online_store_refused(exc: BaseException, settings: Settings, fs) -> StageFailed | None:
    """A StageFailed that says what is wrong with the Redis password, when the store refused it."""
    auth = _redis_auth_error(exc, fs)
    if auth is None:
        return None
    where = str(getattr(fs.config.online_store, "connection_string", "")).split(",")[0] or "?"
    said = settings.redact(str(auth).strip()) or type(auth).__name__
    if not settings.redis_password:
        what = ("requires a password and FLIGHTDECK_REDIS_PASSWORD is not set (on the cluster it comes from "
                "the flightdeck-redis-auth Secret, key password; on AWS the token is in Secrets Manager, "
                "<environment>/redis-auth-token)")
    elif "no password is set" in said or "without any password configured" in said:
        what = "has no password configured, but FLIGHTDECK_REDIS_PASSWORD is set: unset it, or configure the server"
    else:
        what = ("refused the password in FLIGHTDECK_REDIS_PASSWORD: it is wrong (rotated? the Secret and the "
                "server's AUTH token must match; RUNBOOK.md, Redis AUTH token)")
    return OnlineStoreRefused(f"the Redis online store at {where} {what} (Redis: {said})", f"{what}")


@contextlib.contextmanager
def online_store_access(settings: Settings, fs) -> Iterator[None]:
    """Feast calls that open the online store: a refused Redis password becomes one clear error."""
    try:
        yield
    except Exception as exc:
        refused = online_store_refused(exc, settings, fs)
        if refused is None:
            raise
        raise refused from None
