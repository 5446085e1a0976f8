"""The development provider over real loopback HTTP: it must behave like FC+ on the wire.

A relying party (played here with `requests`) runs the whole code flow: discovery,
the /authorize login page (parsed and posted like a browser would), the token
exchange, decryption of the nested id_token and userinfo with the client's private
keys, and verification against the provider's published JWKS. The error cases are the
ones FC+ produces and a relying party must handle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from jwcrypto import jwe, jwk, jws
from webob import Request, Response

from fcplus_wsgi.devprovider import (
    BUILTIN_IDENTITIES,
    ClientConfig,
    ConfigError,
    DevProviderApp,
    DevProviderConfig,
    Identity,
    cli,
    make_app,
)
from fcplus_wsgi.devprovider.server import banner
from fcplus_wsgi.keys import generate_ec_signing_key, generate_private_jwks, public_jwks
from tests.support.servers import LateApp, serve_wsgi

REDIRECT = "http://127.0.0.1:8999/callback"
LOGOUT = "http://127.0.0.1:8999/logged-out"
SECRET = "s3cret-" + "x" * 32
ALL_SCOPES = "openid profile birth email"


class Clock:
    """Wall time plus an adjustable offset, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Env:
    issuer: str
    app: DevProviderApp
    clock: Clock
    client_keys: jwk.JWKSet
    provider_keys: jwk.JWKSet = field(default_factory=jwk.JWKSet)


def _client(client_id: str, jwks_uri: str | None, alg: str | None) -> ClientConfig:
    return ClientConfig(client_id, SECRET, [REDIRECT], [LOGOUT], jwks_uri,
                        id_token_encrypted_response_alg=alg, userinfo_encrypted_response_alg=alg)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    private = generate_private_jwks()
    sig_only = {"keys": [k for k in public_jwks(private)["keys"] if k["use"] == "sig"]}

    def jwks_app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/jwks":
            response = Response(json_body=public_jwks(private))
        elif request.path == "/sig-only":
            response = Response(json_body=sig_only)
        else:
            response = Response("down", status=500)
        return response(environ, start_response)

    late = LateApp()
    with serve_wsgi(jwks_app, threads=4) as keys_url, serve_wsgi(late, threads=8) as base:
        issuer = f"{base}/api/v2"
        config = DevProviderConfig(issuer, [
            _client("rsa-client", f"{keys_url}/jwks", "RSA-OAEP"),
            _client("ec-client", f"{keys_url}/jwks", "ECDH-ES"),
            _client("plain-client", None, None),
            _client("nokey-client", f"{keys_url}/sig-only", "ECDH-ES"),
            _client("down-client", f"{keys_url}/down", "RSA-OAEP"),
        ])
        clock = Clock()
        late.app = make_app(config, clock=clock)
        client_keys = jwk.JWKSet()
        for key in private["keys"]:
            client_keys.add(jwk.JWK(**key))
        env = Env(issuer, late.app, clock, client_keys)
        env.provider_keys = jwk.JWKSet.from_json(requests.get(f"{issuer}/jwks", timeout=5).text)
        yield env


@pytest.fixture(autouse=True)
def _reset_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "env" in request.fixturenames:
        request.getfixturevalue("env").clock.offset = 0.0


# -- a minimal relying party -------------------------------------------------------------------


class FormParser(HTMLParser):
    """Finds the login form's action and its radio choices, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.radios: dict[str, list[str]] = {}
        self.checked: dict[str, str] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "radio":
            name, value = a.get("name") or "", a.get("value") or ""
            self.radios.setdefault(name, []).append(value)
            if "checked" in a:
                self.checked[name] = value
        elif tag == "button" and a.get("name") == "decision":
            self.buttons.append(a.get("value") or "")


def rand() -> str:
    return secrets.token_hex(32)


def authorize_params(client_id: str = "rsa-client", **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": ALL_SCOPES,
        "state": rand(), "nonce": rand(), "acr_values": "eidas2",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def open_page(env: Env, params: dict[str, str]) -> tuple[requests.Response, FormParser]:
    response = requests.get(f"{env.issuer}/authorize", params=params, allow_redirects=False, timeout=5)
    parser = FormParser()
    parser.feed(response.text)
    return response, parser


def callback(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def login(env: Env, client_id: str = "rsa-client", *, identity: str | None = None, acr: str | None = None,
          decision: str = "accept", **overrides: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Run /authorize and the login form; returns (callback query, authorize params)."""
    params = authorize_params(client_id, **overrides)
    page, form = open_page(env, params)
    assert page.status_code == 200, page.text
    assert form.action
    data = {"identity": identity or form.checked["identity"], "acr": acr or form.checked["acr"],
            "decision": decision}
    posted = requests.post(urljoin(page.url, form.action), data=data, allow_redirects=False, timeout=5)
    return callback(posted), params


