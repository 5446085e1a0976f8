"""The development provider's three profiles against what each platform core accepts and refuses.

Each profile must fail first whatever a service does that the real platform would refuse:
these tests pin the refusals (and their form: the platform's own error page, a redirect
back with an error, or a JSON error) and the acceptances, per profile, by driving the
WSGI application directly (webtest keeps the browser's cookies for ProConnect's SSO).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest
from jwcrypto import jwk, jws

from fcplus_wsgi.devprovider import BUILTIN_IDENTITIES, ClientConfig, ConfigError, DevProviderConfig, cli, make_app
from fcplus_wsgi.devprovider.identities import BUILTIN_AGENTS, Agent
from fcplus_wsgi.devprovider.tokens import ClientKeyCache
from fcplus_wsgi.keys import generate_private_jwks, public_jwks

ISSUER = "http://localhost/api/v2"
REDIRECT = "https://service.example.org/callback"
LOGOUT = "https://service.example.org/logged-out"
SECRET = "s3cret-" + "x" * 32
PC_SCOPES = ("openid given_name usual_name email uid siret siren phone organizational_unit belonging_population "
             "idp_id idp_acr organization_label")
FC_SCOPES = "openid profile birth email"


def rand() -> str:
    return secrets.token_hex(32)


class Form(HTMLParser):
    """The login form as a browser sees it: action, radio choices, checked ones, text inputs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.radios: dict[str, list[str]] = {}
        self.checked: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "radio":
            name, value = a.get("name") or "", a.get("value") or ""
            self.radios.setdefault(name, []).append(value)
            if "checked" in a:
                self.checked[name] = value
        elif tag == "input":
            self.inputs[a.get("name") or ""] = a.get("value") or ""


