"""Hostile input, one test each, over real loopback HTTP: browser -> middleware -> evil provider.

Every refusal is checked the same way (tests.support.evil_provider.assert_refused): the
catalogue entry's status and page, the same code and correlation id in events and logs,
the app never called, no session left. The cases accepted on purpose (clock skew, a
kid-less token with one key, key rotation) sit next to their refused twins, so a check
that refused everything would fail here too.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from jwcrypto import jwk
from jwcrypto.jws import JWSCore

from tests.support.evil_provider import (
    DROP,
    EvilBrowser,
    EvilStack,
    Grant,
    assert_refused,
    b64url,
    callback_query,
    ec_key,
    encrypt,
    evil_stack,
    hs256,
    public_dict,
    raw_response,
    rsa_key,
    sign,
    swap_payload,
    tamper_signature,
    unsigned,
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EvilStack]:
    """FC+ policy (provider = fcplus-integration) against the evil provider."""
    with evil_stack(tmp_path) as s:
        yield s


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[EvilStack]:
    """A plain OpenID Connect configuration (no preset): RS256 id_token, JSON userinfo."""
    with evil_stack(tmp_path, mode="plain") as s:
        yield s


def with_query(url: str, **changes: Any) -> str:
    """The callback URL with parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def test_the_valid_answers_are_accepted(stack: EvilStack, plain: EvilStack) -> None:
    """The baseline every refusal below departs from by one thing."""
    for s in (stack, plain):
        browser = s.browser()
        done = browser.login("/private/page?x=1")
        assert done.status_code == 303 and done.headers["Location"] == "/private/page?x=1"
        seen = browser.get("/private/page?x=1").json()
        assert seen["sub"].endswith("v1") and seen["claims"]["family_name"] == "DUBOIS"
        assert s.recorder.errors() == [] and s.live_sessions() == 1


# -- state: missing, unknown, reused, from another browser --------------------------------------------

def test_state_missing(stack: EvilStack) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    assert_refused(stack, browser, browser.get(with_query(callback, state=None)), "state_missing")


@pytest.mark.parametrize("state", ["0" * 64, "A" * 64, "short", "x" * 43])
def test_state_unknown(stack: EvilStack, state: str) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    page = browser.get(with_query(callback, state=state))
    assert_refused(stack, browser, page, "state_unknown")
    assert "Réessayer" in page.text and "Try again" in page.text


def test_state_reused_after_a_failed_callback(stack: EvilStack) -> None:
    """A state is single use even when its first callback failed (here: the token exchange)."""
    stack.provider.token_handler = lambda req, grant: raw_response(b"down", status=503)
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    assert browser.get(callback).status_code == 502
    stack.provider.token_handler = None
    stack.recorder.events.clear()
    assert_refused(stack, browser, browser.get(callback), "state_unknown")


def test_state_from_another_browser_is_login_csrf(stack: EvilStack) -> None:
    attacker, victim = stack.browser(), stack.browser()
    callback = attacker.authorize(attacker.start())
    assert_refused(stack, victim, victim.get(callback), "state_browser_mismatch")
    # The victim had a pending login of its own: still not enough. The refusal did not use up
    # the attacker's state (a browser that does not hold a state cannot spend it), so the
    # answer is the same.
    victim_callback = victim.authorize(victim.start())
    stack.recorder.events.clear()
    forged = with_query(victim_callback, code=callback_query(callback)["code"][0],
                        state=callback_query(callback)["state"][0])
    assert_refused(stack, victim, victim.get(forged), "state_browser_mismatch")


def test_state_with_a_forged_login_cookie(stack: EvilStack) -> None:
    """The browser binding is a secret the attacker cannot guess: a planted cookie of the
    right shape does not match the state's binding."""
    attacker, victim = stack.browser(), stack.browser()
    callback = attacker.authorize(attacker.start())
    victim.http.cookies.set("fcplus-login", "B" * 43, domain="127.0.0.1", path="/")
    assert_refused(stack, victim, victim.get(callback), "state_browser_mismatch")


# -- replay, back button, reload -----------------------------------------------------------------

def test_callback_replayed_in_the_same_browser_is_a_friendly_try_again(stack: EvilStack) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    first = browser.get(callback)
    assert first.status_code == 303
    sessions = stack.live_sessions()
    for _ in range(2):  # reload, then back button
        again = browser.get(callback)
        assert again.status_code == 400 and "expiré" in again.text and "expired" in again.text
        assert f'href="{stack.middleware.settings.login_path}"' in again.text
        assert stack.recorder.errors()[-1] == "state_unknown"
    assert stack.calls == [] and stack.live_sessions() == sessions
    # The replay did not touch the session the first callback created.
    assert browser.get(first.headers["Location"]).status_code == 200


def test_callback_replayed_with_a_fresh_cookie_jar(stack: EvilStack) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    assert browser.get(callback).status_code == 303
    stranger = stack.browser()
    stack.calls.clear()
    page = stranger.get(callback)
    assert page.status_code == 400 and stack.recorder.errors()[-1] == "state_unknown"
    assert stranger.get("/private/x").status_code == 302 and stack.calls == []
    assert stranger.fcplus_cookies() == ["fcplus-login"]  # only the new login it just started


