"""The authorization request carries exactly the documented parameters; return-to is same-origin only."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcplus_wsgi.authorize import (
    MAX_RETURN_TO,
    authorization_params,
    authorization_url,
    new_code_verifier,
    s256_challenge,
    safe_return_to,
)
from fcplus_wsgi.providers import GENERIC_WIRE

ENDPOINT = "https://op.example/api/v2/authorize"


def build(**changes: Any) -> str:
    args: dict[str, Any] = {
        "client_id": "cid", "redirect_uri": "https://svc.example/oidc/callback", "scopes": ("openid", "given_name"),
        "state": "s" * 64, "nonce": "n" * 64, "acr_values": ("eidas2",), "prompt": None, "claims": None,
        "code_challenge": None,
    }
    args.update(changes)
    return authorization_url(ENDPOINT, authorization_params(GENERIC_WIRE, **args))


def params(url: str) -> dict[str, list[str]]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == ENDPOINT
    return parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)


def test_exactly_the_core_parameters() -> None:
    got = params(build())
    assert got == {
        "response_type": ["code"], "client_id": ["cid"], "redirect_uri": ["https://svc.example/oidc/callback"],
        "scope": ["openid given_name"], "state": ["s" * 64], "nonce": ["n" * 64], "acr_values": ["eidas2"],
    }


def test_no_acr_values_when_none_requested() -> None:
    assert "acr_values" not in params(build(acr_values=()))
    assert params(build(acr_values=("eidas2", "eidas3")))["acr_values"] == ["eidas2 eidas3"]


def test_optional_parameters_only_when_given() -> None:
    claims = json.dumps({"id_token": {"amr": {"essential": True}}})
    got = params(build(prompt="login consent", claims=claims, code_challenge="c" * 43))
    assert got["prompt"] == ["login consent"]
    assert json.loads(got["claims"][0]) == {"id_token": {"amr": {"essential": True}}}
    assert got["code_challenge"] == ["c" * 43] and got["code_challenge_method"] == ["S256"]
    plain = params(build())
    for absent in ("prompt", "claims", "code_challenge", "code_challenge_method", "response_mode", "login_hint"):
        assert absent not in plain


def test_values_are_encoded_not_injected() -> None:
    got = params(build(state="a&b=c", nonce="x y#z", scopes=("openid", "a&scope=evil")))
    assert got["state"] == ["a&b=c"] and got["nonce"] == ["x y#z"]
    assert got["scope"] == ["openid a&scope=evil"]
    assert all(len(v) == 1 for v in got.values())


def test_pkce_rfc7636_vector_and_verifier_shape() -> None:
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifiers = {new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for v in verifiers:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,128}", v)


# -- return-to -------------------------------------------------------------------------------------

REFUSED = [
    "//evil.example", "//evil.example/path", "///evil.example", "////evil.example",
    "https://evil.example", "http://evil.example/", "HTTPS://evil.example", "https:evil.example",
    "/\\evil.example", "/\\/evil.example", "\\\\evil.example", "\\/evil.example", "\\evil.example",
    "%2F%2Fevil.example", "%2f%2fevil.example", "/%2F/evil.example", "/%2f%2fevil.example",
    "%252F%252Fevil.example", "/%252F/evil.example", "/%25252F/evil.example",
    "/%5Cevil.example", "/%5cevil.example", "/%5C%5Cevil.example", "/%255Cevil.example",
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", " //evil.example",
    "/%09/evil.example", "/%0A/evil.example", "/%0D%0A/evil.example", "/%0d%0aSet-Cookie:x=y",
    "/\x00", "/%00", "/a\x7fb", "/%7F", "/\x1b[31m",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "javascript://%0Aalert(1)", "data:text/html,<script>",
    "vbscript:msgbox", "evil.example", "evil.example/path", ".//evil.example", "?next=//evil",
    "#//evil", "@evil.example", "http:/\\evil.example",
    "/" + "a" * MAX_RETURN_TO, "/" + "%2e" * 2000,
]


@pytest.mark.parametrize("value", REFUSED)
def test_open_redirect_attempts_are_refused(value: str) -> None:
    assert safe_return_to(value) is None


ACCEPTED = [
    "/", "/app", "/app/", "/app/page?x=1&y=2", "/app#section", "/a/b/../c", "/search?q=https://evil.example",
    "/search?next=//evil.example", "/caf%C3%A9", "/a:b", "/%2e%2e/app", "/path;params", "/~user/",
    "/" + "a" * (MAX_RETURN_TO - 1),
]


@pytest.mark.parametrize("value", ACCEPTED)
def test_same_origin_paths_are_kept_unchanged(value: str) -> None:
    assert safe_return_to(value) == value


def test_missing_return_to_gives_the_default() -> None:
    assert safe_return_to(None) == "/"
    assert safe_return_to("") == "/"
    assert safe_return_to(None, default="/home") == "/home"


def test_every_accepted_value_resolves_to_the_same_origin() -> None:
    """Cross-check with the standard library's resolution, as a browser would join the Location."""
    from urllib.parse import urljoin
    for value in ACCEPTED:
        joined = urlsplit(urljoin("https://svc.example/current/page", value))
        assert (joined.scheme, joined.netloc) == ("https", "svc.example"), value


