"""The service's own key material: generation, loading and the public JWKS.

FC+ encrypts id_tokens and userinfo to keys the service publishes, so the service
holds private decryption keys and publishes only their public halves. Everything
here is about *our* keys; the provider's signing keys live in the provider client.
This module is shared with the development provider, which uses it to make its own
signing keys, so it stays free of any OpenID Connect flow logic.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwcrypto import jwk

# JWE key-management algorithms each key type can serve. RSA-OAEP (SHA-1) is what FC+
# documents; RSA-OAEP-256 is also in the FC+ core's id_token and userinfo lists and is what
# other providers often choose. ECDH-ES is direct key agreement on P-256, as FC+ uses it.
# A key that declares `alg` serves only that one; a key without `alg` serves every
# algorithm of its type listed here (RFC 7517 4.4: `alg` is optional).
RSA_ENC_ALGS = ("RSA-OAEP", "RSA-OAEP-256")
EC_ENC_ALGS = ("ECDH-ES",)


class KeyFileError(ValueError):
    """A keys file that cannot serve: the message names the file and the fix."""


def _with_kid(key: jwk.JWK, use: str, alg: str | None) -> dict[str, Any]:
    """The private JWK as a dict with kid (RFC 7638 thumbprint), use and, when given, alg."""
    data: dict[str, Any] = json.loads(key.export_private())
    data["kid"] = key.thumbprint()
    data["use"] = use
    if alg is not None:
        data["alg"] = alg
    return data


def generate_rsa_encryption_key(size: int = 3072) -> dict[str, Any]:
    """A private RSA JWK with `use: enc` and no `alg` (kid = RFC 7638 thumbprint).

    No `alg` on purpose: providers pick the client's encryption key by alg, use and kty
    (node oidc-provider, which FC+'s core runs, takes a key without alg as a candidate for
    any RSA alg, but one with alg only for that alg). Pinned to RSA-OAEP, a provider that
    chose RSA-OAEP-256 found no key at all. One key without alg serves both OAEP variants;
    ServiceKeys.decryption_keys limits it to RSA_ENC_ALGS on our side."""
    return _with_kid(jwk.JWK.generate(kty="RSA", size=size), "enc", None)


def generate_ec_encryption_key() -> dict[str, Any]:
    """A private P-256 JWK for ECDH-ES decryption."""
    return _with_kid(jwk.JWK.generate(kty="EC", crv="P-256"), "enc", "ECDH-ES")


def generate_ec_signing_key() -> dict[str, Any]:
    """A private P-256 JWK for ES256 signatures."""
    return _with_kid(jwk.JWK.generate(kty="EC", crv="P-256"), "sig", "ES256")


def generate_private_jwks() -> dict[str, Any]:
    """A complete private JWKS for a service: RSA and EC encryption keys plus an EC signing key."""
    return {
        "keys": [
            generate_rsa_encryption_key(),
            generate_ec_encryption_key(),
            generate_ec_signing_key(),
        ]
    }


_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def public_jwks(private: dict[str, Any]) -> dict[str, Any]:
    """The publishable half of a JWKS: public members only, symmetric keys dropped."""
    out = []
    for key in private.get("keys", []):
        if key.get("kty") == "oct":
            continue
        out.append({k: v for k, v in key.items() if k not in _PRIVATE_MEMBERS})
    return {"keys": out}


def operation_keys(keys: Iterable[jwk.JWK], operation: str) -> tuple[Any, ...]:
    """Each key as the `cryptography` object jwcrypto gives for `operation` ("unwrapKey",
    "verify"), or None where jwcrypto refuses it (its `use` or `key_ops` say otherwise):
    built once, so opening a token never rebuilds a key from its JWK members."""
    built = []
    for key in keys:
        try:
            built.append(key.get_op_key(operation))
        except Exception:  # noqa: BLE001 - jwcrypto raises several types; such a key is never a candidate
            built.append(None)
    return tuple(built)


@dataclass(frozen=True)
class ServiceKeys:
    """Loaded service keys, indexed for the two questions the flow asks.

    `decryption_keys` answers "which private key opens this JWE" (by kid, or every
    candidate when the provider omitted kid); `public` is what jwks_path serves.
    """

    keys: tuple[jwk.JWK, ...]
    public: dict[str, Any]
    # The private halves as `cryptography` objects, made once: fcplus_wsgi.jose opens
    # tokens with these, so no login pays for rebuilding a key from its JWK members.
    _private: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    # (kid, alg) -> the candidates found: every login asks the same question. Only answers
    # with candidates are kept, so a stream of made-up kids cannot grow it.
    _found: dict[tuple[str | None, str | None], tuple[Any, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_private", operation_keys(self.keys, "unwrapKey"))

    @property
    def public_json(self) -> bytes:
        return json.dumps(self.public, separators=(",", ":")).encode()

    def decryption_keys(self, kid: str | None, alg: str | None) -> tuple[Any, ...]:
        """Private keys (`cryptography` objects) that may decrypt a JWE with this header kid and alg.

        A candidate has the kty `alg` needs, a `use` that allows decryption (jwcrypto's
        check in operation_keys), the JWE's kid when it names one, and either no `alg` or
        exactly this one: a key must never serve an algorithm it was not published for."""
        known = self._found.get((kid, alg))
        if known is not None:
            return known
        kty = "RSA" if alg in RSA_ENC_ALGS else "EC" if alg in EC_ENC_ALGS else None
        if kty is None:
            return ()
        # A key's declared alg is binding (RFC 7517 4.4): a key published for RSA-OAEP never
        # opens an RSA-OAEP-256 JWE. A key without alg serves every alg of its kty.
        found = tuple(
            private for key, private in zip(self.keys, self._private, strict=True)
            if private is not None and key.get("kty") == kty and key.get("alg") in (None, alg)
            and (kid is None or key.get("kid") == kid))
        if found:
            self._found[(kid, alg)] = found
        return found

    def has_encryption_key(self, alg: str) -> bool:
        return bool(self.decryption_keys(None, alg))


def keys_from_jwks(data: dict[str, Any], source: str = "keys") -> ServiceKeys:
    """Build ServiceKeys from a private JWKS dict, refusing anything that cannot decrypt."""
    raw = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise KeyFileError(f"{source} holds no JWK Set: expected a JSON object with a non-empty \"keys\" list "
                           "(create one with `fcplus-wsgi keys generate --out keys.json`).")
    loaded = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise KeyFileError(f"{source}: key #{index} is not a JSON object.")
        try:
            key = jwk.JWK(**item)
        except Exception as exc:  # noqa: BLE001 - jwcrypto raises several types for bad members
            raise KeyFileError(f"{source}: key #{index} is not a valid JWK ({exc.__class__.__name__}).") from None
        if not key.has_private:
            raise KeyFileError(f"{source}: key #{index} (kid {item.get('kid', '?')}) has no private part; "
                               "keys_file must hold the private keys, publish only `fcplus-wsgi keys public`.")
        if not item.get("kid"):
            raise KeyFileError(f"{source}: key #{index} has no kid; every key needs one so providers can name it.")
        loaded.append(key)
    return ServiceKeys(keys=tuple(loaded), public=public_jwks({"keys": raw}))


def keys_file_warnings(path: str | Path) -> list[str]:
    """What works but should not: private keys that other accounts on the host can read.

    A warning, not a refusal: some deployments hand the file over through a group on
    purpose (a secrets agent), and refusing would stop a service that runs today."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []
    if stat.S_ISREG(mode) and mode & 0o077:
        return [f"keys_file {path} is readable by group or others (mode {stat.S_IMODE(mode):04o}) although it holds "
                f"private keys; run chmod 600 {path}."]
    return []


