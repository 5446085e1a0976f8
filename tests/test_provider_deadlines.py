"""Provider calls under a slow, bloated or failing provider, over real loopback sockets.

Every call has one total deadline (http_timeout) whatever the provider's drip rate; every
body is capped while it is read, decoded bytes too; JWKS and discovery fetches are single
flight, never hold a lock across the network, and JWKS refetches are rate-limited whatever
their outcome; an https issuer's endpoints are https; provider-call events carry the flow's
correlation id. Each refusal has an accepted twin next to it.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fcplus_wsgi.client import ProviderClient, endpoint_scheme_problem
from fcplus_wsgi.errors import FlowError
from tests.support.evil_provider import (
    EvilProvider,
    EvilStack,
    assert_friendly_page,
    assert_refused,
    b64url,
    ec_key,
    encrypt,
    evil_stack,
    json_response,
    raw_response,
    self_signed_cert,
    serve_wsgi_tls,
    sign,
)
from tests.support.raw_http import Answer, drip, http_response, json_answer, raw_server
from tests.support.servers import serve_wsgi

DEADLINE = 2.0  # http_timeout in these tests; the drips below would last 100 s and more
DRIP_BODY = b'{"padding": "' + b"x" * 100 + b'"}'


def timed_login(stack: EvilStack, path: str = "/private/page") -> tuple[requests.Response, float, Any]:
    browser = stack.browser()
    started = time.monotonic()
    page = browser.login(path)
    return page, time.monotonic() - started, browser


def wait_for(condition: Any, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# -- one total deadline, whatever the drip rate ---------------------------------------------------

# No Content-Length, the body ends when the connection does: the end of file that the deadline's
# shutdown causes must not pass for the end of the answer.
UNSIZED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + DRIP_BODY


@pytest.mark.parametrize(("answer", "head_at_once"), [(http_response(DRIP_BODY), False), (http_response(DRIP_BODY), True),
                                                      (UNSIZED, True)],
                         ids=["dripping-head", "dripping-body", "dripping-body-without-length"])
def test_a_token_endpoint_dripping_one_byte_a_second_times_out_at_the_deadline(
        tmp_path: Path, answer: bytes, head_at_once: bool) -> None:
    """Each byte comes well within the socket timeout, so only a total deadline can end it."""
    with raw_server(drip(answer, 1.0, head_at_once=head_at_once)) as slow, \
            evil_stack(tmp_path, settings={"http_timeout": str(DEADLINE)}) as s:
        s.provider.discovery_overrides = {"token_endpoint": slow.url + "/token"}
        page, took, browser = timed_login(s)
        assert_refused(s, browser, page, "provider_timeout")
        assert took < DEADLINE + 4, took  # the drip would go on for more than 100 s
        assert slow.connections == 1  # the code-redeeming POST is never retried
        assert wait_for(lambda: slow.closed_after), "the connection was not dropped at the deadline"


def test_a_jwks_dripping_one_byte_a_second_times_out_at_the_deadline(tmp_path: Path) -> None:
    with evil_stack(tmp_path, settings={"http_timeout": str(DEADLINE)}) as s:
        jwks = json.dumps(s.provider.jwks()).encode()
        with raw_server(drip(http_response(jwks), 1.0, head_at_once=True)) as slow:
            s.provider.discovery_overrides = {"jwks_uri": slow.url + "/jwks"}
            page, took, browser = timed_login(s)
            assert_refused(s, browser, page, "provider_timeout")
            assert took < DEADLINE + 4, took
            assert slow.connections == 1  # no retry once the deadline is spent


def test_a_discovery_dripping_one_byte_a_second_times_out_at_the_deadline_for_everyone(tmp_path: Path) -> None:
    """Six first visitors at once: one fetch (single flight), all six told within about one
    deadline, where a lock held across the fetch would have served them one deadline each."""
    with raw_server(drip(http_response(DRIP_BODY), 1.0, head_at_once=True)) as slow, \
            evil_stack(tmp_path, settings={"http_timeout": str(DEADLINE), "issuer": slow.url + "/api/v2"}) as s:
        pages: list[requests.Response] = []
        browsers = [s.browser() for _ in range(6)]
        started = time.monotonic()
        threads = [threading.Thread(target=lambda b=b: pages.append(b.get("/private/page"))) for b in browsers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        assert slow.connections == 1, slow.connections
        assert took < 3 * DEADLINE, took
        for page in pages:
            cid = assert_friendly_page(page, 504)
            assert any(f"correlation_id={cid}" in line and "error=provider_timeout" in line for line in s.logs.lines)


# -- bodies capped while read, decoded bytes included ------------------------------------------------

GZIP_MEMBER = gzip.compress(bytes(8 << 20))  # 8 MiB of zeros in about 8 KB


def gzip_bomb() -> bytes:
    """512 gzip members: about 4 MB on the wire, 4 GiB once decoded."""
    return GZIP_MEMBER * 512


BOMBS = {
    "gzip": (gzip_bomb, "gzip"),
    "gzip-twice": (lambda: gzip.compress(gzip_bomb()), "gzip, gzip"),
    "deflate": (lambda: zlib.compress(bytes(48 << 20)), "deflate"),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_compressed_token_response_is_capped_on_its_decoded_size(tmp_path: Path, bomb: str) -> None:
    make, encoding = BOMBS[bomb]
    body = make()
    with evil_stack(tmp_path, settings={"max_response_bytes": str(8 << 20)}) as s:
        assert len(body) < 8 << 20  # the wire size passes the cap: only the decoded size can fail it
        s.provider.token_handler = lambda req, grant: raw_response(body, "application/json",
                                                                   headers={"Content-Encoding": encoding})
        page, took, browser = timed_login(s)
        assert_refused(s, browser, page, "provider_response_too_large")
        assert took < 30, took  # decoding all 4 GiB first would take minutes, if memory allowed


def test_a_compressed_answer_within_the_cap_is_decoded_and_accepted(tmp_path: Path) -> None:
    """The twin: a provider that compresses its answers on its own still signs users in."""
    with evil_stack(tmp_path) as s:
        p = s.provider
        p.token_handler = lambda req, grant: raw_response(
            gzip.compress(json.dumps(p.token_body(grant)).encode()), "application/json",
            headers={"Content-Encoding": "gzip"}) if grant else json_response({"error": "invalid_grant"}, 400)
        done = s.browser().login()
        assert done.status_code == 303 and s.recorder.errors() == []


def test_a_body_that_is_not_what_its_content_encoding_says(tmp_path: Path) -> None:
    with evil_stack(tmp_path) as s:
        s.provider.token_handler = lambda req, grant: raw_response(b'{"access_token": "x"}', "application/json",
                                                                   headers={"Content-Encoding": "gzip"})
        page, _, browser = timed_login(s)
        assert_refused(s, browser, page, "provider_bad_response")


# -- JWKS: rate-limited whatever the outcome, no lock across the network ------------------------------

def unknown_kid_tokens(provider: EvilProvider) -> None:
    provider.id_token_factory = lambda grant, claims: encrypt(
        sign(claims, ec_key(), "ES256", kid=b64url(grant.code.encode()[:12])), provider.client_key())


def test_unknown_kids_while_the_jwks_answers_500_cost_one_refetch_per_interval(tmp_path: Path) -> None:
    interval = 2.0
    with evil_stack(tmp_path, settings={"jwks_refresh_interval": str(interval)}) as s:
        p = s.provider
        assert s.browser().login().status_code == 303
        assert p.hits["/jwks"] == 1
        p.jwks_handler = lambda request: raw_response(b"down", status=500)
        unknown_kid_tokens(p)
        time.sleep(interval + 0.05)
        started = time.monotonic()
        for n in range(20):
            # The one refetch fails the login it was made for with the JWKS's own failure;
            # the rate-limited others with the unknown key.
            page = s.browser().login()
            assert (page.status_code, s.recorder.errors()[-1]) in (
                (401, "id_token_signature_key"), (502, "provider_http_error")), n
        allowed = 1 + int((time.monotonic() - started) / interval)  # one per interval begun
        assert 1 <= p.hits["/jwks"] - 1 <= allowed, (p.hits, allowed)


def test_a_failing_first_jwks_fetch_is_not_repeated_by_every_login(tmp_path: Path) -> None:
    with evil_stack(tmp_path, settings={"jwks_refresh_interval": "30"}) as s:
        s.provider.jwks_handler = lambda request: raw_response(b"down", status=500)
        for _ in range(20):
            browser = s.browser()
            assert_refused(s, browser, browser.login(), "provider_http_error")
        assert s.provider.hits["/jwks"] == 1, s.provider.hits


def test_the_jwks_is_refetched_once_the_interval_has_passed(tmp_path: Path) -> None:
    """The twin: rate-limited, not stuck. After the interval a rotated key is fetched."""
    with evil_stack(tmp_path, settings={"jwks_refresh_interval": "0.5"}) as s:
        p = s.provider
        p.jwks_handler = lambda request: raw_response(b"down", status=500)
        assert s.browser().login().status_code == 502
        p.jwks_handler = None
        time.sleep(0.6)
        assert s.browser().login().status_code == 303
        assert p.hits["/jwks"] == 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[EvilProvider]:
    p = EvilProvider("plain")
    with serve_wsgi(p) as base:
        p.base = base
        yield p


def test_expired_keys_are_refreshed_by_one_thread_while_the_others_keep_using_them(provider: EvilProvider) -> None:
    clock = Clock()
    client = ProviderClient(provider.issuer, timeout=10, clock=clock)
    try:
        first = client.keys()
        clock.now += 3601  # past the JWKS cache lifetime
        release = threading.Event()

        def slow_jwks(request: Any) -> Any:
            release.wait(10)
            return json_response(provider.jwks())
        provider.jwks_handler = slow_jwks
        refresher = threading.Thread(target=client.keys)
        refresher.start()
        assert wait_for(lambda: provider.hits.get("/jwks") == 2)  # the refresh is under way
        started = time.monotonic()
        assert client.keys() is first  # not blocked behind the refresh
        assert time.monotonic() - started < 1.0
        release.set()
        refresher.join(10)
        assert provider.hits["/jwks"] == 2
        assert client.keys() is not first  # the refreshed set, from the one fetch
    finally:
        release.set()
        client.close()


def test_concurrent_unknown_kids_share_one_refetch(provider: EvilProvider) -> None:
    client = ProviderClient(provider.issuer, timeout=10, jwks_refresh_interval=0)
    try:
        client.keys()
        gate = threading.Event()

        def slow_jwks(request: Any) -> Any:
            gate.wait(10)
            return json_response(provider.jwks())
        provider.jwks_handler = slow_jwks
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(client.refresh_keys_for_unknown_kid()))
                   for _ in range(8)]
        for t in threads:
            t.start()
        assert wait_for(lambda: provider.hits.get("/jwks") == 2)
        time.sleep(0.2)
        gate.set()
        for t in threads:
            t.join(10)
        assert provider.hits["/jwks"] == 2  # eight callers, one fetch
        assert len(results) == 8 and all(r is results[0] and r is not None for r in results)
    finally:
        gate.set()
        client.close()


# -- an https issuer's endpoints are all https ----------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint",
                                      "end_session_endpoint", "authorization_endpoint"])
def test_an_https_issuer_listing_an_http_endpoint_is_refused_at_discovery(tmp_path: Path, endpoint: str) -> None:
    cert, key = self_signed_cert(tmp_path)
    with raw_server(lambda n: Answer(data=json_answer({"error": "should never be called"}))) as clear, \
            evil_stack(tmp_path, tls=(cert, key), settings={"ca_bundle": str(cert)}) as s:
        s.provider.discovery_overrides = {endpoint: clear.url + "/x"}
        browser = s.browser()
        browser.verify = str(cert)
        assert_refused(s, browser, browser.get("/private/page"), "discovery_invalid")
        assert clear.connections == 0 and "/token" not in s.provider.hits
        # What `fcplus-wsgi check` tells the operator: the endpoint and why.
        client = ProviderClient(s.provider.issuer, ca_bundle=str(cert))
        try:
            with pytest.raises(FlowError) as refused:
                client.fetch_metadata()
        finally:
            client.close()
        assert refused.value.code == "discovery_invalid"
        assert refused.value.detail == f"discovery: {endpoint} uses http:// although the issuer uses https://"


def test_endpoint_schemes() -> None:
    assert endpoint_scheme_problem("https://op.example", "token_endpoint", "https://other.example/t") is None
    assert endpoint_scheme_problem("https://op.example", "token_endpoint", "http://op.example/t")
    assert endpoint_scheme_problem("https://127.0.0.1:8443", "jwks_uri", "http://127.0.0.1:9/j")
    # Loopback development over http still works, to loopback hosts only.
    assert endpoint_scheme_problem("http://127.0.0.1:9000", "token_endpoint", "http://localhost:9000/t") is None
    assert endpoint_scheme_problem("http://127.0.0.1:9000", "token_endpoint", "https://op.example/t") is None
    assert endpoint_scheme_problem("http://127.0.0.1:9000", "token_endpoint", "http://op.example/t")
    assert endpoint_scheme_problem("https://op.example", "jwks_uri", "ftp://op.example/j")


# -- retries: idempotent GETs once, on a reset; never the POST -------------------------------------------

def test_a_reset_jwks_connection_is_retried_once(tmp_path: Path) -> None:
    with evil_stack(tmp_path) as s:
        jwks = json_answer(s.provider.jwks())
        with raw_server(lambda n: Answer(reset=True) if n == 0 else Answer(data=jwks)) as flaky:
            s.provider.discovery_overrides = {"jwks_uri": flaky.url + "/jwks"}
            assert s.browser().login().status_code == 303
            assert flaky.connections == 2


def test_a_reset_token_connection_is_not_retried(tmp_path: Path) -> None:
    with evil_stack(tmp_path) as s, \
            raw_server(lambda n: Answer(reset=True) if n == 0 else Answer(data=json_answer({}))) as flaky:
        s.provider.discovery_overrides = {"token_endpoint": flaky.url + "/token"}
        page, _, browser = timed_login(s)
        assert_refused(s, browser, page, "provider_unreachable")
        assert flaky.connections == 1


# -- provider-call events name the login they belong to ---------------------------------------------------

def test_provider_call_events_carry_the_flow_correlation_id(tmp_path: Path) -> None:
    with evil_stack(tmp_path) as s:
        assert s.browser().login().status_code == 303
        events = s.recorder.events
        by_step = {e.step: e.correlation_id for e in events if e.step != "provider_request"}
        calls = [(e.extra["endpoint"], e.correlation_id) for e in events if e.step == "provider_request"]
        assert [name for name, _ in calls] == ["discovery", "token", "jwks", "userinfo"]
        assert calls[0][1] == by_step["login_redirect"]
        assert {cid for _, cid in calls[1:]} == {by_step["token"]}
        assert all(len(cid) == 12 for _, cid in calls)
        assert any(f"fcplus.provider_request.success provider=fcplus-integration correlation_id={by_step['token']}"
                   in line for line in s.logs.lines)


def test_tls_transport_through_the_deadline_keeps_working(tmp_path: Path) -> None:
    """The deadline hooks sit on both connection classes: a TLS provider signs users in."""
    cert, key = self_signed_cert(tmp_path)
    p = EvilProvider("plain")
    with serve_wsgi_tls(p, cert, key) as base:
        p.base = base
        client = ProviderClient(p.issuer, timeout=DEADLINE, ca_bundle=str(cert))
        try:
            assert client.metadata().token_endpoint.startswith("https://")
            assert client.keys() is client.keys()
        finally:
            client.close()
