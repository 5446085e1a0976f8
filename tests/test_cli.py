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
    kinds = {(k["kty"], k["use"], k.get("alg")) for k in jwks["keys"]}
    # The RSA key declares no alg, so a provider may choose RSA-OAEP or RSA-OAEP-256.
    assert kinds == {("RSA", "enc", None), ("EC", "enc", "ECDH-ES"), ("EC", "sig", "ES256")}
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


def test_presets_prints_every_preset_and_alias() -> None:
    from fcplus_wsgi.providers import ALIASES, PRESETS
    text = run("presets")
    assert text.returncode == 0, text.stderr
    for name in (*PRESETS, *ALIASES):
        assert name in text.stdout
    data = json.loads(run("presets", "--json").stdout)
    by_name = {p["name"]: p for p in data["presets"]}
    assert by_name["fcplus-integration"]["pkce"] is False and "code_challenge" not in by_name["fcplus-integration"][
        "authorize_params"]
    assert by_name["franceconnect-production"]["acr_values"] == ["eidas1"]
    assert by_name["proconnect-rie-production"]["issuer"] == "https://auth.agentconnect.rie.gouv.fr/api/v2"
    assert by_name["proconnect-integration"]["pkce"] is True and by_name["proconnect-integration"]["acr_request"] == "claims"
    assert by_name["proconnect-integration"]["revocation_params"] == ["client_id", "client_secret", "token"]
    assert data["aliases"]["agentconnect-integration"] == "proconnect-integration"


def test_check_reports_every_settings_problem_at_once(tmp_path: Path) -> None:
    ini = _ini(tmp_path, "http://127.0.0.1:9/api/v2", acr_values="eidas1", prompt="none",
               token_endpoint_auth_method="client_secret_basic", pkce="true")
    result = run("check", str(ini))
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    # The four settings problems, then (the rest of the settings being usable) the discovery one.
    assert result.returncode == 1 and len(problems) == 5, result.stdout
    for key in ("acr_values", "prompt", "token_endpoint_auth_method", "pkce", "discovery"):
        assert any(key in line for line in problems)


def test_check_compares_discovery_with_the_preset() -> None:
    from fcplus_wsgi.cli import discovery_problems
    from fcplus_wsgi.settings import parse_settings
    settings = parse_settings({"provider": "fcplus-integration", "client_id": "c", "client_secret": "s" * 40,
                               "redirect_uri": "https://svc.example/cb", "keys_file": "/nonexistent"})
    proconnect_like = {"id_token_signing_alg_values_supported": ["RS256"], "subject_types_supported": ["public"],
                       "userinfo_signing_alg_values_supported": ["RS256"], "userinfo_endpoint": "https://x/u",
                       "token_endpoint_auth_methods_supported": ["client_secret_post"]}
    problems = " ".join(discovery_problems(settings, proconnect_like))
    assert "signs id_tokens with RS256" in problems and "pairwise" in problems
    assert "encryption" in problems
    fcplus_like = {**proconnect_like, "id_token_signing_alg_values_supported": ["ES256"],
                   "userinfo_signing_alg_values_supported": ["ES256"], "subject_types_supported": ["pairwise"],
                   "id_token_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
                   "userinfo_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
                   "code_challenge_methods_supported": ["S256"], "acr_values_supported": ["eidas2", "eidas3"]}
    assert discovery_problems(settings, fcplus_like) == []