@dataclass
class Platform:
    profile: str
    app: Any
    web: webtest.TestApp
    client_keys: dict[str, Any]

    def jwks(self) -> jwk.JWKSet:
        return jwk.JWKSet.from_json(self.web.get("/api/v2/jwks").text)

    def params(self, client_id: str = "es-client", **overrides: str | None) -> dict[str, str]:
        if self.profile == "proconnect":
            base: dict[str, str | None] = {"scope": PC_SCOPES}
        else:
            base = {"scope": FC_SCOPES, "acr_values": "eidas1" if self.profile == "franceconnect" else "eidas2"}
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": rand(),
            "nonce": rand(), **base}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, params: dict[str, str] | list[tuple[str, str]]) -> webtest.TestResponse:
        return self.web.get("/api/v2/authorize", params=params, expect_errors=True)

    def login(self, client_id: str = "es-client", *, identity: str | None = None, acr: str | None = None,
              fresh: bool = True, **overrides: str | None) -> tuple[dict[str, str], dict[str, str]]:
        """Sign in through the login page; `fresh` starts from a browser without ProConnect's session."""
        if fresh:
            self.web.reset()
        params = self.params(client_id, **overrides)
        page = self.authorize(params)
        assert page.status_int == 200, page.text
        form = Form(page.text)
        assert form.action
        data = {"identity": identity or form.checked["identity"], "acr": acr or form.checked["acr"],
                "decision": "accept"}
        posted = self.web.post(form.action, data, expect_errors=True)
        return callback(posted), params

    def token(self, code: str, client_id: str = "es-client", **extra: str) -> webtest.TestResponse:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": client_id, "client_secret": SECRET, **extra}
        return self.web.post("/api/v2/token", data, expect_errors=True)

    def flow(self, client_id: str = "es-client", *, identity: str | None = None, acr: str | None = None,
             fresh: bool = True, **kw: str | None) -> dict[str, Any]:
        query, params = self.login(client_id, identity=identity, acr=acr, fresh=fresh, **kw)
        response = self.token(query["code"], client_id)
        assert response.status_int == 200, response.text
        return {"query": query, "params": params, "token": response.json}

    def userinfo(self, access_token: str) -> webtest.TestResponse:
        return self.web.get("/api/v2/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                            expect_errors=True)

    def revoke(self, data: dict[str, str], **kw: Any) -> webtest.TestResponse:
        return self.web.post("/api/v2/token/revocation", data, expect_errors=True, **kw)


def callback(response: webtest.TestResponse) -> dict[str, str]:
    assert response.status_int == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def is_platform_page(response: webtest.TestResponse, code: str) -> bool:
    """The platform's own error page: 400, HTML, the error code shown, no way back to the service."""
    return (response.status_int == 400 and "Location" not in response.headers
            and response.content_type == "text/html" and code in response.text)


def verify(platform: Platform, compact: str, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a JWS against the provider's published keys; returns (header, claims)."""
    assert compact.count(".") == 2
    token = jws.JWS()
    token.deserialize(compact)
    header = token.jose_header
    assert header["alg"] == alg
    key = platform.jwks().get_key(header["kid"])
    assert key is not None and key.get("alg") == alg
    token.verify(key, alg=alg)
    return header, json.loads(token.payload)


def _clients(profile: str, keys_uri: str) -> list[ClientConfig]:
    clients = [
        ClientConfig("es-client", SECRET, [REDIRECT], [LOGOUT]),
        ClientConfig("other-client", SECRET, [REDIRECT], [LOGOUT]),
    ]
    if profile == "fcplus":
        return [ClientConfig(c.client_id, SECRET, [REDIRECT], [LOGOUT], keys_uri) for c in clients]
    return [*clients, ClientConfig("rs-client", SECRET, [REDIRECT], [LOGOUT], id_token_signed_response_alg="RS256")]


def make_platform(profile: str) -> Platform:
    private = generate_private_jwks()
    cache = ClientKeyCache(fetch=lambda uri: public_jwks(private))
    config = DevProviderConfig(ISSUER, _clients(profile, "https://service.example.org/jwks"), profile=profile)
    app = make_app(config, key_cache=cache)
    return Platform(profile, app, webtest.TestApp(app), private)


@pytest.fixture(params=["fcplus", "franceconnect"])
def fc(request: pytest.FixtureRequest) -> Platform:
    return make_platform(request.param)


@pytest.fixture
def fcp() -> Platform:
    return make_platform("fcplus")


@pytest.fixture
def lowfc() -> Platform:
    return make_platform("franceconnect")


@pytest.fixture
def pc() -> Platform:
    return make_platform("proconnect")


@pytest.fixture(params=["fcplus", "franceconnect", "proconnect"])
def any_platform(request: pytest.FixtureRequest) -> Platform:
    return make_platform(request.param)


# -- discovery ----------------------------------------------------------------------------------------

ENDPOINTS = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "userinfo_endpoint": f"{ISSUER}/userinfo",
    "jwks_uri": f"{ISSUER}/jwks",
    "end_session_endpoint": f"{ISSUER}/session/end",
    "revocation_endpoint": f"{ISSUER}/token/revocation",
}
COMMON = {
    **ENDPOINTS,
    "authorization_response_iss_parameter_supported": True,
    "claim_types_supported": ["normal"],
    "claims_parameter_supported": True,
    "code_challenge_methods_supported": ["S256"],
    "response_modes_supported": ["form_post", "fragment", "query"],
    "response_types_supported": ["code"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
}
FC_SCOPES_SUPPORTED = ["openid", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry",
                       "email", "preferred_username", "profile", "birth", "identite_pivot"]
PIVOT = ["given_name", "family_name", "preferred_username", "birthdate", "gender", "birthplace", "birthcountry",
         "email"]
AGENT = ["given_name", "usual_name", "email", "uid", "siret", "siren", "phone_number", "organizational_unit",
         "belonging_population", "idp_id", "idp_acr", "organization_label"]
EXPECTED_DISCOVERY: dict[str, dict[str, Any]] = {
    "fcplus": {
        **COMMON,
        "acr_values_supported": ["eidas2", "eidas3"],
        "claims_supported": ["sub", "acr", "sid", "auth_time", "iss", "amr", *PIVOT],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": FC_SCOPES_SUPPORTED,
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "id_token_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"],
        "id_token_encryption_enc_values_supported": ["A256GCM"],
        "userinfo_signing_alg_values_supported": ["ES256"],
        "userinfo_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"],
        "userinfo_encryption_enc_values_supported": ["A256GCM"],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "request_object_signing_alg_values_supported": ["ES256"],
        "request_object_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
        "request_object_encryption_enc_values_supported": ["A256GCM"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "dpop_signing_alg_values_supported": ["ES256"],
    },
    "franceconnect": {
        **COMMON,
        "acr_values_supported": ["eidas1"],
        "claims_supported": ["sub", "acr", "sid", "auth_time", "iss", "amr", "idp_id", "given_name",
                             "given_name_array", *PIVOT[1:]],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": FC_SCOPES_SUPPORTED,
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "userinfo_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "request_object_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "dpop_signing_alg_values_supported": ["ES256", "RS256"],
    },
    "proconnect": {
        **COMMON,
        "acr_values_supported": ["eidas0", "eidas0-mfa", "eidas1", "eidas1-mfa", "eidas2", "eidas3",
                                 "https://proconnect.gouv.fr/assurance/certification-dirigeant"],
        "claims_supported": ["sub", "acr", "sid", "auth_time", "iss", "amr", *AGENT],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": ["openid", "given_name", "usual_name", "email", "uid", "siret", "siren", "phone",
                             "organizational_unit", "belonging_population", "idp_id", "idp_acr",
                             "organization_label"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "userinfo_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "id_token_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
        "id_token_encryption_enc_values_supported": ["A256GCM"],
        "userinfo_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
        "userinfo_encryption_enc_values_supported": ["A256GCM"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "request_object_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "request_object_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
        "request_object_encryption_enc_values_supported": ["A256GCM"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
    },
}


def test_discovery_is_what_the_core_advertises(any_platform: Platform) -> None:
    doc = any_platform.web.get("/api/v2/.well-known/openid-configuration").json
    assert doc == EXPECTED_DISCOVERY[any_platform.profile]
    assert "client_secret_basic" not in json.dumps(doc)
    keys = any_platform.jwks()["keys"]
    algs = sorted(key.get("alg") for key in keys)
    assert algs == (["ES256"] if any_platform.profile == "fcplus" else ["ES256", "RS256"])
    assert all(not key.has_private and key.get("use") == "sig" for key in keys)


# -- /authorize: FranceConnect+ and FranceConnect ---------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"},
    {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
    {"code_challenge_method": "S256"},
    {"login_hint": "marie.martin@example.org"},
    {"max_age": "0"},
    {"response_mode": "query"},
    {"request": "eyJhbGciOiJub25lIn0.e30."},
    {"siret_hint": "13000001000012"},
    {"display": "page"},
])
def test_fc_authorize_refuses_undeclared_parameters_on_its_page(fc: Platform, extra: dict[str, str]) -> None:
    response = fc.authorize(fc.params(**extra))
    assert is_platform_page(response, "Y030007")
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("overrides", [
    {"prompt": "none"},
    {"prompt": "select_account"},
    {"nonce": "n" * 21},  # core-fcp AuthorizeParamsDto: nonce >= 22
    {"state": "s" * 21},  # FC documentation (GET): state >= 22
    {"nonce": None},
    {"state": None},
    {"acr_values": None},
    {"scope": None},
    {"response_type": None},
])
def test_fc_authorize_validation(fc: Platform, overrides: dict[str, str | None]) -> None:
    assert is_platform_page(fc.authorize(fc.params("es-client", **overrides)), "Y030007")


def test_fc_state_and_nonce_lengths_follow_the_documentation(fc: Platform) -> None:
    # GET: 22 characters (core DTO for nonce, documentation for both); POST body: 32 (documentation).
    assert fc.authorize(fc.params(state="s" * 22, nonce="n" * 22)).status_int == 200
    short_post = fc.web.post("/api/v2/authorize", fc.params(state="s" * 31), expect_errors=True)
    assert is_platform_page(short_post, "Y030007")
    assert fc.web.post("/api/v2/authorize", fc.params(state="s" * 32, nonce="n" * 32)).status_int == 200


def test_fc_authorize_refusal_comes_before_the_client_lookup(fc: Platform) -> None:
    # The core validates the parameters before looking the client up: same page, same code.
    response = fc.authorize(fc.params("nobody", code_challenge="x" * 43))
    assert is_platform_page(response, "Y030007")
    assert fc.authorize(fc.params("nobody")).status_int == 400


def test_fc_authorize_repeated_parameter_is_refused(fc: Platform) -> None:
    params = [*fc.params().items(), ("scope", "openid")]
    assert is_platform_page(fc.authorize(params), "Y030007")


def test_fc_authorize_accepts_every_declared_parameter(fc: Platform) -> None:
    params = fc.params(claims=json.dumps({"id_token": {"amr": {"essential": True}}}), prompt="login consent",
                       idp_hint="dev", ui_locales="fr")
    page = fc.authorize(params)
    assert page.status_int == 200 and "Y030007" not in page.text
    get = fc.web.post("/api/v2/authorize", fc.params(), expect_errors=True)
    assert get.status_int == 200


def test_fc_unknown_idp_hint_is_redirected_with_invalid_idp_hint(fc: Platform) -> None:
    params = fc.params(idp_hint="elsewhere")
    query = callback(fc.authorize(params))
    assert query["error"] == "invalid_idp_hint" and query["state"] == params["state"] and query["iss"] == ISSUER


def test_fc_acr_levels(fcp: Platform, lowfc: Platform) -> None:
    assert Form(lowfc.authorize(lowfc.params()).text).radios["acr"] == ["eidas1"]
    assert callback(lowfc.authorize(lowfc.params(acr_values="eidas2")))["error"] == "invalid_request"
    assert callback(fcp.authorize(fcp.params(acr_values="eidas1")))["error"] == "invalid_request"
    assert Form(fcp.authorize(fcp.params(acr_values="eidas3 eidas2")).text).radios["acr"] == ["eidas2", "eidas3"]


# -- /authorize: ProConnect ------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    {"max_age": "0"}, {"ui_locales": "fr"}, {"display": "page"}, {"request_uri": "urn:x"}, {"foo": "bar"},
])
def test_pc_authorize_refuses_unknown_parameters_as_documented(pc: Platform, extra: dict[str, str]) -> None:
    assert is_platform_page(pc.authorize(pc.params(**extra)), "Y000400")


