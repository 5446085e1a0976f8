"""The buttons' helpers, the login page, and the page fixes of the same issue, over real HTTP.

The buttons' looks are compared with the DSFR's in tests/test_buttons_browser.py; here:
what each helper renders (platform texts, escaping, the same markup from every helper),
bad input said in one sentence, the login page's routing (on/off, return_to and level
kept, `choice`), the logout confirmation's language, cancel link and same-origin rule, the
retry link after a refused step-up, and the 401 challenge header.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment

from fcplus_wsgi.buttons import UnknownPlatformError, button_html, button_styles, install_jinja, jinja_loader, login_button
from fcplus_wsgi.keys import generate_private_jwks
from fcplus_wsgi.middleware import FCPlusMiddleware
from fcplus_wsgi.settings import ConfigError
from tests.support.devstack import DevStack, dev_stack

KEYS = Path(tempfile.mkdtemp(prefix="fcplus-buttons-")) / "keys.json"
KEYS.write_text(json.dumps(generate_private_jwks()), encoding="utf-8")
KEYS.chmod(0o600)
BASE = {"provider": "fcplus-integration", "client_id": "c", "client_secret": "s" * 40, "keys_file": str(KEYS),
        "redirect_uri": "https://service.example/oidc/callback", "session_store": "memory://"}
GENERIC = {"issuer": "https://idp.example", "client_id": "c", "client_secret": "s" * 40,
           "redirect_uri": "https://service.example/oidc/callback", "session_store": "memory://"}


# -- helpers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("platform", "label", "help_text", "help_url"), [
    ("fcplus", "S’identifier avec FranceConnect+", "Qu’est-ce que FranceConnect+ ?",
     "https://franceconnect.gouv.fr/france-connect-plus"),
    ("franceconnect", "S’identifier avec FranceConnect", "Qu’est-ce que FranceConnect ?",
     "https://franceconnect.gouv.fr/"),
    ("proconnect", "S’identifier avec ProConnect", "Qu’est-ce que ProConnect ?", "https://www.proconnect.gouv.fr/"),
    ("agentconnect", "S’identifier avec ProConnect", "Qu’est-ce que ProConnect ?", "https://www.proconnect.gouv.fr/"),
])
def test_each_platform_has_its_label_link_and_title(platform: str, label: str, help_text: str, help_url: str) -> None:
    html = str(button_html(platform, "/oidc/login?return_to=/"))
    assert f'aria-label="{label}"' in html
    assert f'<a href="{help_url}" target="_blank" rel="noopener noreferrer" title="{help_text} - nouvelle fenêtre">' \
           f"{help_text}</a>" in html
    assert ("fcw-connect-sentence" in html) == (platform == "fcplus")  # the FC+ rule: always the sentence
    assert 'aria-hidden="true" focusable="false"' in html  # the logo is decoration
    assert "<script" not in html and "data:" not in html  # nothing the strict CSP would block


def test_english_texts_separator_and_themes() -> None:
    html = str(button_html("fcplus", "/x", lang="en", separator=True, theme="dark"))
    assert 'aria-label="Sign in with FranceConnect+"' in html and "What is FranceConnect+?" in html
    assert "new window" in html and '<p class="fcw-connect-separator"><span>or</span></p>' in html
    assert "fcw-connect-group--dark" in html
    assert "fcw-connect-separator" not in str(button_html("fcplus", "/x"))


def test_href_is_escaped() -> None:
    html = str(button_html("proconnect", '/oidc/login?return_to=/"><script>alert(1)</script>'))
    assert "<script>" not in html and "&#34;&gt;&lt;script&gt;" in html


@pytest.mark.parametrize(("call", "message"), [
    (lambda: button_html("france-connect-pluss", "/x"), "no official button for platform 'france-connect-pluss'"),
    (lambda: button_html("fcplus", "/x", lang="de"), "button language 'de'"),
    (lambda: button_html("fcplus", "/x", theme="pink"), "button theme 'pink'"),
])
def test_bad_input_is_one_clear_sentence(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_every_helper_renders_the_same_button() -> None:
    """Plain WSGI, a Jinja2 template with install_jinja, and the nonce'd stylesheet."""
    mw = FCPlusMiddleware(lambda e, s: [], BASE)
    environ = {"fcplus_wsgi.middleware": mw}
    plain = str(login_button(environ, "/compte", acr="eidas3"))
    assert 'href="/oidc/login?return_to=/compte&amp;acr=eidas3&amp;choice=fcplus"' in plain
    env = Environment(loader=DictLoader({"page.html": "{{ fcplus_button_styles(nonce) }}"
                                                      "{{ fcplus_button(environ, '/compte', acr='eidas3') }}"}),
                      autoescape=True)
    install_jinja(env)
    rendered = env.get_template("page.html").render(environ=environ, nonce="n0nce")
    assert rendered == str(button_styles("n0nce")) + plain
    assert rendered.startswith('<style nonce="n0nce">') and ".fcw-connect {" in rendered
    macro_env = Environment(loader=ChoiceLoader([DictLoader({"app.html": (
        '{% from "fcplus_buttons.html" import connect_button %}'
        '{{ connect_button(fcplus_button_context("fcplus", href)) }}')}), jinja_loader()]), autoescape=True)
    install_jinja(macro_env)
    href = "/oidc/login?return_to=/compte&acr=eidas3&choice=fcplus"
    assert macro_env.get_template("app.html").render(href=href) == plain
    with pytest.raises(UnknownPlatformError, match="no official button"):
        login_button({"fcplus_wsgi.middleware": FCPlusMiddleware(lambda e, s: [], GENERIC)})


