"""Platform policies the flow applies when opening tokens, over a real loopback JWKS.

FranceConnect rotates its signing keys and tells relying parties to refetch the JWKS and
retry once when a signature does not verify, not only on an unknown kid; ProConnect never
encrypts, so an encrypted token from it is refused; the refetch stays rate-limited.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jwcrypto import jwk
from webob import Request, Response

from fcplus_wsgi.client import ProviderClient
from fcplus_wsgi.errors import FlowError
from fcplus_wsgi.flow import Flow
from fcplus_wsgi.settings import parse_settings
from fcplus_wsgi.stores import open_store
from tests.support.servers import serve_wsgi

from .helpers import CLIENT_ID, CLIENT_SECRET, Keys, encrypt, sign, signing_key


class RotatingProvider:
    """Discovery plus a JWKS whose one key can be replaced under the same kid."""

    def __init__(self) -> None:
        self.issuer = ""
        self.key = signing_key("EC", "fc-1", "ES256")
        self.jwks_fetches = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = Request(environ).path
        if path.endswith("/jwks"):
            with self.lock:
                self.jwks_fetches += 1
                body = {"keys": [json.loads(self.key.export_public())]}
        else:
            iss = self.issuer
            body = {"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
                    "jwks_uri": iss + "/jwks"}
        return Response(json.dumps(body).encode(), content_type="application/json", charset=None)(
            environ, start_response)


@pytest.fixture()
def provider() -> Iterator[RotatingProvider]:
    op = RotatingProvider()
    with serve_wsgi(op) as base:
        op.issuer = base + "/api/v2"
        yield op


def flow_for(op: RotatingProvider, preset: str, interval: float = 0.0, **extra: Any) -> Flow:
    settings = parse_settings({"provider": preset, "issuer": op.issuer, "client_id": CLIENT_ID,
                               "client_secret": CLIENT_SECRET, "redirect_uri": "https://svc.example/cb",
                               "session_store": "memory://", "jwks_refresh_interval": str(interval), **extra})
    client = ProviderClient(settings.issuer, jwks_refresh_interval=interval, wire=settings.wire)
    return Flow(settings, client=client, store=open_store("memory://"), service_keys=None)


def claims(op: RotatingProvider) -> dict[str, Any]:
    return {"iss": op.issuer, "sub": "s", "aud": CLIENT_ID}


def test_franceconnect_refetches_once_when_a_signature_fails(provider: RotatingProvider) -> None:
    flow = flow_for(provider, "franceconnect-integration")
    flow.client.keys()  # the old key is cached
    provider.key = signing_key("EC", "fc-1", "ES256")  # rotated under the same kid
    token = sign(claims(provider), provider.key, "ES256")
    opened, _ = flow._open(token, "id_token", ("ES256",))
    assert opened["sub"] == "s" and provider.jwks_fetches == 2


def test_proconnect_does_not_refetch_on_a_bad_signature(provider: RotatingProvider) -> None:
    flow = flow_for(provider, "proconnect-integration")
    flow.client.keys()
    provider.key = signing_key("EC", "fc-1", "ES256")
    token = sign(claims(provider), provider.key, "ES256")
    with pytest.raises(FlowError) as info:
        flow._open(token, "id_token", ("ES256",))
    assert info.value.code == "id_token_signature_invalid" and provider.jwks_fetches == 1


def test_the_refetch_on_a_bad_signature_is_rate_limited(provider: RotatingProvider) -> None:
    """A flood of forged signatures cannot become a flood of JWKS fetches."""
    flow = flow_for(provider, "franceconnect-integration", interval=60)
    flow.client.keys()
    attacker = signing_key("EC", "fc-1", "ES256")
    for _ in range(20):
        with pytest.raises(FlowError) as info:
            flow._open(sign(claims(provider), attacker, "ES256"), "id_token", ("ES256",))
        assert info.value.code == "id_token_signature_invalid"
    assert provider.jwks_fetches == 1


def test_a_forged_signature_is_still_refused_after_the_refetch(provider: RotatingProvider) -> None:
    flow = flow_for(provider, "franceconnect-integration")
    flow.client.keys()
    with pytest.raises(FlowError) as info:
        flow._open(sign(claims(provider), signing_key("EC", "fc-1", "ES256"), "ES256"), "id_token", ("ES256",))
    assert info.value.code == "id_token_signature_invalid" and provider.jwks_fetches == 2


def test_proconnect_refuses_an_encrypted_token(provider: RotatingProvider, keys: Keys) -> None:
    flow = flow_for(provider, "proconnect-integration")
    inner = sign(claims(provider), provider.key, "ES256")
    with pytest.raises(FlowError) as info:
        flow._open(encrypt(inner, keys.rsa_enc, "RSA-OAEP"), "id_token", ("ES256",))
    assert info.value.code == "id_token_encryption_alg"


def test_franceconnect_decrypts_when_it_encrypts(provider: RotatingProvider, keys: Keys) -> None:
    """FranceConnect encrypts only when the registration asks: a JWE is opened with the keys."""
    flow = flow_for(provider, "franceconnect-integration")
    flow.keys = keys.service
    inner = sign(claims(provider), provider.key, "ES256")
    opened, jws = flow._open(encrypt(inner, keys.rsa_enc, "RSA-OAEP"), "id_token", ("ES256",))
    assert opened["sub"] == "s" and jws == inner
    with pytest.raises(FlowError) as info:
        flow_for(provider, "franceconnect-integration", require_encryption="true", keys_file="/x")._open(
            inner, "id_token", ("ES256",))
    assert info.value.code == "id_token_not_encrypted"


def test_rs256_registration_on_proconnect(provider: RotatingProvider) -> None:
    provider.key = jwk.JWK.generate(kty="RSA", size=2048, kid="pc-rsa", use="sig", alg="RS256")
    flow = flow_for(provider, "proconnect-integration", id_token_signing_algs="RS256")
    opened, _ = flow._open(sign(claims(provider), provider.key, "RS256"), "id_token", ("RS256",))
    assert opened["sub"] == "s"
