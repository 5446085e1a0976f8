"""The error catalogue, the mapping of provider error codes, and the pages that show them."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from fcplus_wsgi.errors import (
    CATALOGUE,
    MAX_DESCRIPTION,
    Category,
    FlowError,
    authorization_error,
    cap,
    token_error,
    userinfo_error,
)
from fcplus_wsgi.pages import Pages, prefers_english, secure

# OpenID Connect Core 3.1.2.6 plus RFC 6749 4.1.2.1.
AUTHORIZATION_CODES = [
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
    "request_not_supported", "request_uri_not_supported", "registration_not_supported",
]
# OpenID Connect Core 3.1.3.4 / RFC 6749 5.2.
TOKEN_CODES = ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
               "invalid_scope"]
# OpenID Connect Core 5.3.3 / RFC 6750 3.1.
USERINFO_CODES = ["invalid_request", "invalid_token", "insufficient_scope"]
UNKNOWN = ["", "Access_Denied", "access_denied ", "access_denied\n", "made_up", "<script>alert(1)</script>",
           "x" * 500, "invalid_grant\x00", "server_error;drop"]


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_catalogue_entry_is_complete(code: str) -> None:
    spec = CATALOGUE[code]
    assert spec.code == code
    assert isinstance(spec.category, Category)
    assert 400 <= spec.status <= 599
    assert spec.message_fr.strip() and spec.message_en.strip() and spec.hint.strip()
    assert spec.message_fr != spec.message_en
    assert spec.message_fr.rstrip()[-1] in ".!?" and spec.message_en.rstrip()[-1] in ".!?"
    assert isinstance(spec.retry, bool)
    assert re.fullmatch(r"[a-z_.]+", code)  # bounded metric label values
    assert FlowError(code).spec is spec


def test_catalogue_statuses_follow_their_category() -> None:
    for spec in CATALOGUE.values():
        if spec.category is Category.PROVIDER_UNAVAILABLE:
            assert spec.status >= 500, spec.code
        if spec.category in (Category.SECURITY, Category.SESSION_EXPIRED, Category.USER_CANCELLED):
            assert spec.status < 500, spec.code


@pytest.mark.parametrize("error", AUTHORIZATION_CODES)
def test_authorization_errors_map_to_their_own_entry(error: str) -> None:
    exc = authorization_error(error, "a description")
    assert exc.code == error
    assert exc.provider_error == error and exc.provider_description == "a description"


@pytest.mark.parametrize("error", TOKEN_CODES)
def test_token_errors_map_to_their_own_entry(error: str) -> None:
    assert token_error(error, None).code == f"token.{error}"


@pytest.mark.parametrize("error", USERINFO_CODES)
def test_userinfo_errors_map_to_their_own_entry(error: str) -> None:
    assert userinfo_error(error, None).code == f"userinfo.{error}"


@pytest.mark.parametrize("error", [*UNKNOWN, "invalid_grant", "invalid_token", "invalid_client"])
def test_unknown_authorization_errors(error: str) -> None:
    assert error not in AUTHORIZATION_CODES
    exc = authorization_error(error, None)
    assert exc.code == "unknown_authorization_error"
    assert exc.provider_error is not None and len(exc.provider_error) <= 65
    assert all(ch.isprintable() for ch in exc.provider_error)


@pytest.mark.parametrize("error", [*UNKNOWN, "access_denied", "invalid_token", "login_required"])
def test_unknown_token_errors(error: str) -> None:
    assert token_error(error, None).code == "token.unknown_error"


@pytest.mark.parametrize("error", [*UNKNOWN, "invalid_grant", "access_denied", "invalid_scope"])
def test_unknown_userinfo_errors(error: str) -> None:
    assert userinfo_error(error, None).code == "userinfo.unknown_error"


def test_semantics_of_key_entries() -> None:
    assert CATALOGUE["access_denied"].category is Category.USER_CANCELLED and CATALOGUE["access_denied"].retry
    assert CATALOGUE["token.invalid_grant"].category is Category.SESSION_EXPIRED
    assert CATALOGUE["token.invalid_client"].category is Category.MISCONFIGURED
    assert not CATALOGUE["token.invalid_client"].retry
    assert CATALOGUE["temporarily_unavailable"].status == 503
    assert CATALOGUE["id_token_signature_invalid"].category is Category.SECURITY
    assert CATALOGUE["acr_insufficient"].status == 403


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        FlowError("no_such_code")


def test_cap_strips_control_characters_and_caps_length() -> None:
    hostile = "line1\nline2\r\x00\x1b[31m\t\x7f\u2028\u2029\x85end"
    capped = cap(hostile)
    assert all(ch.isprintable() for ch in capped)
    assert "line1" in capped and "end" in capped
    assert cap("short") == "short"
    long = cap("x" * 10_000)
    assert len(long) == MAX_DESCRIPTION + 1 and long.endswith("…")
    assert cap("y" * MAX_DESCRIPTION) == "y" * MAX_DESCRIPTION
    assert len(cap("z" * 100, 10)) == 11
    assert cap("\n" * 1000).strip("?…") == ""
    exc = FlowError("access_denied", provider_description="d" * 5000 + "\n")
    assert exc.provider_description is not None and len(exc.provider_description) <= MAX_DESCRIPTION + 1


# -- pages -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def test_error_page_escapes_hostile_provider_text(pages: Pages) -> None:
    exc = authorization_error("<b>bad</b>", HOSTILE)
    response = pages.error(exc, correlation_id="cid-1234", accept_language=None, retry_url="/oidc/login")
    body = response.text
    assert "<script" not in body.lower() and "<img" not in body.lower() and "<b>" not in body
    assert "&lt;script&gt;" in body and "&lt;b&gt;bad&lt;/b&gt;" in body
    assert str(escape(cap(HOSTILE))) in body  # the whole (capped) description, escaped as Jinja does
    assert "onerror=alert(1)&gt;" in body  # text, not an attribute


def test_error_page_carries_the_correlation_id_and_status(pages: Pages) -> None:
    response = pages.error(FlowError("state_unknown"), correlation_id="abc-123_XYZ", accept_language=None,
                           retry_url="/oidc/login")
    assert response.status_int == CATALOGUE["state_unknown"].status
    assert response.headers["X-Correlation-ID"] == "abc-123_XYZ"
    assert response.text.count("abc-123_XYZ") >= 2  # in both languages
    assert 'href="/oidc/login"' in response.text


def test_no_retry_link_when_retry_makes_no_sense(pages: Pages) -> None:
    response = pages.error(FlowError("token.invalid_client"), correlation_id="c", accept_language=None,
                           retry_url="/oidc/login")
    assert "/oidc/login" not in response.text


@pytest.mark.parametrize("code", ["access_denied", "id_token_signature_invalid", "server_error", "internal_error"])
def test_security_headers(pages: Pages, code: str) -> None:
    response = pages.error(FlowError(code), correlation_id="c", accept_language=None, retry_url="/oidc/login")
    h = response.headers
    assert h["Cache-Control"] == "no-store"
    assert h["X-Frame-Options"] == "DENY"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    csp = h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
    nonce = re.search(r"style-src 'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in response.text
    assert "<script" not in response.text
    assert response.content_type == "text/html" and response.charset.lower() == "utf-8"


def test_secure_without_a_style_nonce() -> None:
    from webob import Response
    csp = secure(Response()).headers["Content-Security-Policy"]
    assert "style-src 'none'" in csp and "frame-ancestors 'none'" in csp


def _order(body: str) -> tuple[int, int]:
    fr = body.index(CATALOGUE["access_denied"].message_fr.replace("'", "&#39;"))
    en = body.index(CATALOGUE["access_denied"].message_en)
    return fr, en


@pytest.mark.parametrize(("accept", "english"), [
    (None, False), ("", False), ("fr-FR,fr;q=0.9", False), ("fr-FR,fr;q=0.9,en;q=0.8", False),
    ("de-DE,de;q=0.9", False), ("en;q=0.5,fr;q=0.5", False), ("*", False),
    ("en-US,en;q=0.9", True), ("en-GB,en;q=0.9,fr;q=0.8", True), ("de,en;q=0.7", True), ("fr;q=0.1,en", True),
    ("en;q=abc,fr;q=0.1", False),
])
def test_language_order(pages: Pages, accept: str | None, english: bool) -> None:
    assert prefers_english(accept) is english
    response = pages.error(FlowError("access_denied"), correlation_id="c", accept_language=accept,
                           retry_url=None)
    fr, en = _order(response.text)
    assert (en < fr) is english
    assert (f'<html lang="{"en" if english else "fr"}">') in response.text


def test_notice_page_is_secured_and_escaped(pages: Pages) -> None:
    response = pages.notice(fr_title="<i>t</i>", fr_message="m", en_title="t", en_message="m")
    assert "<i>" not in response.text and "&lt;i&gt;" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
