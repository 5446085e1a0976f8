"""In-memory, thread-safe state: pending interactions, authorization codes, access tokens.

The provider is served by several waitress threads, and a relying party's token
request can race a replayed one, so every read-modify-write happens under one lock.
Nothing survives a restart, which is fine for a development provider: codes live 30 s
and tokens 60 s. Expired entries are purged opportunistically and every map is
capped, so a script hammering /authorize cannot grow memory without bound.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

INTERACTION_TTL = 600  # seconds; FC+ core interaction/session TTL
SSO_TTL = 12 * 3600  # seconds; ProConnect's documented session length
MAX_ENTRIES = 10_000  # per map; oldest entries are dropped beyond this
_PURGE_EVERY = 5.0  # seconds between opportunistic purges


def new_secret() -> str:
    """A 256-bit random, URL-safe value (43 characters) for ids, codes and tokens."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Interaction:
    """A validated authorization request waiting for the user's choice on the login page."""

    id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    nonce: str | None
    min_acr: str
    expires_at: float
    acr_choices: tuple[str, ...] = ()
    code_challenge: str | None = None
    response_mode: str = "query"
    idp_hint: str | None = None
    login_hint: str | None = None
    siret_hint: str | None = None
    amr_requested: bool = True


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for, plus its redemption status."""

    code: str
    client_id: str
    redirect_uri: str
    uid: str
    acr: str
    nonce: str | None
    scopes: tuple[str, ...]
    auth_time: int
    sid: str
    expires_at: float
    used: bool = False
    access_token: str | None = None
    code_challenge: str | None = None
    amr_requested: bool = True


@dataclass(frozen=True)
class SsoSession:
    """A provider-side login kept in a browser cookie (ProConnect profile), reused for SSO."""

    id: str
    uid: str
    acr: str
    auth_time: int
    sid: str
    expires_at: float


@dataclass(frozen=True)
class AccessToken:
    """An issued bearer token: whose it is, for which client and scopes, until when."""

    token: str
    client_id: str
    uid: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False
    acr: str = ""


class RedeemError(Exception):
    """Why a code cannot be redeemed; `str()` is a safe, ASCII error_description."""


_V = TypeVar("_V")


class Store:
    """All mutable provider state behind a single lock, with an injectable clock."""

    def __init__(self, clock: Callable[[], float], code_ttl: int, access_token_ttl: int) -> None:
        # Live tokens revoked through RFC 7009, per client: lets a service's CI check that its
        # logout really revokes at the provider.
        self.revocations: dict[str, int] = {}
        self._clock = clock
        self._code_ttl = code_ttl
        self._access_token_ttl = access_token_ttl
        self._lock = threading.Lock()
        self._interactions: dict[str, Interaction] = {}
        self._codes: dict[str, CodeGrant] = {}
        self._tokens: dict[str, AccessToken] = {}
        self._sessions: dict[str, SsoSession] = {}
        self._last_purge = 0.0

    def now(self) -> float:
        return self._clock()

    # -- housekeeping (call with the lock held) ---------------------------------------

    def _purge(self, now: float) -> None:
        if now - self._last_purge < _PURGE_EVERY:
            return
        self._last_purge = now
        self._interactions = {k: v for k, v in self._interactions.items() if v.expires_at > now}
        # Used codes are kept while their access token may live, so a replay can revoke it.
        keep = self._access_token_ttl
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at + keep > now}
        self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
        self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}

    @staticmethod
    def _cap(mapping: dict[str, _V]) -> None:
        while len(mapping) > MAX_ENTRIES:
            del mapping[next(iter(mapping))]

    # -- interactions -----------------------------------------------------------------

    def add_interaction(self, client_id: str, redirect_uri: str, scopes: tuple[str, ...], state: str,
                        nonce: str | None, min_acr: str, **extra: Any) -> Interaction:
        """Record a validated request; `extra` holds the optional Interaction fields."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            item = Interaction(new_secret(), client_id, redirect_uri, scopes, state, nonce, min_acr,
                               now + INTERACTION_TTL, **extra)
            self._interactions[item.id] = item
            self._cap(self._interactions)
            return item

    def pop_interaction(self, interaction_id: str) -> Interaction | None:
        """Take an interaction out (single use); None when unknown, used or expired."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            item = self._interactions.pop(interaction_id, None)
            if item is None or item.expires_at <= now:
                return None
            return item

    # -- authorization codes ----------------------------------------------------------

    def add_code(self, interaction: Interaction, uid: str, acr: str,
                 session: SsoSession | None = None) -> CodeGrant:
        """A code for this interaction; with `session`, one reusing that earlier login (SSO)."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            grant = CodeGrant(
                code=new_secret(), client_id=interaction.client_id, redirect_uri=interaction.redirect_uri,
                uid=uid, acr=acr, nonce=interaction.nonce, scopes=interaction.scopes,
                auth_time=session.auth_time if session else int(now), sid=session.sid if session else new_secret(),
                expires_at=now + self._code_ttl, code_challenge=interaction.code_challenge,
                amr_requested=interaction.amr_requested,
            )
            self._codes[grant.code] = grant
            self._cap(self._codes)
            return grant

    def _check_code(self, code: str, client_id: str, redirect_uri: str | None, now: float) -> CodeGrant:
        grant = self._codes.get(code)
        if grant is None or grant.client_id != client_id:
            raise RedeemError("authorization code is unknown")
        if grant.used:
            # RFC 6749 §4.1.2: a replayed code should revoke what it produced.
            if grant.access_token is not None:
                self._revoke(grant.access_token)
            raise RedeemError("authorization code was already used")
        if grant.expires_at <= now:
            raise RedeemError("authorization code has expired")
        if redirect_uri != grant.redirect_uri:
            raise RedeemError("redirect_uri does not match the one used at the authorization endpoint")
        return grant

    def peek_code(self, code: str, client_id: str, redirect_uri: str | None) -> CodeGrant:
        """Check a code without consuming it, so slow work (key fetch) can run unlocked."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            return self._check_code(code, client_id, redirect_uri, now)

    def redeem_code(self, code: str, client_id: str, redirect_uri: str | None, access_token: str) -> AccessToken:
        """Atomically re-check and consume a code, recording the access token it produced."""
        with self._lock:
            now = self._clock()
            grant = self._check_code(code, client_id, redirect_uri, now)
            self._codes[code] = replace(grant, used=True, access_token=access_token)
            token = AccessToken(access_token, grant.client_id, grant.uid, grant.scopes,
                                now + self._access_token_ttl, acr=grant.acr)
            self._tokens[access_token] = token
            self._cap(self._tokens)
            return token

    # -- access tokens ----------------------------------------------------------------

    def _revoke(self, access_token: str) -> None:
        token = self._tokens.get(access_token)
        if token is not None:
            self._tokens[access_token] = replace(token, revoked=True)

    def access_token(self, access_token: str) -> AccessToken | None:
        """The live token record, or None when unknown, expired or revoked."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            token = self._tokens.get(access_token)
            if token is None or token.revoked or token.expires_at <= now:
                return None
            return token

    def revoke_access_token(self, access_token: str, client_id: str) -> bool:
        """Revoke a token of this client; False when the token is another client's (left alone)."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None:
                return True  # unknown or expired: nothing to do, RFC 7009 §2.2 answers 200
            if token.client_id != client_id:
                return False
            if not token.revoked:
                self.revocations[client_id] = self.revocations.get(client_id, 0) + 1
            self._revoke(access_token)
            return True

    # -- provider sessions (ProConnect SSO) -------------------------------------------

    def add_session(self, uid: str, acr: str, sid: str) -> SsoSession:
        with self._lock:
            now = self._clock()
            self._purge(now)
            item = SsoSession(new_secret(), uid, acr, int(now), sid, now + SSO_TTL)
            self._sessions[item.id] = item
            self._cap(self._sessions)
            return item

    def session(self, session_id: str) -> SsoSession | None:
        """The live session with this id, or None when unknown or expired."""
        with self._lock:
            now = self._clock()
            item = self._sessions.get(session_id)
            if item is None or item.expires_at <= now:
                return None
            return item

    def drop_session(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