def test_code_from_one_login_with_the_state_of_another_fails_the_nonce(stack: EvilStack) -> None:
    """Code injection: the provider honours the code, but its id_token carries the nonce of
    the other login, so the swap is caught."""
    browser = stack.browser()
    first = browser.authorize(browser.start("/private/a"))
    second = browser.authorize(browser.start("/private/b"))
    swapped = with_query(second, code=callback_query(first)["code"][0])
    assert_refused(stack, browser, browser.get(swapped), "id_token_nonce")


# -- id_token forgeries ------------------------------------------------------------------------------

def refused_login(stack: EvilStack, code: str) -> None:
    browser = stack.browser()
    assert_refused(stack, browser, browser.login(), code)


@pytest.mark.parametrize(("claims", "code"), [
    ({"nonce": "0" * 64}, "id_token_nonce"),
    ({"nonce": DROP}, "id_token_nonce"),
    ({"aud": "someone-else"}, "id_token_audience"),
    ({"aud": ["someone-else", "another"]}, "id_token_audience"),
    ({"aud": ["evil-client", "another"]}, "id_token_audience"),  # several audiences, no azp
    ({"aud": ["evil-client", "another"], "azp": "another"}, "id_token_audience"),
    ({"azp": "another"}, "id_token_audience"),
    ({"iss": "https://evil.example/api/v2"}, "id_token_issuer"),
    ({"iss": DROP}, "id_token_issuer"),
    ({"iat": DROP}, "id_token_claims_invalid"),
    ({"sub": DROP}, "id_token_claims_invalid"),
    ({"sub": ""}, "id_token_claims_invalid"),
    ({"sub": 42}, "id_token_claims_invalid"),
    ({"exp": DROP}, "id_token_claims_invalid"),
    ({"exp": "9999999999"}, "id_token_claims_invalid"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3700}, "id_token_expired"),
    ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3700}, "id_token_issued_in_future"),
    ({"nbf": int(time.time()) + 3600}, "id_token_issued_in_future"),
    ({"acr": "eidas1"}, "acr_insufficient"),
    ({"acr": DROP}, "acr_insufficient"),
    ({"acr": "eidas2 eidas3"}, "acr_insufficient"),
    ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "id_token_claims_invalid"),
])
def test_id_token_claims_are_checked(stack: EvilStack, claims: dict[str, Any], code: str) -> None:
    stack.provider.id_claims = claims
    refused_login(stack, code)


def test_aud_array_with_the_right_azp_is_accepted(stack: EvilStack) -> None:
    stack.provider.id_claims = {"aud": ["evil-client", "another"], "azp": "evil-client"}
    assert stack.browser().login().status_code == 303


def test_alg_none_inside_the_jwe(stack: EvilStack) -> None:
    p = stack.provider
    p.id_token_factory = lambda grant, claims: encrypt(unsigned(claims), p.client_key())
    refused_login(stack, "id_token_signature_alg")


def test_alg_none_plain_oidc(plain: EvilStack) -> None:
    plain.provider.id_token_factory = lambda grant, claims: unsigned(claims)
    refused_login(plain, "id_token_signature_alg")


@pytest.mark.parametrize("forge", ["flipped_bit", "swapped_payload", "other_key_same_kid"])
def test_bad_es256_signature(stack: EvilStack, forge: str) -> None:
    p = stack.provider

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        good = sign(claims, p.signing_key, "ES256")
        if forge == "flipped_bit":
            bad = tamper_signature(good)
        elif forge == "swapped_payload":
            bad = swap_payload(good, {**claims, "sub": "admin"})
        else:
            bad = sign(claims, ec_key(kid=p.signing_key.get("kid")), "ES256")
        return encrypt(bad, p.client_key())
    p.id_token_factory = factory
    refused_login(stack, "id_token_signature_invalid")


@pytest.mark.parametrize("forge", ["flipped_bit", "swapped_payload", "other_key_same_kid"])
def test_bad_rs256_signature(plain: EvilStack, forge: str) -> None:
    p = plain.provider

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        good = sign(claims, p.signing_key, "RS256")
        if forge == "flipped_bit":
            return tamper_signature(good)
        if forge == "swapped_payload":
            return swap_payload(good, {**claims, "sub": "admin"})
        return sign(claims, rsa_key(kid=p.signing_key.get("kid")), "RS256")
    p.id_token_factory = factory
    refused_login(plain, "id_token_signature_invalid")


def test_es256_signature_in_the_fcplus_policy_only(stack: EvilStack) -> None:
    """FC+ signs with ES256 only: a correct RS256 signature from a published key is refused."""
    p = stack.provider
    rsa = rsa_key()
    p.published = [public_dict(p.signing_key, alg="ES256"), public_dict(rsa, alg="RS256")]
    p.id_token_factory = lambda grant, claims: encrypt(sign(claims, rsa, "RS256"), p.client_key())
    refused_login(stack, "id_token_signature_alg")


def test_hs256_signed_with_the_client_secret_is_refused_under_fcplus(stack: EvilStack) -> None:
    p = stack.provider
    p.id_token_factory = lambda grant, claims: encrypt(hs256(claims, p.client_secret.encode()), p.client_key())
    refused_login(stack, "id_token_signature_alg")


