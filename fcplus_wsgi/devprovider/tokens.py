"""Token minting the way the platforms do it: a JWS, then (FC+) a JWE to the client's key.

FC+ signs id_tokens and userinfo with ES256 and encrypts them (nested JWT, `cty: JWT`)
to a key the service publishes at its jwks_uri, with RSA-OAEP or ECDH-ES and A256GCM;
FranceConnect and ProConnect sign with the alg the client registered (ES256 or RS256)
and encrypt nothing unless the registration asks for it. This module holds that crypto
plus the client-key fetch and cache, and nothing about HTTP routing, so the rules can be
read (and checked) in one place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException

from .config import ClientConfig, signing_alg_of

log = logging.getLogger("fcplus_wsgi.devprovider")

SIGNING_ALG = "ES256"
SIGNING_ALGS = ("ES256", "RS256")
_PUBLIC_SUB_NAMESPACE = uuid.UUID("6f1d3c1e-8d0b-4f55-9b5e-3d4c2a1b0f9e")
JWKS_CACHE_SECONDS = 60.0
JWKS_FETCH_TIMEOUT = 5.0
JWKS_MAX_BYTES = 512 * 1024


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 (the hash of ES256) of the token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def pairwise_sub(client_id: str, uid: str) -> str:
    """A stable per-client subject shaped like FC+'s (64 hex + "v1"), unlinkable across clients."""
    return hashlib.sha256(f"{client_id}:{uid}".encode()).hexdigest() + "v1"


def public_sub(idp_id: str, uid: str) -> str:
    """ProConnect's public subject: one UUID per agent account, the same for every client."""
    return str(uuid.uuid5(_PUBLIC_SUB_NAMESPACE, f"{idp_id}:{uid}"))


