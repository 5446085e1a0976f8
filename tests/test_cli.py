"""The `fcplus-wsgi` command as operators run it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.errors import catalogue_markdown
from tests.support.servers import LateApp, serve_wsgi

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
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    public_only = tmp_path / "public.json"
    keys = json.loads(run("keys", "generate").stdout)
    public_only.write_text(json.dumps({"keys": [{k: v for k, v in key.items() if k != "d"} for key in keys["keys"][1:]]}))
    result = run("keys", "public", str(public_only))
    assert result.returncode == 2 and "no private part" in result.stderr


def _ini(tmp_path: Path, issuer: str, serverless: bool = False, **extra: str) -> Path:
    keys = tmp_path / "keys.json"
    if not keys.exists():
        assert run("keys", "generate", "--out", str(keys)).returncode == 0
    body = {
        "use": "egg:fcplus_wsgi#fcplus", "provider": "fcplus-integration", "issuer": issuer,
        "client_id": "cli-client", "client_secret": "s" * 40, "redirect_uri": "http://127.0.0.1:8000/oidc/callback",
        "post_logout_redirect_uri": "http://127.0.0.1:8000/oidc/logout-callback",
        "keys_file": "%(here)s/keys.json", "cookie_secure": "false", "session_store": "memory://", **extra,
    }
    ini = tmp_path / "app.ini"
    ini.write_text("[filter:fcplus]\n" + "".join(f"{k} = {v}\n" for k, v in body.items())
                   + ("" if serverless else "\n[server:main]\nuse = egg:waitress#main\n"))
    return ini


@contextmanager
def development_provider() -> Iterator[str]:
    """The development provider on loopback with the client every ini of this module names;
    yields its base URL (the issuer is base + /api/v2)."""
    late = LateApp()
    with serve_wsgi(late) as base:
        late.app = make_app(DevProviderConfig(issuer=base + "/api/v2", clients=[ClientConfig(
            client_id="cli-client", client_secret="s" * 40, redirect_uris=["http://127.0.0.1:8000/oidc/callback"],
            post_logout_redirect_uris=[], jwks_uri="http://127.0.0.1:8000/oidc/jwks.json")]))
        yield base


def test_check_against_the_development_provider(tmp_path: Path) -> None:
    with development_provider() as base:
        ok = run("check", str(_ini(tmp_path, base + "/api/v2")))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK")
        wrong = run("check", str(_ini(tmp_path, base + "/api/v1")))
        assert wrong.returncode == 1 and "PROBLEM" in wrong.stdout
        # Read as PasteDeploy reads it: a `get` line takes the secret from [DEFAULT].
        ini = _ini(tmp_path, base + "/api/v2")
        shared = ini.read_text().replace("client_secret = ", "get client_secret = shared_secret\n#")
        ini.write_text(f"[DEFAULT]\nshared_secret = {'s' * 40}\n\n" + shared)
        got = run("check", str(ini))
        assert got.returncode == 0 and got.stdout.startswith("OK"), got.stdout + got.stderr


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


def test_documented_settings_and_defaults_are_what_the_code_does() -> None:
    """Each row of configuration.md's tables names a setting the parser knows, and its
    default is the parser's: written out explicitly, the documented default changes nothing;
    "none" is what the parser leaves; "required" is what it refuses to start without."""
    import re

    from fcplus_wsgi.reference import FAMILIES, default_of
    from fcplus_wsgi.settings import KNOWN_KEYS, parse_settings
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_0-9]+)` \| ([^|]*) \|", doc, re.M)
    assert len(rows) >= len(KNOWN_KEYS), "every setting has its row"
    assert sorted(k for k, _ in rows if k not in KNOWN_KEYS) == [], "a documented setting the code does not read"
    base = {"issuer": "https://op.example", "client_id": "id", "client_secret": "s" * 32,
            "redirect_uri": "https://service.example/oidc/callback"}
    plain = parse_settings(base)
    checked = 0
    for key, cell in rows:
        cell = cell.strip()
        literal = re.match(r"`([^`]+)`", cell)
        if literal and "$" not in literal.group(1):
            explicit = parse_settings({**base, key: literal.group(1)})
            assert explicit == plain, f"configuration.md says {key} defaults to {literal.group(1)}; the code differs"
            checked += 1
        elif cell.startswith("none"):
            assert default_of(key, "plain OIDC") == "none", f"configuration.md says {key} defaults to none"
            checked += 1
        elif cell.startswith("required"):
            assert any(default_of(key, family) == "required" for family in FAMILIES), f"{key} is not required"
            checked += 1
    assert checked >= 30  # the check ran on the tables, not on nothing


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


# -- issue 16: operator tooling --------------------------------------------------------------------------------


def test_keys_generate_out_writes_an_owner_only_file_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "fcplus-keys.json"
    made = run("keys", "generate", "--out", str(out))
    assert made.returncode == 0 and made.stdout == "", made.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    keys = json.loads(out.read_text())
    assert len(keys["keys"]) == 3 and run("keys", "public", str(out)).returncode == 0
    again = run("keys", "generate", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert json.loads(out.read_text()) == keys  # the keys a provider encrypts to are intact
    nowhere = run("keys", "generate", "--out", str(tmp_path / "no" / "such" / "dir.json"))
    assert nowhere.returncode == 2 and "cannot create" in nowhere.stderr


def test_key_file_errors_give_the_fix_of_their_cause(tmp_path: Path) -> None:
    missing = run("keys", "public", str(tmp_path / "absent.json"))
    assert "does not exist" in missing.stderr and "keys generate --out" in missing.stderr
    locked = tmp_path / "locked.json"
    assert run("keys", "generate", "--out", str(locked)).returncode == 0
    locked.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a permission error cannot be produced")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                  "--inh-caps", "-dac_override,-dac_read_search", "--"]
    denied = subprocess.run([*prefix, sys.executable, "-m", "fcplus_wsgi.cli", "keys", "public", str(locked)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert denied.returncode == 2, denied.stderr
    assert "permission denied" in denied.stderr and "chmod 600" in denied.stderr
    assert "keys generate" not in denied.stderr.replace("generating new keys", "")  # not the missing-file fix


def test_check_warns_on_a_key_file_others_can_read(tmp_path: Path) -> None:
    with development_provider() as base:
        ini = _ini(tmp_path, base + "/api/v2", serverless=True)
        keys = tmp_path / "keys.json"
        keys.chmod(0o644)
        loose = run("check", str(ini))
        assert loose.returncode == 0, loose.stdout + loose.stderr  # works, so not a problem...
        assert f"WARNING: keys_file {keys} is readable by group or others (mode 0644)" in loose.stdout
        assert f"chmod 600 {keys}" in loose.stdout  # ...but said, with its fix
        keys.chmod(0o600)
        serverless = run("check", str(ini)).stdout
        assert serverless.startswith(f"WARNING: {ini} has no [server:main] section, which `pserve app.ini` needs")
        assert "WARNING" not in run("check", str(_ini(tmp_path, base + "/api/v2"))).stdout


PYRAMID_INI = """\
[app:main]
use = egg:myapp
pyramid.includes = fcplus_wsgi.pyramid
fcplus.provider = fcplus-integration
fcplus.issuer = {issuer}
fcplus.client_id = cli-client
fcplus.client_secret = {secret}
fcplus.redirect_uri = http://127.0.0.1:8000/oidc/callback
fcplus.keys_file = %(here)s/keys.json
fcplus.cookie_secure = false
fcplus.session_store = memory://
fcplus.principals_callback = myapp:principals
{extra}
[server:main]
use = egg:waitress#main
listen = 127.0.0.1:8000
"""


def test_check_reads_a_pyramid_app_and_reports_every_problem(tmp_path: Path) -> None:
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        return provider(environ, start_response)

    assert run("keys", "generate", "--out", str(tmp_path / "keys.json")).returncode == 0
    ini = tmp_path / "pyramid.ini"
    with serve_wsgi(app) as base:
        provider = make_app(DevProviderConfig(issuer=base + "/api/v2", clients=[ClientConfig(
            client_id="cli-client", client_secret="s" * 40, redirect_uris=["http://127.0.0.1:8000/oidc/callback"],
            post_logout_redirect_uris=[], jwks_uri="http://127.0.0.1:8000/oidc/jwks.json")]))
        ini.write_text(PYRAMID_INI.format(issuer=base + "/api/v2", secret="s" * 40, extra=""))
        for args in ((), ("--section", "app:main")):
            ok = run("check", str(ini), *args)
            assert ok.returncode == 0 and ok.stdout.startswith("OK") and "Pyramid" in ok.stdout, ok.stdout + ok.stderr
        ini.write_text(PYRAMID_INI.format(issuer=base + "/api/v2", secret="s" * 40, extra=(
            "fcplus.acr_values = eidas1\nfcplus.clientid = typo\nfcplus.protected_paths = /compte\n"
            "fcplus.prompt = none\n")))
        for args in ((), ("--section", "app:main")):
            bad = run("check", str(ini), *args)
            problems = [line for line in bad.stdout.splitlines() if line.startswith("PROBLEM")]
            assert bad.returncode == 1 and len(problems) == 4, bad.stdout
            text = "\n".join(problems)
            assert "fcplus.protected_paths has no effect" in text
            assert "fcplus.clientid is not a setting: did you mean client_id?" in text
            assert "fcplus.acr_values" in text and "fcplus.prompt" in text
            assert "Traceback" not in bad.stdout + bad.stderr


def test_check_refuses_inline_comments_and_prefixed_keys_with_the_fix(tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    _ini(tmp_path, "http://127.0.0.1:9/api/v2", serverless=True)
    text = (tmp_path / "app.ini").read_text().replace(
        "provider = fcplus-integration", "provider = fcplus-integration            ; or fcplus-production")
    ini.write_text(text + "fcplus.cookie_secure = false\n_private = x\ncookie_secur = false\n")
    result = run("check", str(ini))
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert result.returncode == 1, result.stdout
    joined = "\n".join(problems)
    assert "provider holds an inline comment" in joined and "line of its own" in joined
    assert "issuer is missing" not in joined  # a consequence of the refused provider, not said twice
    assert "fcplus.cookie_secure is not a setting: filter settings have no fcplus. prefix; write cookie_secure" in joined
    assert "_private is not a setting" in joined
    assert "cookie_secur is not a setting: did you mean cookie_secure?" in joined
    assert "fcplus-wsgi settings" in joined and "docs/" not in joined


def test_settings_command_prints_every_key_and_the_docs_page_is_its_output() -> None:
    from fcplus_wsgi.reference import missing_meanings, settings_markdown
    from fcplus_wsgi.settings import KNOWN_KEYS
    assert missing_meanings() == ([], [])
    text = run("settings")
    assert text.returncode == 0
    for key in KNOWN_KEYS:
        assert f"\n{key} = " in "\n" + text.stdout
    assert "session_idle_timeout = 1800" in text.stdout and "keys_file = plain OIDC: none; fcplus-*: required" in text.stdout
    markdown = run("settings", "--markdown").stdout
    assert markdown == settings_markdown()
    page = (ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8")
    assert markdown in page, "regenerate: fcplus-wsgi settings --markdown, pasted into docs/reference/settings.md"
    assert run("settings", "--errors").stdout == catalogue_markdown()


def test_demo_help_documents_its_options_and_port_variables() -> None:
    help_text = run("demo", "--help").stdout
    for needle in ("FCPLUS_DEMO_PORT", "FCPLUS_DEMO_PROVIDER_PORT", "--data-dir", "temporary folder", "loopback"):
        assert needle in help_text
    bad = subprocess.run([sys.executable, "-m", "fcplus_wsgi.cli", "demo", "--data-dir", "/nonexistent"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "FCPLUS_DEMO_PORT": "eighty"})
    assert bad.returncode == 2 and "not a port number" in bad.stderr and "Traceback" not in bad.stderr


def test_output_cut_short_by_head_is_not_an_error(tmp_path: Path) -> None:
    """`fcplus-wsgi keys public FILE | head -1`: the reader leaves early; no BrokenPipeError.

    The reading end is closed before the command has written anything (Python starts in far
    more than the time this takes), so every write meets a closed pipe, as behind `head`."""
    keys = tmp_path / "keys.json"
    assert run("keys", "generate", "--out", str(keys)).returncode == 0
    for command in (["keys", "public", str(keys)], ["presets"], ["settings"]):
        proc = subprocess.Popen([sys.executable, "-m", "fcplus_wsgi.cli", *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=60)
        assert stderr == "" and proc.returncode == 0, (command, stderr)


def test_check_follows_use_filter_to_the_filter_section(tmp_path: Path) -> None:
    filter_ini = _ini(tmp_path, "http://127.0.0.1:9/api/v2", serverless=True).read_text()
    ini = tmp_path / "both.ini"
    ini.write_text("[app:main]\nuse = egg:myapp\nfcplus.use_filter = true\nfcplus.client_id = stray\n\n"
                   + filter_ini.replace("[filter:fcplus]", "[filter:fcplus]\n# the pipeline's filter", 1))
    result = run("check", str(ini), "--section", "app:main")
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert result.returncode == 1 and "[filter:fcplus]" in result.stdout, result.stdout
    assert any("fcplus.client_id is set, but fcplus.use_filter = true" in line for line in problems)
    assert any("discovery" in line for line in problems)  # the filter's settings were checked
    lonely = tmp_path / "lonely.ini"
    lonely.write_text("[app:main]\nuse = egg:myapp\nfcplus.use_filter = true\n")
    refused = run("check", str(lonely))
    assert refused.returncode == 2 and "has no section with `use = egg:fcplus_wsgi#fcplus`" in refused.stderr
