"""The callback and userinfo checks of fcplus_wsgi.flow, through the real middleware and a real
loopback provider (tests/support/evil_provider.py), one stack for the module so the checks can
be driven hundreds of times cheaply (the mutation run, docs/mutation.md, leans on this file).

What they pin: the callback's character and length rules, RFC 9207's iss when discovery
advertises it, the browser binding being a value the middleware made, the access token's
shape, and a signed userinfo naming issuer and audience.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from fcplus_wsgi.errors import FlowError
from fcplus_wsgi.flow import _PARAM_CAPS, Flow, _header_alg
from tests.support.evil_provider import DROP, EvilProvider, EvilStack, evil_stack, json_response, raw_response


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvilStack]:
    with evil_stack(tmp_path_factory.mktemp("callback")) as s:
        yield s


@pytest.fixture
def stack(module_stack: EvilStack) -> Iterator[EvilStack]:
    p = module_stack.provider
    yield module_stack
    p.token_handler = p.userinfo_handler = p.id_token_factory = p.userinfo_factory = None
    p.authorize_error, p.authorize_extra, p.userinfo_claims = None, {}, {}
    module_stack.calls.clear()


def last_error(stack: EvilStack) -> str | None:
    failures = stack.recorder.failures()
    return failures[-1].error if failures else None


def login(stack: EvilStack, **callback_changes: Any) -> tuple[int, str | None]:
    """One sign-in with the callback's parameters changed (None removes one); (status, last error)."""
    stack.recorder.events.clear()
    browser = stack.browser()
    callback = browser.authorize(browser.start())
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for name, value in callback_changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    page = browser.get(f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}")
    if page.status_code == 303:
        assert_signed_in(stack, browser, page.headers["Location"])
    return page.status_code, (None if page.status_code == 303 else last_error(stack))


def assert_signed_in(stack: EvilStack, browser: Any, landing: str) -> None:
    """What a finished login left: the app sees the verified identity, and logout can name the
    signed id_token to the provider."""
    import json

    stack.calls.clear()
    seen = browser.get(landing).json()
    grant = next(g for g in stack.provider.grants.values() if g.sub == seen["sub"])
    assert seen["remote_user"] == grant.sub and seen["id_token_claims"]["nonce"] == grant.nonce
    assert seen["acr"] == seen["id_token_claims"].get("acr")
    if stack.provider.mode == "fcplus":
        assert seen["acr"] in ("eidas2", "eidas3") and seen["claims"]["family_name"] == "DUBOIS"
    logout = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    hint = parse_qs(urlsplit(logout.headers.get("Location", "")).query).get("id_token_hint", [""])[0]
    if hint:
        _head, payload, _ = hint.split(".")
        assert json.loads(base64url_decode(payload))["sub"] == grant.sub
    stack.calls.clear()
    assert browser.get(landing).status_code != 200 and stack.calls == []


