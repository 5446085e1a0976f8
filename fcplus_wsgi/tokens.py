"""Opening and checking the provider's tokens: pure functions, no network, no clock.

Each function takes the token, the keys, the expectations and `now`, and either returns
what it verified or raises a FlowError with a catalogue code. Headers are inspected
before any cryptography runs, so alg `none`, symmetric/asymmetric confusion, `dir`
encryption, compression and `crit` extensions are refused by allow-list, never by
whatever a library would default to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from jwcrypto import jwk

from . import strictjson
from .errors import FlowError
from .jose import JoseError, b64decode, decrypt_compact, verify_compact
from .keys import ServiceKeys, operation_keys
from .providers import Policy, acr_satisfies

MAX_TOKEN_CHARS = 64 * 1024

_ALG_KTY = {
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "HS256": ("oct", None),
}


class UnknownSigningKey(FlowError):
    """The token names a kid the cached provider JWKS lacks: worth one (rate-limited) refetch."""

    def __init__(self, kid: str) -> None:
        super().__init__("id_token_signature_key", detail="unknown kid")
        self.kid = kid


@dataclass(frozen=True)
class ProviderKeys:
    """The provider's JWKS, parsed once per fetch so verification does not re-parse keys."""

    keys: tuple[jwk.JWK, ...]
    # The same keys as `cryptography` objects, made once per fetch (fcplus_wsgi.jose verifies with them).
    public: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    # (kid, alg) -> the one key that verifies it: every token of a provider asks the same
    # question. Only found keys are kept, so a stream of made-up kids cannot grow it.
    _selected: dict[tuple[str | None, str], Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", operation_keys(self.keys, "verify"))

    @classmethod
    def from_jwks(cls, data: Any) -> ProviderKeys:
        items = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError("JWKS has no keys list")
        parsed = []
        for item in items:
            if not isinstance(item, dict) or item.get("kty") not in ("EC", "RSA"):
                continue  # symmetric or unknown key types in a provider JWKS are never trusted
            try:
                key = jwk.JWK(**item)
            except Exception:  # noqa: BLE001, S112 - a malformed key is skipped, not fatal
                continue
            if key.has_private:
                continue
            parsed.append(key)
        return cls(tuple(parsed))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(k.get("kid") for k in self.keys if k.get("kid"))


def _b64json(segment: str) -> dict[str, Any]:
    data = strictjson.loads(b64decode(segment))
    if not isinstance(data, dict):
        raise ValueError("header is not an object")
    return data


@lru_cache(maxsize=64)
def _jws_header(segment: str) -> Mapping[str, Any]:
    """A provider signs every token with the same few headers: parse each once. (JWE headers
    are not cached: each carries a fresh ephemeral key.) Read-only, as it is shared."""
    return MappingProxyType(_b64json(segment))


def jws_alg(compact: str) -> str:
    """The alg of a compact JWS's header (ValueError when unreadable); cached after verification."""
    alg = _jws_header(compact.split(".", 1)[0]).get("alg")
    if not isinstance(alg, str):
        raise ValueError("JWS header has no alg")
    return alg


def compact_parts(token: Any, prefix: str) -> list[str]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise FlowError(f"{prefix}_malformed", detail="not a compact serialization")
    parts = token.split(".")
    if len(parts) not in (3, 5):
        raise FlowError(f"{prefix}_malformed", detail=f"{len(parts)} segments")
    return parts


def decrypt(parts: list[str], keys: ServiceKeys, policy: Policy, prefix: str) -> str:
    """Open a compact JWE (its five segments) with the service key it names; returns the inner compact JWS."""
    code_alg = "id_token_encryption_alg" if prefix == "id_token" else "userinfo_malformed"
    code_fail = "id_token_decryption_failed" if prefix == "id_token" else "userinfo_malformed"
    try:
        header = _b64json(parts[0])
    except ValueError:
        raise FlowError(f"{prefix}_malformed", detail="JWE header is not JSON") from None
    alg, enc = header.get("alg"), header.get("enc")
    if alg not in policy.encryption_algs or enc not in policy.encryption_encs:
        raise FlowError(code_alg, detail=f"JWE alg/enc not allowed: {str(alg)[:20]}/{str(enc)[:20]}")
    if "zip" in header or "crit" in header:
        raise FlowError(code_alg, detail="JWE zip/crit not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise FlowError(f"{prefix}_malformed", detail="JWE kid is not a string")
    candidates = keys.decryption_keys(kid, alg)
    if not candidates:
        raise FlowError(code_fail, detail="no service key matches the JWE kid/alg")
    for key in candidates:
        try:
            payload = decrypt_compact(parts, header, key)
        except JoseError:
            continue
        try:
            return payload.decode("ascii").strip()
        except UnicodeDecodeError:
            raise FlowError(f"{prefix}_malformed", detail="JWE payload is not a compact JWS") from None
    raise FlowError(code_fail, detail="JWE decryption failed with every candidate key")


def _select_key(header: Mapping[str, Any], provider: ProviderKeys, alg: str, prefix: str) -> Any:
    """The provider key (a `cryptography` public key) the JWS header designates for `alg`."""
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise FlowError(f"{prefix}_malformed" if prefix != "id_token" else "id_token_malformed", detail="kid is not a string")
    known = provider._selected.get((kid, alg))
    if known is not None:
        return known
    kty, crv = _ALG_KTY[alg]
    candidates = [
        public for k, public in zip(provider.keys, provider.public, strict=True)
        if public is not None and k.get("kty") == kty and (crv is None or k.get("crv") == crv)
        and k.get("use") in (None, "sig") and k.get("alg") in (None, alg)
        and (kid is None or k.get("kid") == kid)
    ]
    if kid is not None and not candidates:
        raise UnknownSigningKey(kid)
    if len(candidates) != 1:
        raise FlowError("id_token_signature_key" if prefix == "id_token" else "userinfo_malformed",
                        detail=f"{len(candidates)} candidate keys and no kid")
    provider._selected[(kid, alg)] = candidates[0]
    return candidates[0]


class SignatureMismatch(FlowError):
    """A well-formed token whose signature does not verify with the selected key: the one
    failure that a provider key rotation under the same kid explains, so the flow may
    refetch the JWKS and try once more where the platform asks for it (FranceConnect)."""


def verify_signature(compact: str, provider: ProviderKeys, algs: Sequence[str], prefix: str,
                     client_secret: str | None = None) -> dict[str, Any]:
    """Verify a compact JWS against the provider keys and return its JSON payload."""
    parts = compact_parts(compact, prefix)
    if len(parts) != 3:
        raise FlowError(f"{prefix}_malformed", detail="expected a JWS inside")
    try:
        header = _jws_header(parts[0])
    except ValueError:
        raise FlowError(f"{prefix}_malformed", detail="JWS header is not JSON") from None
    alg = header.get("alg")
    code_alg = "id_token_signature_alg" if prefix == "id_token" else "userinfo_malformed"
    code_bad = "id_token_signature_invalid" if prefix == "id_token" else "userinfo_malformed"
    if not isinstance(alg, str) or alg not in algs or alg not in _ALG_KTY:
        raise FlowError(code_alg, detail=f"alg {str(alg)[:20]} not allowed")
    # RFC 7797's b64 is only meaningful listed in crit, which is refused: any b64 is refused too.
    if "crit" in header or "b64" in header or "jku" in header or "x5u" in header or "jwk" in header:
        raise FlowError(code_alg, detail="unsupported JWS header member")
    key: Any
    if alg.startswith("HS"):
        if not client_secret:
            raise FlowError(code_alg, detail="HS alg without a client secret")
        key = client_secret.encode()
    else:
        key = _select_key(header, provider, alg, prefix)
    try:
        raw = verify_compact(parts, alg, key)
    except JoseError:
        raise SignatureMismatch(code_bad, detail="signature does not verify") from None
    try:
        payload = strictjson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FlowError("id_token_claims_invalid" if prefix == "id_token" else "userinfo_malformed",
                        detail="payload is not JSON") from None
    if not isinstance(payload, dict):
        raise FlowError("id_token_claims_invalid" if prefix == "id_token" else "userinfo_malformed",
                        detail="payload is not an object")
    return payload


def open_token(token: Any, *, service_keys: ServiceKeys | None, provider: ProviderKeys, policy: Policy,
               algs: Sequence[str], prefix: str, client_secret: str | None = None) -> tuple[dict[str, Any], str]:
    """Decrypt (when a JWE) then verify: returns (claims, inner compact JWS)."""
    parts = compact_parts(token, prefix)
    if len(parts) == 5:
        if not policy.encryption_possible:
            raise FlowError("id_token_encryption_alg" if prefix == "id_token" else "userinfo_malformed",
                            detail="encrypted token from a provider that never encrypts")
        if service_keys is None:
            raise FlowError("id_token_decryption_failed" if prefix == "id_token" else "userinfo_malformed",
                            detail="encrypted token but no keys_file configured")
        inner = decrypt(parts, service_keys, policy, prefix)
    else:
        if policy.require_encryption:
            raise FlowError(f"{prefix}_not_encrypted", detail="plain JWS where encryption is required")
        inner = token
    return verify_signature(inner, provider, algs, prefix, client_secret), inner


@dataclass(frozen=True)
class Expected:
    issuer: str
    client_id: str
    nonce: str
    acr_values: tuple[str, ...]
    clock_skew: int
    now: float
    access_token: str | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_AT_HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def at_hash(access_token: str, alg: str) -> str:
    """OpenID Connect Core 3.1.3.6: left half of the hash named by the signing alg."""
    digest = _AT_HASH[alg[-3:]](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def is_subject(value: Any) -> bool:
    """OpenID Connect Core 2: sub is at most 255 ASCII characters; control characters are
    refused too, since the sub becomes REMOTE_USER and may end up in headers or logs."""
    return isinstance(value, str) and 0 < len(value) <= 255 and all(0x20 < ord(c) < 0x7F for c in value)


def validate_id_token(claims: Mapping[str, Any], expected: Expected, alg: str = "ES256") -> None:
    """OpenID Connect Core 3.1.3.7 checks, plus the requested eIDAS level."""
    sub = claims.get("sub")
    if not is_subject(sub):
        raise FlowError("id_token_claims_invalid", detail="sub missing or invalid")
    if claims.get("iss") != expected.issuer:
        raise FlowError("id_token_issuer", detail="iss differs from the issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if not audiences or not all(isinstance(a, str) for a in audiences) or expected.client_id not in audiences:
        raise FlowError("id_token_audience", detail="aud does not contain client_id")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != expected.client_id:
        raise FlowError("id_token_audience", detail="azp missing or not client_id")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_number(exp) or not _is_number(iat):
        raise FlowError("id_token_claims_invalid", detail="exp or iat missing or not numeric")
    exp, iat = float(exp), float(iat)  # type: ignore[arg-type]
    if expected.now > exp + expected.clock_skew:
        raise FlowError("id_token_expired", detail="exp is past")
    if iat > expected.now + expected.clock_skew:
        raise FlowError("id_token_issued_in_future", detail="iat is in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not _is_number(nbf) or nbf > expected.now + expected.clock_skew):
        raise FlowError("id_token_issued_in_future", detail="nbf is in the future")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), expected.nonce.encode()):
        raise FlowError("id_token_nonce", detail="nonce mismatch")
    if not acr_satisfies(claims.get("acr") if isinstance(claims.get("acr"), str) else None, expected.acr_values):
        raise FlowError("acr_insufficient", detail="acr below requested")
    given = claims.get("at_hash")
    if given is not None and expected.access_token is not None:
        # Never skipped once present: an alg this module cannot hash for, a value that is not
        # a string or an access token that is not ASCII all refuse, as a mismatch does.
        if alg not in _ALG_KTY or not isinstance(given, str) or not expected.access_token.isascii():
            raise FlowError("id_token_claims_invalid", detail="at_hash cannot be checked")
        if not hmac.compare_digest(given.encode(), at_hash(expected.access_token, alg).encode()):
            raise FlowError("id_token_claims_invalid", detail="at_hash mismatch")


def validate_userinfo(claims: Mapping[str, Any], *, id_token_sub: str, issuer: str, client_id: str,
                      signed: bool) -> None:
    """OpenID Connect Core 5.3.2: same sub; a signed response must also name the issuer and
    the client as audience, or a token signed for another client or issuer would pass."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), id_token_sub.encode()):
        raise FlowError("userinfo_sub_mismatch", detail="userinfo sub differs")
    if signed:  # 5.3.2: "If signed, the UserInfo Response MUST contain the Claims iss and aud"
        if claims.get("iss") != issuer:
            raise FlowError("userinfo_issuer_audience", detail="userinfo iss missing or differs")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if client_id not in audiences:
            raise FlowError("userinfo_issuer_audience", detail="userinfo aud missing or differs")
