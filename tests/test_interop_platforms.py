"""Each platform preset against a provider that accepts only what that platform's core accepts.

A real FC+ login once failed at the first redirect: the middleware sent PKCE because discovery
advertised it, and FranceConnect's core refuses `code_challenge`. Lenient test providers hid
that. Here the middleware, configured with each platform's preset (fcplus-integration,
franceconnect-integration, proconnect-integration) and a loopback issuer, signs in, reaches
the app with the userinfo claims, revokes its access token and logs out through end_session,
against:

* node `oidc-provider` (tests/interop/provider.mjs) with the platform's PROFILE: configured
  like that core, its parameter allow-lists enforced in front of oidc-provider, refusals
  printed as `REFUSED <endpoint> <names>`;
* the project's development provider with the same platform profile (when it has profiles).

Guard tests then prove the allow-lists bite, each next to a control request that differs by
the one parameter under test, so they cannot silently turn lenient.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests

from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.dev_signin import sign_in_at_dev_provider
from tests.support.devstack import whoami_app
from tests.support.node_provider import (
    NodeProvider,
    login_through_interaction,
    logout_through_provider,
    node_available,
    start_node_provider,
)
from tests.support.servers import LateApp, serve_wsgi

CLIENT_ID = "platform-interop"
SECRET = "platform-secret-" + "p" * 40  # the cores want >= 32 ASCII characters
PLATFORMS = ("fcplus", "franceconnect", "proconnect")
KINDS = ("node", "dev")

# What the middleware is configured with per platform: its preset, the level it asks for,
# and the signing alg the client registers (RS256 where the platform offers it, so the
# RSA path is exercised too; FC+ signs ES256 only).
PRESET = {"fcplus": "fcplus-integration", "franceconnect": "franceconnect-integration",
          "proconnect": "proconnect-integration"}
ACR = {"fcplus": "eidas2", "franceconnect": "eidas1", "proconnect": "eidas1"}
SIGNING = {"fcplus": "ES256", "franceconnect": "RS256", "proconnect": "RS256"}
# Claims the app must receive from userinfo (requested by each preset's default scopes).
USERINFO_CLAIMS = {
    "fcplus": ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
    "franceconnect": ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
    "proconnect": ("given_name", "usual_name", "email", "uid", "siret", "idp_id"),
}

# The cores' authorize allow-lists (providers.md §9), to check what the middleware sends.
FC_AUTHORIZE = {"client_id", "acr_values", "claims", "response_type", "nonce", "state", "redirect_uri", "scope",
                "prompt", "idp_hint", "ui_locales"}
PC_AUTHORIZE = {"client_id", "acr_values", "claims", "response_type", "response_mode", "nonce", "login_hint",
                "siret_hint", "state", "redirect_uri", "scope", "prompt", "idp_hint", "code_challenge",
                "code_challenge_method"}
AUTHORIZE_ALLOWED = {"fcplus": FC_AUTHORIZE, "franceconnect": FC_AUTHORIZE, "proconnect": PC_AUTHORIZE}

pytestmark = pytest.mark.skipif(not node_available(), reason="node is not installed")


def dev_profiles_missing() -> str | None:
    """Why the development provider cannot play a platform yet, or None when it can.

    Another change adds `profile` (fcplus | franceconnect | proconnect) to DevProviderConfig;
    until it is there the dev parameters skip with this reason instead of failing.
    """
    from fcplus_wsgi.devprovider import DevProviderConfig

    names = {f.name for f in dataclasses.fields(DevProviderConfig)} if dataclasses.is_dataclass(DevProviderConfig) \
        else set(inspect.signature(DevProviderConfig).parameters)
    if "profile" not in names:
        return "fcplus_wsgi.devprovider.DevProviderConfig has no `profile` field yet (platform profiles pending)"
    return None


# --- the stacks ------------------------------------------------------------------------------


@dataclass
class Stack:
    """A service (an app wrapped by the middleware) and the provider it signs in with."""

    kind: str
    platform: str
    base: str
    issuer: str
    middleware: FCPlusMiddleware
    node: NodeProvider | None = None
    dev_app: Any = None
    sessions: list[requests.Session] = field(default_factory=list)

    def browser(self) -> requests.Session:
        session = requests.Session()
        session.headers["Accept"] = "text/html,application/xhtml+xml"
        self.sessions.append(session)
        return session

    def revocations(self) -> int:
        """Access tokens of our client revoked so far, observed at the provider."""
        if self.node is not None:
            return self.node.revocations(CLIENT_ID)
        return int(self.dev_app.revocations(CLIENT_ID))

    def refusals(self) -> list[str]:
        return self.node.refusals() if self.node is not None else []

    def log(self) -> str:
        return self.node.log()[-3000:] if self.node is not None else ""

    def metadata(self) -> dict[str, Any]:
        response = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=10)
        assert response.status_code == 200, response.text[:300]
        return dict(response.json())


def _middleware(platform: str, base: str, issuer: str, tmp: Path) -> FCPlusMiddleware:
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps(generate_private_jwks()))
    return FCPlusMiddleware(whoami_app(), {
        "provider": PRESET[platform], "issuer": issuer, "client_id": CLIENT_ID, "client_secret": SECRET,
        "redirect_uri": base + "/oidc/callback", "post_logout_redirect_uri": base + "/oidc/logout-callback",
        "keys_file": str(keys_file), "session_store": "memory://", "cookie_secure": "false",
        "protected_paths": "/private", "acr_values": ACR[platform],
    })


def _start_node(exits: ExitStack, platform: str, tmp: Path) -> Stack:
    late = LateApp()
    base = exits.enter_context(serve_wsgi(late))
    metadata = {} if platform == "fcplus" else {"id_token_signed_response_alg": SIGNING[platform]}
    node = exits.enter_context(start_node_provider(
        CLIENT_ID, SECRET, base + "/oidc/callback", base + "/oidc/logout-callback", base + "/oidc/jwks.json",
        issuer_path="/api/v2", client_metadata=metadata, profile=platform))
    middleware = _middleware(platform, base, node.issuer, tmp)
    exits.callback(middleware.store.close)
    late.app = middleware
    return Stack("node", platform, base, node.issuer, middleware, node=node)


def _start_dev(exits: ExitStack, platform: str, tmp: Path) -> Stack:
    from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app

    late, late_provider = LateApp(), LateApp()
    base = exits.enter_context(serve_wsgi(late))
    provider_base = exits.enter_context(serve_wsgi(late_provider))
    issuer = provider_base + "/api/v2"
    registration: dict[str, Any] = {
        "client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uris": [base + "/oidc/callback"],
        "post_logout_redirect_uris": [base + "/oidc/logout-callback"], "jwks_uri": base + "/oidc/jwks.json",
    }
    client_fields = {f.name for f in dataclasses.fields(ClientConfig)}
    if platform != "fcplus":
        # FC and ProConnect sign only: no encryption registered for the service.
        for prefix in ("id_token", "userinfo"):
            if f"{prefix}_encrypted_response_alg" in client_fields:
                registration[f"{prefix}_encrypted_response_alg"] = None
        for name in ("id_token_signed_response_alg", "userinfo_signed_response_alg"):
            if name in client_fields:
                registration[name] = SIGNING[platform]
    config: dict[str, Any] = {"issuer": issuer, "clients": [ClientConfig(**registration)], "profile": platform}
    dev_app = make_app(DevProviderConfig(**config))
    late_provider.app = dev_app
    middleware = _middleware(platform, base, issuer, tmp)
    exits.callback(middleware.store.close)
    late.app = middleware
    return Stack("dev", platform, base, issuer, middleware, dev_app=dev_app)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], Stack]]:
    """One provider process and one service per (kind, platform), started on first use and
    shared by the whole module: node providers take about a second to start."""
    started: dict[tuple[str, str], Stack] = {}
    with ExitStack() as exits:
        def get(kind: str, platform: str) -> Stack:
            if kind == "dev":
                missing = dev_profiles_missing()
                if missing:
                    pytest.skip(missing)
            key = (kind, platform)
            if key not in started:
                tmp = tmp_path_factory.mktemp(f"{kind}-{platform}")
                started[key] = (_start_node if kind == "node" else _start_dev)(exits, platform, tmp)
            return started[key]

        yield get
        for stack in started.values():
            for session in stack.sessions:
                session.close()


# --- playing the browser ---------------------------------------------------------------------


def sign_in_at_provider(stack: Stack, browser: requests.Session, authorize_url: str,
                        login: str = "platform-user") -> requests.Response:
    """Sign in on the provider's own pages; returns its redirect to our callback, unfollowed."""
    if stack.node is not None:
        return login_through_interaction(browser, authorize_url, login=login)
    return sign_in_at_dev_provider(browser, authorize_url, stack.base)