def sign(claims: dict[str, Any], key: jwk.JWK, alg: str = SIGNING_ALG) -> str:
    """Compact JWS with the kid and typ JWT headers the platforms put on their tokens."""
    token = jws.JWS(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    token.allowed_algs = [alg]
    header = {"alg": alg, "kid": key.get("kid"), "typ": "JWT"}
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return str(token.serialize(compact=True))


def encrypt(signed_jwt: str, key: jwk.JWK, alg: str, enc: str) -> str:
    """Compact JWE around a signed JWT (nested JWT, `cty: JWT`), naming the client key's kid."""
    header: dict[str, str] = {"alg": alg, "enc": enc, "cty": "JWT"}
    kid = key.get("kid")
    if kid:
        header["kid"] = kid
    token = jwe.JWE(signed_jwt.encode("ascii"), protected=json.dumps(header))
    token.allowed_algs = [alg, enc]
    token.add_recipient(key)
    return str(token.serialize(compact=True))


class ClientKeyError(Exception):
    """No usable encryption key for a client; `str()` is a safe error_description."""


def _suitable(key: dict[str, Any], alg: str) -> bool:
    """Whether a published JWK can receive a JWE with this key-management alg."""
    if not isinstance(key, dict) or key.get("use", "enc") != "enc":
        return False
    if key.get("alg") not in (None, alg):
        return False
    if "key_ops" in key and not {"encrypt", "wrapKey", "deriveKey"} & set(key.get("key_ops") or ()):
        return False
    if alg.startswith("RSA-OAEP"):
        return key.get("kty") == "RSA"
    if alg == "ECDH-ES":
        return key.get("kty") == "EC" and key.get("crv") == "P-256"
    return False


@dataclass
class _CachedJwks:
    keys: list[dict[str, Any]]
    fetched_at: float


class ClientKeyCache:
    """Fetches clients' public JWKS over HTTP and keeps them for 60 s.

    When the cached set has no key for the wanted alg the set is fetched again once,
    so a service that has just rotated its keys is not refused for a minute. The lock
    only guards the dict: fetches run unlocked so a slow client cannot stall others.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 fetch: Callable[[str], Any] | None = None) -> None:
        self._clock = clock
        self._fetch_json = fetch or self._http_fetch
        self._lock = threading.Lock()
        self._cache: dict[str, _CachedJwks] = {}

    @staticmethod
    def _http_fetch(uri: str) -> Any:
        with requests.get(uri, timeout=JWKS_FETCH_TIMEOUT, stream=True,
                          headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ClientKeyError(f"client JWKS could not be fetched (HTTP {response.status_code})")
            body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
        if len(body) > JWKS_MAX_BYTES:
            raise ClientKeyError("client JWKS is too large")
        try:
            return json.loads(body)
        except ValueError:
            raise ClientKeyError("client JWKS is not JSON") from None

    def _fetch(self, uri: str) -> list[dict[str, Any]]:
        try:
            data = self._fetch_json(uri)
        except ClientKeyError:
            raise
        except requests.RequestException as exc:
            raise ClientKeyError(f"client JWKS could not be fetched ({exc.__class__.__name__})") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise ClientKeyError("client JWKS has no \"keys\" list")
        with self._lock:
            self._cache[uri] = _CachedJwks(keys, self._clock())
        return keys

    def _cached(self, uri: str) -> list[dict[str, Any]] | None:
        with self._lock:
            entry = self._cache.get(uri)
            if entry is None or self._clock() - entry.fetched_at >= JWKS_CACHE_SECONDS:
                return None
            return entry.keys

    @staticmethod
    def _pick(keys: list[dict[str, Any]], alg: str) -> jwk.JWK | None:
        for data in keys:
            if not _suitable(data, alg):
                continue
            try:
                key = jwk.JWK(**data)
            except (JWException, ValueError, TypeError):  # a malformed entry: another may serve
                log.debug("skipping a malformed key in a client JWKS")
                continue
            if key.has_private:
                log.warning("a client jwks_uri publishes a PRIVATE key; it should publish public keys only")
            return key
        return None

    def encryption_key(self, client: ClientConfig, alg: str) -> jwk.JWK:
        """The client's public key for `alg`; raises ClientKeyError with a safe message."""
        if client.jwks_uri is None:
            raise ClientKeyError("client has no jwks_uri")
        cached = self._cached(client.jwks_uri)
        if cached is not None:
            key = self._pick(cached, alg)
            if key is not None:
                return key
        key = self._pick(self._fetch(client.jwks_uri), alg)
        if key is None:
            log.warning("client %s publishes no key usable with %s at its jwks_uri", client.client_id, alg)
            raise ClientKeyError("no suitable encryption key found")
        return key


class TokenMinter:
    """Signs with the provider's current key for the alg and encrypts per the client's registration."""

    def __init__(self, signing_keys: list[jwk.JWK], key_cache: ClientKeyCache) -> None:
        self._signing_keys = signing_keys
        self._key_cache = key_cache

    def public_jwks(self) -> dict[str, Any]:
        """Every signing key's public half, so tokens signed before a rotation still verify."""
        out = []
        for key in self._signing_keys:
            public: dict[str, Any] = json.loads(key.export_public())
            public.update({"kid": key.get("kid"), "use": "sig", "alg": signing_alg_of(key)})
            out.append(public)
        return {"keys": out}

    def _key_for(self, alg: str) -> jwk.JWK:
        for key in self._signing_keys:
            if signing_alg_of(key) == alg:
                return key
        raise ClientKeyError(f"the provider has no {alg} signing key")  # configuration prevents this

    def prepare_key(self, client: ClientConfig, which: str) -> jwk.JWK | None:
        """Fetch the client key needed for `which` ("id_token"/"userinfo"), None if unencrypted."""
        alg = getattr(client, f"{which}_encrypted_response_alg")
        if alg is None:
            return None
        return self._key_cache.encryption_key(client, alg)

    def mint(self, claims: dict[str, Any], client: ClientConfig, which: str, key: jwk.JWK | None) -> str:
        """Sign the claims with the registered alg, then encrypt them to `key` as registered for `which`."""
        alg_signed = client.id_token_alg if which == "id_token" else client.userinfo_alg
        signed = sign(claims, self._key_for(alg_signed), alg_signed)
        if key is None:
            return signed
        alg = getattr(client, f"{which}_encrypted_response_alg")
        enc = getattr(client, f"{which}_encrypted_response_enc")
        try:
            return encrypt(signed, key, alg, enc)
        except (JWException, ValueError, TypeError):  # e.g. a broken client key: not our bug
            raise ClientKeyError("no suitable encryption key found") from None

    def verify_own(self, compact: str) -> dict[str, Any] | None:
        """Claims of a JWS this provider signed (expiry ignored), or None if it is not one."""
        if compact.count(".") != 2:
            return None
        token = jws.JWS()
        token.allowed_algs = list(SIGNING_ALGS)
        try:
            token.deserialize(compact)
            header = token.jose_header
            kid = header.get("kid") if isinstance(header, dict) else None
        except (JWException, ValueError, TypeError):
            return None
        for key in self._signing_keys:
            if kid is not None and key.get("kid") != kid:
                continue
            try:
                token.verify(key, alg=signing_alg_of(key))
                claims = json.loads(token.payload)
            except (JWException, ValueError, TypeError):
                log.debug("id_token_hint does not verify with signing key %s", key.get("kid"))
                continue
            return claims if isinstance(claims, dict) else None
        return None
