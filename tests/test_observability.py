"""The observability plugins, step by step: which events each flow step emits, which
metrics they move, that labels never leave their documented sets (hostile inputs
included), the settings, the /metrics allow-list, and the log formats.

Sign-ins run over loopback against the development provider (tests/support/devstack.py).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fcplus_wsgi import FCPlusMiddleware, FlowEvent, parse_settings
from fcplus_wsgi.client import ProviderClient
from fcplus_wsgi.errors import CATALOGUE
from fcplus_wsgi.events import STEPS, EventBus
from fcplus_wsgi.observability import (
    LABELS,
    METRICS,
    InstrumentedStore,
    PrometheusMetrics,
    client_allowed,
    serve_metrics,
    structlog_subscriber,
)
from fcplus_wsgi.observability.catalogue import (
    OTHER,
    event_name,
    events_table,
    labels_table,
    metrics_table,
)
from fcplus_wsgi.observability.logs import event_fields
from fcplus_wsgi.settings import ConfigError
from fcplus_wsgi.stores import StoreError
from tests.support.devstack import CLIENT_ID, SECRET, DevStack, dev_stack
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = "fcplus-integration"
METRIC_SETTINGS = {"metrics": "true", "metrics_path": "/metrics"}


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Recorder:
    """An operator's own subscriber, added the documented way: middleware.bus.subscribe."""

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def kinds(self, skip_provider: bool = True) -> list[tuple[str, str]]:
        return [(e.step, e.outcome) for e in self.events if not (skip_provider and e.step == "provider_request")]

    def clear(self) -> None:
        self.events.clear()


def value(mw: FCPlusMiddleware, name: str, **labels: str) -> float:
    assert mw.observability is not None and mw.observability.metrics is not None
    return mw.observability.metrics.sample(name, labels) or 0.0


def steps(mw: FCPlusMiddleware, step: str, outcome: str = "success") -> float:
    return value(mw, "fcplus_flow_steps_total", provider=PROVIDER, step=step, outcome=outcome)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stack(tmp_path: Path, clock: Clock) -> Iterator[tuple[DevStack, Recorder]]:
    with dev_stack(tmp_path, settings=METRIC_SETTINGS, middleware_kw={"clock": clock}) as s:
        recorder = Recorder()
        s.middleware.bus.subscribe(recorder)
        yield s, recorder


# -- the catalogue ---------------------------------------------------------------------------------

def test_catalogue_families_names_and_labels() -> None:
    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names))
    for spec in METRICS:
        assert spec.name.startswith("fcplus_")
        assert spec.name.endswith("_total") if spec.kind == "counter" else spec.name.endswith("_seconds")
        assert spec.kind != "histogram" or list(spec.buckets) == sorted(spec.buckets)
        for exposed in spec.label_names:
            label = spec.label(exposed)
            assert OTHER in label.values()
            for banned in ("sub", "user", "ip", "email", "claim", "token"):
                assert banned not in exposed
    shapes = {spec.name: spec.label_names for spec in METRICS}
    # The families and label sets the issue asks for, exactly.
    assert shapes["fcplus_flow_steps_total"] == ("provider", "step", "outcome")
    assert shapes["fcplus_flow_errors_total"] == ("provider", "step", "category", "error")
    assert shapes["fcplus_provider_request_duration_seconds"] == ("provider", "endpoint")
    assert shapes["fcplus_login_duration_seconds"] == ("provider",)
    assert shapes["fcplus_logins_total"] == ("provider", "acr")
    assert shapes["fcplus_sessions_ended_total"] == ("reason",)
    assert shapes["fcplus_jwks_refreshes_total"] == ("provider", "reason")
    assert shapes["fcplus_store_operation_duration_seconds"] == ("backend", "operation")
    assert shapes["fcplus_store_errors_total"] == ("backend", "operation")
    assert set(LABELS["step"].values()) == {*STEPS, OTHER}
    assert set(LABELS["error"].values()) == {*CATALOGUE, OTHER}
    assert {"logout", "idle", "max_age", "store_error"} <= set(LABELS["reason"].values())


def test_docs_embed_the_generated_tables() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    for table in (metrics_table(), labels_table(), events_table()):
        assert table in doc, "docs/observability.md is out of date: paste the output of catalogue.*_table()"


