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
                                 base + "/oidc/jwks.json", issuer_path="/api/v2", client_metadata=metadata) as provider:
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


# node oidc-provider registered like a provider that chose RSA-OAEP-256 (FC+'s core lists it
# for id_token and userinfo), encrypting to a freshly generated key set. With the RSA key
# pinned to "alg": "RSA-OAEP", as `keys generate` once wrote it, the provider finds no key
# and the token request fails ("no suitable encryption key found (RSA-OAEP-256)").
OAEP_256 = {
    "id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256GCM",
    "userinfo_encrypted_response_alg": "RSA-OAEP-256", "userinfo_encrypted_response_enc": "A256GCM"}


def test_generated_keys_serve_a_provider_choosing_rsa_oaep_256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = generate_private_jwks()
    rsa_kid = next(k["kid"] for k in private["keys"] if k["kty"] == "RSA")
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(private))
    # Record the header of every JWE the middleware opens (it runs in this process, on the
    # server's threads): proof that the provider really used RSA-OAEP-256 and our RSA key.
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
                                 base + "/oidc/jwks.json", issuer_path="/api/v2", client_metadata=OAEP_256) as provider:
            # No preset: this is about the generated keys, not about a platform's alg allow-list.
            late.app = FCPlusMiddleware(whoami, {
                "issuer": provider.issuer, "client_id": CLIENT_ID,
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
    assert ("id_token", "RSA-OAEP-256", rsa_kid) in seen
    assert ("userinfo", "RSA-OAEP-256", rsa_kid) in seen
    assert {alg for _, alg, _ in seen} == {"RSA-OAEP-256"}