@pytest.mark.parametrize("overrides", [
    {"login_hint": "not-an-email"},
    {"siret_hint": "1300000100001"},
    {"siret_hint": "130000010000123"},
    {"nonce": "é" * 40},
    {"nonce": "n" * 513},
    {"nonce": None},
    {"nonce": "n" * 31},
    {"state": "s" * 31},
    {"state": None},
    {"redirect_uri": "ftp://service.example.org/callback"},
])
def test_pc_authorize_validation(pc: Platform, overrides: dict[str, str | None]) -> None:
    assert is_platform_page(pc.authorize(pc.params("es-client", **overrides)), "Y000400")


def test_pc_authorize_accepts_its_fifteen_parameters(pc: Platform) -> None:
    verifier = secrets.token_urlsafe(48)
    params = pc.params(
        acr_values="eidas1", claims=json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas1"]}}}),
        response_mode="query", login_hint="claire.bernard@essais.example.gouv.fr", siret_hint="13000001000012",
        prompt="login consent", idp_hint="dev-etat", code_challenge=s256(verifier), code_challenge_method="S256")
    assert len(params) == 15
    page = pc.authorize(params)
    assert page.status_int == 200, page.text


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"prompt": "select_account"}, "unsupported prompt"),
    ({"prompt": "none login"}, "prompt none"),
    ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, "code_challenge_method"),
    ({"code_challenge": "x" * 43}, "code_challenge_method"),
    ({"code_challenge_method": "S256"}, "code_challenge must be provided"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "code_challenge"),
    ({"claims": "{not json"}, "claims"),
    ({"response_mode": "query.jwt"}, "response_mode"),
    ({"claims": json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas9"]}}})}, "acr"),
])
def test_pc_authorize_errors_are_redirected(pc: Platform, overrides: dict[str, str], fragment: str) -> None:
    params = pc.params(**overrides)
    query = callback(pc.authorize(params))
    assert query["error"] == "invalid_request" and fragment in query["error_description"]
    assert query["state"] == params["state"] and query["iss"] == ISSUER


