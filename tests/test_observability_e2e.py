"""The observability plugins end to end: a real Prometheus scrapes the middleware on
loopback while scripted sign-ins run against the development provider (successes, user
cancellations, a token error from an expired code, a logout). Read back through
Prometheus's HTTP API, the counts match what the test did; every expression of the
Grafana dashboard and of the alert rules evaluates without error; and the structlog
lines captured meanwhile follow the documented sequence without a single token, code,
secret or claim value.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.keys import generate_private_jwks
from fcplus_wsgi.observability.catalogue import METRICS_BY_NAME
from tests.support.devstack import CLIENT_ID, SECRET, Browser, DevStack, whoami_app
from tests.support.prometheus_server import Prometheus, prometheus_binary, promtool_binary, run_prometheus
from tests.support.servers import LateApp, serve_wsgi

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "fcplus-dashboard.json"
ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"

SUCCESS_SEQUENCE = ("fcplus.login_redirect.redirected", "fcplus.callback.received", "fcplus.token.exchanged",
                    "fcplus.id_token.validated", "fcplus.userinfo.fetched", "fcplus.session.created",
                    "fcplus.login.succeeded")
CANCEL_SEQUENCE = ("fcplus.login_redirect.redirected", "fcplus.callback.failed")
TOKEN_ERROR_SEQUENCE = ("fcplus.login_redirect.redirected", "fcplus.callback.received", "fcplus.token.failed")


class ProviderClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Recorder:
    """Wraps the provider app and keeps every token and userinfo body it sends, so the
    test knows exactly which secrets must never show up in the logs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        chunks = list(self.app(environ, start_response))
        if path.endswith(("/token", "/userinfo")):
            self.bodies.append(b"".join(chunks))
        return chunks


@dataclass
class Observed:
    stack: DevStack
    clock: ProviderClock
    recorder: Recorder
    log: io.StringIO
    secrets: set[str] = field(default_factory=set)
    cancel_cids: list[str] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)

    @property
    def hostport(self) -> str:
        return urlsplit(self.stack.base).netloc

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("observed")
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps(generate_private_jwks()))
    # Everything the package logs (flow, devprovider, warnings) goes to one buffer.
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("fcplus_wsgi")
    old_level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    late_app, late_provider = LateApp(), LateApp()
    try:
        with serve_wsgi(late_app) as base, serve_wsgi(late_provider) as provider_base:
            issuer = provider_base + "/api/v2"
            clock = ProviderClock()
            provider = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(
                client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=[base + "/oidc/callback"],
                post_logout_redirect_uris=[base + "/oidc/logout-callback"], jwks_uri=base + "/oidc/jwks.json")]),
                clock=clock)
            recorder = Recorder(provider)
            late_provider.app = recorder
            calls: list[dict[str, Any]] = []
            middleware = FCPlusMiddleware(whoami_app(calls), {
                "provider": "fcplus-integration", "issuer": issuer, "client_id": CLIENT_ID, "client_secret": SECRET,
                "redirect_uri": base + "/oidc/callback", "post_logout_redirect_uri": base + "/oidc/logout-callback",
                "keys_file": str(keys_file), "session_store": "memory://", "cookie_secure": "false",
                "protected_paths": "/private", "acr_values": "eidas2",
                "metrics": "true", "metrics_path": "/metrics", "structlog": "true", "log_format": "json",
            })
            late_app.app = middleware
            stack = DevStack(base=base, issuer=issuer, middleware=middleware, provider_app=provider, calls=calls,
                             tmp=tmp)
            yield Observed(stack, clock, recorder, buffer, secrets={SECRET})
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)


def _code_of(response: requests.Response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query).get("code", [""])[0]


