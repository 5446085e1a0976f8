"""End to end over real loopback HTTP: browser -> middleware -> development provider.

Covers the core promises: sign-in with FC+ policy (encrypted, signed tokens), claims in
environ, session reuse, API clients get 401, the public JWKS, logout through the
provider, and that failures never reach the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.devstack import Browser, DevStack, dev_stack


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    with dev_stack(tmp_path) as s:
        yield s


def test_sign_in_puts_verified_claims_in_environ(stack: DevStack) -> None:
    browser = stack.browser()
    page = browser.sign_in("/private/page?tab=2", identity="marie-martin", acr="eidas3")
    assert page.status_code == 200
    seen = page.json()
    assert seen["path"] == "/private/page" and seen["query"] == "tab=2"
    assert seen["sub"] and seen["remote_user"] == seen["sub"] and seen["sub"].endswith("v1")
    assert seen["acr"] == "eidas3"
    assert seen["claims"]["family_name"] == "MARTIN"
    assert seen["claims"]["sub"] == seen["sub"]
    assert seen["id_token_claims"]["aud"] == "fcplus-e2e"
    assert seen["id_token_claims"]["iss"] == stack.issuer


def test_session_is_reused_without_provider_round_trip(stack: DevStack) -> None:
    browser = stack.browser()
    browser.sign_in()
    calls_before = len(stack.calls)
    for _ in range(3):
        page = browser.get("/private/other")
        assert page.status_code == 200 and page.json()["sub"]
    assert len(stack.calls) == calls_before + 3


def test_session_cookie_attributes(stack: DevStack) -> None:
    browser = stack.browser()
    first = browser.get("/private/")
    back = browser.decide(first.headers["Location"])
    done = browser.get(back.headers["Location"])
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": "*/*"},
    {"X-Requested-With": "XMLHttpRequest"},
    {"Accept": "application/json"},
])
def test_scripts_get_401_not_a_redirect(stack: DevStack, headers: dict[str, str]) -> None:
    browser = stack.browser()
    response = browser.get("/api/items", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("OpenIDConnect")
    assert response.json()["login_url"].startswith("/oidc/login?return_to=/api/items")
    assert stack.calls == []


def test_post_to_protected_path_is_401(stack: DevStack) -> None:
    response = stack.browser().http.post(stack.base + "/private/form", data={"a": "b"}, allow_redirects=False)
    assert response.status_code == 401


def test_jwks_endpoint_publishes_public_keys_only(stack: DevStack) -> None:
    response = stack.browser().get("/oidc/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {k["kty"] for k in keys} == {"RSA", "EC"}
    # The RSA key declares no alg: the provider may pick RSA-OAEP or RSA-OAEP-256 for it.
    assert any(k["kty"] == "RSA" and "alg" not in k and k["use"] == "enc" for k in keys)
    assert any(k.get("alg") == "ECDH-ES" and k["use"] == "enc" for k in keys)
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["kid"]


def test_public_paths_pass_through_and_spoofed_identity_never_reaches_the_app(stack: DevStack) -> None:
    spoof = {"Remote-User": "admin", "X-Remote-User": "admin", "X-Forwarded-User": "admin",
             "X-Fcplus-Sub": "admin"}
    response = stack.browser().get("/public", headers=spoof)
    assert response.status_code == 200
    seen = response.json()
    assert seen["remote_user"] is None and seen["sub"] is None
    assert seen["spoofable"] == {}


def test_spoofed_headers_are_stripped_for_signed_in_users_too(stack: DevStack) -> None:
    browser = stack.browser()
    sub = browser.sign_in().json()["sub"]
    seen = browser.get("/private/x", headers={"Remote-User": "admin", "X-Remote-User": "admin"}).json()
    assert seen["remote_user"] == sub
    assert "HTTP_REMOTE_USER" not in seen["spoofable"] and "HTTP_X_REMOTE_USER" not in seen["spoofable"]


def test_refusal_at_provider_is_a_friendly_page_and_never_reaches_app(stack: DevStack) -> None:
    browser = stack.browser()
    first = browser.get("/private/")
    back = browser.decide(first.headers["Location"], decision="refuse")
    page = browser.get(back.headers["Location"])
    assert page.status_code == 403
    assert "Réessayer" in page.text and "Try again" in page.text
    assert 'id="correlation-id"' in page.text
    assert "Traceback" not in page.text
    assert stack.calls == []
    assert browser.get("/private/").status_code == 302


def test_replayed_callback_is_refused(stack: DevStack) -> None:
    browser = stack.browser()
    first = browser.get("/private/")
    back = browser.decide(first.headers["Location"])
    assert browser.get(back.headers["Location"]).status_code == 303
    replay = browser.get(back.headers["Location"])
    assert replay.status_code == 400
    assert "expiré" in replay.text


def test_callback_in_another_browser_is_refused(stack: DevStack) -> None:
    victim, attacker = stack.browser(), stack.browser()
    first = attacker.get("/private/")
    back = attacker.decide(first.headers["Location"])
    page = victim.get(back.headers["Location"])  # login CSRF: attacker's code in the victim's browser
    assert page.status_code == 403
    assert victim.get("/private/").status_code == 302
    assert stack.calls == []


def test_session_id_set_before_login_is_never_reused(stack: DevStack) -> None:
    browser = stack.browser()
    planted = "A" * 43
    browser.http.cookies.set("fcplus", planted, domain="127.0.0.1", path="/")
    browser.sign_in()
    assert browser.http.cookies.get("fcplus") != planted


def test_logout_goes_through_end_session_and_back(stack: DevStack) -> None:
    browser = stack.browser()
    browser.sign_in()
    out = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})  # a link on the service's page
    assert out.status_code == 303
    target = urlsplit(out.headers["Location"])
    assert out.headers["Location"].startswith(stack.issuer + "/session/end?")
    params = parse_qs(target.query)
    assert params["id_token_hint"][0].count(".") == 2  # the signed inner JWS, not the JWE
    assert params["post_logout_redirect_uri"] == [stack.base + "/oidc/logout-callback"]
    assert len(params["state"][0]) == 64
    back = browser.get(out.headers["Location"])
    assert back.status_code in (302, 303)
    landed = browser.get(back.headers["Location"])
    assert landed.status_code == 303 and landed.headers["Location"] == "/"
    assert browser.get("/private/").status_code == 302


def test_logout_callback_with_bad_state_is_neutral(stack: DevStack) -> None:
    browser = stack.browser()
    page = browser.get("/oidc/logout-callback?state=" + "0" * 64)
    assert page.status_code == 200
    assert "déconnecté" in page.text


def test_login_path_with_open_redirect_is_refused(stack: DevStack) -> None:
    for target in ("//evil.example", "https://evil.example", "/\\evil.example", "/%2F%2Fevil.example"):
        response = stack.browser().get("/oidc/login", params={"return_to": target})
        assert response.status_code == 400, target


def test_login_path_step_up_sends_requested_level(stack: DevStack) -> None:
    response = stack.browser().get("/oidc/login", params={"return_to": "/private/vault", "acr": "eidas3"})
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["acr_values"] == ["eidas3"]


def test_ecdh_es_encryption(tmp_path: Path) -> None:
    with dev_stack(tmp_path, client={"id_token_encrypted_response_alg": "ECDH-ES",
                                     "userinfo_encrypted_response_alg": "ECDH-ES"}) as s:
        seen = Browser(s).sign_in().json()
        assert seen["sub"] and seen["claims"]["given_name"]


def test_unencrypted_tokens_are_refused_under_fcplus_policy(tmp_path: Path) -> None:
    with dev_stack(tmp_path, client={"id_token_encrypted_response_alg": None,
                                     "userinfo_encrypted_response_alg": None}) as s:
        browser = Browser(s)
        first = browser.get("/private/")
        back = browser.decide(first.headers["Location"])
        page = browser.get(back.headers["Location"])
        assert page.status_code == 401
        assert s.calls == []


def test_memory_store_and_paste_pipeline(tmp_path: Path) -> None:
    """The Paste entry points load the filter and the demo app from an ini file."""
    from paste.deploy import loadapp

    from fcplus_wsgi.keys import generate_private_jwks
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(generate_private_jwks()))
    ini = tmp_path / "app.ini"
    ini.write_text("""