def test_pc_response_modes(pc: Platform) -> None:
    params = pc.params(response_mode="form_post")
    page = pc.authorize(params)
    form = Form(page.text)
    posted = pc.web.post(form.action or "", {"identity": form.checked["identity"], "acr": form.checked["acr"],
                                             "decision": "accept"})
    assert posted.status_int == 200 and "script-src 'nonce-" in posted.headers["Content-Security-Policy"]
    fields = Form(posted.text).inputs
    assert fields["state"] == params["state"] and fields["iss"] == ISSUER and fields["code"]
    assert pc.token(fields["code"]).status_int == 200
    fragment = pc.authorize(pc.params(response_mode="fragment", prompt="none", login_hint="x@example.org"))
    assert fragment.headers["Location"].startswith(REDIRECT + "#error=login_required")


# -- PKCE --------------------------------------------------------------------------------------------------


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def test_pc_pkce_end_to_end(pc: Platform) -> None:
    verifier = secrets.token_urlsafe(48)
    query, _ = pc.login(code_challenge=s256(verifier), code_challenge_method="S256")
    for bad in ({}, {"code_verifier": secrets.token_urlsafe(48)}, {"code_verifier": "short"}):
        refused = pc.token(query["code"], **bad)
        assert refused.status_int == 400 and refused.json["error"] == "invalid_grant", bad
    assert pc.token(query["code"], code_verifier=verifier).status_int == 200  # failures did not burn the code