def test_pyramid_renderers_get_the_button() -> None:
    from pyramid.config import Configurator
    from pyramid.events import BeforeRender
    from pyramid.testing import DummyRequest

    with Configurator(settings={f"fcplus.{k}": v for k, v in BASE.items()}) as config:
        config.include("fcplus_wsgi.pyramid")
        app_registry = config.registry
    config.commit()
    request = DummyRequest()
    request.registry = app_registry
    event = BeforeRender({"request": request}, {})
    app_registry.notify(event)
    html = str(event["fcplus_button"]("/compte"))
    assert 'href="/oidc/login?return_to=/compte&amp;choice=fcplus"' in html
    assert str(event["fcplus_button_styles"]("n")).startswith('<style nonce="n">')


# -- the login page's settings ---------------------------------------------------------------------------

def test_login_page_needs_a_platform_with_a_button() -> None:
    with pytest.raises(ConfigError, match=r"^login_page = true, but provider generic .* has no official button"):
        FCPlusMiddleware(lambda e, s: [], {**GENERIC, "login_page": "true"})


def test_a_broken_login_template_stops_the_start_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "login.html").write_text('{% extends "base.html" %}\n{% block content %}{% if %}{% endblock %}')
    with pytest.raises(ConfigError, match=r"login.html line 2"):
        FCPlusMiddleware(lambda e, s: [], {**BASE, "login_page": "true", "templates_dir": str(tmp_path)})


# -- over HTTP, against the development provider -------------------------------------------------------

@pytest.fixture
def paged(tmp_path: Path) -> Iterator[DevStack]:
    with dev_stack(tmp_path, settings={"login_page": "true", "step_up": "/private/strong:eidas3"}) as s:
        yield s


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[DevStack]:
    with dev_stack(tmp_path, settings={"step_up": "/private/strong:eidas3"}) as s:
        yield s


def test_login_page_on_and_off(paged: DevStack, direct: DevStack) -> None:
    off = direct.browser().get("/oidc/login?return_to=/private/a")
    assert off.status_code == 302 and off.headers["Location"].startswith(direct.issuer)
    browser = paged.browser()
    first = browser.get("/private/strong?x=1")  # a protected page: the login page, with the level asked
    assert first.status_code == 303
    page = browser.get(first.headers["Location"])
    assert page.status_code == 200 and '<html lang="fr">' in page.text and "<h1>Connexion</h1>" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    nonce = re.search(r"style-src 'nonce-([^']+)'", page.headers["Content-Security-Policy"])
    assert nonce and page.text.count(f'<style nonce="{nonce.group(1)}">') == 2
    href = unescape(re.search(r'<a class="fcw-connect fcw-connect--fcplus" href="([^"]+)"', page.text).group(1))
    assert parse_qs(urlsplit(href).query) == {"return_to": ["/private/strong?x=1"], "acr": ["eidas3"],
                                              "choice": ["fcplus"]}
    go = browser.get(href)
    assert go.status_code == 302 and go.headers["Location"].startswith(paged.issuer)
    assert parse_qs(urlsplit(go.headers["Location"]).query)["acr_values"] == ["eidas3"]
    english = browser.get(first.headers["Location"], headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "<h1>Sign in</h1>" in english.text
    assert browser.get("/oidc/login?choice=proconnect").status_code == 400  # not the configured provider


def test_logout_confirmation_speaks_the_browsers_language_and_can_be_cancelled(direct: DevStack) -> None:
    browser = direct.browser()
    browser.sign_in()
    english = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "cross-site", "Accept-Language": "en"})
    assert '<html lang="en">' in english.text and "<h1>Sign out?</h1>" in english.text
    assert '<a id="cancel" href="/">Cancel and go back to the home page</a>' in english.text
    french = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert "<h1>Se déconnecter ?</h1>" in french.text and "Annuler et revenir à l&#39;accueil" in french.text


