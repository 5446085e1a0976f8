"""Typed flow events and the bus observers subscribe to.

The flow reports what happened; it never imports a metrics or logging library. Plugins
(Prometheus, structlog, an operator's own) subscribe here, so turning one off is removing
a subscriber, and a failing subscriber can never break a login.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Steps of the flow proper (one metric label and one log event each).
STEPS = ("login_redirect", "callback", "token", "id_token", "userinfo", "session", "logout",
         "logout_callback", "revocation")
# Other event kinds: "login" (a completed sign-in; duration = redirect to session, acr set),
# "session_ended" (extra["reason"] in idle|max_age|logout), "provider_request" (one HTTP
# call to the provider; extra["endpoint"] in discovery|jwks|token|userinfo|revocation).

_log = logging.getLogger("fcplus_wsgi.events")


@dataclass(frozen=True)
class FlowEvent:
    """One step's outcome. Fields hold bounded values only: no token, claim or raw sub."""

    step: str
    outcome: str  # "success" | "failure"
    provider: str
    correlation_id: str
    request_id: str | None = None
    duration: float | None = None
    error: str | None = None
    category: str | None = None
    acr: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[FlowEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.remove(subscriber)

    def emit(self, event: FlowEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - observers must never break a login
                _log.exception("event subscriber %r failed", subscriber)


def stdlib_log_subscriber(logger: logging.Logger | None = None) -> Subscriber:
    """A plain logging subscriber: one line per step, failures at WARNING."""
    target = logger or logging.getLogger("fcplus_wsgi.flow")

    def log(event: FlowEvent) -> None:
        level = logging.INFO if event.outcome == "success" else logging.WARNING
        if not target.isEnabledFor(level):
            return
        target.log(level, "fcplus.%s.%s provider=%s correlation_id=%s%s%s%s", event.step, event.outcome,
                   event.provider, event.correlation_id,
                   f" error={event.error} category={event.category}" if event.error else "",
                   f" acr={event.acr}" if event.acr else "",
                   f" duration_ms={event.duration * 1000:.1f}" if event.duration is not None else "")
    return log
