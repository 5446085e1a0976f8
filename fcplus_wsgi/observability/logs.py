"""Structured logs: one structlog event per flow step, rendered to a string and handed to
stdlib logging, so the Paste ini's [loggers], [handlers] and [formatters] decide where
it goes and at which level.

structlog is not configured globally (the host app may configure it its own way): the
subscriber wraps one stdlib logger with its own processor chain. Only bounded fields
leave here, each checked against the catalogue: a FlowEvent carries no token, code,
secret, claim or sub, and an operator's own event with odd values cannot smuggle one in
through a known field either.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

from ..events import FlowEvent, Subscriber
from .catalogue import EVENT_KINDS, LABELS, OTHER, event_name

LOGGER_NAME = "fcplus_wsgi.flow"
LOG_FORMATS = ("json", "console")
_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


def _renderer(log_format: str) -> Any:
    if log_format == "json":
        return structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False)
    if log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=False, pad_event_to=34, sort_keys=False)
    raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")


def _event_first(logger: Any, method: str, event_dict: Any) -> Any:
    """Put timestamp, level and event name first: a JSON line reads like the console one."""
    head = {key: event_dict.pop(key) for key in ("timestamp", "level", "event") if key in event_dict}
    return {**head, **event_dict}


def make_logger(log_format: str = "json", logger: logging.Logger | None = None) -> Any:
    """A structlog logger rendering `log_format` into the given stdlib logger."""
    return structlog.wrap_logger(
        logger or logging.getLogger(LOGGER_NAME),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _event_first,
            _renderer(log_format),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def event_fields(event: FlowEvent) -> dict[str, Any]:
    """The fields one event is logged with, every value checked or bounded."""
    kind = event.step if event.step in EVENT_KINDS else OTHER
    outcome = LABELS["outcome"].normalize(event.outcome)
    fields: dict[str, Any] = {
        "provider": LABELS["provider"].normalize(event.provider),
        "step": kind,
        "outcome": outcome,
    }
    if isinstance(event.duration, (int, float)) and not isinstance(event.duration, bool):
        fields["duration_ms"] = round(float(event.duration) * 1000, 1)
    if isinstance(event.correlation_id, str) and _ID.fullmatch(event.correlation_id):
        fields["correlation_id"] = event.correlation_id
    if isinstance(event.request_id, str) and _ID.fullmatch(event.request_id):
        fields["request_id"] = event.request_id
    if event.acr is not None or kind == "login":
        fields["acr"] = LABELS["acr"].normalize(event.acr)
    if kind == "provider_request":
        fields["endpoint"] = LABELS["endpoint"].normalize(event.extra.get("endpoint"))
        if "reason" in event.extra:
            fields["reason"] = LABELS["refresh_reason"].normalize(event.extra.get("reason"))
        if outcome == "failure":
            fields["error"] = LABELS["call_error"].normalize(event.error)
    elif kind == "session_ended":
        fields["reason"] = LABELS["reason"].normalize(event.extra.get("reason"))
    elif outcome == "failure":
        fields["error"] = LABELS["error"].normalize(event.error)
        fields["category"] = LABELS["category"].normalize(event.category)
    return fields


def level_for(fields: dict[str, Any]) -> int:
    """Failures are warnings, except a user's own cancellation; provider calls that worked
    are debug detail, so INFO shows exactly one line per step."""
    if fields["outcome"] == "failure":
        return logging.INFO if fields.get("category") == "user_cancelled" else logging.WARNING
    if fields["step"] == "provider_request":
        return logging.DEBUG
    return logging.INFO


def structlog_subscriber(log_format: str = "json", logger: logging.Logger | None = None) -> Subscriber:
    """An EventBus subscriber logging one structlog event per FlowEvent."""
    log = make_logger(log_format, logger)

    def subscriber(event: FlowEvent) -> None:
        fields = event_fields(event)
        log.log(level_for(fields), event_name(fields["step"], fields["outcome"]), **fields)

    return subscriber
