"""`fcplus-wsgi demo --profile X`: the demo's middleware runs the platform's preset against the
development provider's matching profile, and a whole sign-in works for each platform."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fcplus_wsgi.cli import DEMO_PROFILES, build_demo
from fcplus_wsgi.settings import ConfigError
from tests.support.dev_signin import sign_in_at_dev_provider
from tests.support.servers import free_port, serve_wsgi


@pytest.mark.parametrize("profile", DEMO_PROFILES)
def test_demo_signs_in_with_each_profile(profile: str, tmp_path: Path) -> None:
    port, provider_port = free_port(), free_port()
    wrapped, provider, url = build_demo("127.0.0.1", port, provider_port, tmp_path, profile)
    assert wrapped.settings.preset.name == f"{profile}-integration"
    with ExitStack() as stack:
        stack.enter_context(serve_wsgi(provider, port=provider_port))
        base = stack.enter_context(serve_wsgi(wrapped, port=port))
        assert url == base + "/"
        browser = requests.Session()
        browser.headers["Accept"] = "text/html"
        first = browser.get(base + "/private", allow_redirects=False, timeout=10)
        assert first.status_code == 302, first.text[:300]
        sent = parse_qs(urlsplit(first.headers["Location"]).query)
        assert ("code_challenge" in sent) == (profile == "proconnect")
        back = sign_in_at_dev_provider(browser, first.headers["Location"], base)
        assert back.headers["Location"].startswith(base + "/oidc/callback?code="), back.headers["Location"]
        done = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
        assert done.status_code == 303, done.text[:500]
        page = browser.get(base + "/private", timeout=10)
        assert page.status_code == 200 and "sub" in page.text


def test_demo_refuses_an_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fcplus, franceconnect, proconnect"):
        build_demo("127.0.0.1", free_port(), free_port(), tmp_path, "agentconnect")
