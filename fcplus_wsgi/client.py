"""Every server-to-server call to the provider, with timeouts, size caps and typed failures.

One pooled requests.Session; connect and read timeouts on every call; bodies read in
chunks up to a cap so a hostile or broken provider cannot exhaust memory; retries only
for idempotent GETs (discovery, JWKS). Transport trouble becomes a FlowError whose code
says which kind, so users see "provider unavailable" and operators see why.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from . import strictjson
from .errors import FlowError, token_error, userinfo_error
from .providers import GENERIC_WIRE, WireProfile
from .tokens import ProviderKeys

DISCOVERY_TTL = 3600.0
JWKS_TTL = 3600.0
_REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


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


@dataclass(frozen=True)
class HTTPResult:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


# observe(endpoint, seconds, outcome[, reason]): outcome is "success", a transport error code,
# or the HTTP status class (http_4xx, http_5xx); reason says why a JWKS fetch happened.
Observer = Callable[..., None]


class ProviderClient:
    """Talks to one provider; thread-safe, shared by all requests of a process."""

    def __init__(self, issuer: str, *, timeout: float = 10.0, ca_bundle: str | None = None,
                 max_bytes: int = 1 << 20, jwks_refresh_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, session: requests.Session | None = None,
                 observe: Observer | None = None, wire: WireProfile = GENERIC_WIRE) -> None:
        self.issuer = issuer
        # What the platform's token and revocation routes accept (providers.WireProfile).
        self.wire = wire
        self.timeout = (min(timeout, 5.0), timeout)
        self.verify: bool | str = ca_bundle or True
        self.max_bytes = max_bytes
        self.jwks_refresh_interval = jwks_refresh_interval
        self._clock = clock
        self._http = session or requests.Session()
        self._http.headers["User-Agent"] = "fcplus-wsgi"
        if session is None:
            # requests re-reads proxy and CA variables from the environment on every call
            # (about 100 us of CPU each); read them once here instead, for the issuer's host.
            self._http.trust_env = False
            self._http.proxies = requests.utils.get_environ_proxies(issuer)
            if ca_bundle is None:
                env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                self.verify = env_ca or True
        self._lock = threading.Lock()
        self._jwks_lock = threading.Lock()
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._keys: ProviderKeys | None = None
        self._keys_at = 0.0
        self._observe = observe or (lambda *args, **kwargs: None)

    # -- transport ----------------------------------------------------------------------------
    def _request(self, endpoint: str, method: str, url: str, *, retries: int = 0, reason: str | None = None,
                 **kwargs: Any) -> HTTPResult:
        tag = {"reason": reason} if reason else {}  # on the final attempt only: one fetch, one count
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                result = self._send(method, url, **kwargs)
            except FlowError as exc:
                retry = attempt < retries and exc.code in ("provider_unreachable", "provider_timeout")
                self._observe(endpoint, time.perf_counter() - started, exc.code, **({} if retry else tag))
                if retry:
                    attempt += 1
                    time.sleep(0.2 * attempt)
                    continue
                raise
            outcome = "success" if result.status < 400 else f"http_{result.status // 100}xx"
            self._observe(endpoint, time.perf_counter() - started, outcome, **tag)
            return result

    def _send(self, method: str, url: str, **kwargs: Any) -> HTTPResult:
        try:
            with self._http.request(method, url, timeout=self.timeout, verify=self.verify, stream=True,
                                    allow_redirects=False, **kwargs) as resp:
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FlowError("provider_response_too_large", detail=f"{url}: Content-Length {declared}")
                chunks, size = [], 0
                for chunk in resp.iter_content(16384):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FlowError("provider_response_too_large", detail=f"{url}: over {self.max_bytes} bytes")
                    chunks.append(chunk)
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                # Names lower-cased: HTTP header names are case-insensitive and servers and
                # proxies spell them differently (waitress: Www-Authenticate; HTTP/2: lower case).
                headers = {name.lower(): value for name, value in resp.headers.items()}
                return HTTPResult(resp.status_code, ctype, b"".join(chunks), headers)
        except FlowError:
            raise
        except requests.exceptions.SSLError:
            raise FlowError("provider_tls_error", detail=url) from None
        except requests.exceptions.Timeout:
            raise FlowError("provider_timeout", detail=url) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
            raise FlowError("provider_unreachable", detail=url) from None
        except requests.exceptions.RequestException as exc:
            raise FlowError("provider_unreachable", detail=f"{url}: {exc.__class__.__name__}") from None

    @staticmethod
    def _json(result: HTTPResult, what: str) -> Any:
        try:
            return strictjson.loads(result.body)
        except (ValueError, UnicodeDecodeError):
            raise FlowError("provider_bad_response", detail=f"{what}: body is not JSON") from None

    # -- discovery and keys -----------------------------------------------------------------------
    def metadata(self) -> Metadata:
        """Discovery, cached; a stale copy is kept when a refresh fails."""
        now = self._clock()
        current = self._metadata
        if current is not None and now - self._metadata_at < DISCOVERY_TTL:
            return current
        with self._lock:
            if self._metadata is not None and now - self._metadata_at < DISCOVERY_TTL:
                return self._metadata
            try:
                fresh = self.fetch_metadata()
            except FlowError:
                if self._metadata is not None and self._metadata.issuer == self.issuer:
                    self._metadata_at = now - DISCOVERY_TTL + 60  # retry within a minute
                    return self._metadata
                raise
            self._metadata, self._metadata_at = fresh, now
            return fresh

    def fetch_metadata(self) -> Metadata:
        url = self.issuer + "/.well-known/openid-configuration"
        result = self._request("discovery", "GET", url, retries=1)
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
        now = self._clock()
        if self._keys is not None and now - self._keys_at < JWKS_TTL:
            return self._keys
        return self._refresh_keys(force=False)

    def refresh_keys_for_unknown_kid(self) -> ProviderKeys | None:
        """Refetch the JWKS after an unknown kid, at most once per jwks_refresh_interval.

        A flood of tokens with random kids must not become a flood of fetches: callers
        arriving while another refetch runs wait for it; callers arriving too soon after
        the last fetch get None and fail.
        """
        if self._keys is not None and self._clock() - self._keys_at < self.jwks_refresh_interval:
            return None
        return self._refresh_keys(force=True)

    def _refresh_keys(self, force: bool) -> ProviderKeys:
        requested_at = self._clock()
        with self._jwks_lock:
            # Single flight: whoever waited on the lock while another fetch ran reuses it.
            if self._keys is not None and (self._keys_at >= requested_at
                                           or (not force and requested_at - self._keys_at < JWKS_TTL)):
                return self._keys
            reason = "unknown_kid" if force else "initial" if self._keys is None else "expired"
            result = self._request("jwks", "GET", self.metadata().jwks_uri, retries=1, reason=reason)
            if result.status != 200:
                raise FlowError("provider_http_error", detail=f"jwks HTTP {result.status}")
            try:
                keys = ProviderKeys.from_jwks(self._json(result, "jwks"))
            except ValueError:
                raise FlowError("provider_bad_response", detail="jwks is not a JWK Set") from None
            self._keys, self._keys_at = keys, self._clock()
            return keys

    # -- flow calls ---------------------------------------------------------------------------------
    def exchange_code(self, *, code: str, redirect_uri: str, client_id: str, client_secret: str,
                      auth_method: str, code_verifier: str | None) -> dict[str, Any]:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        auth = self._client_auth(data, client_id, client_secret, auth_method)
        if code_verifier:
            data["code_verifier"] = code_verifier
        self.wire.check("token", data)
        result = self._request("token", "POST", self.metadata().token_endpoint, data=data, auth=auth,
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
        return self._request("revocation", "POST", endpoint, data=data, auth=auth).status

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
        self._http.close()


def _bearer_error(header: str) -> str | None:
    """The error attribute of a `WWW-Authenticate: Bearer ...` challenge (RFC 6750 3)."""
    if not header.lower().startswith("bearer"):
        return None
    match = re.search(r'error="([^"]{1,64})"', header)
    return match.group(1) if match else None
