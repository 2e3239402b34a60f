"""Secrets out of log lines: passwords in connection URLs, webhook paths, token query parameters.

`redact(text)` rewrites
- the password of a URL's userinfo (`redis://:pw@host`, `postgresql://user:pw@host/db`) to `***`;
- the path of a webhook URL (Slack `hooks.slack.com/services/T/B/secret`, any host or path naming
  a hook, PagerDuty/Teams/Discord style), which is itself the credential, to `/***`;
- the value of credential-like query parameters (`?token=`, `key=`, `sig=`, `password=`...).
`install()` puts it in front of every log record of the process (a log record factory: records of
every logger, whatever handlers Airflow or the CLI configure later). Cheap to import.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"<>]*:)[^\s@/'\"<>]+@")
# A URL (with or without scheme) whose host or first path segment names a hook: the rest of the path is the key.
_WEBHOOK = re.compile(
    r"(?P<head>(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://)?(?:[\w-]+\.)*[\w-]*hooks?[\w-]*(?:\.[\w-]+)+(?::\d+)?"
    r"|\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/'\"<>]+(?:/[^\s/'\"<>]+)*?(?=/(?:services|hooks?|webhooks?|workflows|triggers)/))"
    r"/[^\s'\"<>|)]+",
    re.IGNORECASE,
)
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&](?:token|access_token|api[_-]?key|key|sig|signature|secret|password|passwd|pwd|code)=)[^&\s'\"<>]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """The text with URL passwords, webhook paths and credential query values masked."""
    if "://" not in text and "hook" not in text.lower() and "=" not in text:
        return text  # the common case, fast
    text = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _WEBHOOK.sub(lambda m: f"{m['head']}/{MASK}", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['head']}{MASK}", text)


def safe_target(url: str) -> str:
    """What a log may say about where a request went: scheme and host, nothing else."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}{port}/{MASK}" if parts.scheme else MASK


class RedactingFilter(logging.Filter):
    """A logging filter (for a handler or logger) that redacts the formatted message in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report, as logging does
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        if redact(text) != text:
            # Renderers format exc_info themselves (structlog under Airflow too): hand them the redacted
            # traceback as text instead, leaving the live exception untouched.
            record.msg, record.args = f"{cleaned}\n{redact(text)}", ()
            record.exc_info, record.exc_text = None, None


_installed = threading.Lock()
_state = {"installed": False}


def install() -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    with _installed:
        if _state["installed"]:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _state["installed"] = True
