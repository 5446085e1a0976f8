"""Configuration of the development provider: profile, registered clients, issuer, keys, lifetimes.

Everything is validated once, when the objects are built, so a bad client registration
fails at start-up with a message naming the field, never halfway through a login.
Defaults mirror the chosen platform: for FC+ tokens encrypted with RSA-OAEP + A256GCM,
for FranceConnect and ProConnect signed only; 30 s codes and 60 s tokens everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from jwcrypto import jwk
from jwcrypto.common import JWException

from fcplus_wsgi.keys import generate_ec_signing_key

from .errors import ConfigError
from .identities import BUILTIN_AGENTS, BUILTIN_IDENTITIES, BUILTIN_IDPS, Agent, Identity, TestIdp
from .jsonfiles import record_from_dict, records_from_json
from .profiles import PROFILE_NAMES, PROFILES, Profile

# What FC+ supports for id_token and userinfo encryption (reference §1.1); RSA-OAEP-256
# is accepted too because the service's key code supports it for other providers.
ENCRYPTION_ALGS: tuple[str, ...] = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES")
ENCRYPTION_ENCS: tuple[str, ...] = ("A256GCM",)
SIGNING_ALGS: tuple[str, ...] = ("ES256", "RS256")
# Default of the encryption fields: "what the profile's platform registers by default",
# resolved by DevProviderConfig (RSA-OAEP for FC+, none for FranceConnect and ProConnect).
PROFILE_DEFAULT = "profile-default"
RSA_SIGNING_KEY_BITS = 2048


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
    """One registered service provider, holding what the platform keeps in its client record.

    Redirect URIs are compared exactly, as the platforms do (scheme, host, port, path,
    trailing slash). The encryption algs default to the profile's choice (RSA-OAEP for
    FC+, none elsewhere); set one to None for a signed-only token, which FC+ never sends:
    that exists only for clients that cannot decrypt yet. `id_token_signed_response_alg`
    (ES256 or RS256; None = ES256) is the registered signature alg, also used for userinfo
    unless `userinfo_signed_response_alg` says otherwise.
    """

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    jwks_uri: str | None = None
    id_token_encrypted_response_alg: str | None = PROFILE_DEFAULT
    id_token_encrypted_response_enc: str = "A256GCM"
    userinfo_encrypted_response_alg: str | None = PROFILE_DEFAULT
    userinfo_encrypted_response_enc: str = "A256GCM"
    id_token_signed_response_alg: str | None = None
    userinfo_signed_response_alg: str | None = None

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
            if alg is not None and alg != PROFILE_DEFAULT and alg not in ENCRYPTION_ALGS:
                raise ConfigError(f"client {self.client_id}: {prefix}_encrypted_response_alg must be one of "
                                  f"{', '.join(ENCRYPTION_ALGS)} or null")
            if enc not in ENCRYPTION_ENCS:
                raise ConfigError(f"client {self.client_id}: {prefix}_encrypted_response_enc must be A256GCM")
            if alg is not None and alg != PROFILE_DEFAULT and self.jwks_uri is None:
                raise ConfigError(f"client {self.client_id}: jwks_uri is required to encrypt the {prefix} "
                                  f"with {alg} (or set {prefix}_encrypted_response_alg to null)")
            signed = getattr(self, f"{prefix}_signed_response_alg")
            if signed is not None and signed not in SIGNING_ALGS:
                raise ConfigError(f"client {self.client_id}: {prefix}_signed_response_alg must be one of "
                                  f"{', '.join(SIGNING_ALGS)} or null")

    @property
    def id_token_alg(self) -> str:
        """The alg id_tokens are signed with."""
        return self.id_token_signed_response_alg or "ES256"

    @property
    def userinfo_alg(self) -> str:
        """The alg userinfo responses are signed with."""
        return self.userinfo_signed_response_alg or self.id_token_alg

    def for_profile(self, profile: Profile) -> ClientConfig:
        """This registration with the profile's defaults filled in, or ConfigError if the platform refuses it."""
        changes: dict[str, Any] = {}
        for prefix in ("id_token", "userinfo"):
            alg = getattr(self, f"{prefix}_encrypted_response_alg")
            if alg == PROFILE_DEFAULT:
                alg = profile.default_encryption_alg
                changes[f"{prefix}_encrypted_response_alg"] = alg
                if alg is not None and self.jwks_uri is None:
                    raise ConfigError(
                        f"client {self.client_id}: jwks_uri is required because {profile.label} encrypts the "
                        f"{prefix} with {alg} (or set {prefix}_encrypted_response_alg to null)")
            if alg is not None and not profile.client_encryption_algs:
                raise ConfigError(f"client {self.client_id}: {profile.label} does not encrypt tokens; set "
                                  f"{prefix}_encrypted_response_alg to null")
            if alg is not None and alg not in profile.client_encryption_algs:
                raise ConfigError(f"client {self.client_id}: {profile.label} encrypts the {prefix} with "
                                  f"{', '.join(profile.client_encryption_algs)} only")
            signed = getattr(self, f"{prefix}_signed_response_alg")
            if signed is not None and signed not in profile.client_signing_algs:
                raise ConfigError(f"client {self.client_id}: {profile.label} signs the {prefix} with "
                                  f"{', '.join(profile.client_signing_algs)} only")
        return replace(self, **changes) if changes else self


