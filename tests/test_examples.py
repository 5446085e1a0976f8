"""The examples run as documented: `pserve development.ini` against the development
provider, each in its own process on loopback, driven over HTTP like a browser.

Only the ports change: the example's ini and clients.json are copied with free ports in
place of 6543-6545 (the app) and 9000 (the provider). The Flask example needs the
`examples` extra (`pip install -e .[examples]`); it is skipped when Flask is absent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from paste.deploy import appconfig

from fcplus_wsgi import parse_settings
from fcplus_wsgi.devprovider import BUILTIN_IDENTITIES, DevProviderConfig, Identity, make_app
from fcplus_wsgi.devprovider.config import clients_from_json
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.pyramid_stack import HttpBrowser, authorize_params
from tests.support.servers import LateApp, free_port, serve_wsgi

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pserve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"pserve did not listen on {port} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def pserve_example(tmp_path: Path, name: str, app_port: int,
                   identities: tuple[Identity, ...] = BUILTIN_IDENTITIES) -> Iterator[str]:
    """Run examples/<name>/development.ini with pserve; yields the app's base URL."""
    example = EXAMPLES / name
    port = free_port()

    def localise(text: str, provider_port: int) -> str:
        return text.replace(f"127.0.0.1:{app_port}", f"127.0.0.1:{port}").replace(
            "127.0.0.1:9000", f"127.0.0.1:{provider_port}")

    late = LateApp()
    with serve_wsgi(late) as provider_base:
        provider_port = int(provider_base.rsplit(":", 1)[1])
        clients = clients_from_json(json.loads(localise((example / "clients.json").read_text(), provider_port)))
        late.app = make_app(DevProviderConfig(issuer=provider_base + "/api/v2", clients=clients,
                                              identities=identities))
        ini = tmp_path / "development.ini"
        ini.write_text(localise((example / "development.ini").read_text(), provider_port))
        (tmp_path / "keys.json").write_text(json.dumps(generate_private_jwks()))
        log = tmp_path / "pserve.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example), *sys.path])}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "pyramid.scripts.pserve", str(ini)], cwd=tmp_path,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(proc, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


def _logout(browser: HttpBrowser) -> requests.Response:
    out = browser.post("/oidc/logout")
    assert out.status_code == 303, out.text[:300]
    back = requests.get(out.headers["Location"], allow_redirects=False, timeout=15)
    return browser.get(back.headers["Location"])


def test_pyramid_example_with_pserve(tmp_path: Path) -> None:
    with pserve_example(tmp_path, "pyramid_app", 6543) as base:
        browser = HttpBrowser(base)
        home = browser.get("/")
        assert home.status_code == 200 and 'href="/oidc/login?return_to=/claims"' in home.text
        first = browser.get("/claims")
        assert first.status_code == 302 and authorize_params(first.headers["Location"])["acr_values"] == "eidas2"
        claims = browser.finish(first.headers["Location"], "/claims", identity="marie-martin", acr="eidas2")
        assert claims.status_code == 200
        assert "MARTIN" in claims.text and '<code id="acr">eidas2</code>' in claims.text
        assert '<form method="post" action="/oidc/logout">' in claims.text
        step = browser.get("/vault")
        assert step.status_code == 302 and authorize_params(step.headers["Location"])["acr_values"] == "eidas3"
        vault = browser.finish(step.headers["Location"], "/vault", identity="marie-martin")
        assert 'id="vault"' in vault.text and '<code id="acr">eidas3</code>' in vault.text
        assert browser.get("/vote").status_code == 200  # role:adult from the verified birthdate
        landed = _logout(browser)
        assert landed.status_code == 303 and landed.headers["Location"] == "/"
        assert browser.get("/claims").status_code == 302


MINOR = Identity(uid="leo-mineur", given_name="Léo", family_name="MINEUR",
                 birthdate=(date.today() - timedelta(days=365 * 12)).isoformat(), gender="male",
                 birthplace="75056", birthcountry="99100", email="leo@example.org")


def test_pyramid_example_minor_is_refused_the_adult_page(tmp_path: Path) -> None:
    with pserve_example(tmp_path, "pyramid_app", 6543, identities=(*BUILTIN_IDENTITIES, MINOR)) as base:
        minor = HttpBrowser(base)
        assert "MINEUR" in minor.sign_in("/claims", identity="leo-mineur").text
        denied = minor.get("/vote")
        assert denied.status_code == 403 and "Accès refusé" in denied.text
        assert minor.get("/vote", headers={"Accept": "application/json"}).json() == {"error": "forbidden"}


