"""structlog set-up: JSON lines in production, a console renderer in development; the stdlib
loggers of uvicorn, Celery and SQLAlchemy are rendered by the same processors; request id, job id
and tenant are bound in contextvars; the current span's trace and span ids are added when tracing
is on; values that look like secrets are redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from conveyor_common import tracing

_SECRET_WORDS = (
    r"pass(?:word)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key|dsn|cookie"
    r"|jwt|bearer|signing[_-]?key|access[_-]?key"
)
SECRET_KEY_PATTERN = re.compile(rf"({_SECRET_WORDS}|^auth$)", re.IGNORECASE)
# user:password@ in a URL/DSN. The lookbehind lets a match start only where a scheme can begin;
# without it a long run of scheme characters (a base64 blob, a hex digest) costs quadratic time.
_DSN_PASSWORD = re.compile(
    r"(?P<scheme>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@",
    re.I,
)
_BEARER = re.compile(r"((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.I)
_API_KEY = re.compile(r"\bcvk_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
# A JWS/JWT anywhere: three base64url segments, the first a JSON header (`{"` is `eyJ`).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# `key=value` and `"key": value` inside text (query strings, config lines, a mapping logged as
# its JSON or Python repr, an exception message quoting one) whose key is named like a secret,
# by the same words as SECRET_KEY_PATTERN. A bare `key: value` is left to the patterns above: in
# prose it is mostly a label. Matches start only at the start of a word and the key's parts are
# possessive, so long runs of word characters cost linear time.
_KEY_VALUE = re.compile(
    rf"""(?<![\w.-])(?P<q>["']?)(?P<key>(?=[\w.-]*?(?:{_SECRET_WORDS}))[\w.-]++|auth(?![\w.-]))"""
    r"""(?P=q)(?P<sep>(?<=["'])\s*+:\s*+|\s*+=\s*+)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*+"|'(?:[^'\\]|\\.)*+'|[^\s&,;'"}\])]++)""",
    re.IGNORECASE,
)
# A substring of every one of the words above: most text has none, and a lowercase search for
# these costs far less than the pattern, which runs only on text that has one.
_SECRET_HINTS = ("pass", "secret", "token", "key", "auth", "credential", "dsn", "cookie", "jwt",
                 "bearer")  # fmt: skip
REDACTED = "[REDACTED]"


def _may_hold_key_value(text: str) -> bool:
    if "=" not in text and ":" not in text:
        return False
    lowered = text.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


def _redact_key_value(match: re.Match[str]) -> str:
    value_quote = match["value"][0] if match["value"][0] in "\"'" else ""
    return (
        f"{match['q']}{match['key']}{match['q']}{match['sep']}{value_quote}{REDACTED}{value_quote}"
    )


def redact_text(text: str) -> str:
    if _may_hold_key_value(text):
        text = _KEY_VALUE.sub(_redact_key_value, text)
    text = _DSN_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    return _API_KEY.sub(REDACTED, text)


def redact(value: Any, _depth: int = 0) -> Any:
    """Redacts values under secret-looking keys and secrets embedded in strings."""
    if _depth > 20:
        return value
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and SECRET_KEY_PATTERN.search(k)
                else redact(v, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {
        k: (REDACTED if SECRET_KEY_PATTERN.search(k) else redact(v)) for k, v in event_dict.items()
    }


def _add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Read from OpenTelemetry's current span, so a line logged anywhere inside a request or a
    # task run carries its trace; while tracing is off this is one check of a module variable.
    ids = tracing.current_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def configure_logging(service: str, *, json: bool, level: str = "INFO") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # Level first: a line below the level would otherwise run every processor (redaction
        # included) only for the stdlib logger to drop it, on every job and request.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            lambda _l, _m, ed: {**ed, "service": service},
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "sqlalchemy", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers[:] = []
        lib_logger.propagate = True
    # Access lines duplicate our own request metrics and would log every poll.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # httpx logs every call's full URL at INFO (query strings carry clients' filters and
    # cursors) and httpcore traces connections at DEBUG: our own events say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