_CLIENT_REQUIRED = ("client_id", "client_secret", "redirect_uris")


def client_from_dict(data: Any, source: str) -> ClientConfig:
    """Build a ClientConfig from a JSON object with the dataclass's field names."""
    return record_from_dict(ClientConfig, data, source, _CLIENT_REQUIRED)


def clients_from_json(data: Any, source: str = "clients") -> list[ClientConfig]:
    """Parse a JSON list of client objects (the --clients file format)."""
    return records_from_json(ClientConfig, data, source, "client", _CLIENT_REQUIRED)


def generate_rsa_signing_key(size: int = RSA_SIGNING_KEY_BITS) -> dict[str, Any]:
    """A private RSA JWK for RS256 signatures (kid = RFC 7638 thumbprint), like the ES256 one."""
    key = jwk.JWK.generate(kty="RSA", size=size)
    data: dict[str, Any] = json.loads(key.export_private())
    data.update({"kid": key.thumbprint(), "use": "sig", "alg": "RS256"})
    return data


def _signing_keys(data: Any, profile: Profile | None = None) -> list[jwk.JWK]:
    """Load and check a private JWKS of signing keys (per alg, the first key signs; all are published)."""
    raw = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(raw, list) or not raw:
        raise ConfigError("signing_keys must be a private JWK Set: an object with a non-empty \"keys\" list")
    rsa_allowed = profile is not None and "RS256" in profile.client_signing_algs
    loaded = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ConfigError(f"signing_keys: key #{index} is not a JSON object")
        if item.get("kty") == "RSA" and rsa_allowed:
            if item.get("use", "sig") != "sig" or item.get("alg", "RS256") != "RS256":
                raise ConfigError(f"signing_keys: key #{index} must have use 'sig' and alg 'RS256'")
        elif item.get("kty") != "EC" or item.get("crv") != "P-256":
            what = "ES256 or RS256" if rsa_allowed else "ES256 only"
            raise ConfigError(f"signing_keys: key #{index} must be an EC P-256 key"
                              f"{' or an RSA key' if rsa_allowed else ''} (the platform signs with {what})")
        elif item.get("use", "sig") != "sig" or item.get("alg", "ES256") != "ES256":
            raise ConfigError(f"signing_keys: key #{index} must have use 'sig' and alg 'ES256'")
        if not item.get("kid") or not isinstance(item.get("kid"), str):
            raise ConfigError(f"signing_keys: key #{index} has no kid; relying parties select keys by kid")
        try:
            key = jwk.JWK(**dict(item))
        except (JWException, ValueError, TypeError) as exc:  # jwcrypto raises several types
            raise ConfigError(f"signing_keys: key #{index} is not a valid JWK ({exc.__class__.__name__})") from None
        if not key.has_private:
            raise ConfigError(f"signing_keys: key #{index} has no private part 'd'")
        if key.get("kty") == "RSA" and key.get_op_key("sign").key_size < RSA_SIGNING_KEY_BITS:
            raise ConfigError(f"signing_keys: key #{index} is shorter than {RSA_SIGNING_KEY_BITS} bits")
        loaded.append(key)
    kids = [key.get("kid") for key in loaded]
    if len(set(kids)) != len(kids):
        raise ConfigError("signing_keys: two keys share a kid")
    return loaded


def signing_alg_of(key: jwk.JWK) -> str:
    """The JWS alg a loaded signing key serves."""
    return "RS256" if key.get("kty") == "RSA" else "ES256"