def test_hs256_signed_with_the_client_secret_is_refused_in_plain_oidc(plain: EvilStack) -> None:
    p = plain.provider
    p.id_token_factory = lambda grant, claims: hs256(claims, p.client_secret.encode())
    refused_login(plain, "id_token_signature_alg")


def test_hs256_with_the_client_secret_is_accepted_only_when_allowed(tmp_path: Path) -> None:
    """The positive twin: insecure_allow_hs256 = true is the only way in for HS256."""
    with evil_stack(tmp_path, mode="plain", settings={"insecure_allow_hs256": "true"}) as s:
        p = s.provider
        p.id_token_factory = lambda grant, claims: hs256(claims, p.client_secret.encode())
        assert s.browser().login().status_code == 303


@pytest.mark.parametrize("allow_hs256", ["false", "true"])
@pytest.mark.parametrize("secret_form", ["pem", "jwk_json", "modulus"])
def test_hs256_signed_with_the_provider_public_key(tmp_path: Path, allow_hs256: str, secret_form: str) -> None:
    """Algorithm confusion: the attacker uses the public RSA key, which everyone has, as an
    HMAC secret; a verifier that picks its algorithm from the token would accept it."""
    with evil_stack(tmp_path, mode="plain", settings={"insecure_allow_hs256": allow_hs256}) as s:
        p = s.provider
        public = jwk.JWK(**public_dict(p.signing_key))
        secret = {"pem": public.export_to_pem(), "jwk_json": public.export_public().encode(),
                  "modulus": public.get("n").encode()}[secret_form]
        p.id_token_factory = lambda grant, claims: hs256(claims, secret, kid=p.signing_key.get("kid"))
        code = "id_token_signature_invalid" if allow_hs256 == "true" else "id_token_signature_alg"
        refused_login(s, code)


@pytest.mark.parametrize("member", [
    {"jwk": "embedded"}, {"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/cert"},
    {"crit": ["exp"]}, {"b64": False, "crit": ["b64"]},
])
def test_jws_header_members_that_bring_their_own_key_or_rules(stack: EvilStack, member: dict[str, Any]) -> None:
    """An embedded key (or a URL to one) signs perfectly: it must never be trusted."""
    p = stack.provider
    attacker = ec_key()

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        header = dict(member)
        if header.get("jwk") == "embedded":
            header["jwk"] = json.loads(attacker.export_public())
        # Signed by the attacker's own key over the usual signing input.
        core = JWSCore("ES256", attacker, json.dumps({"alg": "ES256", "kid": attacker.get("kid"), **header}),
                       json.dumps(claims).encode())
        signed = core.sign()
        return encrypt(f"{signed['protected']}.{b64url(json.dumps(claims).encode())}.{signed['signature']}",
                       p.client_key())
    p.id_token_factory = factory
    refused_login(stack, "id_token_signature_alg")


def test_not_encrypted_when_encryption_is_expected(stack: EvilStack) -> None:
    p = stack.provider
    p.id_token_factory = lambda grant, claims: sign(claims, p.signing_key, "ES256")
    refused_login(stack, "id_token_not_encrypted")


def test_not_encrypted_is_fine_in_plain_oidc(plain: EvilStack) -> None:
    """The twin: plain OIDC makes encryption optional, so the same token passes there."""
    assert plain.browser().login().status_code == 303


@pytest.mark.parametrize("kid", ["foreign", "ours", None])
def test_encrypted_to_a_foreign_key(stack: EvilStack, kid: str | None) -> None:
    p = stack.provider
    foreign = rsa_key()

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        inner = sign(claims, p.signing_key, "ES256")
        named: str | bool = True if kid == "foreign" else str(p.client_key().get("kid")) if kid == "ours" else False
        return encrypt(inner, foreign, kid=named)
    p.id_token_factory = factory
    refused_login(stack, "id_token_decryption_failed")


@pytest.mark.parametrize(("alg", "enc"), [
    # RSA-OAEP-256 is not here: FC+'s core enables it (core-fcp-high enabledJWA), so the FC+ preset accepts it.
    ("dir", "A256GCM"), ("A256KW", "A256GCM"), ("RSA1_5", "A256GCM"), ("RSA-OAEP-256", "A128GCM"),
    ("RSA-OAEP", "A128CBC-HS256"), ("RSA-OAEP", "A128GCM"), ("ECDH-ES+A256KW", "A256GCM"),
])
def test_unexpected_jwe_alg_or_enc(stack: EvilStack, alg: str, enc: str) -> None:
    p = stack.provider

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        inner = sign(claims, p.signing_key, "ES256")
        if alg in ("dir", "A256KW"):
            size = 256 if alg == "A256KW" or enc == "A256GCM" else 512
            key = jwk.JWK.generate(kty="oct", size=size)
        elif alg.startswith("ECDH"):
            key = p.client_key("ECDH-ES")
        else:
            key = p.client_key("RSA-OAEP")
        return encrypt(inner, key, alg, enc)
    p.id_token_factory = factory
    refused_login(stack, "id_token_encryption_alg")


