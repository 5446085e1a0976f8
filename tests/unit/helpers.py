"""Token minting helpers for the unit tests.

Tokens are made with jwcrypto exactly as a provider would make them (or, for the
attacks, exactly as an attacker could), so the tests exercise the real parsing and
cryptography of fcplus_wsgi.tokens rather than a stand-in.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk
from jwcrypto.jwe import JWE
from jwcrypto.jws import JWS

from fcplus_wsgi.keys import ServiceKeys
from fcplus_wsgi.tokens import ProviderKeys

ISSUER = "https://op.example/api/v2"
CLIENT_ID = "client-1234"
CLIENT_SECRET = "a-client-secret-of-reasonable-length-0123456789"
NOW = 1_700_000_000.0
NONCE = "n" * 64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _header(header: dict[str, Any], key: jwk.JWK, kid: str | bool | None,
            extra: dict[str, Any] | None) -> dict[str, Any]:
    """kid=True uses the key's kid, None/False omits it, a str forces it; `extra` goes last."""
    if kid is True:
        if key.get("kid"):
            header["kid"] = key.get("kid")
    elif isinstance(kid, str):
        header["kid"] = kid
    header.update(extra or {})
    return header


def sign(claims: Any, key: jwk.JWK, alg: str, *, kid: str | bool | None = True,
         extra_header: dict[str, Any] | None = None, raw_payload: bytes | None = None) -> str:
    """A compact JWS. kid=True uses the key's kid, None/False omits it, a str forces it."""
    header = _header({"alg": alg, "typ": "JWT"}, key, kid, extra_header)
    payload = raw_payload if raw_payload is not None else json.dumps(claims).encode()
    token = JWS(payload)
    token.allowed_algs = [alg]
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return str(token.serialize(compact=True))


def unsigned(claims: Any, header: dict[str, Any] | None = None) -> str:
    """alg none, crafted by hand since no library should help make one."""
    return b64json(header or {"alg": "none", "typ": "JWT"}) + "." + b64json(claims) + "."


def encrypt(inner: str, key: jwk.JWK, alg: str, enc: str = "A256GCM", *, kid: str | bool | None = True,
            extra_header: dict[str, Any] | None = None) -> str:
    header = _header({"alg": alg, "enc": enc, "cty": "JWT"}, key, kid, extra_header)
    token = JWE(inner.encode(), json.dumps(header))
    token.allowed_algs = [alg, enc]
    token.add_recipient(key)
    return str(token.serialize(compact=True))


def public(key: jwk.JWK) -> jwk.JWK:
    return jwk.JWK(**json.loads(key.export_public()))


@dataclass(frozen=True)
class Keys:
    service: ServiceKeys
    service_private_jwks: dict[str, Any]
    rsa_enc: jwk.JWK           # public half of the service RSA encryption key
    ec_enc: jwk.JWK            # public half of the service EC encryption key
    foreign_rsa_enc: jwk.JWK   # someone else's RSA key (public)
    foreign_ec_enc: jwk.JWK
    provider_ec: jwk.JWK       # provider's private signing keys
    provider_rsa: jwk.JWK
    provider_ec2: jwk.JWK
    attacker_ec: jwk.JWK
    attacker_rsa: jwk.JWK
    provider: ProviderKeys     # the provider JWKS as published (ec + rsa)


def signing_key(kty: str, kid: str, alg: str) -> jwk.JWK:
    key = jwk.JWK.generate(kty="EC", crv="P-256") if kty == "EC" else jwk.JWK.generate(kty="RSA", size=2048)
    data = json.loads(key.export_private())
    data.update(kid=kid, use="sig", alg=alg)
    return jwk.JWK(**data)


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": CLIENT_ID, "sub": "a" * 64, "iat": int(NOW) - 5, "exp": int(NOW) + 55,
        "nonce": NONCE, "acr": "eidas2", "amr": ["pwd"],
    }
    for key, value in overrides.items():
        if value is _DROP:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP = _Drop()
DROP: Any = _DROP