def test_a_verifier_without_a_challenge_is_invalid_grant(any_platform: Platform) -> None:
    query, _ = any_platform.login()
    refused = any_platform.token(query["code"], code_verifier=secrets.token_urlsafe(48))
    assert refused.status_int == 400 and refused.json == {"error": "invalid_grant",
                                                          "error_description": "PKCE verification failed"}
    assert any_platform.token(query["code"]).status_int == 200


# -- token and revocation --------------------------------------------------------------------------------


def test_client_secret_basic_is_refused(any_platform: Platform) -> None:
    query, _ = any_platform.login()
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT}
    any_platform.web.set_authorization(("Basic", ("es-client", SECRET)))
    try:
        basic = any_platform.web.post("/api/v2/token", form, expect_errors=True)
        assert basic.status_int == 401 and basic.json["error"] == "invalid_client"
        both = any_platform.web.post("/api/v2/token", {**form, "client_id": "es-client", "client_secret": SECRET},
                                     expect_errors=True)
        assert both.status_int == 400 and both.json["error"] == "invalid_request"
    finally:
        any_platform.web.authorization = None
    assert any_platform.token(query["code"]).status_int == 200


def test_revocation_takes_exactly_three_fields(any_platform: Platform) -> None:
    flow = any_platform.flow()
    token = flow["token"]["access_token"]
    three = {"token": token, "client_id": "es-client", "client_secret": SECRET}
    hinted = any_platform.revoke({**three, "token_type_hint": "access_token"})
    if any_platform.profile == "proconnect":
        # core-fca-low's ValidationPipe only strips unknown fields; node-oidc-provider takes the hint.
        assert hinted.status_int == 200
        flow = any_platform.flow()
        token = flow["token"]["access_token"]
        three = {"token": token, "client_id": "es-client", "client_secret": SECRET}
    else:
        assert is_platform_page(hinted, "Y000400")
    for bad in ({"token": token}, {**three, "client_secret": "short-secret"}, {**three, "token": "a.b" * 20},
                {**three, "token": "t" * 42}, {"client_id": "es-client", "client_secret": SECRET}):
        assert is_platform_page(any_platform.revoke(bad), "Y000400"), bad
    any_platform.web.set_authorization(("Basic", ("es-client", SECRET)))
    try:
        assert is_platform_page(any_platform.revoke({"token": token}), "Y000400")
        both = any_platform.revoke(three)
        assert both.status_int == 400 and both.json["error"] == "invalid_request"
    finally:
        any_platform.web.authorization = None
    wrong = any_platform.revoke({**three, "client_secret": SECRET + "!"})
    assert wrong.status_int == 401 and wrong.json["error"] == "invalid_client"
    foreign = any_platform.revoke({**three, "client_id": "other-client"})
    assert foreign.status_int == 400 and foreign.json == {"error": "invalid_request",
                                                          "error_description": "this token does not belong to you"}
    assert any_platform.userinfo(token).status_int == 200
    assert any_platform.revoke(three).status_int == 200
    assert any_platform.userinfo(token).status_int == 401
    assert any_platform.revoke(three).status_int == 200  # already revoked: still 200


def test_end_session_takes_the_six_fields(any_platform: Platform) -> None:
    flow = any_platform.flow()
    id_token = flow["token"]["id_token"]
    if id_token.count(".") == 4:  # FC+: send the inner JWS
        from jwcrypto import jwe
        outer = jwe.JWE()
        outer.deserialize(id_token)
        keys = jwk.JWKSet()
        for key in any_platform.client_keys["keys"]:
            keys.add(jwk.JWK(**key))
        outer.decrypt(keys)
        id_token = outer.payload.decode()
    six = {"id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT, "state": "st", "client_id": "es-client",
           "logout_hint": "x", "ui_locales": "fr"}
    refused = any_platform.web.get("/api/v2/session/end", {**six, "foo": "1"}, expect_errors=True)
    assert refused.status_int == 400 and "Location" not in refused.headers
    ok = any_platform.web.get("/api/v2/session/end", six)
    assert ok.status_int == 303 and ok.headers["Location"] == LOGOUT + "?state=st"


# -- signing, encryption and subjects ------------------------------------------------------------------------


