"""Property-based tests (hypothesis): whatever arrives on the callback, from the token
endpoint or from userinfo, the middleware answers with a page, never an unhandled
exception, never a call to the app, never a 2xx on failure.

One evil stack per module (real loopback HTTP, FC+ policy); example counts are kept modest
so the file runs in well under a minute. The last two properties are twins: signed,
encrypted id_tokens with one claim made wrong are refused, and with harmless extra claims
accepted, so a validator that refused everything would fail here too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webob import Response

from tests.support.evil_provider import EvilStack, Grant, evil_stack, raw_response

SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class _Unexpected(logging.Handler):
    """Catches the middleware's catch-all ("unexpected error on a flow path")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


UNEXPECTED = _Unexpected()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvilStack]:
    logger = logging.getLogger("fcplus_wsgi")
    logger.addHandler(UNEXPECTED)
    try:
        with evil_stack(tmp_path_factory.mktemp("properties")) as s:
            yield s
    finally:
        logger.removeHandler(UNEXPECTED)


@pytest.fixture
def fresh(stack: EvilStack) -> Iterator[EvilStack]:
    """The module's stack, with the provider back to its valid answers."""
    p = stack.provider
    p.token_handler = p.userinfo_handler = p.id_token_factory = p.userinfo_factory = None
    p.authorize_error, p.authorize_extra, p.id_claims, p.userinfo_claims = None, {}, {}, {}
    stack.calls.clear()
    yield stack
    p.token_handler = p.userinfo_handler = p.id_token_factory = p.userinfo_factory = None
    p.id_claims = {}


def assert_page_not_app(stack: EvilStack, status: int, body: bytes, headers: dict[str, str]) -> None:
    assert 400 <= status < 600, status
    assert headers.get("Content-Type", headers.get("content-type", "")).startswith("text/html")
    assert b"Traceback" not in body
    assert stack.calls == [], "the app was called"
    assert stack.live_sessions() == 0
    assert UNEXPECTED.records == [], UNEXPECTED.records[0].getMessage()


