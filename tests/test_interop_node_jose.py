"""fcplus_wsgi.jose against an independent JOSE implementation (node oidc-provider's):
a whole sign-in for each JWE algorithm and content encryption the policies can allow,
the id_token and the userinfo encrypted differently, over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.keys import generate_private_jwks, generate_rsa_encryption_key
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
    jwks = generate_private_jwks()
    # The provider honours a published key's alg, so RSA-OAEP-256 needs a key published for it.
    jwks["keys"].append({**generate_rsa_encryption_key(2048), "alg": "RSA-OAEP-256"})
    keys_file.write_text(json.dumps(jwks))
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
