"""`fcplus-wsgi demo --profile X`: the demo's middleware runs the platform's preset against the
development provider's matching profile, and a whole sign-in works for each platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def _start_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """Start `fcplus-wsgi demo` on free ports; another process may take a port between
    free_port() and the bind, so a refused bind ("cannot listen") is tried again."""
    output = ""
    for _ in range(3):
        env = {**os.environ, "TMPDIR": str(tmp_path), "FCPLUS_DEMO_PORT": str(free_port()),
               "FCPLUS_DEMO_PROVIDER_PORT": str(free_port())}
        proc = subprocess.Popen([sys.executable, "-u", "-m", "fcplus_wsgi.cli", "demo"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        output = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output += line
            if line.startswith("data (keys"):
                return proc, Path(line.split(": ", 1)[1].split(" (", 1)[0])
            if not line and proc.poll() is not None:
                break
        proc.kill()
        proc.wait()
        if "cannot listen" not in output:
            break
    raise AssertionError(f"the demo did not start:\n{output[-2000:]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_removes_its_temporary_keys_when_it_stops(sig: signal.Signals, tmp_path: Path) -> None:
    """The demo generates private keys in a temporary folder: stopping it must not leave them."""
    proc, folder = _start_demo(tmp_path)
    try:
        assert (folder / "keys.json").is_file() and folder.parent == tmp_path
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert not folder.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
