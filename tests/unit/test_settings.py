"""parse_settings: every refusal names its key; every default is the documented one."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi.providers import GENERIC_WIRE, PRESETS, Policy, Preset
from fcplus_wsgi.settings import ConfigError, Settings, parse_settings

GENERIC: dict[str, Any] = {
    "issuer": "https://op.example", "client_id": "cid", "client_secret": "s3cret-of-at-least-32-bytes-long!",
    "redirect_uri": "https://svc.example/oidc/callback", "session_store": "memory://",
}
FCPLUS: dict[str, Any] = {
    "provider": "fcplus-integration", "client_id": "cid", "client_secret": "s3cret-of-at-least-32-bytes-long!",
    "redirect_uri": "https://svc.example/oidc/callback", "keys_file": "/etc/fcplus/keys.json",
    "session_store": "memory://",
}
LOCAL: dict[str, Any] = {  # the FC+ policy against a provider on loopback, as the demo and tests run
    **FCPLUS, "issuer": "http://127.0.0.1:9000", "redirect_uri": "http://127.0.0.1:8000/oidc/callback",
    "cookie_secure": "false",
}


def parse(base: dict[str, Any], **changes: Any) -> Settings:
    raw = {**base, **changes}
    return parse_settings({k: v for k, v in raw.items() if v is not None})


def refused(base: dict[str, Any], *names: str, **changes: Any) -> str:
    """Assert parse_settings refuses and that the message names every given key."""
    with pytest.raises(ConfigError) as info:
        parse(base, **changes)
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not named in {message!r}"
    assert "\n" not in message and "Traceback" not in message
    return message


# -- client credentials ----------------------------------------------------------------------------

def test_missing_client_id_and_secret() -> None:
    refused(GENERIC, "client_id", client_id=None)
    refused(GENERIC, "client_id", client_id="")
    refused(GENERIC, "client_id", client_id="   ")
    refused(GENERIC, "client_secret", client_secret=None)
    refused(GENERIC, "client_secret", client_secret="")


def test_client_secret_file(tmp_path: Path) -> None:
    good = tmp_path / "secret"
    good.write_text("  from-a-file\n", encoding="utf-8")
    assert parse(GENERIC, client_secret=None, client_secret_file=str(good)).client_secret == "from-a-file"
    refused(GENERIC, "client_secret", "client_secret_file", client_secret_file=str(good))  # both set
    refused(GENERIC, "client_secret_file", client_secret=None, client_secret_file=str(tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    refused(GENERIC, "client_secret_file", client_secret=None, client_secret_file=str(empty))
    refused(GENERIC, "client_secret_file", client_secret=None, client_secret_file=str(tmp_path))  # a folder


def test_secret_never_in_repr() -> None:
    settings = parse(GENERIC, client_secret="very-secret-value")
    assert "very-secret-value" not in repr(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.client_id = "other"  # type: ignore[misc]


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCPLUS_TEST_SECRET", "from-env")
    monkeypatch.setenv("FCPLUS_TEST_HOST", "svc.example")
    monkeypatch.delenv("FCPLUS_TEST_UNSET", raising=False)
    settings = parse(GENERIC, client_secret="${FCPLUS_TEST_SECRET}",
                     redirect_uri="https://${FCPLUS_TEST_HOST}/oidc/callback")
    assert settings.client_secret == "from-env"
    assert settings.redirect_uri == "https://svc.example/oidc/callback"
    message = refused(GENERIC, "client_secret", "FCPLUS_TEST_UNSET", client_secret="${FCPLUS_TEST_UNSET}")
    assert "export" in message
    refused(GENERIC, "client_id", "FCPLUS_TEST_UNSET", client_id="x-${FCPLUS_TEST_UNSET}")
    monkeypatch.setenv("FCPLUS_TEST_EMPTY", "")
    refused(GENERIC, "client_secret", client_secret="${FCPLUS_TEST_EMPTY}")
    # Only ${NAME} is a reference: a lone $ or $NAME is kept as written.
    assert parse(GENERIC, client_secret="pa$$word$HOME").client_secret == "pa$$word$HOME"


# -- provider, issuer and URLs ---------------------------------------------------------------------

def test_unknown_preset_and_unknown_key() -> None:
    message = refused(GENERIC, "provider", "fcplus-integration", provider="franceconnect-plus")
    assert "fcplus-production" in message
    refused(GENERIC, "clientid", clientid="x")
    refused(GENERIC, "cookie_secured", cookie_secured="true")
    # No prefix is silently ignored: a Pyramid-style key in a filter is named with the fix.
    assert "write client_id" in refused(GENERIC, "fcplus.client_id", **{"fcplus.client_id": "x"})
    refused(GENERIC, "_private", _private="y")
    assert "did you mean cookie_secure?" in refused(GENERIC, "cookie_secured", cookie_secured="true")


def test_issuer_missing_or_not_a_url() -> None:
    refused(GENERIC, "issuer", issuer=None)
    for bad in ("op.example", "ftp://op.example", "https://", "https:///path", "https://op.example/#frag"):
        refused(GENERIC, "issuer", issuer=bad)


def test_http_issuer_with_production_preset() -> None:
    prod = {**LOCAL, "provider": "fcplus-production"}
    refused(prod, "issuer", "production")
    refused(prod, "redirect_uri", "production", issuer="https://op.example")


@pytest.mark.parametrize("key", ["issuer", "redirect_uri", "post_logout_redirect_uri"])
@pytest.mark.parametrize("host", ["op.example", "10.0.0.1", "192.168.1.10", "0.0.0.0", "[fe80::1]", "localhost.evil.example",
                                  "127.0.0.1.nip.io"])
def test_http_on_non_loopback(key: str, host: str) -> None:
    refused(LOCAL, key, "loopback", **{key: f"http://{host}/oidc/x"})


@pytest.mark.parametrize("host", ["127.0.0.1:9000", "localhost:9000", "[::1]:9000", "127.8.9.10"])
def test_http_on_loopback_is_accepted_for_development(host: str) -> None:
    settings = parse(LOCAL, issuer=f"http://{host}", post_logout_redirect_uri="http://127.0.0.1:8000/oidc/bye")
    assert settings.issuer == f"http://{host}"
    assert settings.policy.require_encryption  # the full FC+ policy against a local provider
    assert settings.logout_callback_path == "/oidc/bye"


def test_issuer_trailing_slash_is_dropped_and_preset_issuer_used() -> None:
    assert parse(GENERIC, issuer="https://op.example/").issuer == "https://op.example"
    assert parse(FCPLUS).issuer == PRESETS["fcplus-integration"].issuer
    assert parse({**FCPLUS, "provider": "fcplus-production"}).issuer == PRESETS["fcplus-production"].issuer


def test_redirect_uri_rules() -> None:
    refused(GENERIC, "redirect_uri", redirect_uri=None)
    refused(GENERIC, "redirect_uri", redirect_uri="/oidc/callback")
    refused(GENERIC, "redirect_uri", redirect_uri="https://svc.example/oidc/callback?x=1")
    refused(GENERIC, "redirect_uri", redirect_uri="https://svc.example/oidc/callback#x")
    refused(GENERIC, "post_logout_redirect_uri", post_logout_redirect_uri="javascript:alert(1)")


# -- cookies ---------------------------------------------------------------------------------------

def test_cookie_secure_with_http_redirect_uri() -> None:
    refused(LOCAL, "cookie_secure", "redirect_uri", cookie_secure=None)  # default true
    refused(LOCAL, "cookie_secure", cookie_secure="true")
    refused(GENERIC, "cookie_secure", cookie_secure="maybe")


def test_cookie_names() -> None:
    secure = parse(GENERIC)
    assert (secure.cookie_secure, secure.cookie_name, secure.pending_cookie_name) == \
        (True, "__Host-fcplus", "__Host-fcplus-login")
    local = parse(LOCAL)
    assert (local.cookie_secure, local.cookie_name, local.pending_cookie_name) == (False, "fcplus", "fcplus-login")
    assert parse(GENERIC, cookie_name="__Host-app").cookie_name == "__Host-app"
    refused(LOCAL, "cookie_name", "__Host-", "cookie_secure", cookie_name="__Host-app")
    for bad in ("a;b", "a b", "a=b", "é", 'a"b', "a,b"):
        refused(GENERIC, "cookie_name", cookie_name=bad)


# -- flow paths ------------------------------------------------------------------------------------

def test_default_paths() -> None:
    s = parse(GENERIC)
    assert (s.login_path, s.logout_path, s.jwks_path, s.callback_path, s.logout_landing_path) == \
        ("/oidc/login", "/oidc/logout", "/oidc/jwks.json", "/oidc/callback", "/")
    assert (s.protected_paths, s.public_paths, s.logout_callback_path) == (("/",), (), None)


@pytest.mark.parametrize(("changes", "names"), [
    ({"logout_path": "/oidc/login"}, ("login_path", "logout_path")),
    ({"jwks_path": "/oidc/callback"}, ("jwks_path", "redirect_uri")),
    ({"login_path": "/oidc/callback/"}, ("login_path", "redirect_uri")),
    ({"redirect_uri": "https://svc.example/oidc/login"}, ("login_path", "redirect_uri")),
    ({"redirect_uri": "https://svc.example/oidc/login/"}, ("login_path", "redirect_uri")),
    ({"post_logout_redirect_uri": "https://svc.example/oidc/callback"}, ("post_logout_redirect_uri", "redirect_uri")),
    ({"post_logout_redirect_uri": "https://svc.example/oidc/logout"}, ("post_logout_redirect_uri", "logout_path")),
])
def test_flow_path_collisions(changes: dict[str, Any], names: tuple[str, ...]) -> None:
    refused(GENERIC, *names, "distinct", **changes)


@pytest.mark.parametrize(("key", "value"), [
    ("login_path", "/"), ("logout_path", "/"), ("jwks_path", "/"), ("redirect_uri", "https://svc.example"),
    ("redirect_uri", "https://svc.example/"), ("post_logout_redirect_uri", "https://svc.example/"),
])
def test_flow_path_slash_is_refused(key: str, value: str) -> None:
    refused(GENERIC, key, "'/'", **{key: value})


def test_callback_path_is_normalised_like_the_router() -> None:
    """The router strips trailing slashes before matching, so the callback path must too."""
    s = parse(GENERIC, redirect_uri="https://svc.example/oidc/callback/",
              post_logout_redirect_uri="https://svc.example/oidc/bye/")
    assert s.callback_path == "/oidc/callback"
    assert s.logout_callback_path == "/oidc/bye"
    assert s.redirect_uri == "https://svc.example/oidc/callback/"  # sent to the provider as registered


@pytest.mark.parametrize("key", ["login_path", "logout_path", "jwks_path", "logout_landing_path", "protected_paths",
                                 "public_paths"])
@pytest.mark.parametrize("bad", ["oidc/login", "//evil.example/x", "/a?b=1", "/a#b", "/a b", "/a\\b", "https://x/y"])
def test_bad_paths_name_their_key(key: str, bad: str) -> None:
    refused(GENERIC, key, **{key: bad})


def test_paths_lists_and_landing() -> None:
    s = parse(GENERIC, protected_paths="/app, /admin/", public_paths="/app/public /static")
    assert s.protected_paths == ("/app", "/admin")
    assert s.public_paths == ("/app/public", "/static")
    assert parse(GENERIC, logout_landing_path="/bye/").logout_landing_path == "/bye"
    for flow_path in ("/oidc/login", "/oidc/logout", "/oidc/callback"):
        refused(GENERIC, "logout_landing_path", logout_landing_path=flow_path)
    refused(GENERIC, "logout_landing_path", logout_landing_path="/oidc/bye",
            post_logout_redirect_uri="https://svc.example/oidc/bye")


# -- authorization request parameters --------------------------------------------------------------

def test_acr_values_allowed_by_preset() -> None:
    assert parse(FCPLUS).acr_values == ("eidas2",)
    assert parse(FCPLUS, acr_values="eidas3").acr_values == ("eidas3",)
    assert parse(FCPLUS, acr_values="eidas2 eidas3").acr_values == ("eidas2", "eidas3")
    for bad in ("eidas1", "eidas2 eidas1", "EIDAS2", "https://refeds.org/profile/mfa"):
        refused(FCPLUS, "acr_values", "fcplus-integration", acr_values=bad)
    refused(FCPLUS, "acr_values", "required", acr_values=",")
    # A plain OIDC provider takes any acr values, and none by default.
    assert parse(GENERIC).acr_values == ()
    assert parse(GENERIC, acr_values="urn:x:loa:2 eidas1").acr_values == ("urn:x:loa:2", "eidas1")


def test_claims_json() -> None:
    raw = '{"id_token":{"amr":{"essential":true}}}'
    assert parse(GENERIC, claims=raw).claims == raw
    for bad in ("{not json", "[1, 2]", '"amr"', "42"):
        refused(GENERIC, "claims", claims=bad)


def test_claims_refused_by_a_preset_that_does_not_take_them(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = replace(GENERIC_WIRE, authorize=GENERIC_WIRE.authorize - {"claims"})
    monkeypatch.setitem(PRESETS, "strict-test", Preset("strict-test", "https://strict.example", Policy(), wire=wire))
    refused({**GENERIC, "provider": "strict-test"}, "claims", "strict-test", claims='{"id_token":{}}')


def test_request_amr() -> None:
    s = parse(FCPLUS, request_amr="true")
    assert s.claims == '{"id_token":{"amr":{"essential":true}}}'
    assert parse(FCPLUS, request_amr="false").claims is None
    refused(FCPLUS, "claims", "request_amr", request_amr="yes", claims='{"id_token":{}}')
    refused(FCPLUS, "request_amr", request_amr="sometimes")


def test_prompt() -> None:
    for ok in ("login", "consent", "none", "select_account", "login consent"):
        assert parse(GENERIC, prompt=ok).prompt == ok
    for bad in ("always", "LOGIN", "login,consent", "<script>"):
        refused(GENERIC, "prompt", prompt=bad)
    # OpenID Connect Core 3.1.2.1: none with any other value is an error at the provider.
    for bad in ("none login", "consent none"):
        refused(GENERIC, "prompt", "none", prompt=bad)
    assert parse(GENERIC).prompt is None


def test_scopes() -> None:
    assert parse(GENERIC).scopes == ("openid",)
    assert parse(GENERIC, scopes="openid email, profile").scopes == ("openid", "email", "profile")
    refused(GENERIC, "scopes", "openid", scopes="email profile")


def test_token_endpoint_auth_method_and_unauthenticated() -> None:
    assert parse(GENERIC, token_endpoint_auth_method="client_secret_basic").token_endpoint_auth_method == \
        "client_secret_basic"
    refused(GENERIC, "token_endpoint_auth_method", token_endpoint_auth_method="private_key_jwt")
    assert parse(GENERIC, unauthenticated="401").unauthenticated == "401"
    refused(GENERIC, "unauthenticated", unauthenticated="never")


# -- signing algorithms ----------------------------------------------------------------------------

def test_id_token_signing_algs_narrowing() -> None:
    assert parse(FCPLUS, id_token_signing_algs="ES256").policy.id_token_signing_algs == ("ES256",)
    refused(FCPLUS, "id_token_signing_algs", "narrow", id_token_signing_algs="RS256")
    refused(FCPLUS, "id_token_signing_algs", "narrow", id_token_signing_algs="ES256 PS256")
    generic = parse(GENERIC, id_token_signing_algs="ES256 ES384")
    assert generic.policy.id_token_signing_algs == ("ES256", "ES384")
    assert generic.policy.userinfo_signing_algs == ("ES256",)  # narrowed alongside
    refused(GENERIC, "id_token_signing_algs", "XX256", id_token_signing_algs="ES256 XX256")
    # An empty list would refuse every token at run time with a security error page.
    refused(GENERIC, "id_token_signing_algs", id_token_signing_algs=",")
    refused(FCPLUS, "id_token_signing_algs", id_token_signing_algs=" , ")


@pytest.mark.parametrize("algs", ["none", "None", "NONE", "ES256 none", "nOnE,ES256"])
def test_id_token_signing_algs_never_none(algs: str) -> None:
    refused(GENERIC, "id_token_signing_algs", "none", id_token_signing_algs=algs)
    refused(GENERIC, "id_token_signing_algs", "none", id_token_signing_algs=algs, insecure_allow_hs256="true")


def test_hs_algs_need_the_insecure_flag() -> None:
    for alg in ("HS256", "HS384", "HS512"):
        refused(GENERIC, "id_token_signing_algs", "insecure_allow_hs256", id_token_signing_algs=f"ES256 {alg}")
    s = parse(GENERIC, id_token_signing_algs="ES256 HS256", insecure_allow_hs256="true")
    assert s.allow_hs256 and "HS256" in s.policy.id_token_signing_algs
    implicit = parse(GENERIC, insecure_allow_hs256="true")
    assert implicit.policy.id_token_signing_algs[-1] == "HS256"
    assert not parse(GENERIC).allow_hs256
    assert "HS256" not in parse(GENERIC).policy.id_token_signing_algs
    refused(GENERIC, "id_token_signing_algs", id_token_signing_algs="HS384", insecure_allow_hs256="true")
    refused(GENERIC, "insecure_allow_hs256", insecure_allow_hs256="please")


# -- keys, store and numbers -----------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["fcplus-integration", "fcplus-production"])
def test_keys_file_required_for_fcplus_presets(preset: str) -> None:
    refused({**FCPLUS, "provider": preset}, "keys_file", "keys generate", keys_file=None)
    assert parse(GENERIC).keys_file is None


def test_session_store_scheme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for ok in ("memory://", "sqlite:///var/lib/x.db", "sqlite:////abs/x.db"):
        assert parse(GENERIC, session_store=ok).session_store == ok
    for bad in ("postgres://db/x", "sqlite://x.db", "/var/lib/x.db", "file:///x", "MEMORY://"):
        refused(GENERIC, "session_store", session_store=bad)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert parse(GENERIC, session_store=None).session_store == f"sqlite:///{tmp_path}/fcplus_wsgi/sessions.sqlite3"


@pytest.mark.parametrize(("key", "bad"), [
    ("session_idle_timeout", "abc"), ("session_idle_timeout", "10"), ("session_idle_timeout", "1.5"),
    ("session_max_age", "59"), ("clock_skew", "-1"), ("clock_skew", "lots"), ("pending_login_ttl", "5"),
    ("max_response_bytes", "100"), ("http_timeout", "fast"), ("http_timeout", "0"), ("http_timeout", "nan"),
    ("http_timeout", "inf"), ("jwks_refresh_interval", "-1"), ("jwks_refresh_interval", "nan"),
])
def test_numbers_name_their_key(key: str, bad: str) -> None:
    refused(GENERIC, key, **{key: bad})


def test_max_age_below_idle() -> None:
    refused(GENERIC, "session_max_age", "session_idle_timeout", session_idle_timeout="3600", session_max_age="600")


def test_ca_bundle(tmp_path: Path) -> None:
    refused(GENERIC, "ca_bundle", ca_bundle=str(tmp_path / "absent.pem"))
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    assert parse(GENERIC, ca_bundle=str(bundle)).ca_bundle == str(bundle)


# -- defaults --------------------------------------------------------------------------------------

def test_fcplus_preset_policy_defaults() -> None:
    s = parse(FCPLUS)
    p = s.policy
    assert s.provider_name == "fcplus-integration"
    assert p.id_token_signing_algs == ("ES256",) and p.userinfo_signing_algs == ("ES256",)
    assert p.require_encryption and p.encryption_algs == ("RSA-OAEP", "ECDH-ES", "RSA-OAEP-256")
    assert p.encryption_encs == ("A256GCM",)
    assert p.userinfo_format == "jwt"
    assert p.acr_values_allowed == ("eidas2", "eidas3") and p.require_acr_values
    assert not p.require_https_issuer and parse({**FCPLUS, "provider": "fcplus-production"}).policy.require_https_issuer
    assert s.token_endpoint_auth_method == "client_secret_post"
    assert s.scopes == ("openid", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry")
    assert "openid" in s.scopes and s.acr_values == ("eidas2",)
    assert not s.allow_hs256 and s.claims is None and s.prompt is None


def test_generic_policy_defaults() -> None:
    p = parse(GENERIC).policy
    assert set(p.id_token_signing_algs) == {"RS256", "ES256", "PS256"}
    assert not p.require_encryption and p.userinfo_format == "any" and p.acr_values_allowed is None


def test_timeouts_defaults() -> None:
    s = parse(GENERIC)
    assert (s.session_idle_timeout, s.session_max_age, s.clock_skew, s.pending_login_ttl) == (1800, 43200, 60, 600)
    assert (s.http_timeout, s.jwks_refresh_interval, s.max_response_bytes) == (10.0, 2.0, 1 << 20)
    assert s.unauthenticated == "auto"


def test_keyword_arguments_of_native_types() -> None:
    s = parse_settings({**GENERIC, "cookie_secure": True, "session_idle_timeout": 600, "session_max_age": 3600,
                        "http_timeout": 2.5, "scopes": ["openid", "email"], "clock_skew": 0})
    assert (s.cookie_secure, s.session_idle_timeout, s.http_timeout, s.scopes, s.clock_skew) == \
        (True, 600, 2.5, ("openid", "email"), 0)


def test_hs256_needs_a_secret_long_enough_to_be_a_key() -> None:
    refused(GENERIC, "insecure_allow_hs256", "32 bytes", insecure_allow_hs256="true", client_secret="short")


def test_logout_landing_path_is_not_the_jwks_path() -> None:
    refused(GENERIC, "logout_landing_path", logout_landing_path="/oidc/jwks.json")
