"""The sign-in and sign-out steps, orchestrated: each one emits an event and either
succeeds or raises a FlowError with a catalogue code.

This layer knows OpenID Connect and the store, but not WSGI: the middleware hands it
plain values (query parameters, cookie values, a return-to path) and turns its results
into responses. Collaborators (client, store, keys, clock, bus) are injected so tests
drive it with real servers and a controllable clock.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from . import strictjson
from .authorize import authorization_params, authorization_url, new_code_verifier, s256_challenge
from .client import ProviderClient, flow_correlation_id
from .errors import FlowError, authorization_error
from .events import EventBus, FlowEvent
from .identity import Identity
from .keys import ServiceKeys
from .pending import USED_STATE, PendingSealer
from .sessions import (
    PENDING_LOGIN,
    PENDING_LOGOUT,
    SESSION,
    binding_hash,
    binding_matches,
    looks_like_session_id,
    looks_like_state,
    new_binding,
    new_session_id,
    new_state,
    seal,
    store_key,
    unseal,
)
from .settings import Settings
from .stores import Store, StoreError
from .stores.base import remember
from .tokens import (
    Expected,
    SignatureMismatch,
    UnknownSigningKey,
    jws_alg,
    open_token,
    validate_id_token,
    validate_userinfo,
)

# RFC 6750 2.1 b64token, capped: access tokens are opaque strings or JWTs of a few KB.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{1,8192}=*")

# Callback parameters: generous caps, far below what would hurt, far above real values.
_PARAM_CAPS = {"state": 128, "code": 4096, "error": 128, "error_description": 2048, "error_uri": 2048,
               "iss": 512, "session_state": 512}


def new_correlation_id() -> str:
    """Short enough to read out over the phone, long enough to find one flow in the logs."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class LoginStart:
    url: str
    browser_secret: str


# Answers to a silent login (prompt=none) that mean "the user must interact": the login
# starts again, interactively, by itself (ProConnect documents exactly this fallback).
SILENT_FALLBACK_ERRORS = frozenset({"login_required", "interaction_required", "consent_required",
                                    "account_selection_required"})


class SilentLoginFailed(Exception):
    """A silent login came back with an interaction error: start an interactive one for the
    same return-to, level and hints (the callback failure was already counted)."""

    def __init__(self, error: FlowError, return_to: str, acr: tuple[str, ...], hints: dict[str, str]) -> None:
        super().__init__("silent login needs interaction")
        self.error = error
        self.return_to = return_to
        self.acr = acr
        self.hints = hints


@dataclass(frozen=True)
class LoginDone:
    session_id: str
    return_to: str
    record: dict[str, Any]
    correlation_id: str


@dataclass(frozen=True)
class LogoutStart:
    """Where to send the browser after the local session is gone.

    `target` is the provider's end_session URL or the landing path; `provider_unreachable`
    says the provider could not be asked to end its own session, which users must be told.
    """

    target: str
    browser_secret: str
    provider_unreachable: bool = False


@dataclass(frozen=True)
class SessionView:
    """A live session as the middleware needs it per request."""

    record: dict[str, Any]
    identity: Identity
    ended: str | None = None  # "idle" | "max_age" when it just expired


SESSION_CACHE_SIZE = 4096
# Stored sessions outlive their logical expiry by this much, so a user who comes back just
# after it is told (and counted) why the session ended; the limits themselves are enforced
# exactly by load_session, and the backend purges the entry when the grace runs out.
EXPIRY_GRACE = 300