def test_jwe_with_compression(stack: EvilStack) -> None:
    p = stack.provider
    p.id_token_factory = lambda grant, claims: encrypt(sign(claims, p.signing_key, "ES256"), p.client_key(),
                                                       extra_header={"zip": "DEF"})
    refused_login(stack, "id_token_encryption_alg")


@pytest.mark.parametrize(("body", "code"), [
    ({"id_token": DROP}, "id_token_missing"),
    ({"id_token": ""}, "id_token_missing"),
    ({"id_token": 12}, "id_token_missing"),
    ({"id_token": "not.a.jwt.at.all.really"}, "id_token_malformed"),
    ({"id_token": "a.b"}, "id_token_malformed"),
    ({"id_token": "é.é.é"}, "id_token_malformed"),
])
def test_malformed_id_token(stack: EvilStack, body: dict[str, Any], code: str) -> None:
    p = stack.provider
    p.token_handler = lambda req, grant: _json(p.token_body(grant, **body)) if grant else _json({}, 400)
    refused_login(stack, code)


def _json(body: Any, status: int = 200) -> Any:
    from tests.support.evil_provider import json_response
    return json_response(body, status)


# -- userinfo ----------------------------------------------------------------------------------------

def test_userinfo_sub_differs_from_the_id_token(stack: EvilStack) -> None:
    stack.provider.userinfo_claims = {"sub": "0" * 64 + "v1"}
    refused_login(stack, "userinfo_sub_mismatch")


def test_userinfo_sub_differs_plain_json(plain: EvilStack) -> None:
    plain.provider.userinfo_claims = {"sub": "0" * 64 + "v1"}
    refused_login(plain, "userinfo_sub_mismatch")


def test_userinfo_without_sub(plain: EvilStack) -> None:
    plain.provider.userinfo_claims = {"sub": DROP}
    refused_login(plain, "userinfo_sub_mismatch")


def test_userinfo_signed_by_an_unknown_key(stack: EvilStack) -> None:
    p = stack.provider
    stranger = ec_key()
    p.userinfo_factory = lambda grant, claims: raw_response(
        encrypt(sign(claims, stranger, "ES256"), p.client_key()).encode(), "application/jwt")
    refused_login(stack, "userinfo_malformed")


def test_userinfo_signed_by_an_unknown_key_plain(plain: EvilStack) -> None:
    stranger = rsa_key()
    plain.provider.userinfo_factory = lambda grant, claims: raw_response(
        sign(claims, stranger, "RS256").encode(), "application/jwt")
    refused_login(plain, "userinfo_malformed")


def test_userinfo_with_a_bad_signature(stack: EvilStack) -> None:
    p = stack.provider
    p.userinfo_factory = lambda grant, claims: raw_response(
        encrypt(swap_payload(sign(claims, p.signing_key, "ES256"), {**claims, "family_name": "X"}),
                p.client_key()).encode(), "application/jwt")
    refused_login(stack, "userinfo_malformed")


def test_userinfo_plain_json_under_fcplus(stack: EvilStack) -> None:
    from tests.support.evil_provider import json_response
    stack.provider.userinfo_factory = lambda grant, claims: json_response(claims)
    refused_login(stack, "userinfo_not_encrypted")


def test_userinfo_signed_but_not_encrypted_under_fcplus(stack: EvilStack) -> None:
    p = stack.provider
    p.userinfo_factory = lambda grant, claims: raw_response(sign(claims, p.signing_key, "ES256").encode(),
                                                            "application/jwt")
    refused_login(stack, "userinfo_not_encrypted")


@pytest.mark.parametrize("claims", [{"iss": "https://evil.example/api/v2"}, {"aud": "someone-else"}])
def test_userinfo_jwt_for_another_issuer_or_audience(stack: EvilStack, claims: dict[str, Any]) -> None:
    stack.provider.userinfo_claims = claims
    refused_login(stack, "userinfo_issuer_audience")


@pytest.mark.parametrize("ctype", ["text/html", "application/octet-stream", ""])
def test_userinfo_with_an_unexpected_content_type(plain: EvilStack, ctype: str) -> None:
    plain.provider.userinfo_factory = lambda grant, claims: raw_response(json.dumps(claims).encode(), ctype)
    refused_login(plain, "userinfo_malformed")


def test_userinfo_signed_and_signed_encrypted_accepted_in_plain_oidc(plain: EvilStack) -> None:
    p = plain.provider
    for encrypted in (False, True):
        p.userinfo_factory = lambda grant, claims, e=encrypted: raw_response(
            p.wrap(claims, encrypted=e).encode(), "application/jwt")
        browser = plain.browser()
        done = browser.login()
        assert done.status_code == 303
        assert browser.get(done.headers["Location"]).json()["claims"]["family_name"] == "DUBOIS"


# -- acr ---------------------------------------------------------------------------------------------

def test_acr_lower_than_requested_step_up(stack: EvilStack) -> None:
    """A step-up to eidas3 answered with eidas2 is refused, with the eIDAS wording."""
    stack.provider.id_claims = {"acr": "eidas2"}
    browser = stack.browser()
    start = browser.get("/oidc/login?return_to=/private/vault&acr=eidas3")
    assert parse_qs(urlsplit(start.headers["Location"]).query)["acr_values"] == ["eidas3"]
    page = browser.get(browser.authorize(start.headers["Location"]))
    assert_refused(stack, browser, page, "acr_insufficient")
    assert "eIDAS" in page.text


