"""Per preset, the exact set of parameters of every request the middleware sends.

A recording provider on loopback advertises what FranceConnect's core advertises (PKCE
S256 included, since its node-oidc-provider enables it) and records each request's keys.
The sets asserted here are the cores' allow-lists (docs/providers.md, "Wire profiles"):
one stray parameter strands every user on the platform's error page.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from webob import Request, Response

from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.keys import generate_private_jwks
from fcplus_wsgi.providers import ALIASES, PRESETS
from fcplus_wsgi.sessions import SESSION, new_session_id, seal, store_key
from fcplus_wsgi.settings import ConfigError
from tests.support.servers import serve_wsgi

SECRET = "wire-secret-" + "x" * 40
TOKEN = "A" * 43


class Recorder:
    """A provider that answers just enough and remembers what each endpoint received."""

    def __init__(self) -> None:
        self.issuer = ""
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.revocation_status = 200

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        route = req.path.rsplit("/api/v2", 1)[-1]
        with self.lock:
            self.seen.setdefault(route, []).append({
                "form": sorted(req.POST.keys()) if req.method == "POST" else [],
                "basic": req.headers.get("Authorization", "").startswith("Basic"),
            })
        if route == "/.well-known/openid-configuration":
            iss = self.issuer
            body: dict[str, Any] = {
                "issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
                "jwks_uri": iss + "/jwks", "userinfo_endpoint": iss + "/userinfo",
                "end_session_endpoint": iss + "/session/end", "revocation_endpoint": iss + "/token/revocation",
                "code_challenge_methods_supported": ["S256"],
            }
            return Response(json.dumps(body).encode(), content_type="application/json", charset=None)(environ, start_response)
        if route == "/token":
            return Response(json.dumps({"error": "invalid_grant"}).encode(), status=400, content_type="application/json",
                            charset=None)(environ, start_response)
        status = self.revocation_status if route == "/token/revocation" else 200
        return Response(b"", status=status)(environ, start_response)


@pytest.fixture(scope="module")
def provider() -> Iterator[Recorder]:
    recorder = Recorder()
    with serve_wsgi(recorder) as base:
        recorder.issuer = base + "/api/v2"
        yield recorder


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


_KEYS: list[str] = []


def middleware(provider: Recorder, preset: str | None, tmp_path: Any, **extra: str) -> FCPlusMiddleware:
    if not _KEYS:  # one key set for the module: RSA generation is the slow part
        _KEYS.append(json.dumps(generate_private_jwks()))
    keys = tmp_path / "keys.json"
    keys.write_text(_KEYS[0])
    settings = {"issuer": provider.issuer, "client_id": "wire-client", "client_secret": SECRET,
                "redirect_uri": "https://svc.example/oidc/callback",
                "post_logout_redirect_uri": "https://svc.example/oidc/logout-callback",
                "keys_file": str(keys), "session_store": "memory://", "protected_paths": "/private", **extra}
    if preset:
        settings["provider"] = preset
    return FCPlusMiddleware(app, settings)


def authorize_query(mw: FCPlusMiddleware, path: str = "/private") -> dict[str, list[str]]:
    resp = Request.blank(path, headers={"Accept": "text/html"}).get_response(mw)
    assert resp.status_int == 302, resp.text
    return parse_qs(urlsplit(resp.location).query, keep_blank_values=True)


CORE = {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce"}
EXPECTED_AUTHORIZE = {
    "fcplus": CORE | {"acr_values"},
    "franceconnect": CORE | {"acr_values"},
    "proconnect": CORE | {"code_challenge", "code_challenge_method"},
    "generic": CORE | {"code_challenge", "code_challenge_method"},
}
FC_ALLOWED = CORE | {"acr_values", "claims", "prompt", "idp_hint", "ui_locales"}
PC_ALLOWED = CORE | {"acr_values", "claims", "response_mode", "login_hint", "siret_hint", "prompt", "idp_hint",
                     "code_challenge", "code_challenge_method"}
CORE_ALLOW_LIST = {"fcplus": FC_ALLOWED, "franceconnect": FC_ALLOWED, "proconnect": PC_ALLOWED}
EXPECTED_TOKEN = {
    "fcplus": {"grant_type", "code", "redirect_uri", "client_id", "client_secret"},
    "franceconnect": {"grant_type", "code", "redirect_uri", "client_id", "client_secret"},
    "proconnect": {"grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier"},
}
FC_REVOCATION = {"token", "client_id", "client_secret"}
FC_END_SESSION = {"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "logout_hint", "ui_locales"}
SENT_END_SESSION = {"id_token_hint", "state", "post_logout_redirect_uri"}


INTEGRATION = sorted(name for name in PRESETS if "production" not in name)


def test_production_presets_share_the_integration_wire_profiles() -> None:
    for name, preset in PRESETS.items():
        if "production" in name:
            twin = PRESETS[name.replace("production", "integration")]
            assert preset.wire is twin.wire and preset.policy.require_https_issuer


@pytest.mark.parametrize("preset", INTEGRATION)
def test_authorize_carries_exactly_the_profile_parameters(provider: Recorder, preset: str, tmp_path: Any) -> None:
    mw = middleware(provider, preset, tmp_path)
    platform = PRESETS[preset].platform
    query = authorize_query(mw)
    assert set(query) == EXPECTED_AUTHORIZE[platform]
    assert set(query) <= CORE_ALLOW_LIST[platform]
    assert all(len(v) == 1 for v in query.values())
    assert 22 <= len(query["nonce"][0]) <= 512 and len(query["state"][0]) >= 32


def test_production_presets_refuse_a_plain_http_issuer(provider: Recorder, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="production"):
        middleware(provider, "fcplus-production", tmp_path)


@pytest.mark.parametrize("preset", ["fcplus-integration", "franceconnect-integration"])
def test_franceconnect_never_gets_pkce_though_discovery_advertises_it(provider: Recorder, preset: str,
                                                                      tmp_path: Any) -> None:
    query = authorize_query(middleware(provider, preset, tmp_path, prompt="login", request_amr="true"))
    assert "code_challenge" not in query and "code_challenge_method" not in query
    assert set(query) == EXPECTED_AUTHORIZE[PRESETS[preset].platform] | {"prompt", "claims"}
    assert set(query) <= FC_ALLOWED
    with pytest.raises(ConfigError, match="code_challenge"):
        middleware(provider, preset, tmp_path, pkce="true")


def test_proconnect_asks_acr_through_claims_and_hints_per_login(provider: Recorder, tmp_path: Any) -> None:
    mw = middleware(provider, "proconnect-integration", tmp_path, acr_values="eidas2 eidas3")
    query = authorize_query(mw, "/oidc/login?return_to=/private&idp_hint=fia1v2&login_hint=agent%40example.gouv.fr"
                                "&siret_hint=12345678901234&prompt=none")
    assert set(query) == EXPECTED_AUTHORIZE["proconnect"] | {"claims", "idp_hint", "login_hint", "siret_hint",
                                                             "prompt"}
    assert set(query) <= PC_ALLOWED
    assert json.loads(query["claims"][0]) == {"id_token": {"acr": {"essential": True, "values": ["eidas2", "eidas3"]}}}
    assert query["prompt"] == ["none"] and query["login_hint"] == ["agent@example.gouv.fr"]
    off = authorize_query(middleware(provider, "proconnect-integration", tmp_path, pkce="false"))
    assert set(off) == CORE


@pytest.mark.parametrize(("query", "why"), [
    ("login_hint=not-an-email", "email"), ("siret_hint=1234", "14"), ("siret_hint=1234567890123a", "14"),
    ("idp_hint=%3Cscript%3E", "identifier"), ("idp_hint=a&idp_hint=b", "repeated"), ("prompt=login", "prompt"),
    ("acr=eidas9", "acr"),
])
def test_bad_login_parameters_get_a_400_page_and_nothing_is_sent(provider: Recorder, tmp_path: Any, query: str,
                                                                 why: str) -> None:
    mw = middleware(provider, "proconnect-integration", tmp_path)
    resp = Request.blank("/oidc/login?return_to=/private&" + query, headers={"Accept": "text/html"}).get_response(mw)
    assert resp.status_int == 400 and "location" not in resp.headers
    assert "invalide" in resp.text and "invalid" in resp.text


@pytest.mark.parametrize("query", ["login_hint=a%40b.fr", "siret_hint=12345678901234", "prompt=none"])
def test_franceconnect_refuses_hints_its_core_does_not_take(provider: Recorder, tmp_path: Any, query: str) -> None:
    mw = middleware(provider, "fcplus-integration", tmp_path)
    resp = Request.blank("/oidc/login?return_to=/private&" + query, headers={"Accept": "text/html"}).get_response(mw)
    assert resp.status_int == 400


@pytest.mark.parametrize("platform", ["fcplus", "franceconnect", "proconnect"])
def test_token_request_keys(provider: Recorder, platform: str, tmp_path: Any) -> None:
    preset = f"{platform}-integration"
    mw = middleware(provider, preset, tmp_path)
    verifier = "v" * 43 if PRESETS[preset].wire.pkce else None
    before = len(provider.seen.get("/token", []))
    with pytest.raises(Exception):  # the recorder answers invalid_grant
        mw.client.exchange_code(code="c" * 43, redirect_uri="https://svc.example/oidc/callback",
                                client_id="wire-client", client_secret=SECRET, auth_method="client_secret_post",
                                code_verifier=verifier)
    sent = provider.seen["/token"][before]
    assert set(sent["form"]) == EXPECTED_TOKEN[platform] and not sent["basic"]


@pytest.mark.parametrize("preset", INTEGRATION)
def test_revocation_and_end_session_keys(provider: Recorder, preset: str, tmp_path: Any) -> None:
    mw = middleware(provider, preset, tmp_path)
    sid = new_session_id()
    record = {"v": 1, "sub": "s", "claims": {}, "idc": {}, "idt": "h.p.s", "at": TOKEN, "acr": None,
              "prov": preset, "created": time.time(), "seen": time.time(), "cid": "c"}
    mw.store.put(store_key(SESSION, sid), seal(SESSION, sid, record), 600)
    before = len(provider.seen.get("/token/revocation", []))
    done = mw.flow.start_logout(sid, browser_secret=None)
    sent = provider.seen["/token/revocation"][before]
    assert set(sent["form"]) == FC_REVOCATION and not sent["basic"]
    query = parse_qs(urlsplit(done.target).query)
    assert set(query) == SENT_END_SESSION and set(query) <= FC_END_SESSION


def test_generic_provider_keeps_the_standard_behaviour(provider: Recorder, tmp_path: Any) -> None:
    """No preset: PKCE because discovery advertises it, token_type_hint on revocation."""
    mw = middleware(provider, None, tmp_path)
    assert set(authorize_query(mw)) == EXPECTED_AUTHORIZE["generic"]
    sid = new_session_id()
    record = {"v": 1, "sub": "s", "claims": {}, "idc": {}, "idt": "h.p.s", "at": TOKEN, "acr": None,
              "prov": "generic", "created": time.time(), "seen": time.time(), "cid": "c"}
    mw.store.put(store_key(SESSION, sid), seal(SESSION, sid, record), 600)
    before = len(provider.seen.get("/token/revocation", []))
    mw.flow.start_logout(sid, browser_secret=None)
    assert set(provider.seen["/token/revocation"][before]["form"]) == FC_REVOCATION | {"token_type_hint"}


@pytest.mark.parametrize("alias", sorted(a for a in ALIASES if "production" not in a))
def test_agentconnect_aliases_warn_and_resolve(provider: Recorder, alias: str, tmp_path: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="fcplus_wsgi"):
        mw = middleware(provider, alias, tmp_path)
    assert mw.settings.preset is PRESETS[ALIASES[alias]]
    assert any("deprecated" in r.getMessage() and ALIASES[alias] in r.getMessage() for r in caplog.records)


def test_unknown_preset_names_the_valid_ones(provider: Recorder, tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as info:
        middleware(provider, "franceconect-integration", tmp_path)
    for name in (*PRESETS, *ALIASES):
        assert name in str(info.value)


@pytest.mark.parametrize(("preset", "setting", "key"), [
    ("proconnect-integration", {"require_encryption": "true"}, "require_encryption"),
    ("fcplus-integration", {"require_encryption": "false"}, "require_encryption"),
    ("fcplus-integration", {"acr_values": "eidas1"}, "acr_values"),
    ("franceconnect-integration", {"acr_values": "eidas2"}, "acr_values"),
    ("fcplus-integration", {"prompt": "none"}, "prompt"),
    ("fcplus-integration", {"token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
    ("proconnect-integration", {"acr_values": "eidas9"}, "acr_values"),
])
def test_settings_that_contradict_the_platform_fail_at_start(provider: Recorder, tmp_path: Any, preset: str,
                                                             setting: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        middleware(provider, preset, tmp_path, **setting)



def test_a_refused_revocation_is_counted_and_logged_and_logout_completes(provider: Recorder, tmp_path: Any,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    mw = middleware(provider, "fcplus-integration", tmp_path, metrics="true")
    sid = new_session_id()
    record = {"v": 1, "sub": "s", "claims": {}, "idc": {}, "idt": "h.p.s", "at": TOKEN, "acr": None,
              "prov": "fcplus-integration", "created": time.time(), "seen": time.time(), "cid": "c"}
    mw.store.put(store_key(SESSION, sid), seal(SESSION, sid, record), 600)
    provider.revocation_status = 400
    try:
        with caplog.at_level("WARNING", logger="fcplus_wsgi"):
            resp = Request.blank("/oidc/logout", headers={"Cookie": f"{mw.settings.cookie_name}={sid}",
                                                              "Sec-Fetch-Site": "same-origin"}).get_response(mw)
    finally:
        provider.revocation_status = 200
    assert resp.status_int == 303 and "/session/end?" in resp.location  # the user still logs out
    assert mw.store.get(store_key(SESSION, sid)) is None
    assert mw.observability is not None and mw.observability.metrics is not None
    registry = mw.observability.metrics.registry
    labels = {"provider": "fcplus-integration", "step": "revocation", "category": "provider_unavailable",
              "error": "revocation_refused"}
    assert registry.get_sample_value("fcplus_flow_errors_total", labels) == 1
    assert any("revocation" in r.getMessage() and "revocation_refused" in r.getMessage() for r in caplog.records)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_login_url_helper_builds_and_checks_hints(provider: Recorder, tmp_path: Any) -> None:
    from fcplus_wsgi import login_url
    from fcplus_wsgi.links import MIDDLEWARE_KEY
    pc = {MIDDLEWARE_KEY: middleware(provider, "proconnect-integration", tmp_path)}
    url = login_url(pc, "/agents?x=1", idp_hint="fia1v2", login_hint="a.b@example.gouv.fr",
                    siret_hint="12345678901234", silent=True)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/oidc/login" and query["return_to"] == ["/agents?x=1"]
    assert query["prompt"] == ["none"] and query["siret_hint"] == ["12345678901234"]
    # The URL the helper builds is one the login path accepts, and what it sends is in the profile.
    sent = authorize_query(pc[MIDDLEWARE_KEY], url)
    assert sent["idp_hint"] == ["fia1v2"] and set(sent) <= PC_ALLOWED
    for bad in ({"login_hint": "nope"}, {"siret_hint": "123"}, {"idp_hint": "a b"}):
        with pytest.raises(ValueError):
            login_url(pc, "/agents", **bad)
    fc = {MIDDLEWARE_KEY: middleware(provider, "fcplus-integration", tmp_path)}
    for refused in ({"login_hint": "a@b.fr"}, {"siret_hint": "12345678901234"}, {"silent": True}):
        with pytest.raises(ValueError, match="fcplus-integration"):
            login_url(fc, "/x", **refused)  # type: ignore[arg-type]
    assert parse_qs(urlsplit(login_url(fc, "/x", idp_hint="dgfip")).query)["idp_hint"] == ["dgfip"]
