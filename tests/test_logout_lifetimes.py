"""Logout, revocation and session lifetimes, end to end with the development provider.

Lifetimes are driven by an injected clock, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi import login_url, logout_form, logout_url
from fcplus_wsgi.events import EventBus, FlowEvent
from tests.support.devstack import CLIENT_ID, Browser, DevStack, dev_stack


class Clock:
    def __init__(self) -> None:
        import time
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[FlowEvent]:
    return []


@pytest.fixture
def stack(tmp_path: Path, clock: Clock, events: list[FlowEvent]):  # type: ignore[no-untyped-def]
    bus = EventBus()
    bus.subscribe(events.append)
    with dev_stack(tmp_path, settings={"session_idle_timeout": "600", "session_max_age": "3600"},
                   middleware_kw={"clock": clock, "bus": bus}) as s:
        yield s


def test_logout_revokes_the_access_token_at_the_provider(stack: DevStack, events: list[FlowEvent]) -> None:
    browser = Browser(stack)
    browser.sign_in()
    assert stack.provider_app.revocations(CLIENT_ID) == 0
    out = browser.http.post(stack.base + "/oidc/logout", allow_redirects=False)  # a form POST works too
    assert out.status_code == 303
    assert stack.provider_app.revocations(CLIENT_ID) == 1
    steps = [(e.step, e.outcome) for e in events]
    assert ("logout", "success") in steps and ("revocation", "success") in steps
    assert any(e.step == "session_ended" and e.extra.get("reason") == "logout" for e in events)


def test_cross_site_logout_asks_for_confirmation(stack: DevStack) -> None:
    browser = Browser(stack)
    browser.sign_in()
    page = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200
    assert 'method="post"' in page.text and "/oidc/logout" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "form-action 'self' " + stack.issuer.rsplit("/api/v2", 1)[0] in csp
    assert browser.get("/private/").status_code == 200  # still signed in until confirmed


def test_logout_when_provider_is_unreachable(tmp_path: Path) -> None:
    with dev_stack(tmp_path) as s:
        browser = Browser(s)
        browser.sign_in()
        s.middleware.client._metadata = None  # forget the cached discovery, then cut the provider off
        s.middleware.client.issuer = "http://127.0.0.1:9/api/v2"
        page = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
        assert page.status_code == 503
        assert "déconnecté de ce service" in page.text and "signed out of this service" in page.text
        calls = len(s.calls)
        after = browser.get("/private/")  # signed out: a new sign-in cannot even start
        assert after.status_code == 503 and len(s.calls) == calls


def test_idle_timeout_ends_the_session_and_keeps_the_return_path(stack: DevStack, clock: Clock,
                                                                events: list[FlowEvent]) -> None:
    browser = Browser(stack)
    browser.sign_in()
    clock.now += 599
    assert browser.get("/private/a").status_code == 200  # activity refreshes the idle clock
    clock.now += 599
    assert browser.get("/private/b").status_code == 200
    clock.now += 601
    again = browser.get("/private/c?d=1")
    assert again.status_code == 302
    back = browser.decide(again.headers["Location"])
    assert browser.get(back.headers["Location"]).headers["Location"] == "/private/c?d=1"
    assert any(e.step == "session_ended" and e.extra.get("reason") == "idle" for e in events)


def test_absolute_lifetime_ends_even_an_active_session(stack: DevStack, clock: Clock,
                                                       events: list[FlowEvent]) -> None:
    browser = Browser(stack)
    browser.sign_in()
    for _ in range(6):
        clock.now += 590
        assert browser.get("/private/").status_code == 200
    clock.now += 100  # 3640 s > session_max_age, within the store's grace: the reason is known
    assert browser.get("/private/").status_code == 302
    assert any(e.step == "session_ended" and e.extra.get("reason") == "max_age" for e in events)


def test_idle_clock_is_not_written_on_every_request(stack: DevStack, clock: Clock) -> None:
    browser = Browser(stack)
    browser.sign_in()
    writes: list[str] = []
    store = stack.middleware.store
    original = store.put

    def counting_put(key: str, value: bytes, ttl: float) -> None:
        writes.append(key)
        original(key, value, ttl)

    store.put = counting_put  # type: ignore[method-assign]
    for _ in range(20):
        clock.now += 1
        assert browser.get("/private/").status_code == 200
    assert writes == []  # 20 s < a tenth of the 600 s idle timeout
    clock.now += 60
    assert browser.get("/private/").status_code == 200
    assert len(writes) == 1


def test_pending_login_expires(stack: DevStack, clock: Clock) -> None:
    browser = Browser(stack)
    first = browser.get("/private/")
    back = browser.decide(first.headers["Location"])
    clock.now += 601  # pending_login_ttl defaults to 600 s
    page = browser.get(back.headers["Location"])
    assert page.status_code == 400 and "expiré" in page.text


def test_link_helpers_follow_the_configured_paths(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["login"] = login_url(environ, "/private/x", acr="eidas3")
        seen["logout"] = logout_url(environ)
        seen["form"] = logout_form(environ, label="Quitter <vite>")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with dev_stack(tmp_path, app=app, settings={"login_path": "/auth/in", "logout_path": "/auth/out"}) as s:
        assert Browser(s).get("/public").status_code == 200
    assert seen["login"] == "/auth/in?return_to=/private/x&acr=eidas3"
    assert seen["logout"] == "/auth/out"
    assert 'action="/auth/out"' in seen["form"] and "Quitter &lt;vite&gt;" in seen["form"]
    with pytest.raises(ValueError):
        login_url({"fcplus_wsgi.middleware": s.middleware}, "//evil.example")
    with pytest.raises(LookupError):
        logout_url({})


def test_logout_clears_a_host_prefixed_cookie_with_secure(tmp_path: Path) -> None:
    """Browsers ignore the deletion of a __Host- cookie unless the deletion is Secure too."""
    import json

    from webtest import TestApp

    from fcplus_wsgi import FCPlusMiddleware
    from fcplus_wsgi.keys import generate_private_jwks
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(generate_private_jwks()))
    app = TestApp(FCPlusMiddleware(lambda e, s: [], {
        "provider": "fcplus-integration", "client_id": "c", "client_secret": "s" * 40,
        "redirect_uri": "https://service.example/oidc/callback", "keys_file": str(keys),
        "session_store": "memory://"}))
    response = app.get("/oidc/logout", headers={"Cookie": "__Host-fcplus=" + "A" * 43, "Sec-Fetch-Site": "same-origin"})
    cleared = [c for c in response.headers.getall("Set-Cookie") if c.startswith("__Host-fcplus=")]
    attributes = cleared[0].lower()  # cookie attribute names are case-insensitive (RFC 6265)
    assert "; secure" in attributes and "max-age=0" in attributes and "path=/" in attributes
