"""The `fcplus-wsgi` command as operators run it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.errors import catalogue_markdown
from tests.support.servers import serve_wsgi

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fcplus_wsgi.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_keys_generate_and_public(tmp_path: Path) -> None:
    generated = run("keys", "generate")
    assert generated.returncode == 0
    jwks = json.loads(generated.stdout)
    kinds = {(k["kty"], k["use"], k["alg"]) for k in jwks["keys"]}
    assert kinds == {("RSA", "enc", "RSA-OAEP"), ("EC", "enc", "ECDH-ES"), ("EC", "sig", "ES256")}
    assert all(k["kid"] and "d" in k for k in jwks["keys"])
    path = tmp_path / "keys.json"
    path.write_text(generated.stdout)
    public = run("keys", "public", str(path))
    assert public.returncode == 0
    assert all("d" not in k for k in json.loads(public.stdout)["keys"])


def test_keys_public_refuses_bad_files(tmp_path: Path) -> None:
    missing = run("keys", "public", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot be read" in missing.stderr and "Traceback" not in missing.stderr
    public_only = tmp_path / "public.json"
    keys = json.loads(run("keys", "generate").stdout)
    public_only.write_text(json.dumps({"keys": [{k: v for k, v in key.items() if k != "d"} for key in keys["keys"][1:]]}))
    result = run("keys", "public", str(public_only))
    assert result.returncode == 2 and "no private part" in result.stderr


def _ini(tmp_path: Path, issuer: str, **extra: str) -> Path:
    keys = tmp_path / "keys.json"
    keys.write_text(run("keys", "generate").stdout)
    body = {
        "use": "egg:fcplus_wsgi#fcplus", "provider": "fcplus-integration", "issuer": issuer,
        "client_id": "cli-client", "client_secret": "s" * 40, "redirect_uri": "http://127.0.0.1:8000/oidc/callback",
        "post_logout_redirect_uri": "http://127.0.0.1:8000/oidc/logout-callback",
        "keys_file": "%(here)s/keys.json", "cookie_secure": "false", "session_store": "memory://", **extra,
    }
    ini = tmp_path / "app.ini"
    ini.write_text("[filter:fcplus]\n" + "".join(f"{k} = {v}\n" for k, v in body.items()))
    return ini


def test_check_against_the_development_provider(tmp_path: Path) -> None:
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        return provider(environ, start_response)

    with serve_wsgi(app) as base:
        provider = make_app(DevProviderConfig(issuer=base + "/api/v2", clients=[ClientConfig(
            client_id="cli-client", client_secret="s" * 40, redirect_uris=["http://127.0.0.1:8000/oidc/callback"],
            post_logout_redirect_uris=[], jwks_uri="http://127.0.0.1:8000/oidc/jwks.json")]))
        ok = run("check", str(_ini(tmp_path, base + "/api/v2")))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK")
        wrong = run("check", str(_ini(tmp_path, base + "/api/v1")))
        assert wrong.returncode == 1 and "PROBLEM" in wrong.stdout


def test_check_reports_configuration_errors_in_one_sentence(tmp_path: Path) -> None:
    ini = _ini(tmp_path, "http://127.0.0.1:9/api/v2", acr_values="eidas1")
    result = run("check", str(ini))
    assert result.returncode == 1
    assert "acr_values" in result.stdout and "Traceback" not in result.stdout + result.stderr
    unreachable = run("check", str(_ini(tmp_path, "http://127.0.0.1:9/api/v2")))
    assert unreachable.returncode == 1 and "discovery" in unreachable.stdout
    assert run("check", str(tmp_path / "missing.ini")).returncode == 2


def test_error_catalogue_doc_is_in_sync() -> None:
    assert catalogue_markdown() in (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    from fcplus_wsgi.settings import KNOWN_KEYS
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert sorted(k for k in KNOWN_KEYS if f"`{k}`" not in doc) == []