def logout_at_provider(stack: Stack, browser: requests.Session, end_session_url: str) -> requests.Response:
    """Follow end_session at the provider; returns its redirect to our logout callback."""
    if stack.node is not None:
        return logout_through_provider(browser, end_session_url)
    response = browser.get(end_session_url, allow_redirects=False, timeout=10)
    assert response.is_redirect, response.text[:500]
    return response


def query(url: str) -> dict[str, str]:
    """The query of a URL as single values (a repeated parameter fails the test)."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    repeated = [k for k, v in parsed.items() if len(v) > 1]
    assert not repeated, f"repeated parameters: {repeated}"
    return {k: v[0] for k, v in parsed.items()}


def sign_in(stack: Stack, browser: requests.Session, path: str = "/private/page") -> dict[str, Any]:
    """Open a protected page, sign in at the provider, land back; returns what the app saw."""
    refused_before = len(stack.refusals())
    first = browser.get(stack.base + path, allow_redirects=False, timeout=10)
    assert first.status_code == 302, first.text[:500]
    authorize = first.headers["Location"]
    assert authorize.startswith(stack.issuer + "/"), authorize
    sent = query(authorize)
    assert set(sent) <= AUTHORIZE_ALLOWED[stack.platform], set(sent) - AUTHORIZE_ALLOWED[stack.platform]
    back = sign_in_at_provider(stack, browser, authorize)
    assert stack.refusals()[refused_before:] == [], stack.log()
    callback = back.headers["Location"]
    assert callback.startswith(stack.base + "/oidc/callback?"), callback
    assert "code" in query(callback), f"no code on the callback: error={query(callback).get('error')}"
    done = browser.get(callback, allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text[:1000]
    assert done.headers["Location"] == path
    page = browser.get(stack.base + path, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text[:500]
    return dict(page.json())


STACK_PARAMS = [pytest.param(kind, platform, id=f"{kind}-{platform}") for kind in KINDS for platform in PLATFORMS]


# --- the platform flows ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_login_sends_what_the_platform_accepts(stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """The first redirect: PKCE only to ProConnect (FC and FC+ refuse it whatever their
    discovery says), acr as each platform asks for it, nothing outside the core's list."""
    stack = stacks(kind, platform)
    browser = stack.browser()
    first = browser.get(stack.base + "/private/x", allow_redirects=False, timeout=10)
    assert first.status_code == 302, first.text[:500]
    sent = query(first.headers["Location"])
    assert set(sent) <= AUTHORIZE_ALLOWED[platform]
    if platform == "proconnect":
        assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
        acr_request = json.loads(sent["claims"])["id_token"]["acr"]
        assert acr_request["essential"] is True and ACR[platform] in acr_request["values"]
    else:
        assert "code_challenge" not in sent and "code_challenge_method" not in sent
        assert sent["acr_values"] == ACR[platform]
    assert len(sent["nonce"]) >= 32 and len(sent["state"]) >= 32


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_full_login_reaches_the_app(stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """Sign-in through the middleware: the provider accepts every request (no refusal logged),
    the id_token and the userinfo JWT verify, and the app gets the identity and its claims."""
    stack = stacks(kind, platform)
    browser = stack.browser()
    seen = sign_in(stack, browser)
    assert seen["sub"] and seen["remote_user"] == seen["sub"]
    if kind == "node":
        assert seen["sub"] == "platform-user"
    assert seen["acr"] == ACR[platform]
    claims = seen["claims"]
    missing = [name for name in USERINFO_CLAIMS[platform] if not claims.get(name)]
    assert not missing, f"userinfo claims missing for the app: {missing} (got {sorted(claims)})"
    # The session is kept: the next page needs no new round trip.
    again = browser.get(stack.base + "/private/other", allow_redirects=False, timeout=10)
    assert again.status_code == 200 and again.json()["sub"] == seen["sub"]


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_logout_revokes_and_ends_the_provider_session(
        stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """Logout: the access token is revoked and the provider accepts the revocation (it counts
    it); the browser goes through end_session with id_token_hint and state, and the state
    comes back on the logout callback, which ends the local session."""
    stack = stacks(kind, platform)
    browser = stack.browser()
    sign_in(stack, browser)
    revoked_before, refused_before = stack.revocations(), len(stack.refusals())
    out = browser.get(stack.base + "/oidc/logout", allow_redirects=False, timeout=10, headers={"Sec-Fetch-Site": "same-origin"})
    assert out.status_code == 303, out.text[:500]
    assert stack.refusals()[refused_before:] == [], stack.log()
    deadline = time.monotonic() + 5
    while stack.revocations() == revoked_before:
        assert time.monotonic() < deadline, f"no accepted revocation at the provider:\n{stack.log()}"
        time.sleep(0.05)
    end_session = out.headers["Location"]
    assert end_session.startswith(stack.issuer + "/session/end?"), end_session
    sent = query(end_session)
    assert set(sent) == {"id_token_hint", "state", "post_logout_redirect_uri"}
    assert sent["id_token_hint"].count(".") == 2, "id_token_hint must be the signed JWS, not a JWE"
    back = logout_at_provider(stack, browser, end_session)
    assert stack.refusals()[refused_before:] == [], stack.log()
    landing = back.headers["Location"]
    assert landing.startswith(stack.base + "/oidc/logout-callback?")
    assert query(landing)["state"] == sent["state"]
    done = browser.get(landing, allow_redirects=False, timeout=10)
    assert done.status_code == 303 and done.headers["Location"] == "/", done.text[:500]
    assert browser.get(stack.base + "/private/page", allow_redirects=False, timeout=10).status_code == 302


# --- ProConnect's SSO: prompt=none -----------------------------------------------------------


def _forget_service_session(stack: Stack, browser: requests.Session) -> None:
    """Drop the service's cookies, keeping the provider's: a new visit with an SSO session."""
    service_cookies = [c for c in browser.cookies if c.name.startswith(stack.middleware.settings.cookie_name)]
    assert service_cookies, "expected the service's session cookie"
    for cookie in service_cookies:
        browser.cookies.clear(cookie.domain, cookie.path, cookie.name)
    assert len(browser.cookies) > 0, "the provider's session cookie must stay"


@pytest.mark.parametrize("kind", KINDS)
def test_proconnect_silent_login_with_sso_session(stacks: Callable[[str, str], Stack], kind: str) -> None:
    """Signed in at ProConnect, a silent login (prompt=none) comes back with a code and no page."""
    stack = stacks(kind, "proconnect")
    browser = stack.browser()
    first = sign_in(stack, browser)
    _forget_service_session(stack, browser)
    assert browser.get(stack.base + "/private/page", allow_redirects=False, timeout=10).status_code == 302
    start = browser.get(stack.base + "/oidc/login?" + urlencode({"return_to": "/private/page", "prompt": "none"}),
                        allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text[:500]
    assert query(start.headers["Location"])["prompt"] == "none"
    answer = browser.get(start.headers["Location"], allow_redirects=False, timeout=10)
    # Straight back to the service: no sign-in page in between.
    assert answer.is_redirect, answer.text[:500]
    callback = urljoin(answer.url, answer.headers["Location"])
    assert callback.startswith(stack.base + "/oidc/callback?"), callback
    assert "code" in query(callback), query(callback).get("error")
    done = browser.get(callback, allow_redirects=False, timeout=10)
    assert done.status_code == 303 and done.headers["Location"] == "/private/page", done.text[:500]
    page = browser.get(stack.base + "/private/page", allow_redirects=False, timeout=10)
    assert page.status_code == 200 and page.json()["sub"] == first["sub"]


@pytest.mark.parametrize("kind", KINDS)
def test_proconnect_silent_login_without_session_falls_back(
        stacks: Callable[[str, str], Stack], kind: str) -> None:
    """No ProConnect session: prompt=none gives login_required, and the middleware starts an
    interactive login by itself (ProConnect's documented fallback), which then succeeds."""
    stack = stacks(kind, "proconnect")
    browser = stack.browser()
    start = browser.get(stack.base + "/oidc/login?" + urlencode({"return_to": "/private/page", "prompt": "none"}),
                        allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text[:500]
    answer = browser.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert answer.is_redirect, answer.text[:500]
    callback = urljoin(answer.url, answer.headers["Location"])
    assert query(callback).get("error") == "login_required", callback
    retry = browser.get(callback, allow_redirects=False, timeout=10)
    assert retry.status_code == 302, retry.text[:500]
    interactive = retry.headers["Location"]
    assert interactive.startswith(stack.issuer + "/") and query(interactive).get("prompt") != "none"
    back = sign_in_at_provider(stack, browser, interactive)
    done = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert done.status_code == 303 and done.headers["Location"] == "/private/page", done.text[:500]


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_login_hints_only_where_the_platform_takes_them(
        stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """ProConnect takes login_hint and siret_hint (the provider accepts the request carrying
    them); FC and FC+ would strand the user on their error page, so the middleware refuses
    them itself, before any redirect."""
    stack = stacks(kind, platform)
    browser = stack.browser()
    hints = {"login_hint": "agent@example.gouv.fr", "siret_hint": "13002526500013"}
    start = browser.get(stack.base + "/oidc/login?" + urlencode({"return_to": "/private/page", **hints}),
                        allow_redirects=False, timeout=10)
    if platform != "proconnect":
        assert start.status_code == 400, (start.status_code, start.headers.get("Location"))
        assert not start.headers.get("Location", "").startswith(stack.issuer)
        return
    assert start.status_code == 302, start.text[:500]
    sent = query(start.headers["Location"])
    assert {k: sent.get(k) for k in hints} == hints
    before = len(stack.refusals())
    at_provider = browser.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert_accepted(stack, at_provider)
    assert refused_since(stack, before, expected=0) == []


# --- the allow-lists bite (direct requests to the providers) ---------------------------------
#
# Each refusal is checked next to a control request that differs only by the parameter under
# test. Against the node provider the refusal must also be the allow-list's own (its REFUSED
# line names exactly the offending parameters), not some later oidc-provider error.

FC_PLATFORMS = ("fcplus", "franceconnect")


def kinds_x(platforms: tuple[str, ...]) -> list[Any]:
    return [pytest.param(kind, platform, id=f"{kind}-{platform}") for kind in KINDS for platform in platforms]


def authorize_params(stack: Stack, **extra: str) -> dict[str, str]:
    """A request the platform accepts (plus `extra`): the control for each refusal below."""
    params = {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": stack.base + "/oidc/callback",
        "scope": "openid given_name", "state": secrets.token_hex(32), "nonce": secrets.token_hex(32),
    }
    if stack.platform == "proconnect":
        params["claims"] = json.dumps({"id_token": {"acr": {"essential": True, "values": ["eidas1"]}}})
    else:
        params["acr_values"] = ACR[stack.platform]
    return {**params, **extra}


def refused_since(stack: Stack, before: int, expected: int = 1) -> list[str]:
    """The node provider's refusals logged since `before`, waiting a little for `expected` of
    them: it writes its line before answering, but our reader thread may not have read it yet."""
    deadline = time.monotonic() + 3
    while len(stack.refusals()) - before < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return stack.refusals()[before:]


def assert_refused_by_allow_list(stack: Stack, before: int, endpoint: str, names: str) -> None:
    """On the node provider, the refusal came from the allow-list and named exactly `names`
    (the development provider has no such log: its status codes are checked by the callers)."""
    if stack.node is not None:
        assert refused_since(stack, before) == [f"REFUSED {endpoint} {names}"], stack.log()


def assert_refused_page(response: requests.Response) -> None:
    """The platform's own error page: a 400 at the provider, never a redirect to the service."""
    assert response.status_code == 400, (response.status_code, response.headers.get("Location"))
    assert "html" in response.headers.get("Content-Type", "")
    assert "Location" not in response.headers


def authorize(stack: Stack, params: dict[str, str], method: str = "GET") -> requests.Response:
    endpoint = stack.metadata()["authorization_endpoint"]
    with requests.Session() as browser:
        if method == "GET":
            return browser.get(endpoint, params=params, allow_redirects=False, timeout=10)
        return browser.post(endpoint, data=params, allow_redirects=False, timeout=10)


def assert_accepted(stack: Stack, response: requests.Response) -> None:
    """Accepted: the provider goes on to its sign-in page (oidc-provider through a redirect
    to its interaction, the development provider at once)."""
    if stack.node is not None:
        assert response.is_redirect, (response.status_code, response.text[:500])
        assert "/interaction/" in response.headers["Location"], response.headers["Location"]
    else:
        assert response.status_code == 200, (response.status_code, response.headers.get("Location"),
                                             response.text[:500])


def challenge() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("kind", "platform"), kinds_x(FC_PLATFORMS))
def test_fc_authorize_refuses_pkce_although_discovery_offers_it(
        stacks: Callable[[str, str], Stack], kind: str, platform: str, method: str) -> None:
    """The trap itself: discovery advertises S256, the authorize DTO refuses code_challenge.

    The DTO checks POST bodies too; past it, oidc-provider 9 (the FC cores run 9.1) routes
    authorize on GET only, so the control is a GET either way.
    """
    stack = stacks(kind, platform)
    assert "S256" in stack.metadata()["code_challenge_methods_supported"]
    assert_accepted(stack, authorize(stack, authorize_params(stack)))
    before = len(stack.refusals())
    pkce = authorize_params(stack, code_challenge=challenge(), code_challenge_method="S256")
    assert_refused_page(authorize(stack, pkce, method))
    assert_refused_by_allow_list(stack, before, "authorize", "code_challenge,code_challenge_method")


@pytest.mark.parametrize("extra", [{"login_hint": "a@example.com"}, {"max_age": "0"}, {"response_mode": "query"},
                                   {"request": "x"}], ids=lambda e: next(iter(e)))
@pytest.mark.parametrize(("kind", "platform"), kinds_x(FC_PLATFORMS))
def test_fc_authorize_refuses_unlisted_parameters(
        stacks: Callable[[str, str], Stack], kind: str, platform: str, extra: dict[str, str]) -> None:
    stack = stacks(kind, platform)
    before = len(stack.refusals())
    assert_refused_page(authorize(stack, authorize_params(stack, **extra)))
    assert_refused_by_allow_list(stack, before, "authorize", next(iter(extra)))


@pytest.mark.parametrize(("kind", "platform"), kinds_x(FC_PLATFORMS))
def test_fc_authorize_constraints(stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """acr_values and state are required, nonce >= 22 characters, prompt among login/consent
    (so prompt=none, a silent login, is refused: FC and FC+ keep no SSO for services)."""
    stack = stacks(kind, platform)
    assert_accepted(stack, authorize(stack, authorize_params(stack, prompt="login")))
    cases = {
        "prompt": authorize_params(stack, prompt="none"),
        # 21 characters: below both the core's 22 and the documented 32.
        "nonce": authorize_params(stack, nonce="n" * 21),
    }
    for name in ("acr_values", "state"):
        cases[name] = {k: v for k, v in authorize_params(stack).items() if k != name}
    for name, params in cases.items():
        before = len(stack.refusals())
        assert_refused_page(authorize(stack, params))
        assert_refused_by_allow_list(stack, before, "authorize", name)


@pytest.mark.parametrize("kind", KINDS)
def test_proconnect_authorize_accepts_pkce_and_refuses_the_unknown(
        stacks: Callable[[str, str], Stack], kind: str) -> None:
    stack = stacks(kind, "proconnect")
    assert_accepted(stack, authorize(stack, authorize_params(stack, code_challenge=challenge(),
                                                             code_challenge_method="S256")))
    assert_accepted(stack, authorize(stack, authorize_params(stack, login_hint="agent@example.gouv.fr",
                                                             siret_hint="13002526500013")))
    cases = {"max_age": {"max_age": "0"}, "siret_hint": {"siret_hint": "1300252650001"},
             "login_hint": {"login_hint": "not-an-email"}}
    for name, extra in cases.items():
        before = len(stack.refusals())
        assert_refused_page(authorize(stack, authorize_params(stack, **extra)))
        assert_refused_by_allow_list(stack, before, "authorize", name)
    # The DTO takes any prompt string; oidc-provider refuses one outside login, consent, none
    # with an error sent back to the service.
    params = authorize_params(stack, prompt="select_account")
    response = authorize(stack, params)
    assert response.is_redirect and response.headers["Location"].startswith(params["redirect_uri"] + "?")
    assert query(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("kind", KINDS)
def test_proconnect_prompt_none_without_session_is_login_required(
        stacks: Callable[[str, str], Stack], kind: str) -> None:
    """No session: back to the service with error=login_required and the state."""
    stack = stacks(kind, "proconnect")
    params = authorize_params(stack, prompt="none")
    response = authorize(stack, params)
    assert response.is_redirect, response.text[:500]
    assert response.headers["Location"].startswith(params["redirect_uri"] + "?")
    back = query(response.headers["Location"])
    assert back["error"] == "login_required" and back["state"] == params["state"]


def basic_auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()}


def revoke(stack: Stack, data: dict[str, str], headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(stack.metadata()["revocation_endpoint"], data=data, headers=headers or {}, timeout=10)


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_revocation_takes_token_and_client_credentials_in_the_body_only(
        stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """Revocation takes token, client_id, client_secret in the body, and nothing else: no
    token_type_hint, no Basic header, a token of at least 43 characters."""
    stack = stacks(kind, platform)
    token = secrets.token_urlsafe(32)  # 43 characters; unknown tokens are "revoked" with a 200 (RFC 7009)
    body = {"token": token, "client_id": CLIENT_ID, "client_secret": SECRET}
    control = revoke(stack, body)
    assert control.status_code == 200, control.text
    cases: list[tuple[str, dict[str, str], dict[str, str] | None]] = [
        ("authorization,client_id,client_secret", {"token": token}, basic_auth()),
        ("token", {**body, "token": token[:42]}, None),
    ]
    # core-fca-low's revocation pipe only strips unknown fields (the hint then reaches
    # oidc-provider, which takes it): the development provider follows that code, the node
    # provider the stricter rule shared with FC.
    if kind == "node" or platform != "proconnect":
        cases.insert(0, ("token_type_hint", {**body, "token_type_hint": "access_token"}, None))
    for names, data, headers in cases:
        before = len(stack.refusals())
        refused = revoke(stack, data, headers)
        assert refused.status_code == 400, (names, refused.text[:500])
        assert_refused_by_allow_list(stack, before, "revocation", names)


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_token_endpoint_refuses_basic_auth(stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """client_secret_post only: the same bogus code gets past client authentication in the
    body (invalid_grant), and is refused with a Basic header before any grant check."""
    stack = stacks(kind, platform)
    endpoint = stack.metadata()["token_endpoint"]
    grant = {"grant_type": "authorization_code", "code": secrets.token_urlsafe(32),
             "redirect_uri": stack.base + "/oidc/callback"}
    posted = requests.post(endpoint, data={**grant, "client_id": CLIENT_ID, "client_secret": SECRET}, timeout=10)
    assert posted.status_code == 400 and posted.json()["error"] == "invalid_grant", posted.text
    before = len(stack.refusals())
    refused = requests.post(endpoint, data=grant, headers=basic_auth(), timeout=10)
    assert refused.status_code in (400, 401), refused.text
    assert refused.json()["error"] in ("invalid_request", "invalid_client"), refused.text
    assert_refused_by_allow_list(stack, before, "token", "authorization")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_end_session_refuses_unlisted_parameters(stacks: Callable[[str, str], Stack], platform: str) -> None:
    """Node provider only: the control needs no real id_token there (the allow-list judges
    names before oidc-provider judges the hint), so the REFUSED line tells the two apart."""
    stack = stacks("node", platform)
    endpoint = stack.metadata()["end_session_endpoint"]
    base = {"id_token_hint": "a.b.c", "state": secrets.token_hex(32),
            "post_logout_redirect_uri": stack.base + "/oidc/logout-callback"}
    cases = {"foo": {**base, "foo": "bar"}}
    if platform != "proconnect":  # core-fca-low's logout DTO marks id_token_hint optional
        cases["id_token_hint"] = {k: v for k, v in base.items() if k != "id_token_hint"}
    before = len(stack.refusals())
    requests.get(endpoint, params=base, allow_redirects=False, timeout=10)  # control: oidc-provider judges it
    assert refused_since(stack, before, expected=0) == []
    for name, params in cases.items():
        before = len(stack.refusals())
        response = requests.get(endpoint, params=params, allow_redirects=False, timeout=10)
        assert_refused_page(response)
        assert_refused_by_allow_list(stack, before, "end_session", name)


@pytest.mark.parametrize(("kind", "platform"), STACK_PARAMS)
def test_discovery_matches_the_core(stacks: Callable[[str, str], Stack], kind: str, platform: str) -> None:
    """What discovery says per platform: the cores' subject type, levels, signing algs and
    client authentication, and PKCE advertised everywhere (even where authorize refuses it)."""
    meta = stacks(kind, platform).metadata()
    subject, levels, signing = {
        "fcplus": ("pairwise", ["eidas2", "eidas3"], {"ES256"}),
        "franceconnect": ("pairwise", ["eidas1"], {"ES256", "RS256"}),
        "proconnect": ("public", None, {"ES256", "RS256"}),
    }[platform]
    assert meta["subject_types_supported"] == [subject]
    if levels is not None:
        assert meta["acr_values_supported"] == levels
    assert signing <= set(meta["id_token_signing_alg_values_supported"])
    if platform == "fcplus":
        assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_post", "private_key_jwt"]
    assert "client_secret_basic" not in meta.get("revocation_endpoint_auth_methods_supported", [])
    assert meta["code_challenge_methods_supported"] == ["S256"]