def run_scripted_logins(obs: Observed) -> None:
    """3 successes (one logs out), 2 cancellations, 1 token error; remember every secret."""
    for identity, acr in (("marie-martin", "eidas2"), ("amina-benali", "eidas3"), ("marie-martin", "eidas3")):
        browser = Browser(obs.stack)
        first = browser.get("/private/page")
        assert first.status_code == 302
        back = browser.decide(first.headers["Location"], identity=identity, acr=acr)
        obs.secrets.add(_code_of(back))
        done = browser.get(back.headers["Location"], headers={"X-Request-ID": f"req-{identity}-{acr}"})
        assert done.status_code == 303, done.text[:300]
        page = browser.get(done.headers["Location"])
        assert page.status_code == 200
        seen = page.json()
        obs.secrets.add(seen["sub"])
        for source in (seen["claims"], seen["id_token_claims"]):
            obs.secrets.update(str(v) for k, v in source.items()
                               if k not in ("iss", "aud", "acr", "amr", "exp", "iat", "auth_time", "idp_id"))
        obs.done["success"] += 1
        if obs.done["success"] == 1:
            out = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
            assert out.status_code == 303
            obs.done["logout"] += 1
    for _ in range(2):
        browser = Browser(obs.stack)
        first = browser.get("/private/page")
        back = browser.decide(first.headers["Location"], decision="refuse")
        page = browser.get(back.headers["Location"])
        assert page.status_code == 403
        obs.cancel_cids.append(page.headers["X-Correlation-ID"])
        obs.done["cancel"] += 1
    browser = Browser(obs.stack)
    first = browser.get("/private/page")
    back = browser.decide(first.headers["Location"])
    obs.secrets.add(_code_of(back))
    obs.clock.offset = 120  # the code (30 s) is expired when the middleware redeems it
    try:
        page = browser.get(back.headers["Location"])
    finally:
        obs.clock.offset = 0
    assert page.status_code == 400, page.text[:300]
    obs.done["token_error"] += 1
    for body in obs.recorder.bodies:
        text = body.decode()
        if text.startswith("{"):
            data = json.loads(text)
            obs.secrets.update(str(data[k]) for k in ("access_token", "id_token") if k in data)
        else:
            obs.secrets.add(text.strip())  # the userinfo JWT


def grafana_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    return exprs


def resolve(expr: str) -> str:
    """Grafana's variables as Grafana would expand them for an "All" selection."""
    return (expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "15s")
            .replace("$provider", ".*"))


def _alert_rules() -> list[tuple[str, str]]:
    """(alert name, expr) from alerts.yml: a plain parse of the `expr:` blocks keeps the
    test free of a YAML dependency; Prometheus loading the file checks the rest."""
    rules: list[tuple[str, str]] = []
    name, lines, collecting = "", [], False
    for raw in ALERTS.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("- alert:"):
            name = stripped.split(":", 1)[1].strip()
        if collecting:
            if raw.startswith(" " * 10) and not stripped.startswith(("for:", "labels:", "annotations:")):
                lines.append(stripped)
                continue
            rules.append((name, " ".join(lines)))
            collecting = False
        if stripped.startswith("expr:"):
            rest = stripped[len("expr:"):].strip()
            if rest in ("|", ">"):
                collecting, lines = True, []
            else:
                rules.append((name, rest))
    return rules


