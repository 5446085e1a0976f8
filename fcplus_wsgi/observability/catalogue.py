"""The one declarative table of what the plugins publish: metric families, their labels
with the closed set of values each label may take, and the log event names.

Everything else is generated from here: the Prometheus families (prometheus.py), the
log event names (logs.py), the tables in docs/observability.md and the label checks of
the tests. A label value outside its set becomes "other", so neither a hostile provider
nor an operator's own events can grow the number of series, and no user, sub, IP
address or free text can ever reach a label. Pure data and pure functions: no I/O and
no metrics library here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CATALOGUE, Category
from ..events import STEPS
from ..providers import GENERIC, PRESETS

OTHER = "other"
NONE = "none"

# Provider-call failures as the client reports them: a transport FlowError code, or the
# HTTP status class of an answer the provider gave.
PROVIDER_CALL_ERRORS = ("provider_timeout", "provider_unreachable", "provider_tls_error",
                        "provider_response_too_large", "http_4xx", "http_5xx")
ENDPOINTS = ("discovery", "jwks", "token", "userinfo", "revocation", "end_session")
SESSION_END_REASONS = ("logout", "idle", "max_age", "store_error")
JWKS_REFRESH_REASONS = ("initial", "expired", "unknown_kid")
STORE_BACKENDS = ("memory", "sqlite", "redis")
STORE_OPERATIONS = ("get", "put", "take", "delete")
# eIDAS levels (FranceConnect, FC+, ProConnect) and ProConnect's assurance URIs; "none"
# when the id_token carried no acr.
_PC = "https://proconnect.gouv.fr/assurance/"
ACR_VALUES = ("eidas0", "eidas0-mfa", "eidas1", "eidas1-mfa", "eidas2", "eidas3",
              _PC + "self-asserted", _PC + "self-asserted-2fa", _PC + "consistency-checked",
              _PC + "consistency-checked-2fa", _PC + "certification-dirigeant", NONE)


def _providers() -> tuple[str, ...]:
    # Read at call time, so a preset added to providers.py is a known label at once.
    return (*PRESETS, GENERIC.name)


@dataclass(frozen=True)
class Label:
    """A label and the closed set of values it may carry (plus "other")."""

    name: str
    doc: str
    domain: Callable[[], tuple[str, ...]]

    def values(self) -> tuple[str, ...]:
        return (*self.domain(), OTHER)

    def normalize(self, value: object) -> str:
        """The value itself when it belongs to the set, else "other"; never raises."""
        if value is None and NONE in self.domain():
            return NONE
        text = value if isinstance(value, str) else ""
        return text if text in self.domain() else OTHER


def _fixed(*values: str) -> Callable[[], tuple[str, ...]]:
    return lambda: values


LABELS: dict[str, Label] = {label.name: label for label in (
    Label("provider", "the configured preset name", _providers),
    Label("step", "the flow step", _fixed(*STEPS)),
    Label("outcome", "how the step ended", _fixed("success", "failure")),
    Label("category", "the error category (what kind of trouble, for the user)",
          _fixed(*(c.value for c in Category))),
    Label("error", "the catalogue code of fcplus_wsgi.errors (OIDC error codes of Core 3.1.2.6, "
          "3.1.3.4 and 5.3.3, or a validation reason)", _fixed(*sorted(CATALOGUE))),
    Label("endpoint", "the provider endpoint called server side", _fixed(*ENDPOINTS)),
    Label("call_error", "why a provider call failed: transport failure or HTTP status class",
          _fixed(*PROVIDER_CALL_ERRORS)),
    Label("acr", "the acr of the id_token (eIDAS level or ProConnect assurance URI; none when absent)",
          _fixed(*ACR_VALUES)),
    Label("reason", "why a session ended", _fixed(*SESSION_END_REASONS)),
    Label("refresh_reason", "why the provider JWKS was fetched", _fixed(*JWKS_REFRESH_REASONS)),
    Label("backend", "the session store backend", _fixed(*STORE_BACKENDS)),
    Label("operation", "the store operation", _fixed(*STORE_OPERATIONS)),
)}


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its exposed name, kind, help text and labels.

    `labels` maps the exposed label name to the LABELS entry giving its value set (the
    JWKS `reason` label uses the `refresh_reason` set, the provider-call `error` label the
    `call_error` set).
    """

    name: str
    kind: str  # "counter" | "histogram"
    help: str
    labels: tuple[tuple[str, str], ...]
    buckets: tuple[float, ...] = ()

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(exposed for exposed, _ in self.labels)

    def label(self, exposed: str) -> Label:
        return LABELS[dict(self.labels)[exposed]]

    @property
    def base_name(self) -> str:
        """The name prometheus_client wants: counters without their _total suffix."""
        return self.name[: -len("_total")] if self.kind == "counter" else self.name


