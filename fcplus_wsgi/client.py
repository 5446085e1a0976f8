"""Every server-to-server call to the provider: discovery, keys, token, userinfo, revocation.

Transport (deadline, size cap, TLS, retries) is `transport.Transport`; this module decides
what to ask and what an answer means. Discovery and the JWKS are cached and fetched by one
thread at a time without holding a lock across the network: the others keep using the copy
they have, or, when there is none, wait for that one fetch (itself bounded by the deadline)
and share its outcome. JWKS fetches are rate-limited from the last attempt, whatever its
outcome, so a flood of tokens naming unknown keys, or a failing JWKS endpoint, costs at most
one fetch per jwks_refresh_interval.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from . import strictjson
from .errors import FlowError, token_error, userinfo_error
from .providers import GENERIC_WIRE, WireProfile
from .settings import is_loopback_host
from .tokens import ProviderKeys
from .transport import HTTPResult, Transport, environ_ca_bundle, environ_proxies

__all__ = ["HTTPResult", "Metadata", "ProviderClient", "endpoint_scheme_problem", "flow_correlation_id"]

DISCOVERY_TTL = 3600.0
JWKS_TTL = 3600.0
# Past JWKS_TTL the keys are still used while a refresh runs or after one failed, for at most
# this long; after that a login needs a successful fetch.
JWKS_STALE_GRACE = 3600.0
_REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
_OPTIONAL_ENDPOINTS = ("userinfo_endpoint", "end_session_endpoint", "revocation_endpoint")

# The correlation id of the flow step a provider call is made for (set by Flow._step), so
# the call's log event names the login it belongs to.
flow_correlation_id: ContextVar[str] = ContextVar("fcplus_flow_correlation_id", default="")


@dataclass(frozen=True)
class Metadata:
    """The parts of the discovery document the flow relies on."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    revocation_endpoint: str | None
    code_challenge_methods: tuple[str, ...]
    raw: dict[str, Any]


# observe(endpoint, seconds, outcome[, reason]): outcome is "success", a transport error code,
# or the HTTP status class (http_4xx, http_5xx); reason says why a JWKS fetch happened.
Observer = Callable[..., None]


def endpoint_scheme_problem(issuer: str, name: str, url: str) -> str | None:
    """Why `url` may not serve as the provider's `name`, or None.

    An https issuer's endpoints are all https: an http token endpoint would get the client
    secret and the code in clear, an http jwks_uri would let anyone on the path swap the
    keys. Plain http is only for a loopback development issuer, and only to loopback hosts.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{name} is not an absolute http(s) URL"
    if parts.scheme == "https":
        return None
    if urlsplit(issuer).scheme == "https":
        return f"{name} uses http:// although the issuer uses https://"
    if not is_loopback_host(parts.hostname):
        return f"{name} uses http:// on a non-loopback host"
    return None


class _Flight:
    """One fetch in progress; callers that need its result wait for it and share it."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: FlowError | None = None


