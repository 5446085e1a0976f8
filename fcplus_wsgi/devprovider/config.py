"""Configuration of the development provider: registered clients, issuer, keys, lifetimes.

Everything is validated once, when the objects are built, so a bad client registration
fails at start-up with a message naming the field, never halfway through a login.
Defaults mirror FC+: tokens encrypted with RSA-OAEP + A256GCM, 30 s codes, 60 s tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jwcrypto import jwk
from jwcrypto.common import JWException

from fcplus_wsgi.keys import generate_ec_signing_key

from .errors import ConfigError
from .identities import BUILTIN_IDENTITIES, Identity
from .jsonfiles import record_from_dict, records_from_json

# What FC+ supports for id_token and userinfo encryption (reference §1.1); RSA-OAEP-256
# is accepted too because the service's key code supports it for other providers.
ENCRYPTION_ALGS: tuple[str, ...] = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES")
ENCRYPTION_ENCS: tuple[str, ...] = ("A256GCM",)


def _check_url(value: Any, what: str, *, allow_query: bool = True) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{what} {value!r} must be an absolute http:// or https:// URL")
    if parts.fragment or "#" in value:
        raise ConfigError(f"{what} {value!r} must not contain a fragment")
    if not allow_query and parts.query:
        raise ConfigError(f"{what} {value!r} must not contain a query string")
    if any(ch.isspace() for ch in value):
        raise ConfigError(f"{what} {value!r} must not contain whitespace")
    return value


def _check_url_list(value: Any, what: str, *, required: bool) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{what} must be a list of URLs")
    if required and not value:
        raise ConfigError(f"{what} must list at least one URL")
    return [_check_url(item, f"{what} entry") for item in value]


@dataclass(frozen=True)
class ClientConfig:
    """One registered service provider, holding what FC+ keeps in its client record.

    Redirect URIs are compared exactly, as FC+ does (scheme, host, port, path, trailing
    slash). Set an `*_encrypted_response_alg` to None to receive a signed-only token,
    which FC+ never does; that exists only for clients that cannot decrypt yet.
    """

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    jwks_uri: str | None = None
    id_token_encrypted_response_alg: str | None = "RSA-OAEP"
    id_token_encrypted_response_enc: str = "A256GCM"
    userinfo_encrypted_response_alg: str | None = "RSA-OAEP"
    userinfo_encrypted_response_enc: str = "A256GCM"

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id.strip() or len(self.client_id) > 256:
            raise ConfigError("client_id must be a non-empty string of at most 256 characters")
        if not self.client_id.isprintable() or ":" in self.client_id:
            raise ConfigError(f"client_id {self.client_id!r} must be printable and free of ':'")
        if not isinstance(self.client_secret, str) or not self.client_secret:
            raise ConfigError(f"client {self.client_id}: client_secret must be a non-empty string")
        object.__setattr__(self, "redirect_uris", _check_url_list(
            self.redirect_uris, f"client {self.client_id}: redirect_uris", required=True))
        object.__setattr__(self, "post_logout_redirect_uris", _check_url_list(
            self.post_logout_redirect_uris, f"client {self.client_id}: post_logout_redirect_uris", required=False))
        if self.jwks_uri is not None:
            _check_url(self.jwks_uri, f"client {self.client_id}: jwks_uri")
        for prefix in ("id_token", "userinfo"):
            alg = getattr(self, f"{prefix}_encrypted_response_alg")
            enc = getattr(self, f"{prefix}_encrypted_response_enc")
            if alg is not None and alg not in ENCRYPTION_ALGS:
                raise ConfigError(f"client {self.client_id}: {prefix}_encrypted_response_alg must be one of "
                                  f"{', '.join(ENCRYPTION_ALGS)} or null")
            if enc not in ENCRYPTION_ENCS:
                raise ConfigError(f"client {self.client_id}: {prefix}_encrypted_response_enc must be A256GCM")
            if alg is not None and self.jwks_uri is None:
                raise ConfigError(f"client {self.client_id}: jwks_uri is required to encrypt the {prefix} "
                                  f"with {alg} (or set {prefix}_encrypted_response_alg to null)")


_CLIENT_REQUIRED = ("client_id", "client_secret", "redirect_uris")


def client_from_dict(data: Any, source: str) -> ClientConfig:
    """Build a ClientConfig from a JSON object with the dataclass's field names."""
    return record_from_dict(ClientConfig, data, source, _CLIENT_REQUIRED)