def test_franceconnect_signs_without_encrypting(lowfc: Platform) -> None:
    es = lowfc.flow(identity="marie-martin")
    header, claims = verify(lowfc, es["token"]["id_token"], "ES256")
    assert header["typ"] == "JWT" and claims["acr"] == "eidas1" and claims["nonce"] == es["params"]["nonce"]
    assert "amr" not in claims  # FC sends amr only when the claims parameter asks for it
    rs = lowfc.flow("rs-client", identity="marie-martin")
    _, rs_claims = verify(lowfc, rs["token"]["id_token"], "RS256")
    assert rs_claims["sub"] != claims["sub"]  # pairwise
    assert claims["sub"] == hashlib.sha256(b"es-client:marie-martin").hexdigest() + "v1"
    info = lowfc.userinfo(rs["token"]["access_token"])
    assert info.content_type == "application/jwt"
    _, user = verify(lowfc, info.text, "RS256")
    assert user["given_name"] == "Marie Élise" and user["given_name_array"] == ["Marie", "Élise"]
    assert user["sub"] == rs_claims["sub"] and user["aud"] == "rs-client"


def test_fcplus_still_encrypts(fcp: Platform) -> None:
    flow = fcp.flow()
    assert flow["token"]["id_token"].count(".") == 4
    assert fcp.userinfo(flow["token"]["access_token"]).text.count(".") == 4


def test_proconnect_agent_claims_public_sub_and_registered_alg(pc: Platform) -> None:
    es = pc.flow(identity="claire-bernard")
    _, es_claims = verify(pc, es["token"]["id_token"], "ES256")
    rs = pc.flow("rs-client", identity="claire-bernard")
    _, rs_claims = verify(pc, rs["token"]["id_token"], "RS256")
    assert es_claims["sub"] == rs_claims["sub"]  # public: the same for every client
    assert "amr" not in es_claims and "idp_id" not in es_claims
    _, user = verify(pc, pc.userinfo(rs["token"]["access_token"]).text, "RS256")
    assert user == {
        "sub": rs_claims["sub"], "iss": ISSUER, "aud": "rs-client", "given_name": "Claire Anne",
        "usual_name": "BERNARD", "email": "claire.bernard@essais.example.gouv.fr", "uid": "claire-bernard",
        "siret": "13000001000012", "siren": "130000010", "phone_number": "01 23 45 67 89",
        "organizational_unit": "Direction du numérique", "belonging_population": "agent", "idp_id": "dev-etat",
        "idp_acr": "eidas1", "organization_label": "Ministère fictif des Essais",
    }
    other = pc.flow(identity="karim-haddad", scope="openid email")
    _, small = verify(pc, pc.userinfo(other["token"]["access_token"]).text, "ES256")
    assert set(small) == {"sub", "iss", "aud", "email"} and small["sub"] != es_claims["sub"]


def test_proconnect_acr_from_the_claims_parameter(pc: Platform) -> None:
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas2", "eidas3", "unknown"]}},
                         "userinfo": {}})
    page = pc.authorize(pc.params(claims=claims))
    assert Form(page.text).radios["acr"] == ["eidas2", "eidas3"]
    flow = pc.flow(claims=claims, acr="eidas3")
    _, id_claims = verify(pc, flow["token"]["id_token"], "ES256")
    assert id_claims["acr"] == "eidas3"
    _, user = verify(pc, pc.userinfo(flow["token"]["access_token"]).text, "ES256")
    assert user["idp_acr"] == "eidas3"
    refused = pc.web.post(Form(pc.authorize(pc.params(claims=claims)).text).action or "",
                          {"identity": "claire-bernard", "acr": "eidas1", "decision": "accept"}, expect_errors=True)
    assert refused.status_int == 400
    assert Form(pc.authorize(pc.params(acr_values="eidas1 eidas2")).text).radios["acr"] == ["eidas1", "eidas2"]
    default = Form(pc.authorize(pc.params()).text)
    assert default.checked["acr"] == "eidas1" and "eidas0" in default.radios["acr"]
    amr = pc.flow(claims=json.dumps({"id_token": {"amr": None}}))
    assert verify(pc, amr["token"]["id_token"], "ES256")[1]["amr"] == ["pwd"]


# -- ProConnect identity providers, hints, SSO and prompt=none -------------------------------------------------


def test_pc_idp_hint(pc: Platform) -> None:
    form = Form(pc.authorize(pc.params(idp_hint="dev-territoriale")).text)
    assert form.radios["identity"] == ["sophie-leroy"]
    assert Form(pc.authorize(pc.params()).text).radios["identity"] == [a.uid for a in BUILTIN_AGENTS]
    other_idp = pc.web.post(form.action or "", {"identity": "claire-bernard", "acr": "eidas1", "decision": "accept"},
                            expect_errors=True)
    assert other_idp.status_int == 400
    params = pc.params(idp_hint="no-such-idp")
    query = callback(pc.authorize(params))
    assert query["error"] == "idp_hint_not_found" and query["state"] == params["state"]