def test_acr_lower_than_requested_plain_oidc(tmp_path: Path) -> None:
    with evil_stack(tmp_path, mode="plain", settings={"acr_values": "eidas2"}) as s:
        s.provider.id_claims = {"acr": "eidas1"}
        refused_login(s, "acr_insufficient")


def test_higher_acr_than_requested_is_accepted(stack: EvilStack) -> None:
    stack.provider.id_claims = {"acr": "eidas3"}
    browser = stack.browser()
    done = browser.login()
    assert browser.get(done.headers["Location"]).json()["acr"] == "eidas3"


# -- discovery -------------------------------------------------------------------------------------

@pytest.mark.parametrize("issuer", ["https://evil.example/api/v2", "{issuer}/", "{issuer}/../v2", None])
def test_discovery_issuer_differs(stack: EvilStack, issuer: str | None) -> None:
    p = stack.provider
    p.discovery_overrides = {"issuer": issuer.format(issuer=p.issuer) if issuer else DROP}
    browser = stack.browser()
    page = browser.get("/private/page")
    assert_refused(stack, browser, page, "discovery_issuer_mismatch")
    assert p.hits.get("/authorize") is None


@pytest.mark.parametrize("missing", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_discovery_without_a_required_endpoint(stack: EvilStack, missing: str) -> None:
    stack.provider.discovery_overrides = {missing: DROP}
    browser = stack.browser()
    assert_refused(stack, browser, browser.get("/private/page"), "discovery_invalid")


def test_discovery_pointing_the_browser_elsewhere_is_not_followed_blindly(stack: EvilStack) -> None:
    """A scheme other than http(s) for the authorization endpoint is refused."""
    stack.provider.discovery_overrides = {"authorization_endpoint": "javascript:alert(1)//"}
    browser = stack.browser()
    assert_refused(stack, browser, browser.get("/private/page"), "discovery_invalid")


# -- oversized or malformed callback parameters ------------------------------------------------------

@pytest.mark.parametrize("change", [
    {"state": "a" * 10_240},
    {"code": "c" * 10_240},
    {"state": "0" * 32 + "\x00" + "0" * 31},
    {"state": "0" * 32 + "\n" + "0" * 31},
    {"code": "abc\x1b[31mdef"},
    {"code": "abc def"},
    {"code": "é" * 10},
    {"code": ""},
    {"code": None},
    {"error_description": "x" * 10_240, "error": "access_denied"},
    {"iss": "x" * 1024},
])
def test_malformed_callback_parameters(stack: EvilStack, change: dict[str, Any]) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    assert_refused(stack, browser, browser.get(with_query(callback, **change)), "callback_malformed")
    assert stack.provider.hits.get("/token") is None


@pytest.mark.parametrize("repeated", ["state", "code", "iss", "error"])
def test_repeated_callback_parameters(stack: EvilStack, repeated: str) -> None:
    """Parameter pollution: two values, even identical ones, are refused; none is picked."""
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    present = callback_query(callback).get(repeated)
    value = present[0] if present else "access_denied" if repeated == "error" else stack.provider.issuer
    extra = [(repeated, value)] * (1 if present else 2)
    page = browser.get(callback + "&" + urlencode(extra))
    assert_refused(stack, browser, page, "callback_malformed")


def test_too_many_callback_parameters(stack: EvilStack) -> None:
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    page = browser.get(callback + "&" + urlencode({f"p{i}": "v" for i in range(40)}))
    assert_refused(stack, browser, page, "callback_malformed")


def test_callback_iss_of_another_issuer_is_a_mix_up(stack: EvilStack) -> None:
    stack.provider.authorize_extra = {"iss": "https://evil.example/api/v2"}
    refused_login(stack, "issuer_mismatch_callback")


def test_error_callback_is_checked_against_the_state_first(stack: EvilStack) -> None:
    """An unsolicited error (no state, or a foreign one) is not taken at its word."""
    stack.provider.authorize_error = {"error": "access_denied"}
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    assert_refused(stack, browser, browser.get(with_query(callback, state=None)), "state_missing")
    stack.recorder.events.clear()
    assert_refused(stack, browser, browser.get(with_query(callback, state="1" * 64)), "state_unknown")


# -- open redirects ----------------------------------------------------------------------------------

OPEN_REDIRECTS = [
    "//evil.example", "//evil.example/", "///evil.example", "https://evil.example", "http:evil.example",
    "https:/evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "\\/evil.example",
    "/%2F%2Fevil.example", "%2F%2Fevil.example", "/%2F/evil.example", "/%5Cevil.example", "%5C%5Cevil.example",
    "/%252F%252Fevil.example", "/%25252F%25252Fevil.example", "/%09/evil.example", "/\t/evil.example",
    "/%0d%0a/evil.example", "/\r\n/evil.example", " //evil.example", "evil.example", "javascript:alert(1)",
    "//evil.example@127.0.0.1", "/%00/evil.example", "//%65vil.example", "/x" * 1100,
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS, ids=[t[:40] for t in OPEN_REDIRECTS])
def test_open_redirect_through_login_path(stack: EvilStack, target: str) -> None:
    browser = stack.browser()
    page = browser.get(stack.base + "/oidc/login?return_to=" + quote(target, safe=""))
    assert_refused(stack, browser, page, "return_to_invalid")
    assert stack.provider.hits.get("/authorize") is None


def test_login_path_with_repeated_return_to(stack: EvilStack) -> None:
    browser = stack.browser()
    page = browser.get("/oidc/login?return_to=/private/a&return_to=//evil.example")
    assert_refused(stack, browser, page, "return_to_invalid")


def test_same_origin_return_to_with_a_tricky_query_is_kept(stack: EvilStack) -> None:
    browser = stack.browser()
    start = browser.get("/oidc/login?return_to=" + quote("/private/ok?next=//evil.example&a=%2F", safe=""))
    done = browser.get(browser.authorize(start.headers["Location"]))
    assert done.status_code == 303 and done.headers["Location"] == "/private/ok?next=//evil.example&a=%2F"


def _landing_after_login(stack: EvilStack, browser: EvilBrowser, first: tuple[int, dict[str, str]]) -> str:
    status, headers = first
    assert status == 302, status
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    name, _, value = cookie.partition("=")
    browser.http.cookies.set(name, value, domain="127.0.0.1", path="/")
    done = browser.get(browser.authorize(headers["Location"]))
    assert done.status_code == 303, done.status_code
    return str(done.headers["Location"])


def _is_same_origin_path(location: str) -> bool:
    return (location.startswith("/") and not location.startswith("//") and "\\" not in location
            and not any(ord(c) < 0x21 for c in location) and not urlsplit(location).netloc)


@pytest.mark.parametrize("raw_path", ["/\\evil.example", "/%5Cevil.example", "/%5C%5Cevil.example",
                                      "/%09/evil.example", "//evil.example", "/%2F%2Fevil.example",
                                      "/\\\\evil.example/x?y=1"])
def test_open_redirect_through_the_protected_url_over_http(tmp_path: Path, raw_path: str) -> None:
    """The original URL becomes the return-to: whatever path reaches the server, the browser
    lands on a same-origin path after sign-in."""
    with evil_stack(tmp_path, settings={"protected_paths": "/"}) as s:
        port = int(s.base.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.putheader("Accept", "text/html")
        conn.endheaders()
        response = conn.getresponse()
        first = (response.status, dict(response.getheaders()))
        conn.close()
        location = _landing_after_login(s, s.browser(), first)
        assert _is_same_origin_path(location), location


@pytest.mark.parametrize("path_info", ["//evil.example", "///evil.example/x", "/\\evil.example", "/\t/evil.example",
                                       "//evil.example/%2F..", "/\\\\evil.example"])
def test_open_redirect_through_the_protected_url_any_server(tmp_path: Path, path_info: str) -> None:
    """Servers differ (waitress folds `//`, others keep it): the PATH_INFO a server could
    hand over, fed to the middleware in-process, then the sign-in finished over HTTP."""
    with evil_stack(tmp_path, settings={"protected_paths": "/"}) as s:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split()[0])
            captured["headers"] = dict(headers)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
                   "HTTP_ACCEPT": "text/html", "wsgi.url_scheme": "http"}
        list(s.middleware(environ, start_response))
        location = _landing_after_login(s, s.browser(), (captured["status"], captured["headers"]))
        assert _is_same_origin_path(location), location