def clients_from_json(data: Any, source: str = "clients") -> list[ClientConfig]:
    """Parse a JSON list of client objects (the --clients file format)."""
    return records_from_json(ClientConfig, data, source, "client", _CLIENT_REQUIRED)


def _signing_keys(data: Any) -> list[jwk.JWK]:
    """Load and check a private JWKS of ES256 signing keys (first key signs, all are published)."""
    raw = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(raw, list) or not raw:
        raise ConfigError("signing_keys must be a private JWK Set: an object with a non-empty \"keys\" list")
    loaded = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ConfigError(f"signing_keys: key #{index} is not a JSON object")
        if item.get("kty") != "EC" or item.get("crv") != "P-256":
            raise ConfigError(f"signing_keys: key #{index} must be an EC P-256 key (FC+ signs with ES256 only)")
        if item.get("use", "sig") != "sig" or item.get("alg", "ES256") != "ES256":
            raise ConfigError(f"signing_keys: key #{index} must have use 'sig' and alg 'ES256'")
        if not item.get("kid") or not isinstance(item.get("kid"), str):
            raise ConfigError(f"signing_keys: key #{index} has no kid; relying parties select keys by kid")
        try:
            key = jwk.JWK(**dict(item))
        except (JWException, ValueError, TypeError) as exc:  # jwcrypto raises several types
            raise ConfigError(f"signing_keys: key #{index} is not a valid JWK ({exc.__class__.__name__})") from None
        if not key.has_private:
            raise ConfigError(f"signing_keys: key #{index} has no private part 'd'")
        loaded.append(key)
    kids = [key.get("kid") for key in loaded]
    if len(set(kids)) != len(kids):
        raise ConfigError("signing_keys: two keys share a kid")
    return loaded


@dataclass(frozen=True)
class DevProviderConfig:
    """The whole provider: its issuer URL, registered clients, test identities, keys, TTLs.

    `issuer` fixes every endpoint URL (FC+ style: `https://host/api/v2`); a trailing
    slash is removed so the discovery document and the id_token `iss` agree byte for
    byte. `signing_keys` is a private JWKS; when None a fresh ES256 key is generated, so
    restarting the provider rotates its key, which relying parties must cope with.
    """

    issuer: str
    clients: list[ClientConfig]
    identities: Sequence[Identity] = BUILTIN_IDENTITIES
    signing_keys: dict[str, Any] | None = None
    code_ttl: int = 30
    access_token_ttl: int = 60
    id_token_ttl: int = 60

    def __post_init__(self) -> None:
        issuer = _check_url(self.issuer, "issuer", allow_query=False).rstrip("/")
        object.__setattr__(self, "issuer", issuer)
        if isinstance(self.clients, ClientConfig) or not isinstance(self.clients, Sequence) or not self.clients:
            raise ConfigError("clients must be a non-empty list of ClientConfig")
        if not all(isinstance(client, ClientConfig) for client in self.clients):
            raise ConfigError("clients must contain ClientConfig objects")
        ids = [client.client_id for client in self.clients]
        if len(set(ids)) != len(ids):
            raise ConfigError("two clients share a client_id")
        object.__setattr__(self, "clients", list(self.clients))
        if not isinstance(self.identities, Sequence) or not self.identities:
            raise ConfigError("identities must be a non-empty list of Identity")
        if not all(isinstance(ident, Identity) for ident in self.identities):
            raise ConfigError("identities must contain Identity objects")
        object.__setattr__(self, "identities", tuple(self.identities))
        uids = [ident.uid for ident in self.identities]
        if len(set(uids)) != len(uids):
            raise ConfigError("two identities share a uid")
        for name in ("code_ttl", "access_token_ttl", "id_token_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 86400:
                raise ConfigError(f"{name} must be a whole number of seconds between 1 and 86400")
        if self.signing_keys is None:
            object.__setattr__(self, "signing_keys", {"keys": [generate_ec_signing_key()]})
        _signing_keys(self.signing_keys)

    def client(self, client_id: str) -> ClientConfig | None:
        """The registered client with this id, or None."""
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    def identity(self, uid: str) -> Identity | None:
        """The test identity with this uid, or None."""
        for ident in self.identities:
            if ident.uid == uid:
                return ident
        return None

    def signing_jwks(self) -> list[jwk.JWK]:
        """The loaded private signing keys; the first one signs new tokens."""
        return _signing_keys(self.signing_keys)