def test_pc_login_and_siret_hints_prefill_the_page(pc: Platform) -> None:
    form = Form(pc.authorize(pc.params(login_hint="karim.haddad@essais.example.gouv.fr")).text)
    assert form.inputs["email"] == "karim.haddad@essais.example.gouv.fr" and form.checked["identity"] == "karim-haddad"
    form = Form(pc.authorize(pc.params(siret_hint="21750001200018")).text)
    assert form.checked["identity"] == "sophie-leroy" and form.inputs["email"] == ""


def test_pc_prompt_none_and_sso(pc: Platform) -> None:
    params = pc.params(prompt="none")
    query = callback(pc.authorize(params))
    assert query == {"error": "login_required", "error_description": "End-User authentication is required",
                     "state": params["state"], "iss": ISSUER}
    first = pc.flow(identity="sophie-leroy")
    assert "devprovider_sso" in pc.web.cookies
    silent_params = pc.params("other-client", prompt="none")
    silent = callback(pc.authorize(silent_params))
    assert silent["state"] == silent_params["state"] and "error" not in silent
    token = pc.token(silent["code"], "other-client").json
    _, first_claims = verify(pc, first["token"]["id_token"], "ES256")
    _, silent_claims = verify(pc, token["id_token"], "ES256")
    assert silent_claims["sub"] == first_claims["sub"] and silent_claims["sid"] == first_claims["sid"]
    assert silent_claims["nonce"] == silent_params["nonce"] and silent_claims["auth_time"] == first_claims["auth_time"]
    # A later interactive request reuses the session too (SSO), unless prompt=login.
    assert pc.authorize(pc.params()).status_int == 303
    assert callback(pc.authorize(pc.params(prompt="none", idp_hint="dev-territoriale")))["code"]
    mismatch = callback(pc.authorize(pc.params(prompt="none", login_hint="claire.bernard@essais.example.gouv.fr")))
    assert mismatch["error"] == "login_required"
    assert callback(pc.authorize(pc.params(prompt="none", idp_hint="dev-etat")))["error"] == "login_required"


def test_pc_eidas2_and_eidas3_require_a_new_session(pc: Platform) -> None:
    strong = json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas2"]}}})
    pc.flow(claims=strong, acr="eidas2")
    assert callback(pc.authorize(pc.params(prompt="none", claims=strong)))["error"] == "login_required"
    pc.flow()  # eidas1 session
    weak = json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas1"]}}})
    assert "code" in callback(pc.authorize(pc.params(prompt="none", claims=weak)))
    assert "code" in callback(pc.authorize(pc.params(prompt="none")))


def test_pc_prompt_login_and_logout_end_the_session(pc: Platform) -> None:
    flow = pc.flow()
    page = pc.authorize(pc.params(prompt="login"))
    assert page.status_int == 200  # a new login, and the old session is gone
    assert callback(pc.authorize(pc.params(prompt="none")))["error"] == "login_required"
    flow = pc.flow()
    out = pc.web.get("/api/v2/session/end", {"id_token_hint": flow["token"]["id_token"],
                                             "post_logout_redirect_uri": LOGOUT, "state": "s"})
    assert out.status_int == 303
    assert callback(pc.authorize(pc.params(prompt="none")))["error"] == "login_required"


def test_methods_the_cores_route(any_platform: Platform) -> None:
    flow = any_platform.flow()
    headers = {"Authorization": f"Bearer {flow['token']['access_token']}"}
    posted = any_platform.web.post("/api/v2/userinfo", headers=headers, expect_errors=True)
    assert posted.status_int == (200 if any_platform.profile == "proconnect" else 405)
    assert any_platform.web.post("/api/v2/session/end", {"id_token_hint": "x"}, expect_errors=True).status_int == 405


def test_fc_keeps_no_session(lowfc: Platform) -> None:
    lowfc.flow()
    assert lowfc.authorize(lowfc.params()).status_int == 200
    assert "devprovider_sso" not in lowfc.web.cookies


# -- configuration and command line ---------------------------------------------------------------------------


