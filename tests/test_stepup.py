"""Step-up for the plain WSGI middleware: `step_up = /vault:eidas3` sends a session below
the level back through the provider with acr_values=eidas3 and returns to the page.

Real loopback servers: the development provider and the wrapped app, driven over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fcplus_wsgi import ConfigError, FCPlusMiddleware, parse_settings
from tests.support.devstack import whoami_app
from tests.support.pyramid_stack import (
    JSON,
    HttpBrowser,
    Stack,
    authorize_params,
    loopback_stack,
    provider_decide,
    provider_page,
)

STEP_UP = "/vault:eidas3 /private/keys:eidas3"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with loopback_stack(tmp_path_factory.mktemp("stepup")) as s:
        s.service.app = FCPlusMiddleware(whoami_app(), s.settings(
            protected_paths="/private", public_paths="/vault/help", step_up=STEP_UP))
        yield s


def test_anonymous_visit_signs_in_at_the_step_up_level_directly(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    first = browser.get("/vault/doc?id=3")  # outside protected_paths: step_up protects it by itself
    assert first.status_code == 302
    assert authorize_params(first.headers["Location"])["acr_values"] == "eidas3"
    page = browser.finish(first.headers["Location"], "/vault/doc?id=3").json()
    assert page["acr"] == "eidas3" and page["path"] == "/vault/doc"


def test_step_up_eidas2_to_eidas3_round_trip(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    before = browser.sign_in("/private/page", identity="marie-martin", acr="eidas2").json()
    assert before["acr"] == "eidas2"
    old_cookie = browser.http.cookies["fcplus"]
    step = browser.get("/vault/doc")
    assert step.status_code == 302
    params = authorize_params(step.headers["Location"])
    assert params["acr_values"] == "eidas3"
    assert provider_page(step.headers["Location"])[2] == ["eidas3"]
    after = browser.finish(step.headers["Location"], "/vault/doc", identity="marie-martin").json()
    assert after["acr"] == "eidas3" and after["sub"] == before["sub"]
    # The eidas3 session serves the lower paths too, without another trip.
    assert browser.get("/private/page").json()["acr"] == "eidas3"
    assert browser.get("/private/keys").json()["acr"] == "eidas3"
    # The eidas2 session was replaced, not kept alongside.
    stale = requests.get(stack.base + "/private/page", cookies={"fcplus": old_cookie}, allow_redirects=False,
                         headers={"Accept": "text/html"}, timeout=15)
    assert stale.status_code == 302


def test_nested_prefix_needs_the_level_and_its_parent_does_not(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    browser.sign_in("/private/page", acr="eidas2")
    assert browser.get("/private/other").status_code == 200
    step = browser.get("/private/keys/1")
    assert step.status_code == 302 and authorize_params(step.headers["Location"])["acr_values"] == "eidas3"
    assert browser.get("/private/keysmith").status_code == 200  # a prefix is a path segment, not a string


def test_scripts_get_an_rfc9470_style_401(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    browser.sign_in("/private/page", acr="eidas2")
    api = browser.get("/vault/data", headers=JSON)
    assert api.status_code == 401
    body = api.json()
    assert body == {"error": "insufficient_user_authentication", "acr_values": "eidas3",
                    "login_url": "/oidc/login?return_to=/vault/data&acr=eidas3"}
    assert 'error="insufficient_user_authentication"' in api.headers["WWW-Authenticate"]
    anonymous = requests.get(stack.base + "/vault/data", headers=JSON, timeout=15)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "login_required"


def test_refusal_at_the_provider_lands_on_the_friendly_page_and_keeps_the_session(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    browser.sign_in("/private/page", acr="eidas2")
    step = browser.get("/vault/doc")
    page = browser.get(provider_decide(step.headers["Location"], decision="refuse"))
    assert page.status_code == 403
    assert "annulé" in page.text and "Réessayer" in page.text and "Traceback" not in page.text
    assert browser.get("/private/page").json()["acr"] == "eidas2"


def test_public_paths_stay_public_inside_a_step_up_prefix(stack: Stack) -> None:
    response = HttpBrowser(stack.base).get("/vault/help")
    assert response.status_code == 200 and response.json()["sub"] is None


def test_eidas3_session_passes_without_a_trip(stack: Stack) -> None:
    browser = HttpBrowser(stack.base)
    browser.sign_in("/private/page", acr="eidas3")
    assert browser.get("/vault/doc").status_code == 200


def test_login_acr_parameter_raises_but_never_lowers_the_level(tmp_path: Path) -> None:
    with loopback_stack(tmp_path) as s:
        mw = FCPlusMiddleware(whoami_app(), s.settings(acr_values="eidas3"))
        s.service.app = mw
        browser = HttpBrowser(s.base)
        lowered = browser.get("/oidc/login?return_to=/x&acr=eidas2")
        assert authorize_params(lowered.headers["Location"])["acr_values"] == "eidas3"
        raised = FCPlusMiddleware(whoami_app(), s.settings(acr_values="eidas2"))
        s.service.app = raised
        up = browser.get("/oidc/login?return_to=/x&acr=eidas3")
        assert authorize_params(up.headers["Location"])["acr_values"] == "eidas3"
        mw.store.close()
        raised.store.close()


# -- settings ------------------------------------------------------------------------------------


def _settings(**kw: Any) -> dict[str, Any]:
    return {"provider": "fcplus-integration", "issuer": "http://127.0.0.1:9/api/v2", "client_id": "c",
            "client_secret": "s" * 32, "redirect_uri": "http://127.0.0.1:8/oidc/callback", "keys_file": "k.json",
            "cookie_secure": "false", **kw}


def test_step_up_setting_is_parsed() -> None:
    assert parse_settings(_settings(step_up="/admin:eidas3, /vault/:eidas3")).step_up == (
        ("/admin", "eidas3"), ("/vault", "eidas3"))
    assert parse_settings(_settings()).step_up == ()
    generic = {k: v for k, v in _settings(step_up="/a:eidas1").items() if k not in ("provider", "keys_file")}
    assert parse_settings(generic).step_up == (("/a", "eidas1"),)


@pytest.mark.parametrize(("value", "message"), [
    ("/admin", "must read PATH:LEVEL"),
    (":eidas3", "must read PATH:LEVEL"),
    ("/admin:eidas1", "use one of eidas2, eidas3"),
    ("/admin:substantial", "use one of eidas2, eidas3"),
    ("admin:eidas3", "must be an absolute path"),
    ("/a?b:eidas3", "must be an absolute path"),
])
def test_bad_step_up_is_one_sentence_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="step_up") as info:
        parse_settings(_settings(step_up=value))
    assert message in str(info.value)


def test_overlapping_entries_demand_the_strongest_level(stack: Stack) -> None:
    mw = FCPlusMiddleware(whoami_app(), stack.settings(step_up="/vault:eidas3 /vault/lobby:eidas2 /desk:eidas2"))
    assert mw.step_up_level("/vault/lobby/x") == "eidas3"
    assert mw.step_up_level("/desk") == "eidas2"
    assert mw.step_up_level("/deskwork") is None and mw.step_up_level("/") is None
    mw.store.close()