def token_request(env: Env, code: str, client_id: str = "rsa-client", *, auth: str = "post",
                  secret: str = SECRET, redirect_uri: str = REDIRECT) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if auth == "basic":
        return requests.post(f"{env.issuer}/token", data=data, auth=(client_id, secret), timeout=5)
    data.update(client_id=client_id, client_secret=secret)
    return requests.post(f"{env.issuer}/token", data=data, timeout=5)


def open_jwt(env: Env, compact: str, expect_alg: str | None) -> dict[str, Any]:
    """Decrypt (when a JWE) with the client keys, then verify the inner ES256 JWS."""
    if expect_alg is None:
        assert compact.count(".") == 2
        inner = compact
    else:
        assert compact.count(".") == 4
        token = jwe.JWE()
        token.deserialize(compact)
        header = token.jose_header
        assert header["alg"] == expect_alg and header["enc"] == "A256GCM" and header["cty"] == "JWT"
        assert header["kid"] in {key["kid"] for key in env.client_keys}
        token.decrypt(env.client_keys)
        inner = token.payload.decode()
    signed = jws.JWS()
    signed.deserialize(inner)
    header = signed.jose_header
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    signed.verify(env.provider_keys.get_key(header["kid"]), alg="ES256")
    claims: dict[str, Any] = json.loads(signed.payload)
    return claims


def full_flow(env: Env, client_id: str = "rsa-client", **kw: str) -> dict[str, Any]:
    query, params = login(env, client_id, **kw)
    response = token_request(env, query["code"], client_id)
    assert response.status_code == 200, response.text
    return {"query": query, "params": params, "token": response.json(), "response": response}


# -- discovery -------------------------------------------------------------------------------


def test_discovery_is_fcplus_shaped(env: Env) -> None:
    response = requests.get(f"{env.issuer}/.well-known/openid-configuration", timeout=5)
    doc = response.json()
    assert response.headers["Cache-Control"] == "no-store"
    assert doc["issuer"] == env.issuer
    for name, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/jwks"),
                       ("end_session_endpoint", "/session/end"), ("revocation_endpoint", "/token/revocation")]:
        assert doc[name] == env.issuer + path
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    # What FC+'s core (node-oidc-provider 9 configured by core-fcp-high) advertises, PKCE and
    # request objects included, although its /authorize refuses both.
    assert doc["id_token_encryption_alg_values_supported"] == ["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"]
    assert doc["acr_values_supported"] == ["eidas2", "eidas3"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert "identite_pivot" in doc["scopes_supported"]
    assert doc["claims_parameter_supported"] is True and doc["request_parameter_supported"] is True
    assert doc["code_challenge_methods_supported"] == ["S256"]
    keys = requests.get(doc["jwks_uri"], timeout=5).json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["alg"] == "ES256" and k["kid"] and "d" not in k for k in keys)


# -- the happy paths ---------------------------------------------------------------------------


def test_full_flow_rsa_oaep(env: Env) -> None:
    flow = full_flow(env, identity="marie-martin", acr="eidas3")
    assert flow["query"]["state"] == flow["params"]["state"]
    token = flow["token"]
    assert flow["response"].headers["Cache-Control"] == "no-store"
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60 and len(token["access_token"]) >= 43
    assert token["scope"] == ALL_SCOPES

    claims = open_jwt(env, token["id_token"], "RSA-OAEP")
    expected_sub = hashlib.sha256(b"rsa-client:marie-martin").hexdigest() + "v1"
    assert claims["iss"] == env.issuer and claims["aud"] == "rsa-client" and claims["sub"] == expected_sub
    assert claims["nonce"] == flow["params"]["nonce"]
    assert claims["acr"] == "eidas3" and claims["amr"] == ["pwd"] and claims["idp_id"] == "dev"
    assert claims["exp"] - claims["iat"] == 60 and claims["auth_time"] <= claims["iat"]
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    info = requests.get(f"{env.issuer}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"},
                        timeout=5)
    assert info.status_code == 200 and info.headers["Content-Type"].startswith("application/jwt")
    user = open_jwt(env, info.text, "RSA-OAEP")
    assert user == {
        "sub": expected_sub, "iss": env.issuer, "aud": "rsa-client",
        "given_name": "Marie Élise", "family_name": "MARTIN", "preferred_username": "DURAND",
        "birthdate": "1985-04-12", "gender": "female", "birthplace": "75056", "birthcountry": "99100",
        "email": "marie.martin@example.org",
    }


