"""The whole sign-in through the middleware against a real, independent provider:
node oidc-provider configured like FC+ (ES256 signatures, RSA-OAEP/A256GCM encryption to
the service's published jwks_uri, eidas2/eidas3, client_secret_post), over loopback HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fcplus_wsgi import FCPlusMiddleware, identity
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.node_provider import login_through_interaction, logout_through_provider, node_available, start_node_provider
from tests.support.servers import LateApp, serve_wsgi

pytestmark = pytest.mark.skipif(not node_available(), reason="node is not installed")

CLIENT_ID = "fcplus-interop"
SECRET = "interop-secret-" + "x" * 32


def whoami(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    user = identity(environ)
    body = json.dumps({
        "path": environ["PATH_INFO"], "query": environ.get("QUERY_STRING", ""),
        "remote_user": environ.get("REMOTE_USER"),
        "sub": user.sub if user else None, "acr": user.acr if user else None,
        "claims": dict(user.claims) if user else None,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("interop")
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps(generate_private_jwks()))
    late = LateApp()
    with serve_wsgi(late) as base:
        with start_node_provider(CLIENT_ID, SECRET, base + "/oidc/callback", base + "/oidc/logout-callback",
                                 base + "/oidc/jwks.json", issuer_path="/api/v2") as provider:
            late.app = FCPlusMiddleware(whoami, {
                "provider": "fcplus-integration", "issuer": provider.issuer, "client_id": CLIENT_ID,
                "client_secret": SECRET, "redirect_uri": base + "/oidc/callback",
                "post_logout_redirect_uri": base + "/oidc/logout-callback", "keys_file": str(keys_file),
                "session_store": "sqlite:///" + str(tmp / "sessions.sqlite3"), "cookie_secure": "false",
                "protected_paths": "/private", "acr_values": "eidas2",
            })
            yield {"base": base, "provider": provider}


def sign_in(base: str, path: str = "/private/page?x=1", **kw: Any) -> requests.Session:
    browser = requests.Session()
    first = browser.get(base + path, allow_redirects=False, headers={"Accept": "text/html"})
    assert first.status_code == 302
    back = login_through_interaction(browser, first.headers["Location"], **kw)
    done = browser.get(back.headers["Location"], allow_redirects=False)
    assert done.status_code == 303, done.text[:500]
    assert done.headers["Location"] == path
    return browser


def test_full_login_against_node_oidc_provider(stack: dict[str, Any]) -> None:
    base = stack["base"]
    browser = sign_in(base)
    page = browser.get(base + "/private/page?x=1", allow_redirects=False)
    assert page.status_code == 200
    data = page.json()
    assert data["sub"] == "test-user" and data["remote_user"] == "test-user"
    assert data["acr"] == "eidas2"
    assert data["claims"]["sub"] == "test-user"
    assert data["claims"]["given_name"]  # userinfo was decrypted and verified
    # The session is reused: no new round trip to the provider.
    again = browser.get(base + "/private/other", allow_redirects=False)
    assert again.status_code == 200 and again.json()["sub"] == "test-user"


def test_higher_level_satisfies_lower_request(stack: dict[str, Any]) -> None:
    browser = sign_in(stack["base"], acr="eidas3")
    assert browser.get(stack["base"] + "/private/page?x=1").json()["acr"] == "eidas3"


def test_level_below_request_is_refused(stack: dict[str, Any]) -> None:
    base = stack["base"]
    browser = requests.Session()
    first = browser.get(base + "/private/x", allow_redirects=False, headers={"Accept": "text/html"})
    back = login_through_interaction(browser, first.headers["Location"], acr="eidas1")
    done = browser.get(back.headers["Location"], allow_redirects=False)
    assert done.status_code == 403
    assert "niveau de garantie" in done.text
    assert browser.get(base + "/private/x", allow_redirects=False).status_code == 302


def test_cancel_at_provider_shows_friendly_page(stack: dict[str, Any]) -> None:
    base = stack["base"]
    browser = requests.Session()
    first = browser.get(base + "/private/x", allow_redirects=False, headers={"Accept": "text/html"})
    back = login_through_interaction(browser, first.headers["Location"], deny=True)
    done = browser.get(back.headers["Location"], allow_redirects=False)
    assert done.status_code == 403
    assert "annulé" in done.text and "Réessayer" in done.text


def test_logout_ends_local_and_provider_session(stack: dict[str, Any]) -> None:
    base = stack["base"]
    browser = sign_in(base)
    revoked_before = stack["provider"].log().count(f"REVOKED AccessToken {CLIENT_ID}")
    out = browser.get(base + "/oidc/logout", allow_redirects=False, headers={"Sec-Fetch-Site": "same-origin"})
    assert out.status_code == 303
    # Observed at the provider: the access token was revoked (RFC 7009) before the redirect.
    deadline = time.monotonic() + 5
    while stack["provider"].log().count(f"REVOKED AccessToken {CLIENT_ID}") == revoked_before:
        assert time.monotonic() < deadline, stack["provider"].log()[-2000:]
        time.sleep(0.05)
    assert out.headers["Location"].startswith(stack["provider"].issuer + "/session/end")
    back = logout_through_provider(browser, out.headers["Location"])
    landed = browser.get(back.headers["Location"], allow_redirects=False)
    assert landed.status_code == 303 and landed.headers["Location"] == "/"
    assert browser.get(base + "/private/page", allow_redirects=False).status_code == 302
