"""fcplus_wsgi.jose against an independent JOSE implementation (node oidc-provider's):
a whole sign-in for each JWE algorithm and content encryption the policies can allow,
the id_token and the userinfo encrypted differently, over loopback HTTP.

Every service key set here is exactly what `fcplus-wsgi keys generate` writes: the provider
picks the key to encrypt to from the published JWKS by alg, use and kty, as FC+'s core does
(it runs the same library), so these sign-ins also prove the generated keys suit each alg."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi import FCPlusMiddleware, tokens
from fcplus_wsgi.jose import b64decode
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.node_provider import node_available, start_node_provider
from tests.support.servers import LateApp, serve_wsgi
from tests.test_interop_node import CLIENT_ID, SECRET, sign_in, whoami

pytestmark = pytest.mark.skipif(not node_available(), reason="node is not installed")

CASES = {
    # FC+ policy: ECDH-ES with A256GCM (the other half of what FC+ documents).
    "fcplus-ecdh-es": ("fcplus-integration", {
        "id_token_encrypted_response_alg": "ECDH-ES", "id_token_encrypted_response_enc": "A256GCM",
        "userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A256GCM"}),
    # A plain OpenID Connect provider that encrypts: RSA-OAEP-256 and the CBC-HMAC encs.
    "generic-oaep256-cbc": (None, {
        "id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256CBC-HS512",
        "userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A128CBC-HS256"}),
    "generic-a128gcm": (None, {
        "id_token_encrypted_response_alg": "RSA-OAEP", "id_token_encrypted_response_enc": "A128GCM",
        "userinfo_encrypted_response_alg": "RSA-OAEP-256", "userinfo_encrypted_response_enc": "A256GCM"}),
}


@pytest.fixture(scope="module", params=list(CASES))
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    preset, metadata = CASES[request.param]
    tmp: Path = tmp_path_factory.mktemp("jose")
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps(generate_private_jwks()))  # nothing added for RSA-OAEP-256
    late = LateApp()
    with serve_wsgi(late) as base:
        with start_node_provider(CLIENT_ID, SECRET, base + "/oidc/callback", base + "/oidc/logout-callback",
                                 base + "/oidc/jwks.json", issuer_path="/api/v2", client_metadata=metadata,
                                 profile="fcplus" if preset else "generic") as provider:
            preset_setting = {"provider": preset} if preset else {}  # none: a plain OpenID Connect provider
            late.app = FCPlusMiddleware(whoami, {
                **preset_setting, "issuer": provider.issuer, "client_id": CLIENT_ID,
                "client_secret": SECRET, "redirect_uri": base + "/oidc/callback",
                "post_logout_redirect_uri": base + "/oidc/logout-callback", "keys_file": str(keys_file),
                "session_store": "sqlite:///" + str(tmp / "sessions.sqlite3"), "cookie_secure": "false",
                "protected_paths": "/private", "acr_values": "eidas2", "scopes": "openid given_name family_name",
            })
            yield {"base": base, "provider": provider, "metadata": metadata}


def test_sign_in_with_each_encryption(stack: dict[str, Any]) -> None:
    base = stack["base"]
    browser = sign_in(base)
    data = browser.get(base + "/private/page?x=1", allow_redirects=False).json()
    assert data["sub"] == "test-user" and data["acr"] == "eidas2"
    assert data["claims"]["given_name"]  # the userinfo JWT was decrypted and verified


def sign_in_recording(private: dict[str, Any], metadata: dict[str, str], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """One FC+ sign-in (FC+ preset, provider configured like the FC+ core) with a fresh node
    provider encrypting to `private`'s public half; returns what the protected page saw and the
    (prefix, alg, kid) header of every JWE the middleware opened.

    The middleware runs in this process (on the server's threads), so wrapping tokens.decrypt
    shows which key the provider really chose, not only that the sign-in worked."""
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(private))
    seen: list[tuple[str, Any, Any]] = []
    real_decrypt = tokens.decrypt

    def recording_decrypt(parts: list[str], keys: Any, policy: Any, prefix: str) -> str:
        header = json.loads(b64decode(parts[0]))
        seen.append((prefix, header.get("alg"), header.get("kid")))
        return real_decrypt(parts, keys, policy, prefix)

    monkeypatch.setattr(tokens, "decrypt", recording_decrypt)
    late = LateApp()
    with serve_wsgi(late) as base:
        with start_node_provider(CLIENT_ID, SECRET, base + "/oidc/callback", base + "/oidc/logout-callback",
                                 base + "/oidc/jwks.json", issuer_path="/api/v2", client_metadata=metadata,
                                 profile="fcplus") as provider:
            late.app = FCPlusMiddleware(whoami, {
                "provider": "fcplus-integration", "issuer": provider.issuer, "client_id": CLIENT_ID,
                "client_secret": SECRET, "redirect_uri": base + "/oidc/callback",
                "post_logout_redirect_uri": base + "/oidc/logout-callback", "keys_file": str(keys_file),
                "session_store": "sqlite:///" + str(tmp_path / "sessions.sqlite3"), "cookie_secure": "false",
                "protected_paths": "/private", "acr_values": "eidas2", "scopes": "openid given_name family_name",
            })
            try:
                browser = sign_in(base)
            except AssertionError:
                raise AssertionError(f"sign-in failed; provider log:\n{provider.log()[-3000:]}") from None
            data = browser.get(base + "/private/page?x=1", allow_redirects=False).json()
    assert data["sub"] == "test-user" and data["acr"] == "eidas2"
    assert data["claims"]["given_name"]  # the userinfo JWT was decrypted and verified
    return data, seen


def encrypting_with(alg: str) -> dict[str, str]:
    return {"id_token_encrypted_response_alg": alg, "id_token_encrypted_response_enc": "A256GCM",
            "userinfo_encrypted_response_alg": alg, "userinfo_encrypted_response_enc": "A256GCM"}


def rsa_kid(jwks: dict[str, Any]) -> str:
    return str(next(k["kid"] for k in jwks["keys"] if k["kty"] == "RSA"))


def test_generated_keys_serve_a_provider_choosing_rsa_oaep_256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """node oidc-provider registered like a provider that chose RSA-OAEP-256 (FC+'s core lists it
    for id_token and userinfo), encrypting to a freshly generated key set. With the RSA key pinned
    to "alg": "RSA-OAEP", as `keys generate` once wrote it, the provider finds no key and the token
    request fails ("no suitable encryption key found (RSA-OAEP-256)")."""
    private = generate_private_jwks()
    _, seen = sign_in_recording(private, encrypting_with("RSA-OAEP-256"), tmp_path, monkeypatch)
    assert sorted(seen) == [("id_token", "RSA-OAEP-256", rsa_kid(private)), ("userinfo", "RSA-OAEP-256", rsa_kid(private))]


def _old_key_set() -> dict[str, Any]:
    """A key set as earlier versions of `keys generate` wrote it: the RSA key pinned to RSA-OAEP."""
    old = generate_private_jwks()
    next(k for k in old["keys"] if k["kty"] == "RSA")["alg"] = "RSA-OAEP"
    return old


def _without_rsa_alg(jwks: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [{k: v for k, v in key.items() if not (key["kty"] == "RSA" and k == "alg")} for key in jwks["keys"]]}


@pytest.mark.parametrize(("order", "expected"), [
    ("old-first", "old"),                 # rotation step 2: providers stay on the old key
    ("new-first", "new"),                 # rotation step 3: providers move to the new key
    ("new-first-old-alg-kept", "old"),    # why step 1 removes alg: the pinned old key outranks the new one
])
def test_rotation_order_decides_the_key_the_provider_chooses(
        order: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The facts docs/deployment.md's rotation procedure rests on, against node oidc-provider
    (which FC+'s core runs) choosing RSA-OAEP as FC+ does: among suitable keys it encrypts to the
    first of the JWKS, and ranks a key declaring the requested alg before one without."""
    old, new = _old_key_set(), generate_private_jwks()
    if order == "old-first":
        merged = [*_without_rsa_alg(old)["keys"], *new["keys"]]
    elif order == "new-first":
        merged = [*new["keys"], *_without_rsa_alg(old)["keys"]]
    else:
        merged = [*new["keys"], *old["keys"]]
    _, seen = sign_in_recording({"keys": merged}, encrypting_with("RSA-OAEP"), tmp_path, monkeypatch)
    kid = rsa_kid(old if expected == "old" else new)
    assert sorted(seen) == [("id_token", "RSA-OAEP", kid), ("userinfo", "RSA-OAEP", kid)]
