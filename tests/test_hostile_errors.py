"""Every provider error code and every transport failure ends on its catalogue entry.

OpenID Connect Core 3.1.2.6 (authorization), 3.1.3.4 / RFC 6749 5.2 (token), 5.3.3 / RFC
6750 3.1 (userinfo), and the transport failures (timeout, refused, reset, TLS, 5xx,
non-JSON, oversized) at each provider endpoint, over real loopback HTTP with the evil
provider. Each case checks the documented status, category and page through
assert_refused, and that what the provider said is shown escaped and capped, never as HTML.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from webob import Response

from fcplus_wsgi.errors import AUTHORIZATION_ERRORS, CATALOGUE, TOKEN_ERRORS, USERINFO_ERRORS, Category
from tests.support.evil_provider import (
    DROP,
    EvilStack,
    Grant,
    assert_refused,
    closed_port_url,
    encrypt,
    evil_stack,
    json_response,
    raw_response,
    reset_server,
    self_signed_cert,
    sign_raw,
    streamed_response,
)

TIMEOUT = 0.5


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EvilStack]:
    with evil_stack(tmp_path, settings={"http_timeout": str(TIMEOUT), "max_response_bytes": "8192"}) as s:
        yield s


def refused_login(stack: EvilStack, code: str) -> requests.Response:
    browser = stack.browser()
    page = browser.login()
    assert_refused(stack, browser, page, code)
    return page


def provider_line(page: requests.Response) -> str:
    """The escaped 'what the provider said' line, or '' when the page has none."""
    marker = 'class="ref">'
    text = page.text
    start = text.find("Code renvoyé par le fournisseur") if "Code renvoyé" in text else text.find("Code returned")
    if start < 0:
        return ""
    start = text.index(marker, start) + len(marker)
    return text[start:text.index("</span>", start)]


# -- authorization error responses (OpenID Connect Core 3.1.2.6) ------------------------------------

@pytest.mark.parametrize("error", sorted(AUTHORIZATION_ERRORS))
def test_every_authorization_error_code(stack: EvilStack, error: str) -> None:
    stack.provider.authorize_error = {"error": error, "error_description": "Décrit par le fournisseur"}
    page = refused_login(stack, error)
    assert html.unescape(provider_line(page)) == f"{error} — Décrit par le fournisseur"
    assert stack.provider.hits.get("/token") is None


def test_access_denied_is_a_clean_retry_not_an_alarm(stack: EvilStack) -> None:
    stack.provider.authorize_error = {"error": "access_denied"}
    page = refused_login(stack, "access_denied")
    assert CATALOGUE["access_denied"].category is Category.USER_CANCELLED
    assert "Connexion interrompue" in page.text and "Sign-in interrupted" in page.text
    assert "sécurité" not in page.text and "security" not in page.text
    assert 'class="button" href="/oidc/login?return_to=/private/page"' in page.text  # back to the page
    # The retry works: a new sign-in goes through once the user accepts.
    stack.provider.authorize_error = None
    browser = stack.browser()
    assert browser.get(browser.authorize(browser.get("/oidc/login").headers["Location"])).status_code == 303


@pytest.mark.parametrize("error", ["Y030007", "invalid_something", "<script>alert(1)</script>", "'\"><img/src=x>"])
def test_unknown_authorization_error_codes(stack: EvilStack, error: str) -> None:
    stack.provider.authorize_error = {"error": error}
    page = refused_login(stack, "unknown_authorization_error")
    assert html.unescape(provider_line(page)) == error
    assert "<img" not in page.text and "<script" not in page.text


@pytest.mark.parametrize(("description", "shown"), [
    ("<script>alert(document.cookie)</script>", "<script>alert(document.cookie)</script>"),
    ('"><svg onload=alert(1)>', '"><svg onload=alert(1)>'),
    ("a\x1b[31mred\x00\u202egnp.exe\r\nSet-Cookie: x=1", "a?[31mred??gnp.exe??Set-Cookie: x=1"),
    ("x" * 2000, "x" * 200 + "…"),
])
def test_hostile_error_descriptions_are_escaped_and_capped(stack: EvilStack, description: str, shown: str) -> None:
    stack.provider.authorize_error = {"error": "access_denied", "error_description": description}
    page = refused_login(stack, "access_denied")
    line = provider_line(page)
    assert html.unescape(line) == "access_denied — " + shown
    assert "<script" not in page.text and "<svg" not in page.text and "\x1b" not in page.text
    # No header injected: the one cookie set is the login cookie, its state marked used.
    assert [c.split("=", 1)[0] for c in page.raw.headers.getlist("Set-Cookie")] in ([], ["fcplus-login"])
    assert "x=1" not in str(page.headers)


def test_a_5kb_error_description_is_refused_not_reflected(stack: EvilStack) -> None:
    stack.provider.authorize_error = {"error": "access_denied", "error_description": "<b>" + "y" * 5120}
    page = refused_login(stack, "callback_malformed")
    assert "yyyy" not in page.text and "<b>" not in page.text


# -- token error responses (OpenID Connect Core 3.1.3.4, RFC 6749 5.2) ----------------------------------

def token_says(stack: EvilStack, response: Callable[[], Response]) -> None:
    stack.provider.token_handler = lambda request, grant: response()


@pytest.mark.parametrize("error", sorted(TOKEN_ERRORS))
def test_every_token_error_code(stack: EvilStack, error: str) -> None:
    status = 401 if error == "invalid_client" else 400
    token_says(stack, lambda: json_response({"error": error, "error_description": "<i>nope</i>"}, status))
    page = refused_login(stack, f"token.{error}")
    assert html.unescape(provider_line(page)) == f"{error} — <i>nope</i>"


def test_invalid_grant_reads_as_an_expired_attempt(stack: EvilStack) -> None:
    token_says(stack, lambda: json_response({"error": "invalid_grant"}, 400))
    page = refused_login(stack, "token.invalid_grant")
    assert "expiré" in page.text and "Réessayer" in page.text


@pytest.mark.parametrize("body", [{"error": "slow_down"}, {"error": "Y000400"}, {"error": "<b>x</b>"}])
def test_unknown_token_error_codes(stack: EvilStack, body: dict[str, Any]) -> None:
    token_says(stack, lambda: json_response(body, 400))
    refused_login(stack, "token.unknown_error")


def test_token_error_in_a_200_body(stack: EvilStack) -> None:
    token_says(stack, lambda: json_response({"error": "invalid_grant"}, 200))
    refused_login(stack, "token.invalid_grant")


@pytest.mark.parametrize(("make", "code"), [
    (lambda grant: {"access_token": DROP}, "provider_bad_response"),
    (lambda grant: {"access_token": 42}, "provider_bad_response"),
    (lambda grant: {"token_type": "mac"}, "provider_bad_response"),
    (lambda grant: {"token_type": DROP}, "provider_bad_response"),
])
def test_token_response_without_a_bearer_access_token(stack: EvilStack, make: Callable[[Grant], dict[str, Any]],
                                                       code: str) -> None:
    p = stack.provider
    p.token_handler = lambda request, grant: json_response(p.token_body(grant, **make(grant)))  # type: ignore[arg-type]
    refused_login(stack, code)


# -- userinfo error responses (OpenID Connect Core 5.3.3, RFC 6750 3.1) ----------------------------------

@pytest.mark.parametrize(("error", "status"), [("invalid_request", 400), ("invalid_token", 401),
                                               ("insufficient_scope", 403)])
@pytest.mark.parametrize("where", ["www_authenticate", "json_body"])
def test_every_userinfo_error_code(stack: EvilStack, error: str, status: int, where: str) -> None:
    assert error in USERINFO_ERRORS
    if where == "www_authenticate":
        header = f'Bearer realm="fc", error="{error}", error_description="<b>no</b>"'
        stack.provider.userinfo_handler = lambda request, grant: raw_response(
            b"", status=status, headers={"WWW-Authenticate": header})
    else:
        stack.provider.userinfo_handler = lambda request, grant: json_response({"error": error}, status)
    refused_login(stack, f"userinfo.{error}")


def test_unknown_userinfo_error_code(stack: EvilStack) -> None:
    stack.provider.userinfo_handler = lambda request, grant: raw_response(
        b"", status=401, headers={"WWW-Authenticate": 'Bearer error="token_revoked"'})
    refused_login(stack, "userinfo.unknown_error")


def test_userinfo_401_without_a_challenge(stack: EvilStack) -> None:
    stack.provider.userinfo_handler = lambda request, grant: raw_response(b"no", status=401)
    refused_login(stack, "provider_http_error")


# -- transport failures, endpoint by endpoint ----------------------------------------------------------

def slow(response: Callable[[], Response], seconds: float = TIMEOUT * 2.5) -> Callable[..., Response]:
    def handler(*args: Any) -> Response:
        time.sleep(seconds)
        return response()
    return handler


FAILURES: dict[str, tuple[Callable[..., Response], str]] = {
    "timeout": (slow(lambda: json_response({})), "provider_timeout"),
    "http_500": (lambda *a: raw_response(b"boom", status=500), "provider_http_error"),
    "http_502_json": (lambda *a: json_response({"error": "server_error"}, 502), "provider_http_error"),
    "http_503": (lambda *a: raw_response(b"", status=503, headers={"Retry-After": "5"}), "provider_http_error"),
    "html_200": (lambda *a: raw_response(b"<html>maintenance</html>", "text/html"), "provider_bad_response"),
    "broken_json": (lambda *a: raw_response(b'{"access_token": ', "application/json"), "provider_bad_response"),
    "json_array": (lambda *a: json_response([1, 2]), "provider_bad_response"),
    "oversized_declared": (lambda *a: raw_response(b"{" + b" " * 20000 + b"}", "application/json"),
                           "provider_response_too_large"),
    "oversized_chunked": (lambda *a: streamed_response(200_000), "provider_response_too_large"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_token_endpoint_transport_failures(stack: EvilStack, failure: str) -> None:
    handler, code = FAILURES[failure]
    stack.provider.token_handler = handler
    refused_login(stack, code)
    assert stack.provider.hits["/token"] == 1  # a POST that redeems a code is never retried


@pytest.mark.parametrize("failure", ["timeout", "http_500", "http_503", "oversized_declared", "oversized_chunked"])
def test_userinfo_endpoint_transport_failures(stack: EvilStack, failure: str) -> None:
    handler, code = FAILURES[failure]
    stack.provider.userinfo_handler = handler
    refused_login(stack, code)


def test_userinfo_that_is_neither_json_nor_jwt(stack: EvilStack) -> None:
    stack.provider.userinfo_handler = lambda request, grant: raw_response(b"<html>", "text/html")
    refused_login(stack, "userinfo_malformed")


@pytest.mark.parametrize("failure", ["timeout", "http_500", "html_200", "broken_json", "json_array",
                                     "oversized_declared", "oversized_chunked"])
def test_discovery_transport_failures(stack: EvilStack, failure: str) -> None:
    handler, code = FAILURES[failure]
    if failure == "json_array":
        code = "discovery_invalid"
    stack.provider.discovery_handler = handler
    browser = stack.browser()
    assert_refused(stack, browser, browser.get("/private/page"), code)
    # Discovery is idempotent: one retry on timeout, none for an answer that is merely bad.
    assert stack.provider.hits["/.well-known/openid-configuration"] >= (2 if failure == "timeout" else 1)


@pytest.mark.parametrize("failure", ["timeout", "http_500", "html_200", "broken_json", "oversized_chunked"])
def test_jwks_transport_failures(stack: EvilStack, failure: str) -> None:
    handler, code = FAILURES[failure]
    stack.provider.jwks_handler = handler
    refused_login(stack, code)


@pytest.mark.parametrize("body", [{}, {"keys": "none"}, {"keys": None}])
def test_jwks_that_is_not_a_jwk_set(stack: EvilStack, body: dict[str, Any]) -> None:
    stack.provider.jwks_handler = lambda request: json_response(body)
    refused_login(stack, "provider_bad_response")


@pytest.mark.parametrize("keys", [[], [{"kty": "oct", "k": "c2VjcmV0"}], [{"kty": "EC", "crv": "P-256"}]])
def test_jwks_without_a_usable_key(stack: EvilStack, keys: list[dict[str, Any]]) -> None:
    """A symmetric key in a provider JWKS, or a broken one, is never trusted."""
    stack.provider.published = keys
    refused_login(stack, "id_token_signature_key")


@pytest.mark.parametrize("endpoint", ["token_endpoint", "userinfo_endpoint", "jwks_uri"])
def test_connection_refused(stack: EvilStack, endpoint: str) -> None:
    stack.provider.discovery_overrides = {endpoint: closed_port_url() + "/x"}
    refused_login(stack, "provider_unreachable")


@pytest.mark.parametrize("endpoint", ["token_endpoint", "userinfo_endpoint"])
def test_connection_reset(stack: EvilStack, endpoint: str) -> None:
    with reset_server() as url:
        stack.provider.discovery_overrides = {endpoint: url + "/x"}
        refused_login(stack, "provider_unreachable")


def test_provider_down_entirely(tmp_path: Path) -> None:
    """Discovery itself refused: the login redirect fails, with a retry link."""
    with evil_stack(tmp_path, settings={"issuer": closed_port_url() + "/api/v2", "http_timeout": "1"}) as s:
        browser = s.browser()
        assert_refused(s, browser, browser.get("/private/page"), "provider_unreachable")


def test_tls_error_against_a_self_signed_provider(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    with evil_stack(tmp_path, tls=(cert, key)) as s:
        assert s.provider.issuer.startswith("https://")
        browser = s.browser()
        assert_refused(s, browser, browser.get("/private/page"), "provider_tls_error")
        assert s.provider.hits == {}  # no request got past the handshake


def test_tls_with_the_provider_ca_in_ca_bundle_works(tmp_path: Path) -> None:
    """The twin: the same server is accepted once its certificate is trusted, so the
    failure above is certificate verification and nothing else."""
    cert, key = self_signed_cert(tmp_path)
    with evil_stack(tmp_path, tls=(cert, key), settings={"ca_bundle": str(cert)}) as s:
        browser = s.browser()
        browser.verify = str(cert)  # the browser goes to the provider's /authorize too
        done = browser.login()
        assert done.status_code == 303
        assert browser.get(done.headers["Location"]).status_code == 200


# -- the catalogue is complete for what the tests above produce ------------------------------------------

def test_every_catalogue_entry_has_a_4xx_or_5xx_status_and_both_languages() -> None:
    for spec in CATALOGUE.values():
        assert 400 <= spec.status < 600, spec.code
        assert spec.message_fr and spec.message_en and spec.hint, spec.code
        if spec.category is Category.PROVIDER_UNAVAILABLE:
            assert spec.status in (502, 503, 504), spec.code



# -- hostile input families: depth, size, encoding, types ----------------------------------------------
# A valid signature over content that breaks a later step (a second parser, the session seal,
# an ASCII-only hash) once ended on the generic internal_error page. Each family below ends
# on its own catalogue entry instead.

@pytest.fixture
def roomy(tmp_path: Path) -> Iterator[EvilStack]:
    """The default response cap (the `stack` fixture's 8 KiB is for the transport tests)."""
    with evil_stack(tmp_path) as s:
        yield s


def _nested(depth: int) -> str:
    """JSON text nested `depth` arrays deep (Python's json cannot write 1,000 levels)."""
    return "[" * depth + "]" * depth


def _claims_json(claims: dict[str, Any], extra: str) -> bytes:
    return (json.dumps(claims)[:-1] + ", " + extra + "}").encode()


def _wrapped(p: Any, payload: bytes, header: str | None = None, *, encrypted: bool = True) -> str:
    signed = sign_raw(payload, p.signing_key, p.alg, header)
    return encrypt(signed, p.client_key("RSA-OAEP")) if encrypted else signed


@pytest.mark.parametrize("depth", [33, 300, 1010])
def test_an_id_token_claim_nested_deep_is_refused(stack: EvilStack, depth: int) -> None:
    """Signed and encrypted correctly; orjson would read it and then fail to seal the session."""
    p = stack.provider
    p.id_token_factory = lambda grant, claims: _wrapped(p, _claims_json(claims, '"deep": ' + _nested(depth)))
    refused_login(stack, "id_token_claims_invalid")


@pytest.mark.parametrize("depth", [33, 1010])
def test_a_jws_header_nested_deep_is_refused(roomy: EvilStack, depth: int) -> None:
    stack = roomy
    p = stack.provider
    header = json.dumps({"alg": p.alg, "kid": p.signing_key.get("kid")})[:-1] + ', "x": ' + _nested(depth) + "}"
    p.id_token_factory = lambda grant, claims: _wrapped(p, json.dumps(claims).encode(), header)
    refused_login(stack, "id_token_malformed")


def test_a_jwe_header_nested_deep_is_refused(stack: EvilStack) -> None:
    p = stack.provider
    deep = '{"alg":"RSA-OAEP","enc":"A256GCM","x":' + _nested(1010) + "}"
    head = base64.urlsafe_b64encode(deep.encode()).rstrip(b"=").decode()
    p.id_token_factory = lambda grant, claims: head + ".AA.AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA"
    refused_login(stack, "id_token_malformed")


@pytest.mark.parametrize("depth", [33, 300])
def test_a_userinfo_claim_nested_deep_is_refused(stack: EvilStack, depth: int) -> None:
    p = stack.provider
    p.userinfo_factory = lambda grant, claims: raw_response(
        _wrapped(p, _claims_json(claims, '"deep": ' + _nested(depth))).encode(), "application/jwt")
    refused_login(stack, "userinfo_malformed")


def test_a_plain_json_userinfo_nested_deep_is_refused(tmp_path: Path) -> None:
    with evil_stack(tmp_path, mode="plain") as plain:
        p = plain.provider
        p.userinfo_factory = lambda grant, claims: raw_response(
            _claims_json(claims, '"deep": ' + _nested(300)), "application/json")
        refused_login(plain, "userinfo_malformed")


def test_claims_nested_within_the_limit_are_accepted(stack: EvilStack) -> None:
    """The twin: an address-like claim a few levels deep signs in."""
    p = stack.provider
    p.userinfo_claims = {"address": {"formatted": "1 rue X", "parts": [[["75107"]]]}}
    browser = stack.browser()
    assert browser.login().status_code == 303


@pytest.mark.parametrize("access_token", ["accès", "a b", "tok\x7f", "a" * 8193, "", "<script>"],
                         ids=["non-ascii", "space", "del", "8193-chars", "empty", "markup"])
def test_an_access_token_that_is_not_a_b64token_is_refused(roomy: EvilStack, access_token: str) -> None:
    """at_hash hashes ASCII, the token goes into an Authorization header and the session."""
    stack = roomy
    p = stack.provider
    p.token_handler = lambda request, grant: json_response(p.token_body(grant, access_token=access_token))  # type: ignore[arg-type]
    refused_login(stack, "provider_bad_response")
    assert p.hits.get("/userinfo") is None


@pytest.mark.parametrize(("field", "value"), [
    ("access_token", ["a"]), ("access_token", {"a": 1}), ("access_token", None), ("access_token", True),
    ("id_token", {"alg": "none"}), ("id_token", ["a.b.c"]), ("token_type", ["Bearer"]), ("token_type", 1),
])
def test_token_response_members_of_the_wrong_type(stack: EvilStack, field: str, value: Any) -> None:
    p = stack.provider
    p.token_handler = lambda request, grant: json_response(p.token_body(grant, **{field: value}))  # type: ignore[arg-type]
    refused_login(stack, "id_token_missing" if field == "id_token" else "provider_bad_response")


@pytest.mark.parametrize(("payload", "code"), [
    (b'\xff\xfe{"sub": 1}', "id_token_claims_invalid"),             # not UTF-8
    (b'\xef\xbb\xbf{"sub": "a"}', "id_token_claims_invalid"),       # byte order mark
    (b'{"sub": "\\ud800"}', "id_token_claims_invalid"),              # lone surrogate
    (b'{"exp": 1e999}', "id_token_claims_invalid"),                  # infinity
    (b'"a string"', "id_token_claims_invalid"),                      # not an object
])
def test_id_token_payloads_in_a_bad_encoding_are_refused(stack: EvilStack, payload: bytes, code: str) -> None:
    p = stack.provider
    p.id_token_factory = lambda grant, claims: _wrapped(p, payload)
    refused_login(stack, code)


def test_an_id_token_over_64_kib_is_refused(roomy: EvilStack) -> None:
    stack = roomy
    p = stack.provider
    p.id_token_factory = lambda grant, claims: p.wrap({**claims, "pad": "x" * 70_000})
    refused_login(stack, "id_token_malformed")


@pytest.mark.parametrize("body", [b"eyJ\xc3\xa9.x.y", b"\x00" * 40, "é.é.é".encode()])
def test_a_userinfo_jwt_that_is_not_ascii_is_refused(stack: EvilStack, body: bytes) -> None:
    stack.provider.userinfo_factory = lambda grant, claims: raw_response(body, "application/jwt")
    refused_login(stack, "userinfo_malformed")


@pytest.mark.parametrize("claims", [
    {"sub": "é" * 10}, {"sub": "a\nb"}, {"sub": ["a"]}, {"sub": {"a": 1}}, {"aud": {"x": 1}}, {"acr": {"a": 1}},
    {"nonce": 5}, {"iss": ["x"]}, {"exp": {"a": 1}}, {"at_hash": ["x"]}, {"azp": 1},
])
def test_id_token_claims_of_the_wrong_type_are_refused_by_their_check(stack: EvilStack,
                                                                      claims: dict[str, Any]) -> None:
    name = next(iter(claims))
    code = {"aud": "id_token_audience", "azp": "id_token_audience", "acr": "acr_insufficient",
            "nonce": "id_token_nonce", "iss": "id_token_issuer"}.get(name, "id_token_claims_invalid")
    stack.provider.id_claims = claims
    refused_login(stack, code)


def test_a_del_character_in_the_code_is_refused(stack: EvilStack) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    page = browser.get(callback.replace("code=", "code=%7F", 1))
    assert_refused(stack, browser, page, "callback_malformed")