def _l(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n.split("=")[0], n.split("=")[-1]) for n in names)


PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOGIN_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("fcplus_flow_steps_total", "counter",
               "Flow steps completed, by step and outcome.", _l("provider", "step", "outcome")),
    MetricSpec("fcplus_flow_errors_total", "counter",
               "Flow step failures, by step, error category and catalogue error code.",
               _l("provider", "step", "category", "error")),
    MetricSpec("fcplus_provider_request_duration_seconds", "histogram",
               "Duration of server-side calls to the provider, by endpoint (failed calls included).",
               _l("provider", "endpoint"), PROVIDER_BUCKETS),
    MetricSpec("fcplus_provider_request_errors_total", "counter",
               "Failed server-side calls to the provider, by endpoint and kind of failure.",
               _l("provider", "endpoint", "error=call_error")),
    MetricSpec("fcplus_login_duration_seconds", "histogram",
               "Time from the redirect to the provider to the session being created.",
               _l("provider"), LOGIN_BUCKETS),
    MetricSpec("fcplus_logins_total", "counter",
               "Completed sign-ins, by the acr the provider asserted.", _l("provider", "acr")),
    MetricSpec("fcplus_sessions_ended_total", "counter",
               "Local sessions ended, by reason.", _l("reason")),
    MetricSpec("fcplus_jwks_refreshes_total", "counter",
               "Fetches of the provider JWKS, by reason.", _l("provider", "reason=refresh_reason")),
    MetricSpec("fcplus_store_operation_duration_seconds", "histogram",
               "Duration of session store operations (failed ones included).",
               _l("backend", "operation"), STORE_BUCKETS),
    MetricSpec("fcplus_store_errors_total", "counter",
               "Session store operations that failed (StoreError).", _l("backend", "operation")),
)
METRICS_BY_NAME = {spec.name: spec for spec in METRICS}


# -- log events ----------------------------------------------------------------------------------

# The event name of a successful step is fcplus.<step>.<verb>; a failed one is
# fcplus.<step>.failed. Other event kinds carry their own names.
SUCCESS_VERBS: dict[str, str] = {
    "login_redirect": "redirected",
    "callback": "received",
    "token": "exchanged",
    "id_token": "validated",
    "userinfo": "fetched",
    "session": "created",
    "logout": "completed",
    "logout_callback": "received",
    "revocation": "revoked",
    "login": "succeeded",
    "session_ended": "ended",
    "provider_request": "succeeded",
}
EVENT_PREFIX = {"session_ended": "fcplus.session", "provider_request": "fcplus.provider"}
EVENT_KINDS = (*STEPS, "login", "session_ended", "provider_request")


def event_name(step: str, outcome: str) -> str:
    """The log event name for one FlowEvent; unknown steps become fcplus.other.*."""
    kind = step if step in EVENT_KINDS else OTHER
    if kind == "session_ended":  # whatever ended it, the session is over
        return "fcplus.session.ended"
    prefix = EVENT_PREFIX.get(kind, "fcplus." + kind)
    return prefix + "." + (SUCCESS_VERBS.get(kind, "succeeded") if outcome == "success" else "failed")


# -- documentation ---------------------------------------------------------------------------------

def metrics_table() -> str:
    """The Markdown table of metric families docs/observability.md embeds (tested verbatim)."""
    rows = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for spec in METRICS:
        labels = ", ".join(f"`{name}`" for name in spec.label_names)
        rows.append(f"| `{spec.name}` | {spec.kind} | {labels} | {spec.help} |")
    return "\n".join(rows)


def labels_table() -> str:
    """Every label with its closed set of values (the docs embed it; tests enforce it)."""
    rows = ["| label set | meaning | values |", "| --- | --- | --- |"]
    for label in LABELS.values():
        values = ", ".join(f"`{v}`" for v in label.values())
        rows.append(f"| `{label.name}` | {label.doc} | {values} |")
    return "\n".join(rows)


def events_table() -> str:
    """The log event names, one row per kind."""
    rows = ["| kind | on success | on failure |", "| --- | --- | --- |"]
    for kind in EVENT_KINDS:
        rows.append(f"| `{kind}` | `{event_name(kind, 'success')}` | `{event_name(kind, 'failure')}` |")
    return "\n".join(rows)
