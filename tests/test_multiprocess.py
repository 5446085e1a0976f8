"""Several server processes sharing one session store, as operators run the middleware.

Each server is a real `pserve` process (Paste Deploy ini, `egg:fcplus_wsgi#fcplus` filter
around the demo app, waitress), talking to the development provider over loopback. A
browser starts its login on one process and the provider sends it back to the other,
which must find the pending login in the shared store; the session it creates must be
honoured by the first, and ending it on one must end it everywhere. With SQLite, a user
signed in before a server restart is still signed in after it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.keys import generate_private_jwks, public_jwks
from tests.support.redis_server import SKIP_REASON, redis_available, redis_server
from tests.support.servers import LateApp, free_port, serve_wsgi

CLIENT_ID = "fcplus-multiprocess"
SECRET = "multiprocess-secret-" + "m" * 32
_SUB_RE = re.compile(r"<h2>Identifiant \(sub\)</h2><p class='code'>([^<]+)</p>")
_FORM_RE = re.compile(r'<form[^>]*action="([^"]+)"', re.I)

INI = """\
[app:main]
use = egg:fcplus_wsgi#demo
filter-with = fcplus

[filter:fcplus]
use = egg:fcplus_wsgi#fcplus
provider = fcplus-integration
issuer = {issuer}
client_id = {client_id}
client_secret = {secret}
redirect_uri = {redirect_uri}
keys_file = {keys_file}
session_store = {store}
cookie_secure = false
protected_paths = /private
acr_values = eidas2

[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = {port}
threads = 4
"""


@dataclass
class Provider:
    issuer: str
    late: LateApp
    keys_file: Path
    ports: list[int]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """The development provider in this process; the client registration knows in advance
    the ports the server processes will listen on. The service's public keys (the same
    keys_file for every process) are published from here, so no test depends on which
    server process happens to be running."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    keys_file = tmp / "keys.json"
    private = generate_private_jwks()
    keys_file.write_text(json.dumps(private))
    ports = [free_port() for _ in range(3)]
    late = LateApp()

    def service_jwks(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.dumps(public_jwks(private)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    with serve_wsgi(late) as base, serve_wsgi(service_jwks, threads=2) as jwks_base:
        issuer = base + "/api/v2"
        late.app = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(
            CLIENT_ID, SECRET, [f"http://127.0.0.1:{p}/oidc/callback" for p in ports],
            jwks_uri=jwks_base + "/jwks.json")]))
        yield Provider(issuer, late, keys_file, ports)


class ServerProcess:
    """One `pserve config.ini` process; `start` waits until it answers."""

    def __init__(self, workdir: Path, port: int, settings: dict[str, Any]) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.ini = workdir / f"server-{port}.ini"
        self.log = workdir / f"server-{port}.log"
        self.ini.write_text(INI.format(port=port, **settings))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "pyramid.scripts.pserve", str(self.ini)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server on {self.port} exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.base + "/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"server on {self.port} never answered: {self.log.read_text()[-2000:]}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def servers(workdir: Path, provider: Provider, store: str, ports: list[int], callback_port: int
            ) -> Iterator[list[ServerProcess]]:
    """Start one process per port, all sending the provider back to `callback_port`, as
    several workers behind one public address would."""
    settings = {"issuer": provider.issuer, "client_id": CLIENT_ID, "secret": SECRET, "store": store,
                "redirect_uri": f"http://127.0.0.1:{callback_port}/oidc/callback", "keys_file": provider.keys_file}
    procs = [ServerProcess(workdir, port, settings) for port in ports]
    with ExitStack() as stack:
        for proc in procs:
            stack.callback(proc.stop)
            proc.start()
        for proc in procs:
            proc.wait_ready()
        yield procs


def provider_answer(browser: requests.Session, authorize_url: str) -> str:
    """Fill in the provider's page with its first identity and level; returns the callback URL."""
    page = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text[:300]
    action = urljoin(authorize_url, unescape(_FORM_RE.search(page.text).group(1)))  # type: ignore[union-attr]
    data = {"identity": re.findall(r'name="identity" value="([^"]+)"', page.text)[0],
            "acr": re.findall(r'name="acr" value="([^"]+)"', page.text)[0], "decision": "accept"}
    answer = browser.post(action, data=data, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text[:300]
    return str(answer.headers["Location"])


def signed_in_sub(browser: requests.Session, base: str) -> str | None:
    """The sub a protected page shows, or None when the server asks to sign in."""
    page = browser.get(base + "/private/", allow_redirects=False, timeout=10)
    if page.status_code == 302:
        return None
    assert page.status_code == 200, page.text[:500]
    match = _SUB_RE.search(page.text)
    assert match, page.text[:500]
    return unescape(match.group(1))


def new_browser() -> requests.Session:
    browser = requests.Session()
    browser.headers["Accept"] = "text/html"
    return browser


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "shared.sqlite3")
        return
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_server(tmp_path / "redis") as server:
        yield server.url("/1", prefix="mp:")


def test_login_started_on_one_process_finishes_on_the_other(provider: Provider, store_url: str,
                                                             tmp_path: Path) -> None:
    port_a, port_b = provider.ports[0], provider.ports[1]
    with servers(tmp_path, provider, store_url, [port_a, port_b], callback_port=port_b) as (a, b):
        browser = new_browser()
        # Cookies belong to the host, not the port: like one public address in front of both.
        first = browser.get(a.base + "/private/", allow_redirects=False, timeout=10)
        assert first.status_code == 302 and first.headers["Location"].startswith(provider.issuer + "/authorize")
        callback = provider_answer(browser, first.headers["Location"])
        assert callback.startswith(b.base + "/oidc/callback?")
        done = browser.get(callback, allow_redirects=False, timeout=10)  # B redeems the state A stored
        assert done.status_code == 303, done.text[:500]
        assert done.headers["Location"] == "/private/"

        sub_on_a, sub_on_b = signed_in_sub(browser, a.base), signed_in_sub(browser, b.base)
        assert sub_on_a is not None and sub_on_a == sub_on_b

        # The state was single use across processes: replaying the callback on A fails.
        replay = browser.get(a.base + callback[len(b.base):], allow_redirects=False, timeout=10)
        assert replay.status_code == 400 and "expiré" in replay.text

        # Ending the session on A ends it on B, even for a client that kept the old cookie.
        session_cookie = browser.cookies.get("fcplus")
        assert session_cookie
        out = browser.get(a.base + "/oidc/logout", allow_redirects=False, timeout=10, headers={"Sec-Fetch-Site": "same-origin"})
        assert out.status_code == 303
        stale = new_browser()
        stale.cookies.set("fcplus", session_cookie, domain="127.0.0.1", path="/")
        assert signed_in_sub(stale, b.base) is None


def test_sqlite_session_survives_server_restart(provider: Provider, tmp_path: Path) -> None:
    port = provider.ports[2]
    store = "sqlite:///" + str(tmp_path / "sessions.sqlite3")
    browser = new_browser()
    with servers(tmp_path, provider, store, [port], callback_port=port) as (server,):
        first = browser.get(server.base + "/private/", allow_redirects=False, timeout=10)
        done = browser.get(provider_answer(browser, first.headers["Location"]), allow_redirects=False, timeout=10)
        assert done.status_code == 303, done.text[:500]
        before = signed_in_sub(browser, server.base)
        assert before is not None
        pid = server.process.pid if server.process else None
    with servers(tmp_path, provider, store, [port], callback_port=port) as (again,):
        assert again.process is not None and again.process.pid != pid
        assert signed_in_sub(browser, again.base) == before
        assert signed_in_sub(new_browser(), again.base) is None  # and only that browser is
