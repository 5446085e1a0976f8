"""Loopback stacks for the Pyramid adapter, step-up and example tests.

The development provider and the service each get a real waitress server (the provider
fetches the service's JWKS while it answers the token request, so the service must be
reachable over HTTP). Tests then drive the service either with WebTest, in process, or
with `requests`, over the socket; the provider's login page is always answered over HTTP,
as a browser would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.servers import LateApp, serve_wsgi

CLIENT_ID = "fcplus-pyramid-tests"
SECRET = "pyramid-secret-" + "p" * 40
SCOPES = "openid given_name family_name birthdate gender birthplace birthcountry email"
HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}

_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


@dataclass
class Stack:
    base: str
    issuer: str
    provider_app: Any
    keys_file: Path
    tmp: Path
    service: LateApp

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The service's ini keys (unprefixed) for this stack."""
        return {
            "provider": "fcplus-integration", "issuer": self.issuer, "client_id": CLIENT_ID,
            "client_secret": SECRET, "redirect_uri": self.base + "/oidc/callback",
            "post_logout_redirect_uri": self.base + "/oidc/logout-callback", "keys_file": str(self.keys_file),
            "session_store": "memory://", "cookie_secure": "false", "scopes": SCOPES,
            **overrides,
        }

    def pyramid_settings(self, **overrides: Any) -> dict[str, Any]:
        return {"fcplus." + key: value for key, value in self.settings(**overrides).items()}


@contextmanager
def loopback_stack(tmp_path: Path, *, service_port: int | None = None) -> Iterator[Stack]:
    """A development provider with one registered client, and a bound (still empty) service server."""
    keys_file = tmp_path / "keys.json"
    if not keys_file.exists():
        keys_file.write_text(json.dumps(generate_private_jwks()))
    with ExitStack() as stack:
        service, late_provider = LateApp(), LateApp()
        base = stack.enter_context(serve_wsgi(service, port=service_port))
        issuer = stack.enter_context(serve_wsgi(late_provider)) + "/api/v2"
        provider_app = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(
            client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=[base + "/oidc/callback"],
            post_logout_redirect_uris=[base + "/oidc/logout-callback"], jwks_uri=base + "/oidc/jwks.json")]))
        late_provider.app = provider_app
        yield Stack(base=base, issuer=issuer, provider_app=provider_app, keys_file=keys_file, tmp=tmp_path,
                    service=service)


def authorize_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def provider_page(authorize_url: str) -> tuple[str, list[str], list[str]]:
    """Open the provider's sign-in page: (form action, identities offered, levels offered)."""
    page = requests.get(authorize_url, allow_redirects=False, timeout=15)
    assert page.status_code == 200, page.text[:300]
    match = _FORM.search(page.text)
    assert match, page.text[:300]
    return (urljoin(authorize_url, unescape(match.group(1))),
            re.findall(r'name="identity" value="([^"]+)"', page.text),
            re.findall(r'name="acr" value="([^"]+)"', page.text))


def provider_decide(authorize_url: str, *, identity: str | None = None, acr: str | None = None,
                    decision: str = "accept") -> str:
    """Answer the provider's page like a person; returns the callback URL it redirects to."""
    action, identities, levels = provider_page(authorize_url)
    data = {"identity": identity or identities[0], "acr": acr or levels[0], "decision": decision}
    answer = requests.post(action, data=data, allow_redirects=False, timeout=15)
    assert answer.status_code in (302, 303), answer.text[:300]
    return str(answer.headers["Location"])


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def webtest_sign_in(testapp: Any, path: str, **decide: Any) -> Any:
    """Open `path` with WebTest, sign in at the provider, follow the callback; returns the page."""
    first = testapp.get(path, headers=HTML, status=302)
    callback = provider_decide(first.headers["Location"], **decide)
    done = testapp.get(path_of(callback), status=303)
    assert done.headers["Location"] == path
    return testapp.get(path, headers=HTML)


class HttpBrowser:
    """A cookie-keeping `requests` client for the service under test."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers.update(HTML)

    def get(self, path_or_url: str, **kw: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        kw.setdefault("allow_redirects", False)
        return self.http.get(url, timeout=15, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        return self.http.post(self.base + path, timeout=15, **kw)

    def sign_in(self, path: str, **decide: Any) -> requests.Response:
        first = self.get(path)
        assert first.status_code == 302, first.text[:300]
        return self.finish(first.headers["Location"], path, **decide)

    def finish(self, authorize_url: str, path: str, **decide: Any) -> requests.Response:
        done = self.get(provider_decide(authorize_url, **decide))
        assert done.status_code == 303, done.text[:500]
        assert done.headers["Location"] == path
        return self.get(path)

    def logout(self) -> requests.Response:
        """Sign out through the provider; returns the landing response of the logout callback."""
        out = self.get("/oidc/logout", headers={"Sec-Fetch-Site": "same-origin"})  # a link on the app's page
        assert out.status_code == 303, out.text[:300]
        back = requests.get(out.headers["Location"], allow_redirects=False, timeout=15)
        assert back.status_code == 303, back.text[:300]
        return self.get(back.headers["Location"])