# -- spoofed identity headers and forged session cookies ----------------------------------------------

SPOOFED_HEADERS = [
    "Remote-User", "Remote_User", "REMOTE-USER", "remote-user", "X-Remote-User", "X_Remote_User", "X-Remote_User",
    "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups",
    "X-Forwarded-Access-Token", "X-Auth-Request-User", "X-Auth-Request-Email",
    "X-Auth-Request-Preferred-Username", "X-Auth-Request-Groups", "X-Auth-Request-Access-Token", "X-Auth-User",
    "X-User", "X-Authenticated-User", "X-Remote-Email", "Remote-Email", "X-Userinfo", "X-Id-Token",
    "X-Access-Token", "X-Fcplus-Sub", "X-Fcplus-Identity", "Fcplus-Identity", "OIDC-Claim-Sub", "Oidc_Claim_Sub",
    "X-OIDC-Sub",
]


def _raw_get(stack: EvilStack, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """A request with header spellings an HTTP library would normalise or refuse."""
    port = int(stack.base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    result = (response.status, response.read())
    conn.close()
    return result


def _spoof(value: str = "admin") -> list[tuple[str, str]]:
    return [(name, value) for name in SPOOFED_HEADERS]


def test_spoofed_identity_headers_never_reach_the_app_on_public_paths(stack: EvilStack) -> None:
    status, body = _raw_get(stack, "/public", [("Accept", "text/html"), *_spoof()])
    assert status == 200
    seen = json.loads(body)
    assert seen["remote_user"] is None and seen["sub"] is None
    leaked = [k for k in seen["environ_keys"] if k not in ("HTTP_HOST", "HTTP_ACCEPT", "fcplus_wsgi.middleware")]
    assert leaked == [], leaked


def test_spoofed_identity_headers_do_not_open_protected_paths(stack: EvilStack) -> None:
    status, _ = _raw_get(stack, "/private/x", [("Accept", "text/html"), *_spoof()])
    assert status == 302 and stack.calls == []
    status, _ = _raw_get(stack, "/api/x", [("Accept", "application/json"), *_spoof()])
    assert status == 401 and stack.calls == []


def test_spoofed_identity_headers_do_not_override_a_real_session(stack: EvilStack) -> None:
    browser = stack.browser()
    done = browser.login()
    sub = browser.get(done.headers["Location"]).json()["sub"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.http.cookies)
    status, body = _raw_get(stack, "/private/x", [("Accept", "text/html"), ("Cookie", cookie), *_spoof()])
    seen = json.loads(body)
    assert status == 200 and seen["remote_user"] == sub and seen["sub"] == sub
    extra = [k for k in seen["environ_keys"] if k not in (
        "HTTP_HOST", "HTTP_ACCEPT", "HTTP_COOKIE", "REMOTE_USER", "fcplus.identity", "fcplus.claims",
        "fcplus.id_token_claims", "fcplus_wsgi.middleware")]
    assert extra == [], extra


def test_forged_session_cookies(stack: EvilStack) -> None:
    victim = stack.browser()
    assert victim.login().status_code == 303
    real = victim.http.cookies.get("fcplus")
    login_secret = victim.http.cookies.get("fcplus-login")
    assert real and login_secret
    stack.calls.clear()
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    forged = ["A" * 43, flipped, real + "x", real[:-1], login_secret, "0" * 64, "x" * 4096, '"' + real + '"x',
              real.upper() if real.upper() != real else real.lower(), "../" * 10, "%00", ""]
    for value in forged:
        status, _ = _raw_get(stack, "/private/x", [("Accept", "text/html"), ("Cookie", f"fcplus={value}")])
        assert status == 302, value
        status, _ = _raw_get(stack, "/api/x", [("Accept", "application/json"), ("Cookie", f"fcplus={value}")])
        assert status == 401, value
    # A forged value first, the real one second: the first wins and is refused.
    status, _ = _raw_get(stack, "/private/x", [("Accept", "text/html"), ("Cookie", f"fcplus={'A' * 43}; fcplus={real}")])
    assert status == 302
    assert stack.calls == []
    # The twin: the real cookie, sent the same way, opens the page.
    status, _ = _raw_get(stack, "/private/x", [("Accept", "text/html"), ("Cookie", f"fcplus={real}")])
    assert status == 200 and len(stack.calls) == 1


def test_a_session_ended_by_logout_is_dead(stack: EvilStack) -> None:
    browser = stack.browser()
    browser.login()
    old = browser.http.cookies.get("fcplus")
    assert browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303
    stack.calls.clear()
    status, _ = _raw_get(stack, "/private/x", [("Accept", "text/html"), ("Cookie", f"fcplus={old}")])
    assert status == 302 and stack.calls == []


# -- session fixation --------------------------------------------------------------------------------

def test_planted_session_id_is_never_reused(stack: EvilStack) -> None:
    victim = stack.browser()
    planted = "P" * 43
    victim.http.cookies.set("fcplus", planted, domain="127.0.0.1", path="/")
    done = victim.login()
    assert done.status_code == 303
    assert victim.http.cookies.get("fcplus") not in (None, planted)


def test_planted_valid_session_of_the_attacker_is_replaced_and_ended(stack: EvilStack) -> None:
    """The attacker signs in, plants their own live session id in the victim's browser; the
    victim's sign-in issues a new id and ends the planted one, so neither shares a session."""
    attacker, victim = stack.browser(), stack.browser()
    attacker.login()
    attacker_id = attacker.http.cookies.get("fcplus")
    assert attacker_id
    victim.http.cookies.set("fcplus", attacker_id, domain="127.0.0.1", path="/")
    # The planted session is live, so the victim is taken for the attacker until they sign
    # in: they do, through the login path.
    start = victim.get("/oidc/login?return_to=/private/mine")
    done = victim.get(victim.authorize(start.headers["Location"]))
    victim_id = victim.http.cookies.get("fcplus")
    assert victim_id and victim_id != attacker_id
    assert victim.get(done.headers["Location"]).status_code == 200
    stack.calls.clear()
    assert attacker.get("/private/x").status_code == 302 and stack.calls == []


# -- several tabs --------------------------------------------------------------------------------------

def test_parallel_logins_from_one_browser_all_work_and_cookies_stay_capped(stack: EvilStack) -> None:
    browser = stack.browser()
    paths = [f"/private/tab{i}?n={i}" for i in range(5)]
    callbacks = [(path, browser.authorize(browser.start(path))) for path in paths]
    assert len(browser.fcplus_cookies()) <= 2
    random.Random(7).shuffle(callbacks)
    for path, callback in callbacks:
        done = browser.get(callback)
        assert done.status_code == 303, (path, done.status_code)
        assert done.headers["Location"] == path
        seen = browser.get(path)
        assert seen.status_code == 200 and seen.json()["path"] == path.split("?")[0]
        assert sorted(browser.fcplus_cookies()) in (["fcplus", "fcplus-login"], ["fcplus"])
    assert stack.recorder.errors() == []
    assert stack.live_sessions() == 1  # each sign-in replaced the browser's previous session


def test_parallel_logins_finished_concurrently(stack: EvilStack) -> None:
    browser = stack.browser()
    callbacks = [browser.authorize(browser.start(f"/private/c{i}")) for i in range(5)]
    results: list[int] = []

    def finish(url: str) -> None:
        cookies = {c.name: str(c.value) for c in browser.http.cookies if c.name == "fcplus-login"}
        results.append(requests.get(url, cookies=cookies, allow_redirects=False, timeout=15).status_code)
    threads = [threading.Thread(target=finish, args=(url,)) for url in callbacks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [303] * 5


# -- accepted on purpose ------------------------------------------------------------------------------

def test_clock_skew_within_clock_skew_is_accepted(stack: EvilStack) -> None:
    now = int(time.time())
    stack.provider.id_claims = {"iat": now + 40, "nbf": now + 40, "exp": now - 40}
    assert stack.browser().login().status_code == 303


def test_clock_skew_beyond_a_small_clock_skew_is_refused(tmp_path: Path) -> None:
    with evil_stack(tmp_path, settings={"clock_skew": "5"}) as s:
        now = int(time.time())
        s.provider.id_claims = {"iat": now + 40, "exp": now + 100}
        refused_login(s, "id_token_issued_in_future")


@pytest.mark.parametrize("jwks_kid", [True, False])
def test_id_token_without_kid_and_a_single_matching_key(stack: EvilStack, jwks_kid: bool) -> None:
    p = stack.provider
    p.published = [public_dict(p.signing_key, kid=jwks_kid)]
    p.sign_kid = False  # id_token and userinfo
    assert stack.browser().login().status_code == 303


def test_userinfo_naming_a_kid_the_jwks_lacks_is_refused(stack: EvilStack) -> None:
    """The twin: a kid that names no key is not matched to a kid-less key."""
    p = stack.provider
    p.published = [public_dict(p.signing_key, kid=False)]
    p.id_token_factory = lambda grant, claims: encrypt(sign(claims, p.signing_key, "ES256", kid=False),
                                                       p.client_key())
    refused_login(stack, "userinfo_malformed")


def test_id_token_without_kid_and_one_key_of_each_type(plain: EvilStack) -> None:
    """Several keys, but only one fits the alg: still unambiguous."""
    p = plain.provider
    p.published = [public_dict(p.signing_key, alg="RS256"), public_dict(ec_key(), alg="ES256")]
    p.id_token_factory = lambda grant, claims: sign(claims, p.signing_key, "RS256", kid=False)
    assert plain.browser().login().status_code == 303


def test_id_token_without_kid_and_several_matching_keys_is_refused(stack: EvilStack) -> None:
    p = stack.provider
    p.published = [public_dict(p.signing_key), public_dict(ec_key())]
    p.id_token_factory = lambda grant, claims: encrypt(sign(claims, p.signing_key, "ES256", kid=False),
                                                       p.client_key())
    refused_login(stack, "id_token_signature_key")


def test_key_rotation_refetches_the_jwks_once(tmp_path: Path) -> None:
    with evil_stack(tmp_path, settings={"jwks_refresh_interval": "0.3"}) as s:
        assert s.browser().login().status_code == 303
        assert s.provider.hits["/jwks"] == 1
        s.provider.rotate()
        time.sleep(0.35)
        browser = s.browser()
        done = browser.login()
        assert done.status_code == 303
        assert s.provider.hits["/jwks"] == 2  # one refetch, for the unknown kid
        assert browser.get(done.headers["Location"]).status_code == 200
        assert s.browser().login().status_code == 303
        assert s.provider.hits["/jwks"] == 2  # the new key is cached now


def test_rotation_with_old_and_new_keys_published(stack: EvilStack) -> None:
    p = stack.provider
    old = p.signing_key
    new = ec_key()
    p.published = [public_dict(old), public_dict(new)]
    p.signing_key = new
    assert stack.browser().login().status_code == 303


def test_a_flood_of_random_kids_costs_at_most_one_refetch_per_interval(tmp_path: Path) -> None:
    with evil_stack(tmp_path, settings={"jwks_refresh_interval": "1"}) as s:
        p = s.provider
        assert s.browser().login().status_code == 303
        assert p.hits["/jwks"] == 1
        p.id_token_factory = lambda grant, claims: encrypt(
            sign(claims, ec_key(), "ES256", kid=b64url(random.randbytes(12))), p.client_key())
        # Within the interval after the last fetch: no refetch at all.
        for _ in range(5):
            page = s.browser().login()
            assert page.status_code == 401 and s.recorder.errors()[-1] == "id_token_signature_key"
        assert p.hits["/jwks"] == 1
        time.sleep(1.05)
        codes: list[int] = []

        def attempt() -> None:
            codes.append(s.browser().login().status_code)
        threads = [threading.Thread(target=attempt) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [401] * 12 and s.calls == []
        assert p.hits["/jwks"] == 2, p.hits  # the whole concurrent flood: one refetch