def wsgi_get(stack: EvilStack, path: str, query: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    """The middleware called in-process, so the query can hold what no HTTP client sends."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
               "HTTP_ACCEPT": "text/html", "HTTP_COOKIE": cookie, "wsgi.url_scheme": "http"}
    body = b"".join(stack.middleware(environ, start_response))
    return captured["status"], captured["headers"], body


# -- callback query strings -----------------------------------------------------------------------

NAMES = st.sampled_from(["state", "code", "error", "error_description", "error_uri", "iss", "session_state",
                         "return_to", "x"]) | st.text(max_size=12)
VALUES = st.text(max_size=300) | st.sampled_from(["", "0" * 64, "access_denied", "a" * 5000, "\x00", "%00",
                                                  "<script>alert(1)</script>"])


@SETTINGS
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=12), with_state=st.booleans(),
       raw=st.text(alphabet=st.characters(max_codepoint=255), max_size=400), use_raw=st.booleans())
def test_callback_query_strings(fresh: EvilStack, pairs: list[tuple[str, str]], with_state: bool,
                                raw: str, use_raw: bool) -> None:
    browser = fresh.browser()
    cookie = ""
    if with_state:
        authorize = browser.start()
        state = authorize.split("state=", 1)[1].split("&", 1)[0]
        pairs = [("state", state), *pairs]
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.http.cookies)
    query = raw if use_raw else urlencode(pairs)
    status, headers, body = wsgi_get(fresh, "/oidc/callback", query, cookie)
    assert_page_not_app(fresh, status, body, headers)


# -- token responses ----------------------------------------------------------------------------------

def json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(st.none() | st.booleans() | st.integers() | floats | st.text(max_size=40),
                        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                                           children, max_size=4),
                        max_leaves=12)


JSON = json_values(st.floats())  # NaN and Infinity included: Python's json writes them
STRICT_JSON = json_values(st.floats(allow_nan=False, allow_infinity=False))
TOKENISH = (st.text(max_size=60) | st.sampled_from(["a.b.c", "a.b.c.d.e", "eyJhbGciOiJub25lIn0.e30.", ""])
            | st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40), min_size=1,
                       max_size=6).map(".".join))
TOKEN_BODY = st.fixed_dictionaries(
    {}, optional={"access_token": TOKENISH | JSON, "token_type": st.sampled_from(["Bearer", "bearer", "mac"]) | JSON,
                  "id_token": TOKENISH | JSON, "error": st.sampled_from(["invalid_grant", "invalid_client"]) | JSON,
                  "expires_in": JSON})
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/html",
                                 "application/jwt", "text/plain", ""])


def answer(status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return raw_response(body, ctype or "application/octet-stream", status, headers)


@SETTINGS
@given(status=st.sampled_from([200, 201, 400, 401, 403, 404, 500, 502, 503]), ctype=CONTENT_TYPES,
       body=TOKEN_BODY.map(lambda d: json.dumps(d).encode()) | JSON.map(lambda v: json.dumps(v).encode())
       | st.binary(max_size=300))
def test_token_responses(fresh: EvilStack, status: int, ctype: str, body: bytes) -> None:
    fresh.provider.token_handler = lambda request, grant: answer(status, ctype, body)
    page = fresh.browser().login()
    assert_page_not_app(fresh, page.status_code, page.content, dict(page.headers))


# -- userinfo bodies ----------------------------------------------------------------------------------

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@SETTINGS
@given(status=st.sampled_from([200, 400, 401, 403, 500]), ctype=CONTENT_TYPES,
       body=JSON.map(lambda v: json.dumps(v).encode()) | TOKENISH.map(str.encode) | st.binary(max_size=300),
       challenge=st.none() | HEADER_TEXT | HEADER_TEXT.map(lambda t: 'Bearer error="' + t.replace('"', "") + '"'))
def test_userinfo_bodies(fresh: EvilStack, status: int, ctype: str, body: bytes, challenge: str | None) -> None:
    headers = {"WWW-Authenticate": challenge} if challenge is not None else None
    fresh.provider.userinfo_handler = lambda request, grant: answer(status, ctype, body, headers)
    page = fresh.browser().login()
    assert_page_not_app(fresh, page.status_code, page.content, dict(page.headers))


@SETTINGS
@given(claims=st.dictionaries(st.sampled_from(["sub", "iss", "aud", "given_name", "family_name", "birthdate"]),
                              JSON, max_size=6))
def test_userinfo_jwt_claims_without_the_right_sub(fresh: EvilStack, claims: dict[str, Any]) -> None:
    """Correctly signed and encrypted, but never with the id_token's sub (a random 66-char
    value no draw can hit): always refused."""
    p = fresh.provider
    p.userinfo_factory = lambda grant, valid: raw_response(p.wrap(claims).encode(), "application/jwt")
    page = fresh.browser().login()
    assert_page_not_app(fresh, page.status_code, page.content, dict(page.headers))


# -- id_token claims: one wrong value refused, harmless extras accepted ---------------------------------

NOT_A_STRING = st.none() | st.booleans() | st.integers() | st.floats() | st.lists(st.text(max_size=5), max_size=2)
NOT_A_NUMBER = st.none() | st.booleans() | st.text(max_size=10) | st.lists(st.integers(), max_size=2) | st.just(
    float("nan")) | st.just(float("inf"))
SKEW = 60


class Relative:
    """A time claim drawn as an offset and made absolute when the token is minted, so the
    strategy does not depend on the clock (hypothesis replays draws)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"now{self.seconds:+d}"


PAST = st.integers(min_value=SKEW + 5, max_value=10**9).map(lambda n: Relative(-n))
FUTURE = st.integers(min_value=SKEW + 5, max_value=10**9).map(Relative)