@dataclass(frozen=True)
class DevProviderConfig:
    """The whole provider: platform profile, issuer URL, registered clients, test users, keys, TTLs.

    `profile` picks the platform imitated on the wire: "fcplus" (default), "franceconnect"
    or "proconnect". `issuer` fixes every endpoint URL (`https://host/api/v2` style); a
    trailing slash is removed so the discovery document and the id_token `iss` agree byte
    for byte. `identities` defaults to the profile's built-in test users (Identity
    citizens for FC and FC+, Agent agents for ProConnect). `signing_keys` is a private
    JWKS; when None, fresh keys are generated (ES256, plus RS256 where the platform
    offers it), so restarting the provider rotates them, which relying parties must cope
    with. Clients are stored with the profile's defaults filled in.
    """

    issuer: str
    clients: list[ClientConfig]
    identities: Sequence[Identity] | Sequence[Agent] | None = None
    signing_keys: dict[str, Any] | None = None
    code_ttl: int = 30
    access_token_ttl: int = 60
    id_token_ttl: int = 60
    profile: str = "fcplus"

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str) or self.profile not in PROFILE_NAMES:
            raise ConfigError(f"profile {self.profile!r} is unknown; choose one of {', '.join(PROFILE_NAMES)}")
        profile = PROFILES[self.profile]
        issuer = _check_url(self.issuer, "issuer", allow_query=False).rstrip("/")
        object.__setattr__(self, "issuer", issuer)
        if isinstance(self.clients, ClientConfig) or not isinstance(self.clients, Sequence) or not self.clients:
            raise ConfigError("clients must be a non-empty list of ClientConfig")
        if not all(isinstance(client, ClientConfig) for client in self.clients):
            raise ConfigError("clients must contain ClientConfig objects")
        ids = [client.client_id for client in self.clients]
        if len(set(ids)) != len(ids):
            raise ConfigError("two clients share a client_id")
        object.__setattr__(self, "clients", [client.for_profile(profile) for client in self.clients])
        self._check_identities(profile)
        for name in ("code_ttl", "access_token_ttl", "id_token_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 86400:
                raise ConfigError(f"{name} must be a whole number of seconds between 1 and 86400")
        if self.signing_keys is None:
            keys = [generate_ec_signing_key()]
            if "RS256" in profile.client_signing_algs:
                keys.append(generate_rsa_signing_key())
            object.__setattr__(self, "signing_keys", {"keys": keys})
        algs = {signing_alg_of(key) for key in _signing_keys(self.signing_keys, profile)}
        for client in self.clients:
            for alg in (client.id_token_alg, client.userinfo_alg):
                if alg not in algs:
                    raise ConfigError(f"client {client.client_id} registers {alg} but signing_keys has no {alg} key")

    def _check_identities(self, profile: Profile) -> None:
        wanted: type[Identity] | type[Agent] = Agent if profile.name == "proconnect" else Identity
        if self.identities is None:
            object.__setattr__(self, "identities", BUILTIN_AGENTS if wanted is Agent else BUILTIN_IDENTITIES)
        kind = "Agent (ProConnect agents)" if wanted is Agent else "Identity (citizens)"
        if isinstance(self.identities, str) or not isinstance(self.identities, Sequence) or not self.identities:
            raise ConfigError(f"identities must be a non-empty list of {kind}")
        if not all(isinstance(ident, wanted) for ident in self.identities):
            raise ConfigError(f"identities must contain {kind} objects for the {profile.label} profile")
        object.__setattr__(self, "identities", tuple(self.identities))
        uids = [ident.uid for ident in self.identities]
        if len(set(uids)) != len(uids):
            raise ConfigError("two identities share a uid")
        if wanted is Agent:
            known = {idp.idp_id for idp in BUILTIN_IDPS}
            for agent in self.identities:
                if isinstance(agent, Agent) and agent.idp_id not in known:
                    raise ConfigError(f"agent {agent.uid!r}: idp_id must be one of {', '.join(sorted(known))}")

    @property
    def platform(self) -> Profile:
        """The validated profile object."""
        return PROFILES[self.profile]

    @property
    def idps(self) -> tuple[TestIdp, ...]:
        """The test identity providers (ProConnect's idp_hint targets)."""
        return BUILTIN_IDPS

    def client(self, client_id: str) -> ClientConfig | None:
        """The registered client with this id, or None."""
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    def identity(self, uid: str) -> Identity | Agent | None:
        """The test user with this uid, or None."""
        for ident in self.identities or ():
            if ident.uid == uid:
                return ident
        return None

    def signing_jwks(self) -> list[jwk.JWK]:
        """The loaded private signing keys; per alg, the first one signs new tokens."""
        return _signing_keys(self.signing_keys, self.platform)