def load_keys_file(path: str | Path) -> ServiceKeys:
    """Read a private JWKS file; every failure is a KeyFileError naming the file and its own fix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"keys_file {p} does not exist; create it with "
                           f"`fcplus-wsgi keys generate --out {p}` (mode 0600).") from None
    except PermissionError:
        # Not a missing file: generating new keys would change the keys the provider encrypts to.
        raise KeyFileError(f"keys_file {p} cannot be read by this user ({_user()}): permission denied; give the "
                           f"service's user access (chown it to that user, then chmod 600 {p}, and let it "
                           "search the folders above) rather than generating new keys.") from None
    except IsADirectoryError:
        raise KeyFileError(f"keys_file {p} is a directory; point keys_file at the JSON file itself.") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"keys_file {p} is not UTF-8 text; it must be a private JWK Set (JSON).") from None
    except OSError as exc:
        raise KeyFileError(f"keys_file {p} cannot be read ({exc.strerror}).") from None
    for warning in keys_file_warnings(p):
        logging.getLogger("fcplus_wsgi").warning(warning)
    try:
        data = json.loads(text)
    except ValueError:
        raise KeyFileError(f"keys_file {p} is not JSON; it must be a private JWK Set.") from None
    return keys_from_jwks(data, source=f"keys_file {p}")


def _user() -> str:
    """The account name for a permission message (the uid when the name is unknown)."""
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def write_private_jwks(path: str | Path, jwks: dict[str, Any]) -> None:
    """Write a new private JWKS readable by its owner only, refusing to replace a file.

    `keys generate > file` creates the file with the shell's umask (0644 usually) before
    a single key is written; opening with O_EXCL and mode 0600 leaves no such window, and
    never overwriting keeps a typo from destroying the keys a provider encrypts to."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(jwks, indent=2) + "\n")
    os.chmod(path, 0o600)  # a umask can only remove bits; this makes the mode exact