def test_configuration_per_profile() -> None:
    client = ClientConfig("c", SECRET, [REDIRECT])
    with pytest.raises(ConfigError, match="fcplus, franceconnect, proconnect"):
        DevProviderConfig(ISSUER, [client], profile="agentconnect")
    with pytest.raises(ConfigError, match="jwks_uri is required"):
        DevProviderConfig(ISSUER, [client])
    for profile in ("franceconnect", "proconnect"):
        config = DevProviderConfig(ISSUER, [client], profile=profile)
        assert config.clients[0].id_token_encrypted_response_alg is None
        assert config.clients[0].userinfo_encrypted_response_alg is None
    encrypted = ClientConfig("c", SECRET, [REDIRECT], [], "https://service.example.org/jwks", "RSA-OAEP")
    with pytest.raises(ConfigError, match="does not encrypt"):
        DevProviderConfig(ISSUER, [encrypted], profile="proconnect")
    assert DevProviderConfig(ISSUER, [encrypted], profile="franceconnect").clients[0].id_token_encrypted_response_alg
    oaep256 = ClientConfig("c", SECRET, [REDIRECT], [], "https://service.example.org/jwks", "RSA-OAEP-256")
    with pytest.raises(ConfigError, match="RSA-OAEP, ECDH-ES only"):
        DevProviderConfig(ISSUER, [oaep256], profile="franceconnect")
    rs = ClientConfig("c", SECRET, [REDIRECT], [], "https://service.example.org/jwks",
                      id_token_signed_response_alg="RS256")
    with pytest.raises(ConfigError, match="ES256 only"):
        DevProviderConfig(ISSUER, [rs])
    with pytest.raises(ConfigError, match="signed_response_alg"):
        ClientConfig("c", SECRET, [REDIRECT], id_token_signed_response_alg="HS256")
    with pytest.raises(ConfigError, match="Agent"):
        DevProviderConfig(ISSUER, [client], identities=BUILTIN_IDENTITIES, profile="proconnect")
    with pytest.raises(ConfigError, match="Identity"):
        DevProviderConfig(ISSUER, [client], identities=BUILTIN_AGENTS, profile="franceconnect")
    with pytest.raises(ConfigError, match="idp_id must be one of"):
        DevProviderConfig(ISSUER, [client], profile="proconnect", identities=[
            Agent("a", "Ana", "VIDAL", "ana@example.org", "13000001000012", "elsewhere")])
    with pytest.raises(ConfigError, match="siret"):
        Agent("a", "Ana", "VIDAL", "ana@example.org", "1300 0001 0000 12", "dev-etat")
    es_only = {"keys": [json.loads(jwk.JWK.generate(kty="EC", crv="P-256", kid="e").export_private())]}
    es_only["keys"][0].update(use="sig", alg="ES256")
    rs_client = ClientConfig("c", SECRET, [REDIRECT], id_token_signed_response_alg="RS256")
    with pytest.raises(ConfigError, match="no RS256 key"):
        DevProviderConfig(ISSUER, [rs_client], signing_keys=es_only, profile="proconnect")


def _one_sentence(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_cli_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    single = ["--client-id", "c", "--client-secret", SECRET, "--redirect-uri", REDIRECT]
    assert cli.main(["--profile", "agentconnect", *single]) == 2
    err = _one_sentence(capsys)
    assert "fcplus" in err and "franceconnect" in err and "proconnect" in err
    assert cli.main(["--profile", "proconnect", "--encryption-alg", "RSA-OAEP", "--jwks-uri",
                     "https://service.example.org/jwks", *single]) == 2
    assert "does not encrypt" in _one_sentence(capsys)
    assert cli.main(["--profile", "fcplus", *single]) == 2
    assert "--jwks-uri" in _one_sentence(capsys)
    started: list[DevProviderConfig] = []
    monkeypatch.setattr(cli, "serve_forever", lambda config, host, port: started.append(config))
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps([{"uid": "zoe", "given_name": "Zoé", "usual_name": "MARTIN",
                                   "email": "zoe@example.org", "siret": "13000001000012", "idp_id": "dev-etat"}]),
                      encoding="utf-8")
    assert cli.main(["--profile", "proconnect", "--signing-alg", "RS256", "--identities", str(agents), *single]) == 0
    config = started[-1]
    assert config.profile == "proconnect" and config.clients[0].id_token_signed_response_alg == "RS256"
    assert config.clients[0].id_token_encrypted_response_alg is None
    assert [a.uid for a in config.identities or ()] == ["zoe"]
    assert cli.main(["--profile", "franceconnect", *single]) == 0
    assert started[-1].profile == "franceconnect" and started[-1].clients[0].userinfo_encrypted_response_alg is None