@pytest.mark.skipif(prometheus_binary() is None, reason="prometheus is not installed (Debian package prometheus)")
def test_prometheus_scrapes_counts_dashboard_and_alerts(observed: Observed, tmp_path: Path) -> None:
    with run_prometheus(tmp_path / "prom", [observed.hostport], rule_files=[ALERTS]) as prom:
        assert prom.wait_for('up{job="fcplus"}', 1.0) == 1.0, prom.log.read_text()[-2000:]
        run_scripted_logins(observed)
        assert observed.done == Counter(success=3, logout=1, cancel=2, token_error=1)
        assert prom.wait_for("sum(fcplus_logins_total)", 3.0) == 3.0
        # Every count read back matches what the script did.
        expect = {
            'sum(fcplus_flow_steps_total{step="login_redirect", outcome="success"})': 6,
            'sum(fcplus_flow_steps_total{step="session", outcome="success"})': 3,
            'sum(fcplus_flow_steps_total{step="callback", outcome="failure"})': 2,
            'sum(fcplus_flow_errors_total{step="callback", error="access_denied", category="user_cancelled"})': 2,
            'sum(fcplus_flow_steps_total{step="token", outcome="failure"})': 1,
            'sum(fcplus_flow_errors_total{step="token", error="token.invalid_grant", category="session_expired"})': 1,
            'sum(fcplus_logins_total{acr="eidas3"})': 2,
            'sum(fcplus_logins_total{acr="eidas2"})': 1,
            'sum(fcplus_login_duration_seconds_count)': 3,
            'sum(fcplus_sessions_ended_total{reason="logout"})': 1,
            'sum(fcplus_flow_steps_total{step="revocation", outcome="success"})': 1,
            'sum(fcplus_provider_request_duration_seconds_count{endpoint="token"})': 4,
            'sum(fcplus_provider_request_errors_total{endpoint="token", error="http_4xx"})': 1,
            'sum(fcplus_provider_request_duration_seconds_count{endpoint="discovery"})': 1,
            'sum(fcplus_jwks_refreshes_total{reason="initial"})': 1,
            'sum(fcplus_store_errors_total)': 0,
        }
        assert prom.wait_for(next(reversed(expect)), 0.0) == 0.0
        got = {expr: prom.value(expr) for expr in expect}
        assert got == {expr: float(v) for expr, v in expect.items()}
        assert prom.value('sum(fcplus_store_operation_duration_seconds_count{backend="memory", operation="take"})')

        # Every dashboard expression evaluates without error; the main panels have data.
        exprs = grafana_exprs()
        assert len(exprs) >= 20
        must_show = {"Sign-in rate", "Errors by step and code", "Provider latency p50 / p95 / p99 per endpoint",
                     "Sign-ins by acr (eIDAS level)", "Sessions ended by reason", "Store latency", "JWKS refreshes",
                     "Sign-in success ratio", "Errors over the range", "Sign-in duration (redirect to session)"}
        deadline = time.monotonic() + 20  # rates need two scrapes of a series born during the script
        while True:
            empty = set()
            for title, expr in exprs:
                if not prom.query(resolve(expr)):
                    empty.add(title)
            if not must_show & empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not must_show & empty, f"panels without data after the scripted sign-ins: {must_show & empty}"
        for _, expr in exprs:
            prom.query_range(resolve(expr), seconds=60, step="5s")
        ratio = prom.value(resolve(exprs[[t for t, _ in exprs].index("Sign-in success ratio")][1]))
        assert ratio == pytest.approx(3 / 6, rel=0.02)  # 3 sign-ins over 6 callbacks

        # Every alert expression evaluates; Prometheus itself loaded and ran the rules.
        rules = _alert_rules()
        assert len(rules) == 5
        for _, expr in rules:
            prom.query(expr)
        _wait_rules_evaluated(prom)


def _wait_rules_evaluated(prom: Prometheus) -> None:
    deadline = time.monotonic() + 20
    while True:
        groups = prom.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("2") and not
                         rule["lastEvaluation"].startswith("0001") for rule in rules):
            break
        assert time.monotonic() < deadline, groups
        time.sleep(0.5)
    assert {rule["name"] for rule in rules} == {name for name, _ in _alert_rules()}
    for rule in rules:
        assert rule["health"] == "ok", rule