def test_event_names() -> None:
    assert event_name("token", "success") == "fcplus.token.exchanged"
    assert event_name("token", "failure") == "fcplus.token.failed"
    assert event_name("session_ended", "failure") == "fcplus.session.ended"
    assert event_name("provider_request", "success") == "fcplus.provider.succeeded"
    assert event_name("anything\nelse", "success") == "fcplus.other.succeeded"


# -- the core never needs the libraries --------------------------------------------------------------

def test_core_modules_never_import_prometheus_or_structlog() -> None:
    package = ROOT / "fcplus_wsgi"
    offenders = []
    for path in package.rglob("*.py"):
        if "observability" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("prometheus_client", "structlog")]
    assert offenders == []


def test_plugins_off_means_libraries_not_even_loaded(tmp_path: Path) -> None:
    code = """
import sys
from fcplus_wsgi import FCPlusMiddleware
mw = FCPlusMiddleware(lambda e, s: [], {"issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s",
    "redirect_uri": "http://127.0.0.1:8000/cb", "session_store": "memory://", "cookie_secure": "false"})
assert mw.observability is None
print(sorted(m for m in sys.modules if m.split(".")[0] in ("prometheus_client", "structlog")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- each step: events and metrics -------------------------------------------------------------------

LOGIN_EVENTS = [("login_redirect", "success"), ("callback", "success"), ("token", "success"),
                ("id_token", "success"), ("userinfo", "success"), ("session", "success"), ("login", "success")]


def test_full_login_emits_every_step(stack: tuple[DevStack, Recorder]) -> None:
    s, rec = stack
    mw = s.middleware
    page = s.browser().sign_in(acr="eidas3")
    assert page.status_code == 200
    assert rec.kinds() == LOGIN_EVENTS
    cids = {e.correlation_id for e in rec.events if e.step != "provider_request"}
    assert len(cids) == 1 and len(cids.pop()) == 12
    login = next(e for e in rec.events if e.step == "login")
    assert login.acr == "eidas3" and login.duration is not None and 0 < login.duration < 30
    endpoints = [e.extra["endpoint"] for e in rec.events if e.step == "provider_request"]
    assert endpoints == ["discovery", "token", "jwks", "userinfo"]
    assert [e.extra.get("reason") for e in rec.events if e.step == "provider_request"] == [None, None, "initial", None]
    for step, _ in LOGIN_EVENTS[:-1]:
        assert steps(mw, step) == 1, step
        assert steps(mw, step, "failure") == 0, step
    assert value(mw, "fcplus_logins_total", provider=PROVIDER, acr="eidas3") == 1
    assert value(mw, "fcplus_logins_total", provider=PROVIDER, acr="eidas2") == 0  # created at zero
    assert value(mw, "fcplus_login_duration_seconds_count", provider=PROVIDER) == 1
    for endpoint in ("discovery", "token", "jwks", "userinfo"):
        assert value(mw, "fcplus_provider_request_duration_seconds_count", provider=PROVIDER, endpoint=endpoint) == 1
    assert value(mw, "fcplus_jwks_refreshes_total", provider=PROVIDER, reason="initial") == 1
    # Store operations of one sign-in: the used-state check (get) and record (put), the session
    # put, then the page's get; the pending login itself is in the login cookie.
    for op, count in (("put", 2), ("take", 0), ("get", 2)):
        assert value(mw, "fcplus_store_operation_duration_seconds_count", backend="memory", operation=op) == count


def test_cancel_and_token_error(tmp_path: Path) -> None:
    # Codes live one second here, so one can expire between the provider and the callback.
    with dev_stack(tmp_path, settings=METRIC_SETTINGS, provider={"code_ttl": 1}) as s:
        rec = Recorder()
        s.middleware.bus.subscribe(rec)
        mw = s.middleware
        browser = s.browser()
        first = browser.get("/private/x")
        page = browser.get(browser.decide(first.headers["Location"], decision="refuse").headers["Location"])
        assert page.status_code == 403
        assert rec.kinds() == [("login_redirect", "success"), ("callback", "failure")]
        failed = rec.events[-1]
        assert (failed.error, failed.category) == ("access_denied", "user_cancelled")
        assert page.headers["X-Correlation-ID"] == failed.correlation_id
        assert value(mw, "fcplus_flow_errors_total", provider=PROVIDER, step="callback", category="user_cancelled",
                     error="access_denied") == 1
        rec.clear()
        first = browser.get("/private/x")
        back = browser.decide(first.headers["Location"])
        time.sleep(1.2)
        page = browser.get(back.headers["Location"])
        assert page.status_code == 400
        assert rec.kinds() == [("login_redirect", "success"), ("callback", "success"), ("token", "failure")]
        assert (rec.events[-1].error, rec.events[-1].category) == ("token.invalid_grant", "session_expired")
        token_call = [e for e in rec.events if e.step == "provider_request" and e.extra["endpoint"] == "token"]
        assert [(e.outcome, e.error) for e in token_call] == [("failure", "http_4xx")]
        assert value(mw, "fcplus_provider_request_errors_total", provider=PROVIDER, endpoint="token",
                     error="http_4xx") == 1
        assert value(mw, "fcplus_flow_errors_total", provider=PROVIDER, step="token", category="session_expired",
                     error="token.invalid_grant") == 1
        # Replaying the callback: state already used.
        rec.clear()
        assert browser.get(back.headers["Location"]).status_code == 400
        assert [(e.step, e.error) for e in rec.events] == [("callback", "state_unknown")]


def test_logout_and_logout_callback(stack: tuple[DevStack, Recorder]) -> None:
    s, rec = stack
    mw = s.middleware
    browser = s.browser()
    browser.sign_in()
    rec.clear()
    out = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    back = browser.get(out.headers["Location"])
    landed = browser.get(back.headers["Location"])
    assert landed.status_code == 303
    assert rec.kinds() == [("logout", "success"), ("session_ended", "success"), ("revocation", "success"),
                           ("logout_callback", "success")]
    ended = rec.events[[e.step for e in rec.events].index("session_ended")]
    assert ended.extra == {"reason": "logout"}
    assert value(mw, "fcplus_sessions_ended_total", reason="logout") == 1
    for step in ("logout", "revocation", "logout_callback"):
        assert steps(mw, step) == 1
    assert value(mw, "fcplus_provider_request_duration_seconds_count", provider=PROVIDER, endpoint="revocation") == 1


@pytest.mark.parametrize(("advance", "reason"), [(1801, "idle"), (12 * 3600 + 1, "max_age")])
def test_session_expiry(stack: tuple[DevStack, Recorder], clock: Clock, advance: float, reason: str) -> None:
    s, rec = stack
    browser = s.browser()
    browser.sign_in()
    rec.clear()
    if reason == "max_age":  # stay active so only the absolute lifetime can end it
        for _ in range(int(advance // 1500)):
            clock.offset += 1500
            assert browser.get("/private/page").status_code == 200
        clock.offset = advance
    else:
        clock.offset = advance
    assert browser.get("/private/page").status_code == 302
    ended = [e for e in rec.events if e.step == "session_ended"]
    assert [e.extra["reason"] for e in ended] == [reason]
    assert value(s.middleware, "fcplus_sessions_ended_total", reason=reason) == 1


def test_store_errors_are_timed_counted_and_end_the_session(tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite3"
    # Read cache off: the table is dropped behind the store's back, which cached reads would
    # not notice until the next write (docs/session-stores.md); the point here is the error path.
    with dev_stack(tmp_path, settings={**METRIC_SETTINGS, "session_store": f"sqlite:///{db}?read_cache=off"}) as s:
        rec = Recorder()
        s.middleware.bus.subscribe(rec)
        mw = s.middleware
        assert isinstance(mw.store, InstrumentedStore) and mw.store.backend == "sqlite"
        assert mw.flow.store is mw.store
        browser = s.browser()
        browser.sign_in()
        assert mw.store.purge() >= 0  # backend extras stay reachable through the wrapper
        with sqlite3.connect(db) as conn:  # a real failure: the table is gone
            conn.execute("DROP TABLE fcplus_entries")
        page = browser.get("/private/page")
        assert page.status_code == 503
        assert value(mw, "fcplus_store_errors_total", backend="sqlite", operation="get") == 1
        assert value(mw, "fcplus_store_operation_duration_seconds_count", backend="sqlite", operation="get") >= 2
        assert value(mw, "fcplus_sessions_ended_total", reason="store_error") == 1
        assert [e.extra for e in rec.events if e.step == "session_ended"] == [{"reason": "store_error"}]
        with pytest.raises(StoreError):
            mw.store.put("k", b"v", 10)
        assert value(mw, "fcplus_store_errors_total", backend="sqlite", operation="put") == 1


def test_jwks_refresh_reasons(stack: tuple[DevStack, Recorder]) -> None:
    s, _ = stack
    metrics = PrometheusMetrics(PROVIDER)
    bus = EventBus()
    bus.subscribe(metrics)
    now = [1000.0]

    def observe(endpoint: str, seconds: float, outcome: str, reason: str | None = None) -> None:
        bus.emit(FlowEvent("provider_request", "success" if outcome == "success" else "failure", PROVIDER, "",
                           duration=seconds, error=None if outcome == "success" else outcome,
                           extra={"endpoint": endpoint, **({"reason": reason} if reason else {})}))

    client = ProviderClient(s.issuer, clock=lambda: now[0], observe=observe, jwks_refresh_interval=2)
    client.keys()
    client.keys()  # cached: no fetch
    assert client.refresh_keys_for_unknown_kid() is None  # too soon after the last fetch
    now[0] += 3
    assert client.refresh_keys_for_unknown_kid() is not None
    now[0] += 4000
    client.keys()
    got = {r: metrics.sample("fcplus_jwks_refreshes_total", {"provider": PROVIDER, "reason": r})
           for r in ("initial", "unknown_kid", "expired")}
    assert got == {"initial": 1, "unknown_kid": 1, "expired": 1}
    assert metrics.sample("fcplus_provider_request_duration_seconds_count",
                          {"provider": PROVIDER, "endpoint": "jwks"}) == 3


# -- labels stay in their sets, whatever comes in ------------------------------------------------------

hostile_text = st.one_of(st.text(max_size=80), st.sampled_from(["", "eidas3", "token", "access_denied", "<script>",
                                                                 "https://evil.example/acr", "1.2.3.4"]))
events_strategy = st.builds(
    FlowEvent,
    step=st.one_of(st.sampled_from([*STEPS, "login", "session_ended", "provider_request"]), hostile_text),
    outcome=st.one_of(st.sampled_from(["success", "failure"]), hostile_text),
    provider=st.one_of(st.just(PROVIDER), hostile_text),
    correlation_id=hostile_text,
    request_id=st.one_of(st.none(), hostile_text),
    duration=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers()),
    error=st.one_of(st.none(), st.sampled_from(sorted(CATALOGUE)), hostile_text),
    category=st.one_of(st.none(), hostile_text),
    acr=st.one_of(st.none(), hostile_text),
    extra=st.dictionaries(st.sampled_from(["endpoint", "reason", "sub", "email"]), hostile_text, max_size=3),
)


def assert_labels_in_sets(registry: CollectorRegistry) -> int:
    checked = 0
    from prometheus_client import generate_latest

    from fcplus_wsgi.observability import METRICS_BY_NAME

    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name.endswith("_created"):
            continue
        spec = METRICS_BY_NAME.get(family.name + "_total") or METRICS_BY_NAME[family.name]
        for sample in family.samples:
            for name, label_value in sample.labels.items():
                if name != "le":
                    assert label_value in spec.label(name).values(), (family.name, name, label_value)
                    checked += 1
    return checked


@settings(max_examples=300, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=8))
def test_hostile_events_never_grow_labels_or_logs(events: list[FlowEvent]) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(PROVIDER, registry=registry)
    buffer = io.StringIO()
    logger = logging.getLogger("test.hostile")
    logger.handlers[:] = [logging.StreamHandler(buffer)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    log = structlog_subscriber("json", logger)
    for event in events:
        metrics.observe(event)
        log(event)
        fields = event_fields(event)
        assert set(fields) <= {"provider", "step", "outcome", "duration_ms", "correlation_id", "request_id", "acr",
                               "error", "category", "endpoint", "reason"}
        for key in ("provider", "outcome", "acr", "error", "category", "endpoint"):
            if key in fields:
                assert fields[key] in {v for label in LABELS.values() for v in label.values()}, (key, fields[key])
    assert assert_labels_in_sets(registry) > 0
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)
        assert "sub" not in record and "email" not in record


# -- settings --------------------------------------------------------------------------------------

BASE = {"issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s",
        "redirect_uri": "http://127.0.0.1:8000/oidc/callback", "session_store": "memory://", "cookie_secure": "false"}


def test_settings_defaults() -> None:
    s = parse_settings(BASE)
    assert (s.metrics, s.metrics_path, s.structlog, s.log_format) == (False, None, False, "json")
    assert [str(n) for n in s.metrics_allow] == ["127.0.0.0/8", "::1/128"]
    s = parse_settings({**BASE, "metrics": "true", "metrics_path": "/metrics/", "metrics_allow": "10.0.0.1, 192.168.0.0/16",
                        "structlog": "on", "log_format": "console"})
    assert (s.metrics, s.metrics_path, s.structlog, s.log_format) == (True, "/metrics", True, "console")
    assert [str(n) for n in s.metrics_allow] == ["10.0.0.1/32", "192.168.0.0/16"]


@pytest.mark.parametrize(("extra", "key"), [
    ({"metrics": "maybe"}, "metrics"),
    ({"metrics_path": "/metrics"}, "metrics_path"),
    ({"metrics": "true", "metrics_path": "metrics"}, "metrics_path"),
    ({"metrics": "true", "metrics_path": "/oidc/login"}, "metrics_path"),
    ({"metrics": "true", "metrics_path": "/"}, "metrics_path"),
    ({"metrics": "true", "metrics_allow": "localhost"}, "metrics_allow"),
    ({"metrics": "true", "metrics_allow": "10.0.0.0/33"}, "metrics_allow"),
    ({"structlog": "2"}, "structlog"),
    ({"log_format": "xml"}, "log_format"),
])
def test_settings_errors_name_the_key(extra: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, **extra})
    assert str(info.value).startswith(key)


# -- exposition --------------------------------------------------------------------------------------

def test_metrics_path_allow_list(tmp_path: Path) -> None:
    with dev_stack(tmp_path, settings=METRIC_SETTINGS) as s:
        ok = requests.get(s.base + "/metrics", timeout=5)
        assert ok.status_code == 200
        assert ok.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "fcplus_flow_steps_total" in ok.text and ok.headers["Cache-Control"] == "no-store"
        om = requests.get(s.base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                          timeout=5)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
        assert requests.post(s.base + "/metrics", timeout=5).status_code == 405
    with dev_stack(tmp_path, settings={**METRIC_SETTINGS, "metrics_allow": "10.0.0.0/8"}) as s:
        for headers in ({}, {"X-Forwarded-For": "10.1.2.3"}, {"X-Real-IP": "10.1.2.3"}):
            refused = requests.get(s.base + "/metrics", headers=headers, timeout=5)
            assert refused.status_code == 404 and "fcplus" not in refused.text
    with dev_stack(tmp_path, settings={"metrics": "true"}) as s:  # no metrics_path: the app's own /metrics
        passed = requests.get(s.base + "/metrics", timeout=5)
        assert passed.json()["path"] == "/metrics" and "fcplus_flow" not in passed.text


@pytest.mark.parametrize(("addr", "allowed"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True), ("[::1]", True),
    ("10.0.0.1", False), ("", False), (None, False), ("localhost", False), ("::2", False), ("127.0.0.1, 10.0.0.1", False),
])
def test_client_allowed(addr: Any, allowed: bool) -> None:
    assert client_allowed(addr, parse_settings({**BASE, "metrics": "true"}).metrics_allow) is allowed


def test_each_middleware_has_its_own_registry(tmp_path: Path) -> None:
    with dev_stack(tmp_path, settings=METRIC_SETTINGS) as a, dev_stack(tmp_path, settings=METRIC_SETTINGS) as b:
        a.browser().sign_in()
        assert value(a.middleware, "fcplus_logins_total", provider=PROVIDER, acr="eidas2") == 1
        assert value(b.middleware, "fcplus_logins_total", provider=PROVIDER, acr="eidas2") == 0
    shared = CollectorRegistry()
    one, two = PrometheusMetrics(PROVIDER, registry=shared), PrometheusMetrics(PROVIDER, registry=shared)
    one.observe(FlowEvent("login", "success", PROVIDER, "c1", acr="eidas2"))
    two.observe(FlowEvent("login", "success", PROVIDER, "c2", acr="eidas2"))
    assert shared.get_sample_value("fcplus_logins_total", {"provider": PROVIDER, "acr": "eidas2"}) == 2


def test_standalone_exporter(tmp_path: Path) -> None:
    with dev_stack(tmp_path, settings={"metrics": "true"}) as s:
        s.browser().sign_in()
        port = free_port()
        server, thread = serve_metrics(port, s.middleware)
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert 'fcplus_logins_total{acr="eidas2",provider="fcplus-integration"} 1.0' in text
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    with pytest.raises(ValueError, match="serve_metrics needs"):
        serve_metrics(free_port(), object())


# -- logs ----------------------------------------------------------------------------------------------

def _capture(name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, buffer, handler


def test_default_is_the_stdlib_subscriber_and_structlog_replaces_it(tmp_path: Path) -> None:
    logger, buffer, handler = _capture("fcplus_wsgi.flow")
    try:
        with dev_stack(tmp_path) as s:
            s.browser().sign_in()
        plain = buffer.getvalue()
        assert "INFO fcplus.token.success provider=fcplus-integration" in plain and "{" not in plain
        buffer.truncate(0)
        buffer.seek(0)
        with dev_stack(tmp_path, settings={"structlog": "true", "log_format": "console"}) as s:
            s.browser().sign_in()
        console = buffer.getvalue().splitlines()
        tokens = [line for line in console if "fcplus.token" in line]
        assert len(tokens) == 1, console  # one line per step: the plain subscriber is off
        assert "fcplus.token.exchanged" in tokens[0] and "provider=fcplus-integration" in tokens[0]
        assert "duration_ms=" in tokens[0] and "correlation_id=" in tokens[0] and "{" not in tokens[0]
        assert SECRET not in buffer.getvalue() and CLIENT_ID not in buffer.getvalue()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_paste_ini_logging_sections_route_the_json_lines(tmp_path: Path) -> None:
    """The same sections an operator writes in the Paste ini (pserve and gunicorn --paste
    hand them to logging.config.fileConfig)."""
    import logging.config

    ini = tmp_path / "logging.ini"
    out = tmp_path / "flow.jsonl"
    ini.write_text(f"""
