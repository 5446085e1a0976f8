"""Pending logins kept in the browser's login cookie, sealed under a key only the service holds.

Why not in the store: every anonymous request to a protected path starts a login, and a row
written for each let anyone grow the store without bound (2,000 cookie-less GETs left 2,000
rows for ten minutes). Here a start writes nothing on the server; the record (nonce, PKCE
verifier, return-to path, requested level, hints) travels in the cookie the browser already
holds, AES-256-GCM sealed with the state and the browser secret as associated data, so it
cannot be read, forged, moved to another state nor planted in another browser's cookie.

Why the key comes from the client secret: every process and host of a service already shares
it (the token endpoint needs it), so a login started on one host finishes on any other with
no key to distribute, no key stored beside the data, and no restart-time generation race.
Whoever knows it can already act as the service at the provider, which is worse than forging
a pending login. Changing the secret ends the logins in flight (their users sign in again).

Single use: the middleware marks a state spent in the cookie at its callback, whatever the
outcome, and the flow records a used state in the store only once the provider has accepted
its code (so only real sign-ins write, never anonymous requests).

Pure logic apart from the CSPRNG: the caller passes `now`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import strictjson
from .sessions import looks_like_session_id

# Store kind of the used-state records: one per sign-in the provider accepted, for
# pending_login_ttl, keyed by a hash of the state like every other entry.
USED_STATE = "u"

# A cookie over 4,096 bytes is dropped by browsers (a login loop): keep the newest entries
# that fit, at most this many (tabs signing in at once, reloads).
MAX_ENTRIES = 6
MAX_COOKIE_CHARS = 3600
_TAG_CHARS = 16  # 96 bits of SHA-256(state): finds an entry, tells nothing of the state
_SECRET_CHARS = 43


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None  # canonical only: one cookie, one meaning


def state_tag(state: str) -> str:
    return _b64(hashlib.sha256(b"fcplus-pending-tag\x00" + state.encode()).digest())[:_TAG_CHARS]


@dataclass(frozen=True)
class LoginCookie:
    """The login cookie: the browser secret, then (tag, sealed record or "" once spent) pairs,
    oldest first. Written `secret.tag~blob.tag~`."""

    secret: str
    entries: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> LoginCookie | None:
        """None for anything that is not a cookie of ours (then a fresh one is issued)."""
        if not value:
            return None
        secret, *items = value.split(".")
        if not looks_like_session_id(secret) or len(items) > MAX_ENTRIES:
            return None
        entries = []
        for item in items:
            tag, sep, blob = item.partition("~")
            if not sep or len(tag) != _TAG_CHARS or _unb64(tag) is None or (blob and _unb64(blob) is None):
                return None
            entries.append((tag, blob))
        return cls(secret, tuple(entries))

    def render(self) -> str:
        return ".".join([self.secret, *(f"{tag}~{blob}" for tag, blob in self.entries)])

    def with_entry(self, tag: str, blob: str) -> LoginCookie:
        """Add or replace one entry, dropping the oldest ones until the cookie fits."""
        entries = [e for e in self.entries if e[0] != tag] + [(tag, blob)]
        cookie = LoginCookie(self.secret, tuple(entries[-MAX_ENTRIES:]))
        while len(cookie.entries) > 1 and len(cookie.render()) > MAX_COOKIE_CHARS:
            cookie = LoginCookie(self.secret, cookie.entries[1:])
        return cookie

    def spent(self, state: str) -> LoginCookie:
        """The same cookie with this state's entry marked used (kept, so a replay is told
        "expired, sign in again" rather than "another browser")."""
        tag = state_tag(state)
        if not any(t == tag and blob for t, blob in self.entries):
            return self
        return LoginCookie(self.secret, tuple((t, "" if t == tag else b) for t, b in self.entries))


class PendingSealer:
    """Seals pending-login records into the login cookie, and mints states it can recognise."""

    def __init__(self, client_secret: str, client_id: str, issuer: str) -> None:
        material = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"fcplus-pending-login-v1",
                        info=f"{issuer}\x00{client_id}".encode()).derive(client_secret.encode())
        self._aead = AESGCM(material[:32])
        self._mac_key = material[32:]

    # -- states -----------------------------------------------------------------------------------
    def new_state(self) -> str:
        """64 hex characters (FC+ asks for at least 32): 128 random bits and a 128-bit MAC, so a
        callback whose state this service minted but whose browser lacks it is told apart
        (login CSRF, another browser) from a made-up one, with no server-side record."""
        nonce = os.urandom(16)
        return (nonce + self._mac(nonce)).hex()

    def minted(self, state: str) -> bool:
        try:
            raw = bytes.fromhex(state)
        except ValueError:
            return False
        return len(raw) == 32 and hmac.compare_digest(raw[16:], self._mac(raw[:16]))

    def _mac(self, nonce: bytes) -> bytes:
        return hmac.new(self._mac_key, b"fcplus-state\x00" + nonce, hashlib.sha256).digest()[:16]

    # -- the cookie's secret ----------------------------------------------------------------------
    def new_secret(self) -> str:
        """43 characters like a session id: 128 random bits and a 128-bit MAC, so a secret the
        browser brings is kept only when this service made it; a well-formed value planted by
        someone else (a sibling subdomain, a shared computer) is replaced, not extended."""
        nonce = os.urandom(16)
        return _b64(nonce + self._secret_mac(nonce))

    def issued(self, secret: str) -> bool:
        raw = _unb64(secret)
        return raw is not None and len(raw) == 32 and hmac.compare_digest(raw[16:], self._secret_mac(raw[:16]))

    def _secret_mac(self, nonce: bytes) -> bytes:
        return hmac.new(self._mac_key, b"fcplus-browser-secret\x00" + nonce, hashlib.sha256).digest()[:16]

    # -- records ------------------------------------------------------------------------------------
    def add(self, cookie_value: str | None, state: str, record: dict[str, Any]) -> LoginCookie:
        """The login cookie to send back, holding this record (a fresh cookie when the browser
        had none of ours)."""
        cookie = LoginCookie.parse(cookie_value)
        if cookie is None or not self.issued(cookie.secret):
            cookie = LoginCookie(self.new_secret())  # a planted cookie is replaced, never extended
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, strictjson.dumps(record), self._aad(state, cookie.secret))
        return cookie.with_entry(state_tag(state), _b64(sealed))

    def open(self, cookie_value: str | None, state: str, *, now: float, ttl: float) -> tuple[str, dict[str, Any] | None]:
        """("open", record), ("spent", None) for a used or expired entry, or ("absent", None)
        for a cookie without this state, and a forged or moved entry."""
        cookie = LoginCookie.parse(cookie_value)
        if cookie is None:
            return "absent", None
        tag = state_tag(state)
        for entry_tag, blob in cookie.entries:
            if not secrets.compare_digest(entry_tag, tag):
                continue
            if not blob:
                return "spent", None
            raw = _unb64(blob)
            if raw is None or len(raw) < 29:
                return "absent", None
            try:
                plaintext = self._aead.decrypt(raw[:12], raw[12:], self._aad(state, cookie.secret))
                record = strictjson.loads(plaintext)
            except (InvalidTag, ValueError):
                return "absent", None
            started = record.get("t") if isinstance(record, dict) else None
            if not isinstance(record, dict) or not isinstance(started, (int, float)):
                return "absent", None
            if not 0 <= now - started < ttl:
                return "spent", None  # expired: "sign in again", like a used one
            return "open", record
        return "absent", None

    @staticmethod
    def _aad(state: str, secret: str) -> bytes:
        return b"fcplus-pending\x00" + state.encode() + b"\x00" + secret.encode()