@pytest.mark.parametrize(("name", "port"), [
    ("plain_wsgi", 6544),
    pytest.param("flask_app", 6545, marks=pytest.mark.skipif(
        not __import__("importlib").util.find_spec("flask"), reason="Flask is not installed (pip install -e .[examples])")),
])
def test_paste_pipeline_examples_with_pserve(tmp_path: Path, name: str, port: int) -> None:
    with pserve_example(tmp_path, name, port) as base:
        browser = HttpBrowser(base)
        home = browser.get("/")
        assert home.status_code == 200 and 'id="login"' in home.text.replace("'", '"')
        first = browser.get("/private/")
        assert first.status_code == 302 and authorize_params(first.headers["Location"])["acr_values"] == "eidas2"
        page = browser.finish(first.headers["Location"], "/private/", identity="jean-dupont", acr="eidas2")
        assert page.status_code == 200 and "DUPONT" in page.text
        assert 'id="acr">eidas2<' in page.text.replace("'", '"')
        step = browser.get("/vault/")
        assert step.status_code == 302 and authorize_params(step.headers["Location"])["acr_values"] == "eidas3"
        vault = browser.finish(step.headers["Location"], "/vault/", identity="jean-dupont")
        assert "Coffre-fort" in vault.text and 'id="acr">eidas3<' in vault.text.replace("'", '"')
        landed = _logout(browser)
        assert landed.status_code == 303 and landed.headers["Location"] == "/"
        assert browser.get("/private/").status_code == 302


def test_pyramid_production_ini_is_valid_fcplus_production_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES / "pyramid_app"))
    monkeypatch.setenv("FCPLUS_CLIENT_ID", "client-from-env")
    monkeypatch.setenv("FCPLUS_CLIENT_SECRET", "secret-from-env-" + "x" * 32)
    conf: dict[str, Any] = dict(appconfig("config:production.ini", relative_to=str(EXAMPLES / "pyramid_app")))
    raw = {k[len("fcplus."):]: v for k, v in conf.items() if k.startswith("fcplus.") and k != "fcplus.principals_callback"}
    settings = parse_settings(raw)
    assert settings.provider_name == "fcplus-production" and settings.issuer.startswith("https://")
    assert settings.client_id == "client-from-env" and settings.cookie_secure
    assert settings.cookie_name.startswith("__Host-") and settings.redirect_uri.startswith("https://")
    assert settings.session_store.startswith("redis://")
    dev = dict(appconfig("config:development.ini", relative_to=str(EXAMPLES / "pyramid_app")))
    assert set(k for k in dev if k.startswith("fcplus.")) <= set(conf) | {"fcplus.issuer"}


# -- issue 16: Pyramid under pserve and JSON views ----------------------------------------------------------


def test_pyramid_claims_serialise_with_the_json_renderer(tmp_path: Path) -> None:
    """`request.identity.claims` is a read-only mapping; a renderer="json" view returns it as is."""
    from pyramid.authorization import Allow, Authenticated
    from pyramid.config import Configurator
    from webtest import TestApp

    from tests.support.pyramid_stack import loopback_stack, webtest_sign_in

    class Root:
        __acl__: ClassVar[list[tuple[str, str, str]]] = [(Allow, Authenticated, "view")]

        def __init__(self, request: Any) -> None:
            pass

    def me(request: Any) -> Any:
        return request.identity.claims

    with loopback_stack(tmp_path) as stack:
        with Configurator(settings=stack.pyramid_settings(), root_factory=Root) as config:
            config.include("fcplus_wsgi.pyramid")
            config.add_route("me", "/me")
            config.add_view(me, route_name="me", renderer="json", permission="view")
            stack.service.app = config.make_wsgi_app()
        web = TestApp(stack.service.app)
        page = webtest_sign_in(web, "/me", identity="marie-martin")
        assert page.status_code == 200 and page.content_type == "application/json"
        assert page.json["family_name"] == "MARTIN" and page.json["sub"]


def test_pserve_prints_a_pyramid_configuration_error_as_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "typoapp.py").write_text(
        "from pyramid.config import Configurator\n\n\n"
        "def main(global_config, **settings):\n"
        "    with Configurator(settings=settings) as config:\n"
        "        config.include('fcplus_wsgi.pyramid')\n"
        "        return config.make_wsgi_app()\n")
    ini = tmp_path / "development.ini"
    ini.write_text("[app:main]\nuse = call:typoapp:main\nfcplus.provider = fcplus-integraton\n"
                   "fcplus.client_id = x\nfcplus.client_secret = y\n"
                   "fcplus.redirect_uri = http://127.0.0.1:6543/oidc/callback\n\n"
                   f"[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:{free_port()}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run([sys.executable, "-m", "pyramid.scripts.pserve", str(ini)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [line for line in lines if line.startswith("fcplus-wsgi: configuration error:")] and len(lines) == 1
    assert "provider = 'fcplus-integraton' is not a known preset" in lines[0]