def test_logs_follow_the_documented_sequence_and_hold_no_secret(observed: Observed) -> None:
    if not observed.done:
        run_scripted_logins(observed)
    records = observed.records()
    steps = [r for r in records if r.get("step") not in ("provider_request", None)]
    by_cid: dict[str, list[dict[str, Any]]] = {}
    for record in steps:
        if record["event"] in ("fcplus.logout.completed",):
            continue  # a logout opens its own correlation id before it finds the session
        by_cid.setdefault(record.get("correlation_id", ""), []).append(record)
    sequences = Counter(tuple(r["event"] for r in events) for cid, events in by_cid.items()
                        if events[0]["event"] == "fcplus.login_redirect.redirected")
    # The logout carries on with the correlation id of the sign-in that opened the session.
    assert sequences[SUCCESS_SEQUENCE] == 2, sequences
    assert sequences[(*SUCCESS_SEQUENCE, "fcplus.session.ended", "fcplus.revocation.revoked")] == 1, sequences
    assert sequences[CANCEL_SEQUENCE] == 2, sequences
    assert sequences[TOKEN_ERROR_SEQUENCE] == 1, sequences
    # One correlation id per flow, the same one the error page shows.
    for cid in observed.cancel_cids:
        failed = by_cid[cid][-1]
        assert failed["event"] == "fcplus.callback.failed"
        assert (failed["error"], failed["category"], failed["level"]) == ("access_denied", "user_cancelled", "info")
    token_failed = [r for r in steps if r["event"] == "fcplus.token.failed"]
    assert [(r["error"], r["category"], r["level"]) for r in token_failed] == [
        ("token.invalid_grant", "session_expired", "warning")]
    logins = [r for r in steps if r["event"] == "fcplus.login.succeeded"]
    assert sorted(r["acr"] for r in logins) == ["eidas2", "eidas3", "eidas3"]
    assert all(r["duration_ms"] > 0 and r["provider"] == "fcplus-integration" for r in logins)
    # X-Request-ID reaches the events of the request that carried it.
    callbacks = [r for r in steps if r["event"] == "fcplus.callback.received" and "request_id" in r]
    assert {r["request_id"] for r in callbacks} == {"req-marie-martin-eidas2", "req-amina-benali-eidas3",
                                                    "req-marie-martin-eidas3"}
    ended = [r for r in steps if r["event"] == "fcplus.session.ended"]
    assert [r["reason"] for r in ended] == ["logout"]
    # Provider calls are there at DEBUG, with their endpoint.
    endpoints = {r["endpoint"] for r in records if r.get("step") == "provider_request"}
    assert {"discovery", "jwks", "token", "userinfo", "revocation"} <= endpoints
    # Not one secret anywhere in what the package logged.
    text = observed.log.getvalue()
    secrets = {s for s in observed.secrets if len(s) >= 6}
    assert len(secrets) >= 15  # codes, tokens, userinfo JWTs, sub, claim values, client secret
    leaked = sorted(s[:12] + "…" for s in secrets if s in text)
    assert not leaked, f"secrets in the logs: {leaked}"
    for record in records:
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}", json.dumps(record)), record  # no JWT of any kind


def test_hostile_callbacks_keep_labels_in_their_sets(observed: Observed) -> None:
    browser = Browser(observed.stack)
    hostile = ["error=%3Cscript%3Ealert(1)%3C/script%3E&state=x", "error=access_denied&state=" + "a" * 64,
               "code=eyJhbGciOi.fake&state=" + "b" * 64, "error=" + "e" * 120 + "&error_description=sub%3D1234",
               "state=%00%01&code=1", "error=invalid_request&error=x&state=1"]
    for query in hostile:
        page = browser.get("/oidc/callback?" + query, headers={"X-Request-ID": "<script>" + "x" * 80})
        assert page.status_code in (400, 403), page.status_code
    metrics = browser.get("/metrics").text
    seen_labels = 0
    for family in text_string_to_metric_families(metrics):
        spec = METRICS_BY_NAME.get(family.name + "_total") or METRICS_BY_NAME.get(family.name)
        if spec is None:
            continue
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name in ("le", "quantile"):
                    continue
                assert value in spec.label(name).values(), (family.name, name, value)
                seen_labels += 1
    assert seen_labels > 100
    assert "script" not in metrics and "eyJ" not in metrics
    text = observed.log.getvalue()
    assert "<script>" not in text and "sub=1234" not in text and "e" * 120 not in text


@pytest.mark.skipif(promtool_binary() is None, reason="promtool is not installed (Debian package prometheus)")
def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    tool = promtool_binary()
    assert tool is not None
    check = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=ALERTS.parent, capture_output=True,
                          text=True, timeout=60)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_dashboard_is_importable_and_uses_only_catalogue_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["provider"]["datasource"]["uid"] == "${datasource}"
    known = set()
    for spec in METRICS_BY_NAME.values():
        known |= ({spec.name} if spec.kind == "counter"
                  else {spec.name + suffix for suffix in ("_bucket", "_count", "_sum")})
    used = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            used |= set(re.findall(r"\bfcplus_[a-z_]+", target["expr"]))
    assert used <= known, used - known
    assert len(used) >= 10
