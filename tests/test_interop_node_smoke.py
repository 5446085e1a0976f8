"""The node oidc-provider harness works on its own: a hand-written FC+ relying party against it.

No middleware here: this proves the provider really signs ES256 and encrypts RSA-OAEP/A256GCM
to our published keys, honours acr_values, revokes and logs out, so the middleware's interop
tests can trust it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from jwcrypto import jwe, jwk, jws

from fcplus_wsgi.keys import generate_private_jwks, public_jwks
from tests.support.node_provider import (
    login_through_interaction,
    logout_through_provider,
    node_available,
    start_node_provider,
)
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.skipif(not node_available(), reason="node is not installed")

CLIENT_ID = "interop-smoke-client"
CLIENT_SECRET = secrets.token_urlsafe(48)
SERVICE = "http://127.0.0.1:9"  # never contacted: the test stops at each redirect to it
REDIRECT_URI = f"{SERVICE}/oidc/callback"
POST_LOGOUT_REDIRECT_URI = f"{SERVICE}/oidc/logged-out"


def jwks_app(body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/jwk-set+json"), ("Cache-Control", "max-age=60")])
        return [body]

    return app


def open_nested(token: str, private: jwk.JWKSet, provider_keys: jwk.JWKSet) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Decrypt a 5-part JWE, verify the inner ES256 JWS; returns (JWE header, inner JWS, claims)."""
    assert token.count(".") == 4, "expected a compact JWE (5 parts)"
    envelope = jwe.JWE()
    envelope.deserialize(token)
    header = json.loads(envelope.objects["protected"])
    assert header["alg"] == "RSA-OAEP"
    assert header["enc"] == "A256GCM"
    envelope.decrypt(private)
    inner = envelope.payload.decode()
    assert inner.count(".") == 2, "expected a signed JWT inside the JWE"
    signed = jws.JWS()
    signed.deserialize(inner)
    assert signed.jose_header["alg"] == "ES256"
    signed.verify(provider_keys.get_key(signed.jose_header["kid"]), alg="ES256")
    return header, inner, json.loads(signed.payload)


def test_node_provider_speaks_fcplus() -> None:
    private = generate_private_jwks()
    our_keys = jwk.JWKSet.from_json(json.dumps(private))
    published = json.dumps(public_jwks(private)).encode()
    rsa_kid = next(k["kid"] for k in private["keys"] if k["kty"] == "RSA")

    with (
        serve_wsgi(jwks_app(published)) as jwks_base,
        start_node_provider(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI, f"{jwks_base}/jwks")
        as provider,
        requests.Session() as browser,
        requests.Session() as backend,
    ):
        meta = backend.get(provider.discovery_url, timeout=10).json()
        assert meta["issuer"] == provider.issuer
        assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
        provider_keys = jwk.JWKSet.from_json(backend.get(meta["jwks_uri"], timeout=10).text)

        state, nonce = secrets.token_hex(32), secrets.token_hex(32)
        authorize_url = meta["authorization_endpoint"] + "?" + urlencode({
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid given_name family_name birthdate email",
            "acr_values": "eidas2",
            "state": state,
            "nonce": nonce,
        })
        callback = login_through_interaction(browser, authorize_url, login="smoke-user")
        location = callback.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["state"] == state
        assert query["iss"] == provider.issuer  # RFC 9207 iss on the callback

        # Token request: the provider fetches our jwks_uri now, to encrypt the id_token.
        token = backend.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }, timeout=10)
        assert token.status_code == 200, token.text
        tokens = token.json()
        header, id_token_jws, claims = open_nested(tokens["id_token"], our_keys, provider_keys)
        assert header["kid"] == rsa_kid
        assert header.get("cty") == "JWT"
        assert claims["iss"] == provider.issuer
        assert claims["aud"] == CLIENT_ID
        assert claims["nonce"] == nonce
        assert claims["acr"] == "eidas2"
        assert claims["sub"] == "smoke-user"
        assert "given_name" not in claims  # identity claims come from userinfo only

        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        userinfo = backend.get(meta["userinfo_endpoint"], headers=bearer, timeout=10)
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.headers["Content-Type"].split(";")[0] == "application/jwt"
        _, _, identity = open_nested(userinfo.text, our_keys, provider_keys)
        assert identity["sub"] == claims["sub"]
        assert identity["given_name"] and identity["family_name"] and identity["email"]
        assert identity["birthdate"] == "1962-08-24"
        assert "gender" not in identity  # not requested

        revoked = backend.post(meta["revocation_endpoint"], data={
            "token": tokens["access_token"],  # no token_type_hint: FC+'s revocation DTO refuses it
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }, timeout=10)
        assert revoked.status_code == 200, revoked.text
        after = backend.get(meta["userinfo_endpoint"], headers=bearer, timeout=10)
        assert after.status_code == 401

        logout_state = secrets.token_hex(32)
        end_session_url = meta["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": id_token_jws,  # the inner JWS: oidc-provider cannot read its JWE
            "state": logout_state,
            "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI,
        })
        logged_out = logout_through_provider(browser, end_session_url)
        assert logged_out.headers["Location"] == f"{POST_LOGOUT_REDIRECT_URI}?state={logout_state}"