[pipeline:main]
pipeline = fcplus demo

[filter:fcplus]
use = egg:fcplus_wsgi#fcplus
provider = fcplus-integration
issuer = http://127.0.0.1:9/api/v2
client_id = paste-client
client_secret = ${FCPLUS_TEST_SECRET}
redirect_uri = http://127.0.0.1:8000/oidc/callback
keys_file = %(here)s/keys.json
session_store = memory://
cookie_secure = false
protected_paths = /private

[app:demo]
use = egg:fcplus_wsgi#demo
""")
    import os
    os.environ["FCPLUS_TEST_SECRET"] = "from-the-environment-" + "x" * 20
    try:
        app = loadapp(f"config:{ini}")
    finally:
        del os.environ["FCPLUS_TEST_SECRET"]
    from webtest import TestApp
    client = TestApp(app)
    assert client.get("/").status_int == 200
    assert client.get("/oidc/jwks.json").json["keys"]
    # Provider down (port 9): a clear 5xx page, not a traceback.
    page = client.get("/private/", headers={"Accept": "text/html"}, status="*")
    assert page.status_int in (502, 503, 504)
    assert "Traceback" not in page.text


def test_paste_configuration_error_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys
    ini = tmp_path / "bad.ini"
    ini.write_text("[pipeline:main]\npipeline = fcplus demo\n\n[filter:fcplus]\nuse = egg:fcplus_wsgi#fcplus\n"
                   "provider = fcplus-prod\nclient_id = x\n\n[app:demo]\nuse = egg:fcplus_wsgi#demo\n")
    code = f"from paste.deploy import loadapp; loadapp('config:{ini}')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("fcplus-wsgi: configuration error: provider = 'fcplus-prod'")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_accented_path_comes_back_intact(stack: DevStack) -> None:
    browser = stack.browser()
    first = browser.get("/private/d%C3%A9marches?x=%C3%A9")
    back = browser.decide(first.headers["Location"])
    done = browser.get(back.headers["Location"])
    assert done.headers["Location"] == "/private/d%C3%A9marches?x=%C3%A9"
    seen = browser.get(done.headers["Location"]).json()
    assert seen["path"].encode("latin-1").decode("utf-8") == "/private/démarches"  # PEP 3333 form


def test_accented_protected_prefix_is_enforced(tmp_path: Path) -> None:
    with dev_stack(tmp_path, settings={"protected_paths": "/démarches /d%C3%A9penses"}) as s:
        browser = Browser(s)
        assert browser.get("/d%C3%A9marches/formulaire").status_code == 302
        assert browser.get("/d%C3%A9penses").status_code == 302
        assert browser.get("/accueil").status_code == 200
        assert s.calls and all(c["path"] == "/accueil" for c in s.calls)


@pytest.mark.parametrize("path", ["/public/../private/x", "/public/./../private/x", "/public//../private/x",
                                  "//private/x", "/./private/x", "/public/%2e%2e/private/x"])
def test_dot_segments_cannot_turn_a_protected_path_public(tmp_path: Path, path: str) -> None:
    import http.client
    with dev_stack(tmp_path, settings={"protected_paths": "/private", "public_paths": "/public"}) as s:
        host, port = s.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)  # sends the path verbatim
        connection.request("GET", path, headers={"Accept": "text/html"})
        response = connection.getresponse()
        assert response.status == 302, path
        assert s.calls == []
        connection.close()


def test_dot_segment_paths_stay_protected_on_every_request(tmp_path: Path) -> None:
    """Each path's judgement is remembered after its first request: the hundredth visit of a
    tricky path is judged as strictly as the first, and public paths stay public."""
    import http.client
    with dev_stack(tmp_path, settings={"protected_paths": "/private", "public_paths": "/public"}) as s:
        host, port = s.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        for _ in range(100):
            for path, status in (("/public/../private/x", 302), ("//private/x", 302), ("/public/x", 200),
                                 ("/public/./x", 200), ("/private/../public/x", 302)):
                connection.request("GET", path, headers={"Accept": "text/html"})
                response = connection.getresponse()
                response.read()
                assert response.status == status, path
        assert {c["path"] for c in s.calls} == {"/public/x", "/public/./x"}
        connection.close()


def test_the_app_may_change_its_claims_without_touching_the_next_request(tmp_path: Path) -> None:
    """The claims dicts in environ are the app's own: a change made while handling one request
    (the session's opened copy is shared by every request of the session) never shows in the next."""
    seen: list[dict[str, Any]] = []

    def meddling_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        claims, id_claims = environ["fcplus.claims"], environ["fcplus.id_token_claims"]
        assert type(claims) is dict and type(id_claims) is dict
        seen.append({"family_name": claims.get("family_name"), "acr": id_claims.get("acr")})
        claims["family_name"] = "CHANGED"
        id_claims["acr"] = "changed"
        claims.clear()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with dev_stack(tmp_path, app=meddling_app) as s:
        browser = s.browser()
        assert browser.sign_in("/private/page").status_code == 200
        for _ in range(3):
            assert browser.get("/private/page").status_code == 200
        assert len(seen) == 4
        assert all(entry == {"family_name": "MARTIN", "acr": "eidas2"} for entry in seen), seen