class Flow:
    def __init__(self, settings: Settings, *, client: ProviderClient, store: Store,
                 service_keys: ServiceKeys | None, bus: EventBus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.keys = service_keys
        self.bus = bus or EventBus()
        self.clock = clock
        self.provider = settings.provider_name
        # Pending logins travel sealed in the login cookie: starting one writes nothing here.
        self.pending = PendingSealer(settings.client_secret, settings.client_id, settings.issuer)
        # States being redeemed in this process, so two concurrent callbacks of one state do
        # not both reach the token endpoint (across processes the provider's single-use code
        # decides). Bounded: only states this service minted and the browser held get here.
        self._redeeming: dict[str, float] = {}
        # Opened sessions by session id, valid only while the stored blob is byte-identical:
        # the store is still read on every request (expiry, logout and other processes are
        # seen at once), but AES-GCM and JSON run once per change, not once per request.
        # Each entry keeps its store key (so a known cookie skips the format check and the
        # SHA-256 of store_key), the blob, the view it returns and the two lifetimes'
        # timestamps, so a request touches neither the record nor a new object (measured:
        # this runs with cold caches between real requests, where every object touched costs).
        # Only ids whose entry unsealed are ever added; any other cookie value just misses.
        self._opened: dict[str, tuple[str, bytes, SessionView, float, float]] = {}

    # -- events ---------------------------------------------------------------------------------
    def _emit(self, step: str, outcome: str, cid: str, request_id: str | None, *, started: float | None = None,
              error: FlowError | None = None, acr: str | None = None, **extra: Any) -> None:
        self.bus.emit(FlowEvent(
            step=step, outcome=outcome, provider=self.provider, correlation_id=cid, request_id=request_id,
            duration=(time.perf_counter() - started) if started is not None else None,
            error=error.code if error else None, category=error.spec.category.value if error else None,
            acr=acr, extra=extra))

    @contextmanager
    def _step(self, step: str, cid: str, request_id: str | None) -> Iterator[None]:
        started = time.perf_counter()
        # Provider calls made inside the step log this correlation id (client.flow_correlation_id).
        outer = flow_correlation_id.set(cid)
        try:
            yield
        except FlowError as exc:
            # The page and the log must show the same correlation id.
            exc.correlation_id = exc.correlation_id or cid
            self._emit(step, "failure", exc.correlation_id, request_id, started=started, error=exc)
            raise
        except StoreError as exc:
            err = FlowError("store_unavailable", detail=str(exc))
            err.correlation_id = cid
            self._emit(step, "failure", cid, request_id, started=started, error=err)
            raise err from None
        finally:
            flow_correlation_id.reset(outer)
        self._emit(step, "success", cid, request_id, started=started)

    # -- login ----------------------------------------------------------------------------------
    def start_login(self, *, return_to: str, browser_secret: str | None, acr_values: Sequence[str] | None = None,
                    request_id: str | None = None, prompt: str | None = None,
                    hints: Mapping[str, str] | None = None) -> LoginStart:
        """Create the pending login and the authorization URL.

        `prompt` (per login, e.g. none for a silent attempt) replaces the configured one,
        and "" sends none;
        `hints` are already validated login hints the platform accepts. PKCE follows the
        wire profile (or the pkce setting), never discovery alone: FranceConnect's
        discovery advertises S256 while its core refuses code_challenge.
        """
        cid = new_correlation_id()
        s = self.settings
        acr = tuple(acr_values) if acr_values else s.acr_values
        # None: the configured prompt; "" (the interactive retry of a silent login): none at all.
        prompt = (s.prompt if prompt is None else prompt) or None
        with self._step("login_redirect", cid, request_id):
            metadata = self.client.metadata()
            state, nonce = self.pending.new_state(), new_state()
            use_pkce = s.pkce if s.pkce is not None else "S256" in metadata.code_challenge_methods
            verifier = new_code_verifier() if use_pkce else None
            try:
                params = authorization_params(
                    s.wire, client_id=s.client_id, redirect_uri=s.redirect_uri, scopes=s.scopes, state=state,
                    nonce=nonce, acr_values=acr, prompt=prompt, claims=s.claims,
                    code_challenge=s256_challenge(verifier) if verifier else None, hints=hints)
            except ValueError as exc:
                raise FlowError("login_parameter_invalid", detail=str(exc)) from None
            record: dict[str, Any] = {"nonce": nonce, "verifier": verifier, "return_to": return_to,
                                      "acr": list(acr), "cid": cid, "t": self.clock()}
            if prompt == "none":
                record["silent"] = True
            if hints:
                record["hints"] = dict(hints)
            cookie = self.pending.add(browser_secret, state, record).render()
            url = authorization_url(metadata.authorization_endpoint, params)
        return LoginStart(url=url, browser_secret=cookie)

    @staticmethod
    def single_params(params: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """One value per known parameter, or callback_malformed: duplicated security
        parameters are an attack pattern (parameter pollution), not something to pick from."""
        out: dict[str, str] = {}
        for name, cap in _PARAM_CAPS.items():
            values = params.get(name, ())
            if len(values) > 1:
                raise FlowError("callback_malformed", detail=f"repeated parameter {name}")
            if values:
                value = values[0]
                if len(value) > cap:
                    raise FlowError("callback_malformed", detail=f"{name} longer than {cap}")
                if name != "error_description" and any(ord(c) < 0x21 or ord(c) > 0x7E for c in value):
                    raise FlowError("callback_malformed", detail=f"{name} has control or non-ASCII characters")
                out[name] = value
        return out

    def _take_pending(self, kind: str, state: str, cookie: str | None = None) -> dict[str, Any] | None:
        """The pending entry of a state, once. Logins: from the browser's login cookie, unless
        the state was used already (a record written once the provider accepted its code) or
        is being redeemed in this process; a state this service minted that the browser does
        not hold comes back as {"bound": False} (another browser: login CSRF)."""
        if kind != PENDING_LOGIN:
            blob = self.store.take(store_key(kind, state))
            return unseal(kind, state, blob) if blob is not None else None
        if self.store.get(store_key(USED_STATE, state)) is not None:
            return None
        found, record = self.pending.open(cookie, state, now=self.clock(), ttl=self.settings.pending_login_ttl)
        if found == "spent":
            return None
        if record is None:
            return {"bound": False} if self.pending.minted(state) else None
        if state in self._redeeming:
            return None
        remember(self._redeeming, state, self.clock(), 16384)
        return {**record, "bound": True, "used_key": store_key(USED_STATE, state)}

    def _mark_used(self, pending: dict[str, Any]) -> None:
        """Once the provider accepted the code: only real sign-ins ever write this record."""
        self.store.put(str(pending["used_key"]), b"1", self.settings.pending_login_ttl)

    def finish_login(self, params: Mapping[str, Sequence[str]], *, browser_secret: str | None,
                     request_id: str | None = None) -> LoginDone:
        cid = new_correlation_id()
        started = time.perf_counter()
        try:
            p, pending = self._check_callback(params, browser_secret)
        except FlowError as exc:
            cid = exc.correlation_id or cid
            exc.correlation_id = cid
            self._emit("callback", "failure", cid, request_id, started=started, error=exc)
            raise
        except SilentLoginFailed as silent:
            cid = silent.error.correlation_id or cid
            self._emit("callback", "failure", cid, request_id, started=started, error=silent.error)
            raise
        cid = str(pending["cid"])
        self._emit("callback", "success", cid, request_id, started=started)
        try:
            return self._finish_login(p, pending, cid, request_id)
        except FlowError as exc:
            exc.correlation_id = cid
            raise

    def _check_callback(self, params: Mapping[str, Sequence[str]],
                        browser_secret: str | None) -> tuple[dict[str, str], dict[str, Any]]:
        p = self.single_params(params)
        state = p.get("state")
        if state is None:
            raise FlowError("state_missing")
        try:
            pending = self._take_pending(PENDING_LOGIN, state, browser_secret) if looks_like_state(state) else None
        except StoreError as exc:
            raise FlowError("store_unavailable", detail=str(exc)) from None
        if pending is None:
            raise FlowError("state_unknown")
        try:
            if pending.get("bound") is not True:
                raise FlowError("state_browser_mismatch")
            if "iss" in p and p["iss"] != self.settings.issuer:
                raise FlowError("issuer_mismatch_callback")
            if "iss" not in p and self.client.metadata().raw.get("authorization_response_iss_parameter_supported") is True:
                # RFC 9207 2.4: a provider that advertises iss always sends it, so a callback
                # without it did not come from that provider (mix-up attack).
                raise FlowError("issuer_mismatch_callback", detail="iss missing though discovery advertises it")
            if "error" in p:
                error = authorization_error(p["error"], p.get("error_description"))
                if pending.get("silent") and error.code in SILENT_FALLBACK_ERRORS:
                    error.correlation_id = str(pending.get("cid") or "") or None
                    raise SilentLoginFailed(
                        error, str(pending.get("return_to") or "/"), tuple(pending.get("acr") or ()),
                        {str(k): str(v) for k, v in (pending.get("hints") or {}).items()})
                raise error
            if not p.get("code"):
                raise FlowError("callback_malformed", detail="no code and no error")
        except FlowError as exc:
            exc.correlation_id = str(pending.get("cid") or "") or None
            # Where the refused login was going and at which level, so its retry link goes there too.
            exc.return_to = str(pending.get("return_to") or "/")
            exc.acr = tuple(str(a) for a in pending.get("acr") or ())
            raise
        pending.setdefault("cid", new_correlation_id())
        return p, pending

    def _finish_login(self, p: dict[str, str], pending: dict[str, Any], cid: str,
                      request_id: str | None) -> LoginDone:
        s = self.settings
        code = p["code"]
        with self._step("token", cid, request_id):
            tokens = self.client.exchange_code(
                code=code, redirect_uri=s.redirect_uri, client_id=s.client_id, client_secret=s.client_secret,
                auth_method=s.token_endpoint_auth_method, code_verifier=pending.get("verifier"))
            self._mark_used(pending)  # the provider accepted the code: this state is spent everywhere
            access_token = tokens["access_token"]
            if not _B64TOKEN.fullmatch(access_token):
                # RFC 6750 2.1 b64token: it goes into an Authorization header, at_hash hashes
                # its ASCII bytes and the session stores it; anything else is refused here.
                raise FlowError("provider_bad_response", detail="access_token is not an RFC 6750 b64token")

        acr_requested = tuple(pending.get("acr") or ())
        with self._step("id_token", cid, request_id):
            raw = tokens.get("id_token")
            if not isinstance(raw, str) or not raw:
                raise FlowError("id_token_missing")
            id_claims, id_jws = self._open(raw, "id_token", s.policy.id_token_signing_algs)
            validate_id_token(id_claims, Expected(
                issuer=s.issuer, client_id=s.client_id, nonce=str(pending["nonce"]), acr_values=acr_requested,
                clock_skew=s.clock_skew, now=self.clock(), access_token=access_token),
                alg=_header_alg(id_jws))
        acr = id_claims.get("acr") if isinstance(id_claims.get("acr"), str) else None

        claims: dict[str, Any] = {}
        if self.client.metadata().userinfo_endpoint is not None:
            with self._step("userinfo", cid, request_id):
                claims = self._userinfo(access_token, str(id_claims["sub"]))

        session_id = new_session_id()
        now = self.clock()
        record = {"v": 1, "sub": id_claims["sub"], "claims": claims, "idc": id_claims, "idt": id_jws,
                  "at": access_token, "acr": acr, "prov": self.provider, "created": now, "seen": now,
                  "cid": cid}
        with self._step("session", cid, request_id):
            self.store.put(store_key(SESSION, session_id), seal(SESSION, session_id, record),
                           min(s.session_idle_timeout, s.session_max_age) + EXPIRY_GRACE)
        self.bus.emit(FlowEvent(step="login", outcome="success", provider=self.provider, correlation_id=cid,
                                request_id=request_id, duration=max(0.0, self.clock() - float(pending.get("t", now))),
                                acr=acr))
        return LoginDone(session_id=session_id, return_to=str(pending.get("return_to") or "/"), record=record,
                         correlation_id=cid)

    def _open(self, token: Any, prefix: str, algs: Sequence[str]) -> tuple[dict[str, Any], str]:
        """Decrypt and verify, refetching the provider JWKS once on an unknown kid, and on a
        signature that does not verify where the platform asks for that (FranceConnect
        rotates keys and tells relying parties to refetch and retry once). The refetch is
        rate-limited by the client either way."""
        kwargs = {"service_keys": self.keys, "policy": self.settings.policy, "algs": algs, "prefix": prefix,
                  "client_secret": self.settings.client_secret if self.settings.allow_hs256 else None}
        try:
            return open_token(token, provider=self.client.keys(), **kwargs)  # type: ignore[arg-type]
        except (UnknownSigningKey, SignatureMismatch) as exc:
            if isinstance(exc, SignatureMismatch) and not self.settings.policy.refetch_jwks_on_bad_signature:
                raise
            fresh = self.client.refresh_keys_for_unknown_kid()
            if fresh is None:
                raise
            return open_token(token, provider=fresh, **kwargs)  # type: ignore[arg-type]

    def _userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        s = self.settings
        result = self.client.userinfo(access_token)
        if result.content_type == "application/jwt":
            token = result.body.decode("ascii", "replace").strip()
            try:
                claims, _ = self._open(token, "userinfo", s.policy.userinfo_signing_algs)
            except UnknownSigningKey:
                raise FlowError("userinfo_malformed", detail="userinfo signed by an unknown key") from None
            signed = True
        elif result.content_type == "application/json":
            if s.policy.userinfo_format == "jwt" or s.policy.require_encryption:
                raise FlowError("userinfo_not_encrypted", detail="plain JSON userinfo where a JWT is required")
            try:
                claims = strictjson.loads(result.body)
            except (ValueError, UnicodeDecodeError):
                raise FlowError("userinfo_malformed", detail="userinfo body is not JSON") from None
            if not isinstance(claims, dict):
                raise FlowError("userinfo_malformed", detail="userinfo is not an object")
            signed = False
        else:
            raise FlowError("userinfo_malformed", detail="unexpected userinfo content type")
        validate_userinfo(claims, id_token_sub=sub, issuer=s.issuer, client_id=s.client_id, signed=signed)
        return claims

    # -- sessions --------------------------------------------------------------------------------
    def load_session(self, session_id: str | None) -> SessionView | None:
        """The live session for a cookie value, enforcing idle and absolute lifetimes.

        The idle clock is written back at most once per tenth of the idle timeout, so a
        busy user costs a store read per request, not a write.
        """
        if session_id is None:
            return None
        opened = self._opened.get(session_id)
        if opened is not None:
            key = opened[0]
        elif looks_like_session_id(session_id):
            key = store_key(SESSION, session_id)
        else:
            return None
        blob = self.store.get(key)
        if blob is None:
            if opened is not None:
                self._opened.pop(session_id, None)
            return None
        if opened is not None and (opened[1] is blob or opened[1] == blob):
            view, created, seen = opened[2], opened[3], opened[4]
        else:
            unsealed = unseal(SESSION, session_id, blob)
            if unsealed is None:
                self._opened.pop(session_id, None)
                return None
            view = SessionView(unsealed, Identity.from_session(unsealed))
            created, seen = float(unsealed.get("created", 0)), float(unsealed.get("seen", 0))
            remember(self._opened, session_id, (key, blob, view, created, seen), SESSION_CACHE_SIZE)
        s = self.settings
        now = self.clock()
        if now - created >= s.session_max_age:
            self._forget(session_id, key)
            return SessionView(view.record, view.identity, ended="max_age")
        if now - seen >= s.session_idle_timeout:
            self._forget(session_id, key)
            return SessionView(view.record, view.identity, ended="idle")
        if now - seen >= s.session_idle_timeout / 10:
            record = {**view.record, "seen": now}  # cached records are shared: never mutate them
            fresh = seal(SESSION, session_id, record)
            self.store.put(key, fresh, min(s.session_idle_timeout, s.session_max_age - (now - created)) + EXPIRY_GRACE)
            view = SessionView(record, view.identity)
            remember(self._opened, session_id, (key, fresh, view, created, now), SESSION_CACHE_SIZE)
        return view

    def _forget(self, session_id: str, key: str) -> None:
        self._opened.pop(session_id, None)
        self.store.delete(key)

    def end_session(self, session_id: str | None) -> dict[str, Any] | None:
        """Delete the local session; returns its record (for revocation and id_token_hint)."""
        if not looks_like_session_id(session_id):
            return None
        assert session_id is not None
        key = store_key(SESSION, session_id)
        self._opened.pop(session_id, None)
        blob = self.store.take(key)
        return unseal(SESSION, session_id, blob) if blob is not None else None

    # -- logout ----------------------------------------------------------------------------------
    def start_logout(self, session_id: str | None, *, browser_secret: str | None,
                     request_id: str | None = None) -> LogoutStart:
        """End the local session first, then revoke and build the end_session redirect.

        Local logout always happens, whatever the provider does afterwards.
        """
        cid = new_correlation_id()
        s = self.settings
        landing = LogoutStart(s.logout_landing_path, browser_secret or "")
        with self._step("logout", cid, request_id):
            record = self.end_session(session_id)
        if record is None:
            return landing
        cid = str(record.get("cid") or cid)
        self.bus.emit(FlowEvent(step="session_ended", outcome="success", provider=self.provider, correlation_id=cid,
                                request_id=request_id, extra={"reason": "logout"}))
        try:
            metadata = self.client.metadata()
        except FlowError:
            return LogoutStart(s.logout_landing_path, browser_secret or "", provider_unreachable=True)
        access_token = record.get("at")
        if access_token and metadata.revocation_endpoint:
            try:
                with self._step("revocation", cid, request_id):
                    status = self.client.revoke(str(access_token), client_id=s.client_id,
                                                client_secret=s.client_secret, auth_method=s.token_endpoint_auth_method)
                    if status is not None and status != 200:
                        raise FlowError("revocation_refused", detail=f"revocation HTTP {status}")
            except FlowError:
                # Counted and logged by _step (step=revocation, outcome=failure, its code); the
                # local session is gone, and platform access tokens expire within 60 s anyway.
                pass
        if not metadata.end_session_endpoint or not s.post_logout_redirect_uri or not record.get("idt"):
            return landing
        binding, browser_secret = new_binding(browser_secret)
        state = new_state()
        try:
            self.store.put(store_key(PENDING_LOGOUT, state),
                           seal(PENDING_LOGOUT, state, {"bind": binding_hash(binding), "cid": cid}),
                           s.pending_login_ttl)
        except StoreError:
            return LogoutStart(s.logout_landing_path, browser_secret)
        params = {"id_token_hint": record["idt"], "state": state, "post_logout_redirect_uri": s.post_logout_redirect_uri}
        s.wire.check("end_session", params)
        query = urlencode(params)
        sep = "&" if "?" in metadata.end_session_endpoint else "?"
        return LogoutStart(metadata.end_session_endpoint + sep + query, browser_secret)

    def finish_logout(self, params: Mapping[str, Sequence[str]], *, browser_secret: str | None,
                      request_id: str | None = None) -> bool:
        """Check the logout callback's state; True when it matches a logout this browser began."""
        cid = new_correlation_id()
        try:
            with self._step("logout_callback", cid, request_id):
                p = self.single_params(params)
                state = p.get("state")
                if state is None:
                    raise FlowError("state_missing")
                pending = self._take_pending(PENDING_LOGOUT, state) if looks_like_state(state) else None
                if pending is None:
                    raise FlowError("state_unknown")
                if not binding_matches(browser_secret, str(pending.get("bind", ""))):
                    raise FlowError("state_browser_mismatch")
        except FlowError:
            return False
        return True


def _header_alg(compact: str) -> str:
    """The alg of the id_token's verified JWS, read by the same strict parser that verified
    it (a second, laxer parser once answered a deep header with RecursionError)."""
    try:
        return jws_alg(compact)
    except ValueError:
        raise FlowError("id_token_malformed", detail="JWS header unreadable") from None