def test_ecdh_es_client_and_scope_filtering(env: Env) -> None:
    flow = full_flow(env, "ec-client", identity="amina-benali", scope="openid birth given_name")
    claims = open_jwt(env, flow["token"]["id_token"], "ECDH-ES")
    assert claims["aud"] == "ec-client" and claims["acr"] == "eidas2"
    info = requests.get(f"{env.issuer}/userinfo",
                        headers={"Authorization": f"Bearer {flow['token']['access_token']}"}, timeout=5)
    user = open_jwt(env, info.text, "ECDH-ES")
    assert {k: v for k, v in user.items() if k not in ("sub", "iss", "aud")} == {
        "given_name": "Amina", "birthplace": "", "birthcountry": "99350"}
    assert user["sub"] == claims["sub"]


def test_sub_is_pairwise_and_signed_only_client(env: Env) -> None:
    flow = full_flow(env, "plain-client", identity="marie-martin", scope="openid identite_pivot")
    claims = open_jwt(env, flow["token"]["id_token"], None)
    assert claims["sub"] == hashlib.sha256(b"plain-client:marie-martin").hexdigest() + "v1"
    info = requests.get(f"{env.issuer}/userinfo",
                        headers={"Authorization": f"Bearer {flow['token']['access_token']}"}, timeout=5)
    user = open_jwt(env, info.text, None)
    assert "email" not in user and "preferred_username" not in user and user["birthplace"] == "75056"


def test_client_secret_basic_is_refused(env: Env) -> None:
    # FC+'s core enables client_secret_post and private_key_jwt only.
    query, _ = login(env)
    response = token_request(env, query["code"], auth="basic")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text
    assert token_request(env, query["code"]).status_code == 200


# -- /authorize errors -----------------------------------------------------------------------------


def test_unregistered_redirect_uri_is_a_page_not_a_redirect(env: Env) -> None:
    for params in (authorize_params(redirect_uri=REDIRECT + "/"), authorize_params(client_id="nobody")):
        response, _ = open_page(env, params)
        assert response.status_code == 400 and "Location" not in response.headers
        assert "text/html" in response.headers["Content-Type"]
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("overrides", "error", "fragment"), [
    ({"acr_values": "eidas1"}, "invalid_request", "Y020002 acr_values not supported"),
    ({"acr_values": "eidas1 foo"}, "invalid_request", "Y020002"),
    ({"response_type": "token"}, "unsupported_response_type", ""),
    ({"scope": "openid unknown_scope"}, "invalid_scope", ""),
    ({"scope": "profile"}, "invalid_scope", "openid"),
])
def test_authorize_errors_are_redirected(env: Env, overrides: dict[str, str | None], error: str,
                                         fragment: str) -> None:
    params = authorize_params(**overrides)
    response = requests.get(f"{env.issuer}/authorize", params=params, allow_redirects=False, timeout=5)
    query = callback(response)
    assert query["error"] == error and fragment in query["error_description"]
    assert query.get("state") == params.get("state")


@pytest.mark.parametrize("overrides", [
    {"code_challenge": "x" * 43}, {"nonce": "short"}, {"state": None}, {"acr_values": None},
])
def test_authorize_validation_refusals_are_the_platform_page(env: Env, overrides: dict[str, str | None]) -> None:
    # FC+'s core validates /authorize (forbidNonWhitelisted) before anything else and shows its
    # own error page (Y030007): the service never gets a callback.
    response, _ = open_page(env, authorize_params(**overrides))
    assert response.status_code == 400 and "Location" not in response.headers and "Y030007" in response.text


