"""The Pyramid adapter against the development provider: config.include, the security
policy (identity, principals, permits), permission denied vs login required, step-up from
eidas2 to eidas3 and back to the view, logout and forget, with and without the WSGI filter.

The service runs on a real loopback server (the provider fetches its JWKS from there);
most tests drive it in process with WebTest, the filter tests over the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy
from pyramid.response import Response
from pyramid.security import forget, remember
from webtest import TestApp

from fcplus_wsgi import ConfigError, FCPlusMiddleware
from fcplus_wsgi.events import FlowEvent
from fcplus_wsgi.pyramid import LoginRequired, StepUpRequired, acr_principals
from tests.support.pyramid_stack import (
    HTML,
    JSON,
    HttpBrowser,
    Stack,
    authorize_params,
    loopback_stack,
    path_of,
    provider_decide,
    provider_page,
    webtest_sign_in,
)


class Root:
    __acl__ = ((Allow, Authenticated, "view"), (Allow, "acr:eidas3", "vault"), (Allow, "group:admins", "admin"))

    def __init__(self, request: Any) -> None:
        self.request = request


def principals_from_claims(identity: Any, request: Any) -> list[str]:
    # Jean Dupont administers; everybody else gets a forged level, which must be ignored.
    return ["group:admins"] if identity.claims.get("family_name") == "DUPONT" else ["acr:eidas3"]


def _me(request: Any) -> dict[str, Any]:
    ident = request.identity
    policy = request.registry.getUtility(ISecurityPolicy)
    return {
        "sub": ident.sub if ident else None, "acr": ident.acr if ident else None,
        "claims": dict(ident.claims) if ident else None, "userid": request.authenticated_userid,
        "principals": policy.effective_principals(request), "remote_user": request.environ.get("REMOTE_USER"),
        "environ_identity": "fcplus.identity" in request.environ,
        "view": request.matched_route.name if request.matched_route else None,
    }


def forget_view(request: Any) -> Response:
    response = Response(json_body={"forgot": True})
    response.headerlist.extend(forget(request))
    return response


def remember_view(request: Any) -> dict[str, Any]:
    same = remember(request, request.authenticated_userid)
    try:
        remember(request, "someone-else")
    except ValueError as exc:
        return {"same": same, "other": str(exc)}
    return {"same": same, "other": None}


def helpers_view(request: Any) -> dict[str, Any]:
    return {"login_url": request.fcplus.login_url(), "step_up_url": request.fcplus.login_url("/vault", acr="eidas3"),
            "logout_url": request.fcplus.logout_url(), "logout_form": str(request.fcplus.logout_form()),
            "eidas3": request.fcplus.acr_at_least("eidas3")}


def make_app(settings: dict[str, Any], callback: bool = True) -> Any:
    if callback:
        settings = {**settings, "fcplus.principals_callback": "tests.test_pyramid:principals_from_claims"}
    with Configurator(settings=settings, root_factory=Root) as config:
        config.include("fcplus_wsgi.pyramid")
        for name, path, kw in (
            ("home", "/", {}), ("claims", "/claims", {"permission": "view"}),
            ("vault", "/vault", {"permission": "view", "fcplus_acr": "eidas3"}),
            ("acl_vault", "/acl-vault", {"permission": "vault"}), ("admin", "/admin", {"permission": "admin"}),
            ("helpers", "/helpers", {}),
            ("admin_vault", "/admin-vault", {"permission": "admin", "fcplus_acr": "eidas3"}),
        ):
            config.add_route(name, path)
            config.add_view(helpers_view if name == "helpers" else _me, route_name=name, renderer="json", **kw)
        config.add_route("forget", "/forget")
        config.add_view(forget_view, route_name="forget", permission="view")
        config.add_route("remember", "/remember")
        config.add_view(remember_view, route_name="remember", permission="view", renderer="json")
        return config.make_wsgi_app()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with loopback_stack(tmp_path_factory.mktemp("pyramid")) as s:
        s.service.app = make_app(s.pyramid_settings())
        yield s


@pytest.fixture
def web(stack: Stack) -> TestApp:
    return TestApp(stack.service.app)


# -- anonymous -----------------------------------------------------------------------------------


def test_public_view_is_anonymous_and_spoofed_identity_is_stripped(web: TestApp) -> None:
    page = web.get("/", headers={"Remote-User": "admin", "X-Fcplus-Sub": "admin"},
                   extra_environ={"REMOTE_USER": "admin", "fcplus.identity": "forged"}).json
    assert page["sub"] is None and page["userid"] is None
    assert page["principals"] == ["system.Everyone"]
    assert page["remote_user"] is None and page["environ_identity"] is False


def test_login_required_redirects_browsers_and_401s_scripts(web: TestApp, stack: Stack) -> None:
    first = web.get("/claims?tab=2", headers=HTML, status=302)
    assert first.headers["Location"].startswith(stack.issuer + "/authorize?")
    assert authorize_params(first.headers["Location"])["acr_values"] == "eidas2"
    api = web.get("/claims", headers=JSON, status=401)
    assert api.json["error"] == "login_required"
    assert api.json["login_url"] == "/oidc/login?return_to=/claims"


def test_anonymous_on_an_eidas3_view_signs_in_at_eidas3_directly(web: TestApp, stack: Stack) -> None:
    for path in ("/vault", "/acl-vault"):
        first = web.get(path, headers=HTML, status=302)
        assert authorize_params(first.headers["Location"])["acr_values"] == "eidas3", path


# -- signed in -----------------------------------------------------------------------------------


def test_login_gives_identity_userid_and_cumulative_principals(web: TestApp) -> None:
    page = webtest_sign_in(web, "/claims?tab=2", identity="marie-martin", acr="eidas2").json
    assert page["acr"] == "eidas2" and page["sub"] and page["userid"] == page["sub"]
    assert page["claims"]["family_name"] == "MARTIN"
    principals = set(page["principals"])
    assert {"system.Everyone", "system.Authenticated", "acr:eidas1", "acr:eidas2", f"sub:{page['sub']}",
            "provider:fcplus-integration"} <= principals
    assert "acr:eidas3" not in principals  # the callback's forged level is dropped
    # The session is reused: no second trip to the provider.
    assert web.get("/claims", headers=HTML, status=200).json["sub"] == page["sub"]


def test_eidas3_session_holds_every_lower_level(web: TestApp) -> None:
    page = webtest_sign_in(web, "/claims", acr="eidas3").json
    assert {"acr:eidas1", "acr:eidas2", "acr:eidas3"} <= set(page["principals"])
    assert web.get("/acl-vault", headers=HTML, status=200).json["acr"] == "eidas3"
    assert web.get("/vault", headers=HTML, status=200).json["acr"] == "eidas3"


def test_permission_denied_is_a_403_page_not_a_login(web: TestApp) -> None:
    webtest_sign_in(web, "/claims", identity="marie-martin")
    page = web.get("/admin", headers=HTML, status=403)
    assert "Accès refusé" in page.text and "Access denied" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert web.get("/admin", headers=JSON, status=403).json == {"error": "forbidden"}


def test_principals_callback_grants_app_groups(web: TestApp) -> None:
    webtest_sign_in(web, "/claims", identity="jean-dupont")
    page = web.get("/admin", headers=HTML, status=200).json
    assert "group:admins" in page["principals"]


def test_no_step_up_when_the_higher_level_would_not_help(web: TestApp, stack: Stack) -> None:
    webtest_sign_in(web, "/claims", identity="marie-martin", acr="eidas2")
    assert "Accès refusé" in web.get("/admin-vault", headers=HTML, status=403).text
    admin = TestApp(web.app)
    webtest_sign_in(admin, "/claims", identity="jean-dupont", acr="eidas2")
    step = admin.get("/admin-vault", headers=HTML, status=302)
    assert authorize_params(step.headers["Location"])["acr_values"] == "eidas3"


def test_request_helpers(web: TestApp) -> None:
    webtest_sign_in(web, "/claims")
    data = web.get("/helpers?x=1", headers=HTML).json
    # One builder for every login link (fcplus_wsgi.links.build_login_url): slashes stay readable.
    assert data["login_url"] == "/oidc/login?return_to=/helpers%3Fx%3D1"
    assert data["step_up_url"] == "/oidc/login?return_to=/vault&acr=eidas3"
    assert data["logout_url"] == "/oidc/logout"
    assert data["logout_form"] == ('<form method="post" action="/oidc/logout"><button type="submit">'
                                   "Se déconnecter / Sign out</button></form>")
    assert data["eidas3"] is False


# -- step-up -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/vault", "/acl-vault"])
def test_step_up_eidas2_to_eidas3_round_trip(web: TestApp, stack: Stack, path: str) -> None:
    before = webtest_sign_in(web, "/claims", identity="marie-martin", acr="eidas2").json
    step = web.get(path, headers=HTML, status=302)
    params = authorize_params(step.headers["Location"])
    assert params["acr_values"] == "eidas3"
    assert provider_page(step.headers["Location"])[2] == ["eidas3"]  # the provider offers nothing lower
    callback = provider_decide(step.headers["Location"], identity="marie-martin")
    back = web.get(path_of(callback), status=303)
    assert back.headers["Location"] == path
    page = web.get(path, headers=HTML, status=200).json
    assert page["acr"] == "eidas3" and page["sub"] == before["sub"]
    assert "acr:eidas3" in page["principals"]


def test_step_up_for_scripts_is_a_401_with_the_level(web: TestApp) -> None:
    webtest_sign_in(web, "/claims", acr="eidas2")
    api = web.get("/vault", headers=JSON, status=401)
    assert api.json["error"] == "insufficient_user_authentication"
    assert api.json["acr_values"] == "eidas3"
    assert api.json["login_url"] == "/oidc/login?return_to=/vault&acr=eidas3"
    assert 'acr_values="eidas3"' in api.headers["WWW-Authenticate"]


def test_step_up_refused_lands_on_the_friendly_page_and_keeps_the_session(web: TestApp) -> None:
    webtest_sign_in(web, "/claims", acr="eidas2")
    step = web.get("/vault", headers=HTML, status=302)
    callback = provider_decide(step.headers["Location"], decision="refuse")
    page = web.get(path_of(callback), status=403)
    assert "annulé" in page.text and "Réessayer" in page.text and "Traceback" not in page.text
    assert web.get("/claims", headers=HTML, status=200).json["acr"] == "eidas2"


def test_login_url_acr_cannot_lower_the_configured_level(stack: Stack) -> None:
    app = TestApp(make_app(stack.pyramid_settings(acr_values="eidas3")))
    first = app.get("/oidc/login?return_to=/claims&acr=eidas2", status=302)
    assert authorize_params(first.headers["Location"])["acr_values"] == "eidas3"


# -- logout and forget ----------------------------------------------------------------------------


def test_logout_through_the_provider(web: TestApp, stack: Stack) -> None:
    webtest_sign_in(web, "/claims")
    out = web.get("/oidc/logout", status=303, headers={"Sec-Fetch-Site": "same-origin"})
    assert out.headers["Location"].startswith(stack.issuer + "/session/end?")
    back = requests.get(out.headers["Location"], allow_redirects=False, timeout=15)
    landed = web.get(path_of(back.headers["Location"]), status=303)
    assert landed.headers["Location"] == "/"
    web.get("/claims", headers=HTML, status=302)


def test_forget_clears_the_cookie_and_the_server_side_session(web: TestApp) -> None:
    webtest_sign_in(web, "/claims")
    cookie = web.cookies["fcplus"]
    response = web.get("/forget", status=200)
    cleared = [v for k, v in response.headerlist if k == "Set-Cookie"]
    assert len(cleared) == 1 and cleared[0].startswith("fcplus=;") and "Max-Age=0" in cleared[0]
    assert "HttpOnly" in cleared[0] and "SameSite=lax" in cleared[0]
    web.get("/claims", headers=HTML, status=302)
    replay = TestApp(web.app)
    replay.set_cookie("fcplus", cookie)  # a copied cookie is worthless once forgotten
    replay.get("/claims", headers=HTML, status=302)


def test_remember_only_accepts_the_signed_in_user(web: TestApp) -> None:
    webtest_sign_in(web, "/claims")
    data = web.get("/remember", status=200).json
    assert data["same"] == [] and "login_url" in data["other"]


# -- permits results -----------------------------------------------------------------------------


def test_acr_principals_are_cumulative() -> None:
    assert acr_principals(None) == []
    assert acr_principals("eidas1") == ["acr:eidas1"]
    assert acr_principals("eidas3") == ["acr:eidas1", "acr:eidas2", "acr:eidas3"]
    assert acr_principals("https://example/loa/high") == ["acr:https://example/loa/high"]
    assert not LoginRequired("eidas3") and LoginRequired("eidas3").acr == "eidas3"
    assert not StepUpRequired("eidas3") and "eidas3" in StepUpRequired("eidas3").msg


# -- configuration -------------------------------------------------------------------------------


def _include(settings: dict[str, Any]) -> None:
    with Configurator(settings=settings) as config:
        config.include("fcplus_wsgi.pyramid")


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "no fcplus.* settings"),
    ({"fcplus.use_filter": "true", "fcplus.client_id": "x"}, "fcplus.client_id is set"),
    ({"fcplus.use_filter": "maybe"}, "fcplus.use_filter"),
    ({"fcplus.provider": "fcplus-integration"}, "in the fcplus.* settings: "),
])
def test_include_refuses_bad_settings_with_one_sentence(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace(".", r"\.")):
        _include(settings)


@pytest.mark.parametrize("key", ["protected_paths", "public_paths", "step_up"])
def test_include_refuses_path_guards(stack: Stack, key: str) -> None:
    with pytest.raises(ConfigError, match=f"fcplus.{key} has no effect"):
        _include(stack.pyramid_settings(**{key: "/admin:eidas3" if key == "step_up" else "/admin"}))


def test_bad_fcplus_acr_and_callback_are_config_errors(stack: Stack) -> None:
    with pytest.raises(ConfigurationError, match="fcplus_acr='eidas1'"):
        with Configurator(settings=stack.pyramid_settings()) as config:
            config.include("fcplus_wsgi.pyramid")
            config.add_view(lambda request: {}, name="x", renderer="json", fcplus_acr="eidas1")
            config.commit()
    with pytest.raises(ConfigError, match="principals_callback"):
        _include(stack.pyramid_settings(principals_callback="logging.DEBUG"))


# -- with the WSGI filter ------------------------------------------------------------------------


def _events(bus: Any) -> list[FlowEvent]:
    seen: list[FlowEvent] = []
    bus.subscribe(seen.append)
    return seen


def test_use_filter_defers_the_whole_flow_to_the_filter(tmp_path: Path) -> None:
    with loopback_stack(tmp_path) as s:
        app = make_app({"fcplus.use_filter": "true"})
        filt = FCPlusMiddleware(app, s.settings(protected_paths="/private"))
        filter_events = _events(filt.bus)
        s.service.app = filt
        browser = HttpBrowser(s.base)
        page = browser.sign_in("/claims", identity="marie-martin", acr="eidas2").json()
        assert page["acr"] == "eidas2" and page["claims"]["family_name"] == "MARTIN"
        assert page["environ_identity"] is True and page["remote_user"] == page["sub"]
        # Step-up goes through the filter's flow too.
        step = browser.get("/vault")
        assert step.status_code == 302 and authorize_params(step.headers["Location"])["acr_values"] == "eidas3"
        assert browser.finish(step.headers["Location"], "/vault").json()["acr"] == "eidas3"
        assert browser.get("/admin").status_code == 403
        assert sum(1 for e in filter_events if e.step == "login") == 2
        assert browser.logout().headers["Location"] == "/"
        assert browser.get("/claims").status_code == 302


def test_include_with_own_settings_under_the_filter_runs_no_second_flow(tmp_path: Path) -> None:
    with loopback_stack(tmp_path) as s:
        app = make_app(s.pyramid_settings())
        own = app.registry["fcplus_wsgi"].own
        own_events = _events(own.bus)
        filt = FCPlusMiddleware(app, s.settings(protected_paths="/private"))
        filter_events = _events(filt.bus)
        s.service.app = filt
        browser = HttpBrowser(s.base)
        assert browser.sign_in("/claims").json()["environ_identity"] is True
        step = browser.get("/acl-vault")
        assert authorize_params(step.headers["Location"])["acr_values"] == "eidas3"
        assert browser.finish(step.headers["Location"], "/acl-vault").json()["acr"] == "eidas3"
        assert own_events == [] and own.store is not filt.store
        assert [e.step for e in filter_events if e.step == "login"] == ["login", "login"]


def test_use_filter_without_the_filter_fails_closed_with_a_page(caplog: pytest.LogCaptureFixture) -> None:
    app = TestApp(make_app({"fcplus.use_filter": "true"}))
    with caplog.at_level(logging.ERROR, logger="fcplus_wsgi.pyramid"):
        for path in ("/", "/claims", "/oidc/login"):
            page = app.get(path, headers=HTML, status=500)
            assert "Connexion impossible" in page.text and "Traceback" not in page.text
    assert sum("use_filter" in r.getMessage() for r in caplog.records) == 1


def test_real_server_without_the_filter(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    page = browser.sign_in("/claims", acr="eidas2").json()
    assert page["acr"] == "eidas2" and page["environ_identity"] is False
    step = browser.get("/vault")
    assert browser.finish(step.headers["Location"], "/vault").json()["acr"] == "eidas3"
    assert browser.get("/oidc/jwks.json").json()["keys"]
    assert browser.logout().headers["Location"] == "/"
    assert browser.get("/claims").status_code == 302


def test_metrics_path_is_served_by_the_include(stack: Stack) -> None:
    app = make_app(stack.pyramid_settings(metrics="true", metrics_path="/metrics"))
    previous, stack.service.app = stack.service.app, app
    try:
        web = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        webtest_sign_in(web, "/claims", acr="eidas3")
        scrape = web.get("/metrics", status=200).text
        assert 'fcplus_logins_total{acr="eidas3",provider="fcplus-integration"} 1.0' in scrape
        TestApp(app, extra_environ={"REMOTE_ADDR": "203.0.113.9"}).get("/metrics", status=404)
    finally:
        stack.service.app = previous