@pytest.mark.parametrize(("headers", "confirms"), [
    ({}, True),  # nothing says where it came from: a page elsewhere may have hidden its Referer
    ({"Referer": "https://elsewhere.example/page"}, True),
    ({"Sec-Fetch-Site": "same-site"}, True),  # a sibling subdomain is another service
    ({"Sec-Fetch-Site": "same-origin", "Referer": "https://elsewhere.example/"}, False),  # Fetch Metadata wins
    ({"Sec-Fetch-Site": "none"}, False),  # typed or bookmarked by the user
    ("own-referer", False),  # an older browser, from the service's own page
    ("own-origin", False),
], ids=["nothing", "other-referer", "same-site", "same-origin", "typed", "own-referer", "own-origin"])
def test_logout_without_fetch_metadata_confirms_unless_same_origin(direct: DevStack, headers: Any,
                                                                    confirms: bool) -> None:
    browser = direct.browser()
    browser.sign_in()
    if headers == "own-referer":
        headers = {"Referer": direct.base + "/private/page"}
    elif headers == "own-origin":
        headers = {"Origin": direct.base}
    out = browser.get("/oidc/logout", headers=headers)
    assert (out.status_code == 200 and "<form" in out.text) == confirms, out.status_code
    assert out.status_code == (200 if confirms else 303)


@pytest.mark.parametrize(("site", "confirms"), [("cross-site", True), ("same-site", True), ("same-origin", False)])
def test_a_form_posted_from_another_site_is_confirmed(direct: DevStack, site: str, confirms: bool) -> None:
    browser = direct.browser()
    browser.sign_in()
    out = browser.http.post(direct.base + "/oidc/logout", headers={"Sec-Fetch-Site": site}, allow_redirects=False,
                            timeout=15)
    assert out.status_code == (200 if confirms else 303)
    assert ("fcplus=;" in out.headers.get("Set-Cookie", "")) == (not confirms)  # the cookie stays until confirmed


def test_a_refused_step_up_retries_the_same_page_at_the_same_level(direct: DevStack) -> None:
    browser = direct.browser()
    browser.sign_in(acr="eidas2")
    step = browser.get("/private/strong/doc?id=7")
    assert step.status_code == 302
    back = browser.decide(step.headers["Location"], decision="refuse")
    page = browser.get(back.headers["Location"])
    assert page.status_code == 403 and "Connexion interrompue" in page.text
    retry = unescape(re.search(r'<a class="button" href="([^"]+)"', page.text).group(1))
    assert parse_qs(urlsplit(retry).query) == {"return_to": ["/private/strong/doc?id=7"], "acr": ["eidas3"]}
    again = browser.get(retry)
    assert parse_qs(urlsplit(again.headers["Location"]).query)["acr_values"] == ["eidas3"]


def test_step_up_challenge_header_carries_what_the_body_carries(direct: DevStack) -> None:
    browser = direct.browser()
    browser.sign_in(acr="eidas2")
    out = browser.get("/private/strong/doc?id=7", headers={"Accept": "application/json"})
    assert out.status_code == 401
    body = out.json()
    header = out.headers["WWW-Authenticate"]
    assert header.startswith("OpenIDConnect ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
    assert fields == {"realm": "fcplus", "error": body["error"], "login_url": body["login_url"],
                      "acr_values": body["acr_values"]}
    assert body["error"] == "insufficient_user_authentication" and body["acr_values"] == "eidas3"