def test_repeated_parameter_is_refused(env: Env) -> None:
    params = [*authorize_params().items(), ("scope", "openid")]
    response = requests.get(f"{env.issuer}/authorize", params=params, allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "Location" not in response.headers


def test_lowest_requested_acr_is_kept_and_only_known_levels_are_offered(env: Env) -> None:
    _, form = open_page(env, authorize_params(acr_values="eidas3 eidas2"))
    assert form.radios["acr"] == ["eidas2", "eidas3"]
    _, form = open_page(env, authorize_params(acr_values="eidas1 eidas3"))
    assert form.radios["acr"] == ["eidas3"]
    assert form.radios["identity"] == [ident.uid for ident in BUILTIN_IDENTITIES]
    assert sorted(form.buttons) == ["accept", "refuse"]


def test_authorize_by_post_form(env: Env) -> None:
    response = requests.post(f"{env.issuer}/authorize", data=authorize_params(), allow_redirects=False, timeout=5)
    assert response.status_code == 200 and "Fournisseur d" in response.text


# -- the login page ------------------------------------------------------------------------------


def test_refusal_is_access_denied(env: Env) -> None:
    query, params = login(env, decision="refuse")
    assert query["error"] == "access_denied" and query["state"] == params["state"] and "code" not in query


def test_level_below_request_is_refused_and_interaction_is_single_use(env: Env) -> None:
    page, form = open_page(env, authorize_params(acr_values="eidas3"))
    url = urljoin(page.url, form.action or "")
    data = {"identity": "jean-dupont", "acr": "eidas2", "decision": "accept"}
    low = requests.post(url, data=data, allow_redirects=False, timeout=5)
    assert low.status_code == 400 and "Location" not in low.headers
    again = requests.post(url, data=dict(data, acr="eidas3"), allow_redirects=False, timeout=5)
    assert again.status_code == 400 and "Location" not in again.headers


def test_expired_interaction(env: Env) -> None:
    page, form = open_page(env, authorize_params())
    env.clock.offset = 601
    late = requests.post(urljoin(page.url, form.action or ""), data={"identity": "jean-dupont", "acr": "eidas2",
                         "decision": "accept"}, allow_redirects=False, timeout=5)
    assert late.status_code == 400


# -- /token ------------------------------------------------------------------------------------------


def test_code_replay_is_invalid_grant_and_revokes_the_token(env: Env) -> None:
    flow = full_flow(env)
    replay = token_request(env, flow["query"]["code"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    info = requests.get(f"{env.issuer}/userinfo",
                        headers={"Authorization": f"Bearer {flow['token']['access_token']}"}, timeout=5)
    assert info.status_code == 401 and 'error="invalid_token"' in info.headers["WWW-Authenticate"]


def test_bad_client_credentials(env: Env) -> None:
    query, _ = login(env)
    for auth in ("post", "basic"):
        response = token_request(env, query["code"], auth=auth, secret=SECRET + "!")
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers
    other = token_request(env, query["code"], client_id="ec-client")
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    # The failed attempts did not burn the code.
    assert token_request(env, query["code"]).status_code == 200


def test_token_request_errors(env: Env) -> None:
    query, _ = login(env)
    mismatch = token_request(env, query["code"], redirect_uri=REDIRECT + "/other")
    assert mismatch.json()["error"] == "invalid_grant"
    grant = requests.post(f"{env.issuer}/token", data={"grant_type": "refresh_token", "client_id": "rsa-client",
                          "client_secret": SECRET}, timeout=5)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    env.clock.offset = 31
    expired = token_request(env, query["code"])
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"


def test_no_suitable_or_unreachable_client_key(env: Env) -> None:
    for client_id in ("nokey-client", "down-client"):
        query, _ = login(env, client_id)
        response = token_request(env, query["code"], client_id)
        assert response.status_code == 400 and response.json()["error"] == "invalid_client"
    assert response.json()["error_description"].startswith("client JWKS could not be fetched")
    query, _ = login(env, "nokey-client")
    body = token_request(env, query["code"], "nokey-client").json()
    assert body["error_description"] == "no suitable encryption key found"


# -- /userinfo, revocation, logout ---------------------------------------------------------------------


def test_userinfo_auth_errors_and_expiry(env: Env) -> None:
    missing = requests.get(f"{env.issuer}/userinfo", timeout=5)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in missing.headers["WWW-Authenticate"]
    bad = requests.get(f"{env.issuer}/userinfo", headers={"Authorization": "Bearer a b"}, timeout=5)
    assert bad.status_code == 400 and 'error="invalid_request"' in bad.headers["WWW-Authenticate"]
    flow = full_flow(env)
    env.clock.offset = 61
    late = requests.get(f"{env.issuer}/userinfo",
                        headers={"Authorization": f"Bearer {flow['token']['access_token']}"}, timeout=5)
    assert late.status_code == 401 and 'error="invalid_token"' in late.headers["WWW-Authenticate"]


def test_revocation(env: Env) -> None:
    flow = full_flow(env)
    access_token = flow["token"]["access_token"]
    # The core's revocation DTO wants token, client_id and client_secret in the body (400 page).
    anonymous = requests.post(f"{env.issuer}/token/revocation", data={"token": access_token}, timeout=5)
    assert anonymous.status_code == 400 and "Y000400" in anonymous.text
    wrong = requests.post(f"{env.issuer}/token/revocation", timeout=5, data={
        "token": access_token, "client_id": "rsa-client", "client_secret": SECRET + "!"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    foreign = requests.post(f"{env.issuer}/token/revocation", timeout=5, data={
        "token": access_token, "client_id": "ec-client", "client_secret": SECRET})
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_request"
    headers = {"Authorization": f"Bearer {access_token}"}
    assert requests.get(f"{env.issuer}/userinfo", headers=headers, timeout=5).status_code == 200
    revoked = requests.post(f"{env.issuer}/token/revocation", timeout=5, data={
        "token": access_token, "client_id": "rsa-client", "client_secret": SECRET})
    assert revoked.status_code == 200
    assert requests.get(f"{env.issuer}/userinfo", headers=headers, timeout=5).status_code == 401


def test_end_session(env: Env) -> None:
    flow = full_flow(env, "plain-client")
    signed_id_token = flow["token"]["id_token"]
    env.clock.offset = 3600  # an expired id_token_hint is still accepted
    ok = requests.get(f"{env.issuer}/session/end", allow_redirects=False, timeout=5, params={
        "id_token_hint": signed_id_token, "post_logout_redirect_uri": LOGOUT, "state": "logout-state"})
    assert ok.status_code == 303 and ok.headers["Location"] == LOGOUT + "?state=logout-state"
    for params in ({"id_token_hint": signed_id_token, "post_logout_redirect_uri": LOGOUT + "/x"},
                   {"post_logout_redirect_uri": LOGOUT},
                   {"id_token_hint": signed_id_token[:-4] + "AAAA", "post_logout_redirect_uri": LOGOUT}):
        refused = requests.get(f"{env.issuer}/session/end", params=params, allow_redirects=False, timeout=5)
        assert refused.status_code == 400 and "Location" not in refused.headers


def test_end_session_refuses_the_encrypted_id_token(env: Env) -> None:
    flow = full_flow(env)
    encrypted = flow["token"]["id_token"]
    refused = requests.get(f"{env.issuer}/session/end", allow_redirects=False, timeout=5, params={
        "id_token_hint": encrypted, "post_logout_redirect_uri": LOGOUT})
    assert refused.status_code == 400 and "JWE" in refused.text
    inner = jwe.JWE()
    inner.deserialize(encrypted)
    inner.decrypt(env.client_keys)
    ok = requests.get(f"{env.issuer}/session/end", allow_redirects=False, timeout=5, params={
        "id_token_hint": inner.payload.decode(), "post_logout_redirect_uri": LOGOUT})
    assert ok.status_code == 303 and ok.headers["Location"] == LOGOUT


def test_unknown_route_and_method(env: Env) -> None:
    assert requests.get(f"{env.issuer}/nothing", timeout=5).status_code == 404
    wrong = requests.get(f"{env.issuer}/token", timeout=5)
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    # FC+'s core routes userinfo and end_session for GET only.
    assert requests.post(f"{env.issuer}/userinfo", timeout=5).status_code == 405
    assert requests.post(f"{env.issuer}/session/end", timeout=5).status_code == 405


# -- configuration ----------------------------------------------------------------------------------


def test_configuration_is_validated() -> None:
    with pytest.raises(ConfigError, match="jwks_uri is required"):
        DevProviderConfig("http://127.0.0.1:9000/api/v2", [ClientConfig("c", SECRET, [REDIRECT], [], None)])
    with pytest.raises(ConfigError, match="jwks_uri is required"):
        ClientConfig("c", SECRET, [REDIRECT], [], None, "RSA-OAEP")
    with pytest.raises(ConfigError, match="redirect_uris"):
        ClientConfig("c", SECRET, ["/relative"], [], None, None, "A256GCM", None)
    with pytest.raises(ConfigError, match="birthplace"):
        Identity("x", "Jean", "DOE", "1970-01-01", "male", "75056", "99350", "jean@example.org")
    with pytest.raises(ConfigError, match="birthdate"):
        Identity("x", "Jean", "DOE", "1970-02-30", "male", "75056", "99100", "jean@example.org")
    client = ClientConfig("c", SECRET, [REDIRECT], [], None, None, "A256GCM", None)
    with pytest.raises(ConfigError, match="ES256"):
        DevProviderConfig("http://127.0.0.1:9000/api/v2", [client],
                          signing_keys={"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]})
    key = generate_ec_signing_key()
    config = DevProviderConfig("http://127.0.0.1:9000/api/v2/", [client], signing_keys={"keys": [key]})
    assert config.issuer == "http://127.0.0.1:9000/api/v2"
    assert make_app(config).public_jwks()["keys"][0]["kid"] == key["kid"]


# -- command line -----------------------------------------------------------------------------------


def _one_sentence(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv", [
    ["--port", "abc"],
    ["--port", "70000"],
    [],
    ["--client-id", "c", "--client-secret", SECRET, "--redirect-uri", REDIRECT],
    ["--client-id", "c", "--redirect-uri", REDIRECT],
    ["--bogus"],
])
def test_cli_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert _one_sentence(capsys).startswith("fcplus-wsgi mock-provider: ")


def test_cli_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--clients", str(tmp_path / "missing.json")]) == 2
    assert "cannot be read" in _one_sentence(capsys)
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    assert cli.main(["--clients", str(broken)]) == 2
    assert "not valid JSON" in _one_sentence(capsys)
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps([{"client_id": "c", "client_secret": SECRET, "redirect_uris": [REDIRECT],
                                    "id_token_encrypted_response_alg": "A128KW"}]), encoding="utf-8")
    assert cli.main(["--clients", str(clients)]) == 2
    assert "id_token_encrypted_response_alg" in _one_sentence(capsys)
    identities = tmp_path / "identities.json"
    identities.write_text(json.dumps([{"uid": "x", "given_name": "Jean"}]), encoding="utf-8")
    argv = ["--client-id", "c", "--client-secret", SECRET, "--redirect-uri", REDIRECT, "--encryption-alg", "none"]
    assert cli.main([*argv, "--identities", str(identities)]) == 2
    assert "family_name" in _one_sentence(capsys)


def test_cli_starts_with_a_warning_off_loopback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[DevProviderConfig, str, int]] = []
    monkeypatch.setattr(cli, "serve_forever", lambda config, host, port: started.append((config, host, port)))
    identities = tmp_path / "identities.json"
    identities.write_text(json.dumps([{
        "uid": "zoe", "given_name": "Zoé", "family_name": "L'HERMITE", "birthdate": "1999-01-01",
        "gender": "female", "birthplace": "2B033", "birthcountry": "99100", "email": "zoe@example.org"}]),
        encoding="utf-8")
    assert cli.main(["--host", "0.0.0.0", "--port", "9100", "--client-id", "c", "--client-secret", SECRET,
                     "--redirect-uri", REDIRECT, "--jwks-uri", "http://127.0.0.1:8999/jwks",
                     "--identities", str(identities)]) == 0
    assert "WARNING" in capsys.readouterr().err
    config, host, port = started[0]
    assert config.issuer == "http://0.0.0.0:9100/api/v2" and (host, port) == ("0.0.0.0", 9100)
    assert [ident.uid for ident in config.identities] == ["zoe"]
    assert config.clients[0].userinfo_encrypted_response_alg == "RSA-OAEP"


def test_banner_is_loud_and_keeps_secrets() -> None:
    client = ClientConfig("demo", SECRET, [REDIRECT], [], None, None, "A256GCM", None)
    config = DevProviderConfig("http://127.0.0.1:9000/api/v2", [client])
    text = banner(config, "0.0.0.0", 9000)
    assert "DEVELOPMENT PROVIDER - NOT FOR PRODUCTION" in text and "NE PAS UTILISER EN PRODUCTION" in text
    assert "WARNING" in text and SECRET not in text
    assert "WARNING" not in banner(config, "127.0.0.1", 9000)