class ProviderClient:
    """Talks to one provider; thread-safe, shared by all requests of a process."""

    def __init__(self, issuer: str, *, timeout: float = 10.0, ca_bundle: str | None = None,
                 max_bytes: int = 1 << 20, jwks_refresh_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 observe: Observer | None = None, wire: WireProfile = GENERIC_WIRE) -> None:
        self.issuer = issuer
        # What the platform's token and revocation routes accept (providers.WireProfile).
        self.wire = wire
        # The total time of one call: connect, TLS, sending, and every read, retries included.
        self.timeout = timeout
        # Proxy and CA variables are read once, here, for the issuer's host (as requests
        # would on each call, at about 100 us of CPU each time).
        self.verify: bool | str = ca_bundle or environ_ca_bundle() or True
        self.max_bytes = max_bytes
        self.jwks_refresh_interval = jwks_refresh_interval
        self._clock = clock
        self.transport = Transport(deadline=timeout, max_bytes=max_bytes,
                                   ca_bundle=self.verify if isinstance(self.verify, str) else None,
                                   proxies=environ_proxies(issuer))
        # Short holds only, never across network I/O.
        self._lock = threading.Lock()
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._discovery_flight: _Flight | None = None
        self._keys: ProviderKeys | None = None
        self._keys_at = 0.0
        self._jwks_tried_at: float | None = None
        self._jwks_error: FlowError | None = None
        self._jwks_flight: _Flight | None = None
        self._observe = observe or (lambda *args, **kwargs: None)

    # -- transport ----------------------------------------------------------------------------
    def _request(self, endpoint: str, method: str, url: str, *, retry: bool = False, reason: str | None = None,
                 **kwargs: Any) -> HTTPResult:
        tag = {"reason": reason} if reason else {}
        started = time.perf_counter()
        try:
            result = self.transport.request(method, url, retry=retry, **kwargs)
        except FlowError as exc:
            self._observe(endpoint, time.perf_counter() - started, exc.code, **tag)
            raise
        outcome = "success" if result.status < 400 else f"http_{result.status // 100}xx"
        self._observe(endpoint, time.perf_counter() - started, outcome, **tag)
        return result

    @staticmethod
    def _json(result: HTTPResult, what: str) -> Any:
        try:
            return strictjson.loads(result.body)
        except (ValueError, UnicodeDecodeError):
            raise FlowError("provider_bad_response", detail=f"{what}: body is not JSON") from None

    def _await(self, flight: _Flight) -> Any:
        """The outcome of another thread's fetch, waiting at most one deadline for it."""
        if not flight.done.wait(self.timeout + 1.0):
            raise FlowError("provider_timeout", detail="waiting for another call to the provider")
        if flight.error is not None:
            # A new exception per caller: the flow stamps its own correlation id on it.
            raise FlowError(flight.error.code, detail=flight.error.detail)
        return flight.value

    # -- discovery and keys -----------------------------------------------------------------------
    def metadata(self) -> Metadata:
        """Discovery, cached; a stale copy is kept when a refresh fails."""
        now = self._clock()
        current = self._metadata
        if current is not None and now - self._metadata_at < DISCOVERY_TTL:
            return current
        with self._lock:
            current = self._metadata
            if current is not None and now - self._metadata_at < DISCOVERY_TTL:
                return current
            flight = self._discovery_flight
            leader = flight is None
            if flight is None:
                flight = self._discovery_flight = _Flight()
        if not leader:
            return current if current is not None else self._await(flight)
        try:
            fresh = self.fetch_metadata()
            with self._lock:
                self._metadata, self._metadata_at = fresh, now
        except FlowError as exc:
            if current is None or current.issuer != self.issuer:
                flight.error = exc
                raise
            with self._lock:
                self._metadata_at = now - DISCOVERY_TTL + 60  # keep the stale copy, retry within a minute
            fresh = current
        finally:
            flight.value = self._metadata
            with self._lock:
                self._discovery_flight = None
            flight.done.set()
        return fresh

    def fetch_metadata(self) -> Metadata:
        url = self.issuer + "/.well-known/openid-configuration"
        result = self._request("discovery", "GET", url, retry=True)
        if result.status != 200:
            raise FlowError("provider_http_error", detail=f"discovery HTTP {result.status}")
        doc = self._json(result, "discovery")
        if not isinstance(doc, dict):
            raise FlowError("discovery_invalid", detail="discovery is not a JSON object")
        if doc.get("issuer") != self.issuer:
            raise FlowError("discovery_issuer_mismatch", detail="discovery issuer differs from the configured issuer")
        for name in _REQUIRED_ENDPOINTS:
            if not isinstance(doc.get(name), str) or not doc[name].startswith(("https://", "http://")):
                raise FlowError("discovery_invalid", detail=f"discovery lacks {name}")
        for name in _REQUIRED_ENDPOINTS + _OPTIONAL_ENDPOINTS:
            value = doc.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                continue  # a required one was checked above; an unusable optional one is ignored
            problem = endpoint_scheme_problem(self.issuer, name, value)
            if problem is not None:
                raise FlowError("discovery_invalid", detail=f"discovery: {problem}")

        def opt(name: str) -> str | None:
            value = doc.get(name)
            return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None

        methods = doc.get("code_challenge_methods_supported")
        return Metadata(
            issuer=doc["issuer"], authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"], jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=opt("userinfo_endpoint"), end_session_endpoint=opt("end_session_endpoint"),
            revocation_endpoint=opt("revocation_endpoint"),
            code_challenge_methods=tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else (),
            raw=doc,
        )

    def keys(self) -> ProviderKeys:
        """The provider's keys: cached for JWKS_TTL, then refreshed by one thread while the
        others keep using them (for at most JWKS_STALE_GRACE more)."""
        keys, fetched = self._keys, self._keys_at
        now = self._clock()
        if keys is not None and now - fetched < JWKS_TTL:
            return keys
        usable = keys if keys is not None and now - fetched < JWKS_TTL + JWKS_STALE_GRACE else None
        fresh = self._fetch_keys("initial" if keys is None else "expired", usable)
        if fresh is None:  # rate-limited with nothing usable: the last attempt's failure
            error = self._jwks_error
            raise FlowError(error.code if error else "provider_unreachable",
                            detail="jwks: the last fetch failed moments ago; next attempt after jwks_refresh_interval")
        return fresh

    def refresh_keys_for_unknown_kid(self) -> ProviderKeys | None:
        """Refetch the JWKS after an unknown kid, at most once per jwks_refresh_interval
        counted from the last attempt, successful or not.

        A flood of tokens with random kids must not become a flood of fetches: callers
        arriving while another fetch runs wait for it (at most one deadline) and share
        its keys; callers arriving too soon after the last attempt get None and fail. The
        caller that fetches gets the fetch's own failure (the JWKS endpoint's), the others None.
        """
        return self._fetch_keys("unknown_kid", None)

    def _fetch_keys(self, reason: str, usable: ProviderKeys | None) -> ProviderKeys | None:
        """Fetch the JWKS, or join the fetch in flight. Returns `usable` (the current keys)
        instead of waiting when there is one, and `usable` or None when rate-limited."""
        now = self._clock()
        with self._lock:
            flight = self._jwks_flight
            leader = False
            if flight is None:
                tried = self._jwks_tried_at
                if tried is not None and now - tried < self.jwks_refresh_interval:
                    return usable
                flight = self._jwks_flight = _Flight()
                self._jwks_tried_at = now
                leader = True
        if not leader:
            if usable is not None:
                return usable
            try:
                return self._await(flight)
            except FlowError:
                if reason == "unknown_kid":
                    return None
                raise
        try:
            keys = self._download_keys(reason)
            with self._lock:
                self._keys, self._keys_at, self._jwks_error = keys, self._clock(), None
            flight.value = keys
        except FlowError as exc:
            flight.error = exc
            with self._lock:
                self._jwks_error = exc
            if usable is not None:
                return usable
            raise
        finally:
            with self._lock:
                self._jwks_flight = None
            flight.done.set()
        return keys

    def _download_keys(self, reason: str) -> ProviderKeys:
        result = self._request("jwks", "GET", self.metadata().jwks_uri, retry=True, reason=reason)
        if result.status != 200:
            raise FlowError("provider_http_error", detail=f"jwks HTTP {result.status}")
        try:
            return ProviderKeys.from_jwks(self._json(result, "jwks"))
        except ValueError:
            raise FlowError("provider_bad_response", detail="jwks is not a JWK Set") from None

    # -- flow calls ---------------------------------------------------------------------------------
    def exchange_code(self, *, code: str, redirect_uri: str, client_id: str, client_secret: str,
                      auth_method: str, code_verifier: str | None) -> dict[str, Any]:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        auth = self._client_auth(data, client_id, client_secret, auth_method)
        if code_verifier:
            data["code_verifier"] = code_verifier
        self.wire.check("token", data)
        result = self._request("token", "POST", self.metadata().token_endpoint, form=data, basic_auth=auth,
                               headers={"Accept": "application/json"})
        if result.status in (400, 401) and result.content_type == "application/json":
            body = self._json(result, "token error")
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                desc = body.get("error_description")
                raise token_error(body["error"], desc if isinstance(desc, str) else None)
        if result.status != 200:
            raise FlowError("provider_http_error", detail=f"token HTTP {result.status}")
        body = self._json(result, "token")
        if not isinstance(body, dict):
            raise FlowError("provider_bad_response", detail="token response is not an object")
        if "error" in body:
            raise token_error(str(body["error"]), None)
        if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() != "bearer":
            raise FlowError("provider_bad_response", detail="token response lacks a Bearer access_token")
        return body

    def userinfo(self, access_token: str) -> HTTPResult:
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            raise FlowError("discovery_invalid", detail="no userinfo_endpoint")
        result = self._request("userinfo", "GET", endpoint,
                               headers={"Authorization": f"Bearer {access_token}",
                                        "Accept": "application/jwt, application/json"})
        if result.status != 200:
            error = _bearer_error(result.headers.get("www-authenticate", ""))
            if error is None and result.content_type == "application/json":
                try:
                    body = strictjson.loads(result.body)
                    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
                except ValueError:
                    error = None
            if error:
                raise userinfo_error(error, None)
            raise FlowError("provider_http_error", detail=f"userinfo HTTP {result.status}")
        return result

    def revoke(self, token: str, *, client_id: str, client_secret: str, auth_method: str) -> int | None:
        """RFC 7009 revocation of an access token: the provider's HTTP status, None when it
        offers no revocation endpoint.

        The FranceConnect and ProConnect cores validate the body against exactly `token`,
        `client_id` and `client_secret` and refuse anything else, `token_type_hint`
        included; only a generic provider gets the hint.
        """
        endpoint = self.metadata().revocation_endpoint
        if endpoint is None:
            return None
        data = {"token": token}
        if "token_type_hint" in self.wire.revocation:
            data["token_type_hint"] = "access_token"
        auth = self._client_auth(data, client_id, client_secret, auth_method)
        self.wire.check("revocation", data)
        return self._request("revocation", "POST", endpoint, form=data, basic_auth=auth).status

    @staticmethod
    def _client_auth(data: dict[str, str], client_id: str, client_secret: str,
                     auth_method: str) -> tuple[str, str] | None:
        """client_secret_post puts the credentials in the body; client_secret_basic returns
        them for the Authorization header, form-urlencoded first (RFC 6749 2.3.1)."""
        if auth_method == "client_secret_basic":
            return (quote(client_id, safe=""), quote(client_secret, safe=""))
        data["client_id"] = client_id
        data["client_secret"] = client_secret
        return None

    def close(self) -> None:
        self.transport.close()


def _bearer_error(header: str) -> str | None:
    """The error attribute of a `WWW-Authenticate: Bearer ...` challenge (RFC 6750 3)."""
    if not header.lower().startswith("bearer"):
        return None
    match = re.search(r'error="([^"]{1,64})"', header)
    return match.group(1) if match else None
