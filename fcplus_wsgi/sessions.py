"""How flow state is kept in a store without the store being able to betray it.

Every entry is addressed by a hash of its secret (session id, state) and sealed with
AES-GCM under another hash of the same secret, so a leaked database or Redis dump holds
neither usable cookies nor readable tokens, and one entry cannot be moved to another key
(the key is bound as associated data). Pure functions apart from the random nonce.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import strictjson

SESSION = "s"
PENDING_LOGIN = "p"
PENDING_LOGOUT = "l"

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


def new_session_id() -> str:
    """43 url-safe characters: 256 bits from the OS CSPRNG."""
    return secrets.token_urlsafe(32)


def new_state() -> str:
    """64 hex characters, as FC+ asks for state and nonce (at least 32)."""
    return secrets.token_hex(32)


def looks_like_session_id(value: str | None) -> bool:
    return value is not None and _TOKEN_RE.fullmatch(value) is not None


def looks_like_state(value: str | None) -> bool:
    return value is not None and _HEX64_RE.fullmatch(value) is not None


# Copying a hash already fed the constant prefix skips building a digest context from
# scratch on every request; the result is the same SHA-256.
_STORE_KEY_HASH = hashlib.sha256(b"fcplus-key\x00")


def store_key(kind: str, secret: str) -> str:
    digest = _STORE_KEY_HASH.copy()
    digest.update(secret.encode())
    return kind + ":" + digest.hexdigest()


def _cipher(secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"fcplus-seal\x00" + secret.encode()).digest())


def seal(kind: str, secret: str, record: dict[str, Any]) -> bytes:
    nonce = os.urandom(12)
    plaintext = strictjson.dumps(record)
    return nonce + _cipher(secret).encrypt(nonce, plaintext, kind.encode())


def unseal(kind: str, secret: str, blob: bytes) -> dict[str, Any] | None:
    """The record, or None when the blob was not sealed for this secret and kind."""
    if len(blob) < 29:
        return None
    try:
        plaintext = _cipher(secret).decrypt(blob[:12], blob[12:], kind.encode())
    except InvalidTag:
        return None
    record = strictjson.loads(plaintext, max_depth=strictjson.MAX_DEPTH + 4)
    return record if isinstance(record, dict) else None


def binding_hash(browser_secret: str) -> str:
    """What a pending login stores to recognise the browser that started it."""
    return hashlib.sha256(b"fcplus-bind\x00" + browser_secret.encode()).hexdigest()


# Secrets one pending-login cookie carries: one per login started in the last
# pending_login_ttl, so that many tabs can finish in any order; the oldest falls off.
MAX_BINDINGS = 8
_MAX_BINDING_COOKIE = MAX_BINDINGS * 44


def binding_secrets(cookie: str | None) -> list[str]:
    """The well-formed secrets of a pending-login cookie, newest first, at most MAX_BINDINGS."""
    if not cookie or len(cookie) > _MAX_BINDING_COOKIE:
        return []
    return [value for value in cookie.split(".") if looks_like_session_id(value)][:MAX_BINDINGS]


def new_binding(cookie: str | None) -> tuple[str, str]:
    """A fresh secret for a login about to start, and the cookie value that carries it.

    The new login is bound to a value made here, never to one the request brought: a
    cookie planted by someone else (a sibling subdomain, a shared computer) must not be
    the binding of the victim's next login, or its planter could finish that login with
    a leaked callback URL. The previous secrets stay in the cookie only so that logins
    already started in other tabs can still finish."""
    fresh = new_session_id()
    kept = [value for value in binding_secrets(cookie) if value != fresh][: MAX_BINDINGS - 1]
    return fresh, ".".join([fresh, *kept])


def binding_matches(cookie: str | None, bind: str) -> bool:
    """Whether one of the cookie's secrets is the one a pending entry was bound to; every
    secret is compared, in constant time, so the answer does not time which one matched."""
    found = False
    for value in binding_secrets(cookie):
        found |= secrets.compare_digest(binding_hash(value), bind)
    return found