def wrong_value(claim: str, issuer: str, client_id: str) -> st.SearchStrategy[Any]:
    """Values that must be refused for `claim`; the nonce is 64 hex characters, so no
    shorter text can equal it."""
    if claim == "iss":
        return st.text(max_size=60).filter(lambda v: v != issuer) | NOT_A_STRING
    if claim == "aud":
        return (st.text(max_size=30).filter(lambda v: v != client_id)
                | st.lists(st.text(max_size=20).filter(lambda v: v != client_id), max_size=3) | st.integers())
    if claim == "nonce":
        return st.text(max_size=63) | NOT_A_STRING
    if claim == "exp":
        return PAST | NOT_A_NUMBER
    if claim == "iat":
        return FUTURE | NOT_A_NUMBER
    if claim == "nbf":  # null reads as absent, which is allowed: only values are wrong here
        return FUTURE | NOT_A_NUMBER.filter(lambda v: v is not None)
    if claim == "acr":
        return st.sampled_from(["eidas1", "", "EIDAS2", "eidas2 ", "substantial", "eidas2 eidas3"]) | NOT_A_STRING
    if claim == "sub":
        return st.just("") | st.text(min_size=256, max_size=300) | NOT_A_STRING
    if claim == "azp":  # null reads as absent, fine with a single audience
        return st.text(max_size=30).filter(lambda v: v != client_id) | NOT_A_STRING.filter(lambda v: v is not None)
    raise AssertionError(claim)


@SETTINGS
@given(data=st.data(), claim=st.sampled_from(["iss", "aud", "nonce", "exp", "iat", "nbf", "acr", "sub", "azp"]),
       drop=st.booleans())
def test_signed_id_tokens_with_one_wrong_claim_are_refused(fresh: EvilStack, data: st.DataObject, claim: str,
                                                           drop: bool) -> None:
    p = fresh.provider
    droppable = claim in ("iss", "aud", "nonce", "exp", "iat", "acr", "sub")
    value = None if drop and droppable else data.draw(wrong_value(claim, p.issuer, p.client_id), label=claim)

    def factory(grant: Grant, claims: dict[str, Any]) -> str:
        bad = dict(claims)
        if value is None and drop and droppable:
            bad.pop(claim, None)
        else:
            bad[claim] = int(time.time()) + value.seconds if isinstance(value, Relative) else value
        return p.wrap(bad)
    p.id_token_factory = factory
    page = fresh.browser().login()
    assert_page_not_app(fresh, page.status_code, page.content, dict(page.headers))


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(extra=st.dictionaries(st.text(min_size=1, max_size=12).filter(
    lambda k: k not in ("iss", "aud", "sub", "exp", "iat", "nbf", "nonce", "acr", "azp", "at_hash")),
    STRICT_JSON, max_size=5),  # NaN is refused on purpose: not RFC 8259 JSON
       exp_in=st.integers(min_value=-SKEW + 5, max_value=3600), iat_ago=st.integers(min_value=-SKEW + 5, max_value=600))
def test_signed_id_tokens_with_harmless_variations_are_accepted(fresh: EvilStack, extra: dict[str, Any],
                                                                exp_in: int, iat_ago: int) -> None:
    now = int(time.time())
    fresh.provider.id_claims = {**extra, "exp": now + exp_in, "iat": now - iat_ago}
    browser = fresh.browser()
    done = browser.login()
    assert done.status_code == 303, (done.status_code, fresh.recorder.errors()[-1:])
    assert browser.get(done.headers["Location"]).status_code == 200
    fresh.calls.clear()
    # Leave no session behind for the refusal properties sharing this stack.
    assert browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert fresh.live_sessions() == 0
    browser.http.close()


# -- hostile contents under a valid signature: never the generic page ------------------------------
# A correctly signed (and encrypted) token whose content breaks a later step (a second parser,
# the session seal, an ASCII-only hash) once ended on internal_error. Whatever the depth, size,
# encoding or type of what the provider signs, the answer is a sign-in or the catalogue page
# for the failure, with its status and its metric label.

def _nested_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


RAW_JSON = (STRICT_JSON.map(lambda v: json.dumps(v))
            | st.integers(min_value=0, max_value=1100).map(_nested_text)   # depth, past orjson's 254 and 1024
            | st.sampled_from(['"\\ud800"', "1e999", "-1e999", "123456789012345678901234567890", '"\\u0000"',
                               '"' + "x" * 70_000 + '"', '{"a": {"a": {"a": {"a": {}}}}}', "[" * 40 + "]" * 40]))
MEMBER = st.tuples(st.text(max_size=8) | st.sampled_from(["sub", "aud", "iss", "at_hash", "acr", "nonce", "b64",
                                                           "crit", "kid", "alg", "zip", "jku"]), RAW_JSON)