def base64url_decode(segment: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# -- the callback's characters and lengths (pure) -------------------------------------------------

CHECKED = [name for name in _PARAM_CAPS if name != "error_description"]


@pytest.mark.parametrize("name", CHECKED)
def test_every_control_space_del_and_non_ascii_character_is_refused(name: str) -> None:
    for code in [*range(0x00, 0x21), 0x7F, 0x80, 0xA0, 0xFF, 0x100, 0x202E]:
        with pytest.raises(FlowError) as info:
            Flow.single_params({name: ["a" + chr(code) + "b"]})
        assert info.value.code == "callback_malformed", hex(code)
    printable = "".join(chr(c) for c in range(0x21, 0x7F))[: _PARAM_CAPS[name]]
    assert Flow.single_params({name: [printable]}) == {name: printable}


@pytest.mark.parametrize("name", list(_PARAM_CAPS))
def test_each_length_cap_is_exact(name: str) -> None:
    cap = _PARAM_CAPS[name]
    assert Flow.single_params({name: ["x" * cap]}) == {name: "x" * cap}
    with pytest.raises(FlowError) as info:
        Flow.single_params({name: ["x" * (cap + 1)]})
    assert info.value.code == "callback_malformed"
    with pytest.raises(FlowError):
        Flow.single_params({name: ["x", "x"]})


def test_error_description_keeps_spaces_and_unknown_parameters_are_ignored() -> None:
    assert Flow.single_params({"error_description": ["Le compte est bloqué."], "other": ["a", "b"]}) == \
        {"error_description": "Le compte est bloqué."}
    assert Flow.single_params({"state": []}) == {}


def test_an_unreadable_jws_header_is_a_malformed_id_token_not_a_crash() -> None:
    for compact in ("!!!.e30.AA", "e30.e30.AA", "W10.e30.AA", ""):
        with pytest.raises(FlowError) as info:
            _header_alg(compact)
        assert info.value.code == "id_token_malformed"


# -- RFC 9207 ----------------------------------------------------------------------------------------

def test_callback_without_iss_is_accepted_when_discovery_does_not_advertise_it(stack: EvilStack) -> None:
    assert login(stack) == (303, None)


@pytest.mark.parametrize("advertised", [True, "true", 1, False])
def test_callback_without_iss_is_refused_when_discovery_advertises_it(tmp_path: Any, advertised: Any) -> None:
    provider = EvilProvider()
    provider.discovery_overrides = {"authorization_response_iss_parameter_supported": advertised}
    with evil_stack(tmp_path, provider=provider) as stack:
        if advertised is True:
            assert login(stack) == (400, "issuer_mismatch_callback")
            assert login(stack, iss=provider.issuer) == (303, None)
            assert login(stack, iss=provider.issuer + "/") == (400, "issuer_mismatch_callback")
            provider.authorize_error = {"error": "access_denied"}  # error responses carry iss too
            assert login(stack)[1] == "issuer_mismatch_callback"
            assert login(stack, iss=provider.issuer)[1] == "access_denied"
        else:  # only JSON true advertises it
            assert login(stack) == (303, None)


# -- the browser binding is the middleware's own ---------------------------------------------------

def test_a_planted_well_formed_login_cookie_never_lets_its_planter_finish_the_login(stack: EvilStack) -> None:
    """A sibling subdomain or a shared computer can plant a login cookie the attacker knows;
    the victim's next login must still be bound to something only the victim's browser got
    from the middleware, so the planter cannot finish it with a leaked callback URL."""
    for planted in ("P" * 43, "P" * 43 + "." + "Q" * 43):
        browser = stack.browser()
        browser.http.cookies.set("fcplus-login", planted, domain="127.0.0.1", path="/")
        first = browser.get("/private/page")
        assert first.status_code == 302
        issued = first.cookies.get("fcplus-login")
        assert issued and issued != planted
        assert not issued.startswith(planted.split(".")[0])  # replaced, not extended
        callback = browser.authorize(first.headers["Location"])
        planter = stack.browser()
        planter.http.cookies.set("fcplus-login", planted, domain="127.0.0.1", path="/")
        stack.recorder.events.clear()
        answer = planter.get(callback)
        assert (answer.status_code, last_error(stack)) == (403, "state_browser_mismatch")
        assert stack.calls == []


# -- the access token --------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["accès-refusé", "a b", "a\tb", "", "a" * 8193, "a=b", "tok\x7f", "<x>", "a,b"])
def test_an_access_token_outside_rfc_6750_is_refused(stack: EvilStack, token: str) -> None:
    p = stack.provider
    p.token_handler = lambda req, grant: json_response(p.token_body(grant, access_token=token)) if grant else \
        json_response({}, 400)
    assert login(stack) == (502, "provider_bad_response")
    assert p.hits.get("/userinfo", 0) == 0 or stack.calls == []


@pytest.mark.parametrize("token", ["A" * 8192, "abc.def-ghi_jkl~mno+pqr/stu==", "x"])
def test_an_rfc_6750_access_token_is_accepted(stack: EvilStack, token: str) -> None:
    p = stack.provider

    def answer(req: Any, grant: Any) -> Any:
        if grant is None:
            return json_response({}, 400)
        grant.access_token = token  # so userinfo recognises it
        return json_response(p.token_body(grant))
    p.token_handler = answer
    assert login(stack) == (303, None)


# -- userinfo ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [{"iss": DROP}, {"aud": DROP}, {"iss": DROP, "aud": DROP}, {"aud": ["other"]}])
def test_a_signed_userinfo_without_iss_or_aud_is_refused(stack: EvilStack, claims: dict[str, Any]) -> None:
    stack.provider.userinfo_claims = claims
    assert login(stack) == (401, "userinfo_issuer_audience")


def test_a_plain_json_userinfo_needs_no_iss_or_aud(tmp_path: Any) -> None:
    with evil_stack(tmp_path, mode="plain") as plain:
        plain.provider.userinfo_claims = {"iss": DROP, "aud": DROP}
        assert login(plain) == (303, None)
        p = plain.provider
        p.userinfo_factory = lambda grant, claims: raw_response(p.wrap(claims).encode(), "application/jwt")
        assert login(plain) == (401, "userinfo_issuer_audience")


@pytest.mark.parametrize(("body", "ctype", "code"), [
    (b"a.b", "application/jwt", "userinfo_malformed"),                    # not a compact serialization
    (b"eyJ\xc3\xa9.x.y", "application/jwt", "userinfo_malformed"),        # not ASCII
    (b'{"sub": "x"}', "application/json", "userinfo_not_encrypted"),      # FC+ wants a JWT
    (b"<html>", "text/html", "userinfo_malformed"),
])
def test_userinfo_bodies_that_are_not_what_the_policy_wants(stack: EvilStack, body: bytes, ctype: str,
                                                           code: str) -> None:
    stack.provider.userinfo_factory = lambda grant, claims: raw_response(body, ctype)
    assert login(stack)[1] == code


def test_a_userinfo_signed_but_not_encrypted_under_fcplus(stack: EvilStack) -> None:
    p = stack.provider
    p.userinfo_factory = lambda grant, claims: raw_response(p.wrap(claims, encrypted=False).encode(), "application/jwt")
    assert login(stack)[1] == "userinfo_not_encrypted"


def test_a_userinfo_signed_by_a_key_the_provider_does_not_publish(stack: EvilStack) -> None:
    from tests.support.evil_provider import ec_key, encrypt, sign

    p = stack.provider
    stranger = ec_key("not-published")
    p.userinfo_factory = lambda grant, claims: raw_response(
        encrypt(sign(claims, stranger, "ES256"), p.client_key("RSA-OAEP")).encode(), "application/jwt")
    assert login(stack)[1] == "userinfo_malformed"


def test_franceconnect_wants_a_signed_userinfo_even_without_encryption(tmp_path: Any) -> None:
    """FranceConnect's policy: userinfo is a JWT, encryption only when registered. Plain JSON is
    refused there too (not only where encryption is required)."""
    settings = {"provider": "franceconnect-integration", "acr_values": "eidas1"}
    with evil_stack(tmp_path, mode="plain", settings=settings) as fc:
        assert login(fc)[1] == "userinfo_not_encrypted"
        p = fc.provider
        p.userinfo_factory = lambda grant, claims: raw_response(p.wrap(claims).encode(), "application/jwt")
        assert login(fc) == (303, None)
        p.userinfo_factory = lambda grant, claims: raw_response(b"{not json", "application/json")
        assert login(fc)[1] == "userinfo_not_encrypted"


def test_plain_json_userinfo_that_is_not_a_json_object(tmp_path: Any) -> None:
    with evil_stack(tmp_path, mode="plain") as plain:
        for body in (b"{not json", b"[1, 2]", b'"text"'):
            plain.provider.userinfo_factory = lambda grant, claims, b=body: raw_response(b, "application/json")
            assert login(plain)[1] == "userinfo_malformed", body


# -- what the token step sends and checks ------------------------------------------------------------

def test_an_acr_below_the_requested_level_is_refused(stack: EvilStack) -> None:
    stack.provider.id_claims = {"acr": "eidas1"}  # the FC+ stack asks eidas2
    assert login(stack) == (403, "acr_insufficient")
    stack.provider.id_claims = {"acr": "eidas3"}
    assert login(stack) == (303, None)


def test_the_pkce_verifier_of_the_login_is_sent_with_its_code(tmp_path: Any) -> None:
    import base64
    import hashlib

    provider = EvilProvider("plain")
    provider.discovery_overrides = {"code_challenge_methods_supported": ["S256"]}
    seen: dict[str, str] = {}
    with evil_stack(tmp_path, mode="plain", provider=provider) as plain:
        def answer(request: Any, grant: Any) -> Any:
            seen["verifier"] = request.POST.get("code_verifier", "")
            return json_response(provider.token_body(grant)) if grant else json_response({}, 400)
        provider.token_handler = answer
        browser = plain.browser()
        location = browser.start()
        challenge = parse_qs(urlsplit(location).query)["code_challenge"][0]
        assert browser.get(browser.authorize(location)).status_code == 303
        digest = hashlib.sha256(seen["verifier"].encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def test_client_secret_basic_sends_the_secret_in_the_header_only(tmp_path: Any) -> None:
    provider = EvilProvider("plain")
    seen: dict[str, Any] = {}
    settings = {"token_endpoint_auth_method": "client_secret_basic"}
    with evil_stack(tmp_path, mode="plain", provider=provider, settings=settings) as plain:
        def answer(request: Any, grant: Any) -> Any:
            seen["authorization"] = request.headers.get("Authorization", "")
            seen["body"] = dict(request.POST)
            return json_response(provider.token_body(grant)) if grant else json_response({}, 400)
        provider.token_handler = answer
        assert login(plain) == (303, None)
    assert seen["authorization"].startswith("Basic ") and "client_secret" not in seen["body"]


def test_failures_are_counted_at_their_step_with_the_page_correlation_and_request_ids(stack: EvilStack) -> None:
    p = stack.provider
    for step, change in (("token", {"access_token": "a b"}), ("id_token", {"id_token": "a.b"})):
        p.token_handler = lambda req, grant, c=change: json_response(p.token_body(grant, **c)) if grant else \
            json_response({}, 400)
        stack.recorder.events.clear()
        browser = stack.browser()
        callback = browser.authorize(browser.start())
        page = browser.get(callback, headers={"X-Request-ID": "req-12345678"})
        failure = stack.recorder.failures()[-1]
        assert failure.step == step
        assert failure.correlation_id == page.headers["X-Correlation-ID"]
        assert failure.request_id == "req-12345678"


def test_at_hash_is_checked_against_the_access_token_the_login_received(stack: EvilStack) -> None:
    from fcplus_wsgi.tokens import at_hash

    p = stack.provider
    p.id_token_factory = lambda grant, claims: p.wrap({**claims, "at_hash": at_hash(grant.access_token, p.alg)})
    assert login(stack) == (303, None)
    p.id_token_factory = lambda grant, claims: p.wrap({**claims, "at_hash": at_hash("another-token", p.alg)})
    assert login(stack) == (401, "id_token_claims_invalid")


@pytest.mark.parametrize(("id_token", "code"), [({"alg": "none"}, "id_token_missing"), (["a.b.c"], "id_token_missing"),
                                                ("", "id_token_missing"), ("a.b", "id_token_malformed")])
def test_an_id_token_that_is_not_a_compact_string(stack: EvilStack, id_token: Any, code: str) -> None:
    p = stack.provider
    p.token_handler = lambda req, grant: json_response(p.token_body(grant, id_token=id_token)) if grant else \
        json_response({}, 400)
    assert login(stack) == (401, code)


def test_a_provider_without_userinfo_signs_in_with_the_id_token_alone(tmp_path: Any) -> None:
    provider = EvilProvider("plain")
    provider.discovery_overrides = {"userinfo_endpoint": DROP}
    with evil_stack(tmp_path, mode="plain", provider=provider) as plain:
        browser = plain.browser()
        done = browser.get(browser.authorize(browser.start()))
        assert done.status_code == 303
        seen = browser.get(done.headers["Location"]).json()
        assert seen["claims"] == {} and seen["sub"] and provider.hits.get("/userinfo") is None


def test_state_missing_and_unknown_have_their_own_codes(stack: EvilStack) -> None:
    assert login(stack, state=None) == (400, "state_missing")
    assert login(stack, state="0" * 64) == (400, "state_unknown")
    assert login(stack, state="not-a-state") == (400, "state_unknown")


def test_a_silent_login_that_needs_interaction_starts_an_interactive_one(tmp_path: Any) -> None:
    with evil_stack(tmp_path, mode="plain") as plain:
        p = plain.provider
        browser = plain.browser()
        p.authorize_error = {"error": "login_required"}
        first = browser.get("/oidc/login?prompt=none&return_to=/private/silent")
        assert first.status_code == 302 and "prompt=none" in first.headers["Location"]
        again = browser.get(browser.authorize(first.headers["Location"]))
        assert again.status_code == 302 and again.headers["Location"].startswith(p.endpoint("authorize"))
        assert "prompt=none" not in again.headers["Location"]
        p.authorize_error = None
        done = browser.get(browser.authorize(again.headers["Location"]))
        assert done.status_code == 303 and done.headers["Location"] == "/private/silent"
        # Not a silent login: login_required is the provider's answer, shown on its page.
        plain.recorder.events.clear()
        p.authorize_error = {"error": "login_required"}
        other = plain.browser()
        assert other.get(other.authorize(other.start())).status_code == 401
        assert last_error(plain) == "login_required"
        # A silent login refused for another reason is not retried (no loop).
        p.authorize_error = {"error": "access_denied"}
        first = other.get("/oidc/login?prompt=none&return_to=/private/silent")
        assert other.get(other.authorize(first.headers["Location"])).status_code == 403