@pytest.mark.parametrize(("value", "expected"), [
    ("/café", "/caf%C3%A9"), ("/日本?q=é#à", "/%E6%97%A5%E6%9C%AC?q=%C3%A9#%C3%A0"), ("/a b", "/a%20b"),
    ('/a"b<c>d', "/a%22b%3Cc%3Ed"), ("/\u2028x", "/%E2%80%A8x"), ("/\x85x", "/%C2%85x"),
])
def test_non_ascii_targets_are_percent_encoded_for_the_location_header(value: str, expected: str) -> None:
    """Servers write headers as latin-1: a raw '/日本' made the post-login redirect a 500 without the cookie."""
    assert safe_return_to(value) == expected


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda s: "/" + s) | st.text(max_size=40))
def test_any_accepted_target_is_a_same_origin_ascii_path(value: str) -> None:
    from urllib.parse import urljoin
    result = safe_return_to(value)
    if result is None:
        return
    assert result.isascii() and result.isprintable() and " " not in result
    assert result.startswith("/") and not result.startswith("//") and "\\" not in result
    joined = urlsplit(urljoin("https://svc.example/x/y", result))
    assert (joined.scheme, joined.netloc) == ("https", "svc.example")


# -- bounds the mutation run found untested (docs/mutation.md) ------------------------------------

def _fc(**changes: Any) -> dict[str, str]:
    from fcplus_wsgi.providers import FC_WIRE
    args: dict[str, Any] = {
        "client_id": "cid", "redirect_uri": "https://svc.example/oidc/callback", "scopes": ("openid",),
        "state": "s" * 64, "nonce": "n" * 64, "acr_values": ("eidas1",), "prompt": None, "claims": None,
        "code_challenge": None,
    }
    args.update(changes)
    return authorization_params(FC_WIRE, **args)


@pytest.mark.parametrize(("name", "low", "high"), [("nonce", 22, 512), ("state", 32, 512)])
def test_nonce_and_state_lengths_are_bounded_inclusively(name: str, low: int, high: int) -> None:
    """FranceConnect's core refuses a nonce under 22 and a state under 32 characters on its own
    error page (no callback ever comes back): both bounds are checked before anything is sent."""
    for length in (low, high):
        assert _fc(**{name: "x" * length})[name] == "x" * length
    for length in (low - 1, high + 1):
        with pytest.raises(ValueError, match=name):
            _fc(**{name: "x" * length})


def test_every_accepted_prompt_value_together_is_accepted() -> None:
    assert _fc(prompt="login consent")["prompt"] == "login consent"
    with pytest.raises(ValueError, match="prompt"):
        _fc(prompt="login none")


def test_proconnect_merges_the_acr_into_the_configured_claims() -> None:
    from fcplus_wsgi.providers import PROCONNECT_WIRE
    configured = json.dumps({"userinfo": {"siret": {"essential": True}}})
    got = authorization_params(PROCONNECT_WIRE, client_id="cid", redirect_uri="https://svc.example/cb",
                               scopes=("openid",), state="s" * 64, nonce="n" * 64, acr_values=("eidas1",),
                               prompt=None, claims=configured, code_challenge=None)
    merged = json.loads(got["claims"])
    assert merged["userinfo"] == {"siret": {"essential": True}}
    assert merged["id_token"]["acr"]["essential"] is True and "eidas1" in merged["id_token"]["acr"]["values"]


def test_login_hint_length_bound_is_the_email_maximum() -> None:
    from fcplus_wsgi.authorize import check_hint
    local = "a" * 64
    labels = ".".join(["b" * 61] * 3)  # 185 characters
    at_254 = f"{local}@{labels}.fra"
    at_255 = f"{local}@{labels}.frab"
    assert (len(at_254), len(at_255)) == (254, 255)
    assert check_hint("login_hint", at_254) is None
    assert check_hint("login_hint", at_255) is not None


def test_the_code_verifier_is_64_characters_of_384_bits() -> None:
    verifier = new_code_verifier()
    assert len(verifier) == 64 and re.fullmatch(r"[A-Za-z0-9_-]{64}", verifier)
