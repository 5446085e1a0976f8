"""Session-wide real key material: generated once, shared by every unit test."""

from __future__ import annotations

import json

import pytest
from jwcrypto import jwk

from fcplus_wsgi.keys import generate_private_jwks, keys_from_jwks, public_jwks
from fcplus_wsgi.tokens import ProviderKeys

from .helpers import Keys, public, signing_key


@pytest.fixture(scope="session")
def keys() -> Keys:
    private = generate_private_jwks()
    service = keys_from_jwks(private)
    pub = public_jwks(private)["keys"]
    rsa_enc = jwk.JWK(**next(k for k in pub if k["kty"] == "RSA"))
    ec_enc = jwk.JWK(**next(k for k in pub if k["kty"] == "EC" and k["use"] == "enc"))
    foreign_rsa = jwk.JWK.generate(kty="RSA", size=2048, kid="foreign-rsa")
    foreign_ec = jwk.JWK.generate(kty="EC", crv="P-256", kid="foreign-ec")
    provider_ec = signing_key("EC", "op-ec-1", "ES256")
    provider_rsa = signing_key("RSA", "op-rsa-1", "RS256")
    provider_jwks = {"keys": [json.loads(provider_ec.export_public()), json.loads(provider_rsa.export_public())]}
    return Keys(
        service=service, service_private_jwks=private, rsa_enc=rsa_enc, ec_enc=ec_enc,
        foreign_rsa_enc=public(foreign_rsa), foreign_ec_enc=public(foreign_ec),
        provider_ec=provider_ec, provider_rsa=provider_rsa,
        provider_ec2=signing_key("EC", "op-ec-2", "ES256"),
        attacker_ec=signing_key("EC", "op-ec-1", "ES256"),      # same kid as the real one
        attacker_rsa=signing_key("RSA", "op-rsa-1", "RS256"),
        provider=ProviderKeys.from_jwks(provider_jwks),
    )


