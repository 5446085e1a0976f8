"""A complete stack on loopback for end-to-end tests: the development provider, an app
wrapped by the middleware, and a scripted browser that signs in through the provider's
real HTML page (identity and eIDAS level radio buttons, accept or refuse).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from fcplus_wsgi import FCPlusMiddleware, identity
from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.servers import LateApp, serve_wsgi

CLIENT_ID = "fcplus-e2e"
SECRET = "e2e-secret-" + "s" * 40


def whoami_app(calls: list[dict[str, Any]] | None = None) -> Callable[..., list[bytes]]:
    """A WSGI app that reports what it received, and records every call it gets."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        user = identity(environ)
        seen = {
            "path": environ.get("PATH_INFO"), "query": environ.get("QUERY_STRING", ""),
            "remote_user": environ.get("REMOTE_USER"),
            "sub": user.sub if user else None, "acr": user.acr if user else None,
            "claims": dict(user.claims) if user else None,
            "id_token_claims": dict(user.id_token_claims) if user else None,
            # Anything identity-like besides what the middleware sets from a verified session.
            "spoofable": {k: v for k, v in environ.items()
                          if ("USER" in k.upper() and k not in ("REMOTE_USER", "HTTP_USER_AGENT"))
                          or k.startswith("HTTP_X_FCPLUS")
                          or (k.startswith("fcplus.") and k not in ("fcplus.identity", "fcplus.claims",
                                                                      "fcplus.id_token_claims"))},
        }
        if calls is not None:
            calls.append(seen)
        body = json.dumps(seen, default=str).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


@dataclass
class DevStack:
    base: str
    issuer: str
    middleware: FCPlusMiddleware
    provider_app: Any
    calls: list[dict[str, Any]] = field(default_factory=list)
    tmp: Path | None = None

    def browser(self) -> Browser:
        return Browser(self)


_FORM_RE = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


class Browser:
    """A cookie-keeping HTTP client that walks the sign-in like a person would."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.http.headers["Accept"] = "text/html,application/xhtml+xml"

    def get(self, path_or_url: str, **kw: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.stack.base + path_or_url
        kw.setdefault("allow_redirects", False)
        return self.http.get(url, timeout=15, **kw)

    def provider_page(self, authorize_url: str) -> tuple[requests.Response, str]:
        page = self.http.get(authorize_url, allow_redirects=False, timeout=15)
        match = _FORM_RE.search(page.text)
        action = urljoin(authorize_url, unescape(match.group(1))) if match else ""
        return page, action

    def decide(self, authorize_url: str, *, identity: str | None = None, acr: str | None = None,
               decision: str = "accept") -> requests.Response:
        """Answer the provider's page; returns the provider's redirect to the callback (unfollowed)."""
        page, action = self.provider_page(authorize_url)
        assert page.status_code == 200, page.text[:300]
        identities = re.findall(r'name="identity" value="([^"]+)"', page.text)
        levels = re.findall(r'name="acr" value="([^"]+)"', page.text)
        data = {"identity": identity or identities[0], "acr": acr or levels[0], "decision": decision}
        answer = self.http.post(action, data=data, allow_redirects=False, timeout=15)
        assert answer.status_code in (302, 303), answer.text[:300]
        return answer

    def sign_in(self, path: str = "/private/page", **kw: Any) -> requests.Response:
        """Open a protected path, sign in at the provider, land back; returns the final page."""
        first = self.get(path)
        assert first.status_code == 302, first.text[:300]
        back = self.decide(first.headers["Location"], **kw)
        done = self.get(back.headers["Location"])
        assert done.status_code == 303, done.text[:500]
        return self.get(done.headers["Location"])


def callback_params(response: requests.Response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["Location"]).query)


@contextmanager
def dev_stack(tmp_path: Path, *, app: Callable[..., Any] | None = None, settings: dict[str, Any] | None = None,
              client: dict[str, Any] | None = None, provider: dict[str, Any] | None = None,
              middleware_kw: dict[str, Any] | None = None) -> Iterator[DevStack]:
    """Start provider + wrapped app on loopback. `settings` override the middleware's ini
    keys, `client` the provider's client registration, `provider` its config."""
    keys_file = tmp_path / "keys.json"
    if not keys_file.exists():
        keys_file.write_text(json.dumps(generate_private_jwks()))
    calls: list[dict[str, Any]] = []
    with ExitStack() as stack:
        late_app, late_provider = LateApp(), LateApp()
        base = stack.enter_context(serve_wsgi(late_app))
        provider_base = stack.enter_context(serve_wsgi(late_provider))
        issuer = provider_base + "/api/v2"
        registration = {
            "client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uris": [base + "/oidc/callback"],
            "post_logout_redirect_uris": [base + "/oidc/logout-callback"], "jwks_uri": base + "/oidc/jwks.json",
            **(client or {}),
        }
        clock = (middleware_kw or {}).get("clock")  # one clock for both sides, so moving time is coherent
        provider_app = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(**registration)],
                                                  **(provider or {})), **({"clock": clock} if clock else {}))
        late_provider.app = provider_app
        config = {
            "provider": "fcplus-integration", "issuer": issuer, "client_id": CLIENT_ID, "client_secret": SECRET,
            "redirect_uri": base + "/oidc/callback", "post_logout_redirect_uri": base + "/oidc/logout-callback",
            "keys_file": str(keys_file), "session_store": "memory://", "cookie_secure": "false",
            "protected_paths": "/private /api", "acr_values": "eidas2",
            **(settings or {}),
        }
        middleware = FCPlusMiddleware(app or whoami_app(calls), config, **(middleware_kw or {}))
        late_app.app = middleware
        try:
            yield DevStack(base=base, issuer=issuer, middleware=middleware, provider_app=provider_app, calls=calls,
                           tmp=tmp_path)
        finally:
            middleware.store.close()