[loggers]
keys = root, flow
[handlers]
keys = file
[formatters]
keys = json
[logger_root]
level = WARNING
handlers =
[logger_flow]
level = INFO
handlers = file
qualname = fcplus_wsgi.flow
propagate = 0
[handler_file]
class = FileHandler
args = ('{out}',)
formatter = json
[formatter_json]
format = %(message)s
""")
    flow_logger = logging.getLogger("fcplus_wsgi.flow")
    saved = (flow_logger.handlers[:], flow_logger.level, flow_logger.propagate)
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    try:
        with dev_stack(tmp_path, settings={"structlog": "true"}) as s:
            s.browser().sign_in()
    finally:
        for h in flow_logger.handlers:
            h.close()
        flow_logger.handlers[:], flow_logger.level, flow_logger.propagate = saved
    events = [json.loads(line)["event"] for line in out.read_text().splitlines()]
    assert events == [event_name(step, outcome) for step, outcome in LOGIN_EVENTS]


def test_documented_manual_wiring_into_an_app_registry(tmp_path: Path) -> None:
    """docs/observability.md: publish into the application's own registry."""
    from fcplus_wsgi.events import stdlib_log_subscriber
    from fcplus_wsgi.observability import store_backend
    from fcplus_wsgi.stores import open_store

    app_registry = CollectorRegistry()
    metrics = PrometheusMetrics(PROVIDER, registry=app_registry)
    bus = EventBus()
    bus.subscribe(metrics.observe)
    bus.subscribe(stdlib_log_subscriber())
    store = open_store(f"sqlite:///{tmp_path}/s.sqlite3")
    kw = {"bus": bus, "store": metrics.instrument_store(store, store_backend(store))}
    with dev_stack(tmp_path, middleware_kw=kw) as s:
        assert s.middleware.observability is None
        s.browser().sign_in()
    assert app_registry.get_sample_value("fcplus_logins_total", {"provider": PROVIDER, "acr": "eidas2"}) == 1
    assert app_registry.get_sample_value("fcplus_store_operation_duration_seconds_count",
                                         {"backend": "sqlite", "operation": "put"}) == 2  # used state, session


def test_multiprocess_folder_set_too_late_is_ignored_with_a_warning(tmp_path: Path) -> None:
    code = f"""
import logging, os
logging.basicConfig(level=logging.WARNING, format="%(message)s")
import prometheus_client
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
from fcplus_wsgi.events import FlowEvent
from fcplus_wsgi.observability import PrometheusMetrics
metrics = PrometheusMetrics("fcplus-integration")
assert not metrics.multiprocess
metrics.observe(FlowEvent("login", "success", "fcplus-integration", "c", acr="eidas2"))
print(metrics.sample("fcplus_logins_total", {{"provider": "fcplus-integration", "acr": "eidas2"}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.0"
    assert "set after prometheus_client was imported" in out.stderr
    assert list(tmp_path.iterdir()) == []
