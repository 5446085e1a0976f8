"""The pages themselves: security headers on everything the middleware renders or
redirects, language choice, and the operator's overrides (templates_dir, messages_file),
which must keep autoescaping and the headers and never turn an error page into a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcplus_wsgi import ConfigError, FCPlusMiddleware
from fcplus_wsgi.errors import CATALOGUE
from tests.support.evil_provider import EvilStack, assert_friendly_page, assert_refused, evil_stack, service_jwks

HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EvilStack]:
    with evil_stack(tmp_path) as s:
        yield s


def test_redirects_carry_the_security_headers_too(stack: EvilStack) -> None:
    browser = stack.browser()
    first = browser.get("/private/page")
    callback = browser.authorize(first.headers["Location"])
    done = browser.get(callback)
    out = browser.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})
    for response in (first, done, out):
        assert response.status_code in (302, 303)
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (response.url, name)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_logout_confirmation_page_carries_the_headers(stack: EvilStack) -> None:
    page = stack.browser().get("/oidc/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200 and '<form method="post" action="/oidc/logout">' in page.text
    for name, value in HEADERS.items():
        assert page.headers[name] == value
    csp = page.headers["Content-Security-Policy"]
    assert "form-action 'self' " + stack.provider.base in csp


@pytest.mark.parametrize(("accept", "first"), [
    (None, "fr"), ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-GB,en;q=0.9", "en"), ("en;q=0.5,fr;q=0.9", "fr"),
    ("de-DE,de;q=0.9", "fr"), ("en;q=abc,fr;q=0.1", "fr"),
    ("," * 500 + "en", "fr"),  # only the first 20 entries are read: bounded work per request
], ids=["none", "fr", "en", "fr-preferred", "other", "bad-q", "flood"])
def test_french_first_unless_the_browser_prefers_english(stack: EvilStack, accept: str | None, first: str) -> None:
    stack.provider.authorize_error = {"error": "access_denied"}
    browser = stack.browser()
    headers = {"Accept-Language": accept} if accept else {}
    callback = browser.authorize(browser.start())
    page = browser.get(callback, headers=headers)
    assert_refused(stack, browser, page, "access_denied")
    assert f'<html lang="{first}">' in page.text
    h1 = page.text.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert h1 == ("Sign-in interrupted" if first == "en" else "Connexion interrompue")


# -- operator overrides -------------------------------------------------------------------------------

ERROR_OVERRIDE = """{% extends "base.html" %}
{% block content %}
<h1 class="operator">Ville de Test — {{ fr.title }}</h1>
<p>{{ fr.message }}</p>
{% if provider_said %}<p>{{ provider_said }}</p>{% endif %}
<p>code={{ code }} category={{ category }} status={{ status }}</p>
{% if retry_url %}<a class="button" href="{{ retry_url }}">{{ fr.retry }}</a>{% endif %}
<p>Référence <span class="ref" id="correlation-id">{{ correlation_id }}</span></p>
{% endblock %}
"""


def test_templates_dir_overrides_the_error_page_and_keeps_escaping(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "error.html").write_text(ERROR_OVERRIDE, encoding="utf-8")
    with evil_stack(tmp_path, settings={"templates_dir": str(templates)}) as s:
        s.provider.authorize_error = {"error": "access_denied", "error_description": "<script>alert(1)</script>"}
        browser = s.browser()
        page = browser.login()
        assert_refused(s, browser, page, "access_denied")
        assert '<h1 class="operator">Ville de Test — Connexion interrompue</h1>' in page.text
        assert "code=access_denied category=user_cancelled status=403" in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "font-family" in page.text  # the packaged base.html still wraps it


def test_templates_dir_with_only_a_base_template(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "base.html").write_text(
        '<!doctype html><html lang="{{ lang }}"><head><title>{{ title }}</title>'
        '<style nonce="{{ csp_nonce }}">body{color:#000}</style></head>'
        '<body><header>Mairie</header>{% block content %}{% endblock %}</body></html>', encoding="utf-8")
    with evil_stack(tmp_path, settings={"templates_dir": str(templates)}) as s:
        s.provider.authorize_error = {"error": "temporarily_unavailable"}
        browser = s.browser()
        page = browser.login()
        assert_refused(s, browser, page, "temporarily_unavailable")
        assert "<header>Mairie</header>" in page.text and "Service d&#39;identification indisponible" in page.text
        nonce = page.headers["Content-Security-Policy"].split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<style nonce="{nonce}">' in page.text


def test_an_operator_template_that_fails_at_render_falls_back_to_the_packaged_one(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "error.html").write_text("{% extends 'base.html' %}{% block content %}{{ 1 // 0 }}{% endblock %}",
                                          encoding="utf-8")
    with evil_stack(tmp_path, settings={"templates_dir": str(templates)}) as s:
        s.provider.authorize_error = {"error": "access_denied"}
        browser = s.browser()
        page = browser.login()
        assert_refused(s, browser, page, "access_denied")
        assert "Connexion interrompue" in page.text


def _middleware(tmp_path: Path, **settings: str) -> FCPlusMiddleware:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(service_jwks()))
    return FCPlusMiddleware(lambda e, s: [], {
        "provider": "fcplus-integration", "issuer": "http://127.0.0.1:9/api/v2", "client_id": "c",
        "client_secret": "s" * 40, "redirect_uri": "http://127.0.0.1:8000/oidc/callback", "keys_file": str(keys),
        "session_store": "memory://", "cookie_secure": "false", **settings})


@pytest.mark.parametrize(("files", "expected"), [
    ({"error.html": "{% block content %}{% if %}{% endblock %}"}, "error.html line 1"),
    ({"base.html": "{% block content %}"}, "base.html line 1"),
    ({"notice.html": "{{ unclosed "}, "notice.html line 1"),
    ({}, "holds none of base.html, error.html, notice.html"),
    ({"other.html": "x"}, "holds none of"),
])
def test_templates_dir_is_checked_at_start_up(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in files.items():
        (templates / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="templates_dir") as info:
        _middleware(tmp_path, templates_dir=str(templates))
    assert expected in str(info.value)


def test_templates_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"templates_dir .* is not a readable directory"):
        _middleware(tmp_path, templates_dir=str(tmp_path / "nope"))


def test_messages_file_overrides_texts_per_code_and_language(tmp_path: Path) -> None:
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps({
        "access_denied": {"fr": "Vous avez annulé. Appelez le 3939 <b>si besoin</b>.", "en": "You cancelled."},
        "state_unknown": {"en": "Start again from the home page."},
    }), encoding="utf-8")
    with evil_stack(tmp_path, settings={"messages_file": str(messages)}) as s:
        s.provider.authorize_error = {"error": "access_denied"}
        browser = s.browser()
        page = browser.login()
        assert_refused(s, browser, page, "access_denied")
        assert "Appelez le 3939 &lt;b&gt;si besoin&lt;/b&gt;." in page.text and "You cancelled." in page.text
        assert CATALOGUE["access_denied"].message_fr not in page.text
        replay = browser.get("/oidc/callback?state=" + "0" * 64 + "&code=x")
        assert_friendly_page(replay, 400)
        assert CATALOGUE["state_unknown"].message_fr in replay.text  # French kept
        assert "Start again from the home page." in replay.text


@pytest.mark.parametrize(("content", "expected"), [
    ('{"acces_denied": {"fr": "x"}}', "'acces_denied' is not an error code"),
    ('{"access_denied": {"de": "x"}}', 'access_denied must map to an object with "fr" and/or "en"'),
    ('{"access_denied": {}}', "must map to an object"),
    ('{"access_denied": "x"}', "must map to an object"),
    ('{"access_denied": {"fr": ""}}', "access_denied.fr must be a non-empty text"),
    ('{"access_denied": {"fr": 3}}', "access_denied.fr must be a non-empty text"),
    ('{"access_denied": {"fr": "' + "x" * 1001 + '"}}', "at most 1000 characters"),
    ("[]", "must hold a JSON object"),
    ("{not json", "is not UTF-8 JSON"),
])
def test_messages_file_is_checked_at_start_up(tmp_path: Path, content: str, expected: str) -> None:
    messages = tmp_path / "messages.json"
    messages.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match="messages_file") as info:
        _middleware(tmp_path, messages_file=str(messages))
    assert expected in str(info.value)


def test_messages_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"messages_file .* cannot be read"):
        _middleware(tmp_path, messages_file=str(tmp_path / "nope.json"))