def _object_with(base: dict[str, Any], members: list[tuple[str, str]]) -> str:
    text = json.dumps(base)[:-1]
    return text + "".join(f", {json.dumps(name)}: {value}" for name, value in members) + "}"


def assert_catalogue_outcome(stack: EvilStack, page: Any) -> None:
    """A sign-in (303), or the catalogue page of the failure with its status and metric label."""
    from fcplus_wsgi.errors import CATALOGUE

    assert UNEXPECTED.records == [], UNEXPECTED.records[0].getMessage()
    if page.status_code == 303:
        return
    assert page.headers["Content-Type"].startswith("text/html") and b"Traceback" not in page.content
    code = stack.recorder.errors()[-1]
    assert code in CATALOGUE and code != "internal_error", code
    assert page.status_code == CATALOGUE[code].status, (code, page.status_code)
    assert stack.calls == []


HOSTILE = settings(max_examples=25, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@HOSTILE
@given(where=st.sampled_from(["id_token_claims", "id_token_jws_header", "userinfo_claims", "userinfo_jws_header"]),
       members=st.lists(MEMBER, min_size=1, max_size=3))
def test_signed_contents_of_any_depth_size_encoding_or_type(fresh: EvilStack, where: str,
                                                            members: list[tuple[str, str]]) -> None:
    from tests.support.evil_provider import encrypt, sign_raw

    p = fresh.provider

    def wrap(claims: dict[str, Any], hostile: bool) -> str:
        header = {"alg": p.alg, "kid": p.signing_key.get("kid")}
        in_header = hostile and where.endswith("jws_header")
        payload = _object_with(claims, members) if hostile and not in_header else json.dumps(claims)
        signed = sign_raw(payload.encode(), p.signing_key, p.alg, _object_with(header, members) if in_header else header)
        return encrypt(signed, p.client_key("RSA-OAEP"))

    p.id_token_factory = lambda grant, claims: wrap(claims, where.startswith("id_token"))
    p.userinfo_factory = lambda grant, claims: raw_response(wrap(claims, where.startswith("userinfo")).encode(),
                                                            "application/jwt")
    fresh.recorder.events.clear()
    browser = fresh.browser()
    page = browser.login()
    assert_catalogue_outcome(fresh, page)
    if page.status_code == 303:  # leave no session behind for the next example
        browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    browser.http.close()


@HOSTILE
@given(header=st.dictionaries(st.text(max_size=8) | st.sampled_from(["zip", "crit", "kid", "epk", "apu", "apv", "x5u"]),
                              STRICT_JSON, min_size=1, max_size=3))
def test_jwe_headers_with_any_members(fresh: EvilStack, header: dict[str, Any]) -> None:
    from tests.support.evil_provider import encrypt, sign

    p = fresh.provider
    extra = {k: v for k, v in header.items() if k not in ("alg", "enc")}
    p.id_token_factory = lambda grant, claims: encrypt(sign(claims, p.signing_key, p.alg), p.client_key("RSA-OAEP"),
                                                       extra_header=extra)
    fresh.recorder.events.clear()
    browser = fresh.browser()
    page = browser.login()
    assert_catalogue_outcome(fresh, page)
    if page.status_code == 303:
        browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    browser.http.close()


@HOSTILE
@given(access_token=st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9._~+/-]{1,40}=*", fullmatch=True)
       | st.sampled_from(["a" * 8193, "a" * 8192]))
def test_any_access_token_string(fresh: EvilStack, access_token: str) -> None:
    p = fresh.provider

    def answer(request: Any, grant: Grant | None) -> Response:
        if grant is None:
            return raw_response(b'{"error":"invalid_grant"}', "application/json", 400)
        grant.access_token = access_token  # userinfo recognises it, and at_hash would match it
        return raw_response(json.dumps(p.token_body(grant)).encode(), "application/json")
    p.token_handler = answer
    fresh.recorder.events.clear()
    browser = fresh.browser()
    page = browser.login()
    assert_catalogue_outcome(fresh, page)
    if page.status_code == 303:
        browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    else:
        assert fresh.recorder.errors()[-1] in ("provider_bad_response", "provider_response_too_large",
                                               "userinfo.invalid_token", "userinfo.invalid_request")
    browser.http.close()
