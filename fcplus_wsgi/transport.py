"""HTTP to the provider over urllib3: one total deadline per call, a body cap enforced while
reading (decoded bytes too), retries for idempotent GETs, TLS always verified.

Why urllib3 directly: it is what requests runs on, and over a kept-alive connection a call
costs about a tenth of the CPU requests adds around it (docs/benchmarks.md). Why a deadline
of our own: urllib3's timeouts bound each socket read, so a provider dripping one byte a
second would hold the thread indefinitely; `watchdog.WATCHDOG` shuts the socket down when
the call's time is up, whatever phase it is in (connecting, reading headers or the body).
Every failure becomes a FlowError whose code says which kind.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProxyError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as TransportTimeout
from urllib3.util import Retry, Timeout, make_headers

from .errors import FlowError
from .settings import ConfigError
from .watchdog import WATCHDOG, Deadline

CONNECT_TIMEOUT_CAP = 5.0
CHUNK = 16384
# Sent on every call; a provider may still compress without being asked: it is decoded
# under the same cap.
_BASE_HEADERS = {"User-Agent": "fcplus-wsgi", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
# One retry for idempotent GETs (discovery, JWKS) on a refused or reset connection, never on
# an HTTP status, and only while the call's deadline leaves time; POSTs are never retried.
_GET_RETRY = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0, raise_on_redirect=False,
                   raise_on_status=False, allowed_methods=frozenset({"GET"}), respect_retry_after_header=False)
_NO_RETRY = Retry(total=0, connect=0, read=0, status=0, other=0, redirect=0, raise_on_redirect=False,
                  raise_on_status=False)

# The deadline of the call this thread is making, for the connection classes below.
_current = threading.local()


@dataclass(frozen=True)
class HTTPResult:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def _deadline() -> Deadline | None:
    return getattr(_current, "deadline", None)


def _clamp(conn: HTTPConnection) -> None:
    """Connecting (TCP, then TLS) gets no more than what is left of the deadline."""
    deadline = _deadline()
    if deadline is None:
        return
    left = deadline.remaining()
    if left <= 0:
        raise ConnectTimeoutError(conn, "the call's deadline passed")
    if not isinstance(conn.timeout, (int, float)) or conn.timeout > left:
        conn.timeout = left


def _attach(sock: Any) -> None:
    deadline = _deadline()
    if deadline is not None:
        deadline.attach(sock)


class _HTTPConnection(HTTPConnection):
    def _new_conn(self) -> Any:
        _clamp(self)
        sock = super()._new_conn()
        _attach(sock)  # covers a proxy's CONNECT answer too
        return sock

    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def getresponse(self) -> Any:
        _attach(self.sock)  # a pooled connection reused for this call
        return super().getresponse()


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> Any:
        _clamp(self)
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def connect(self) -> None:
        # The TLS handshake replaces the socket object: until it is attached again, the
        # handshake is bounded by the socket timeout, which Python applies to it as a whole.
        super().connect()
        _attach(self.sock)

    def getresponse(self) -> Any:
        _attach(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def environ_proxies(url: str) -> dict[str, str]:
    """The proxies the environment sets for `url` (HTTPS_PROXY, NO_PROXY, ...), read once:
    the same rules requests applies, CIDR ranges in NO_PROXY included."""
    from requests.utils import get_environ_proxies

    return {k: v for k, v in get_environ_proxies(url).items() if k != "no" and v}


def environ_ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class Transport:
    """Thread-safe; one per provider client, connections kept alive per host."""

    def __init__(self, *, deadline: float, max_bytes: int, ca_bundle: str | None,
                 proxies: dict[str, str]) -> None:
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.ca_bundle = ca_bundle or certifi.where()
        self.proxies = proxies
        self._timeout = Timeout(connect=min(deadline, CONNECT_TIMEOUT_CAP), read=deadline)
        self._direct = self._manager(None)
        self._via: dict[str, urllib3.PoolManager] = {}

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        options: dict[str, Any] = {"num_pools": 8, "maxsize": 16, "cert_reqs": "CERT_REQUIRED",
                                   "ca_certs": self.ca_bundle}
        manager: urllib3.PoolManager
        if proxy is None:
            manager = urllib3.PoolManager(**options)
        else:
            parts = urlsplit(proxy)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"the proxy the environment sets for the provider ({parts.scheme}://...) is not an "
                                  "http(s) proxy; only http and https proxies are supported.")
            headers = None
            if parts.username is not None:
                credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                headers = make_headers(proxy_basic_auth=credentials)
            bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            manager = urllib3.ProxyManager(bare, proxy_headers=headers, **options)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def _pool_manager(self, url: str) -> urllib3.PoolManager:
        proxy = self.proxies.get(urlsplit(url).scheme) or self.proxies.get("all")
        if proxy is None:
            return self._direct
        manager = self._via.get(proxy)
        if manager is None:
            manager = self._via.setdefault(proxy, self._manager(proxy))
        return manager

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, basic_auth: tuple[str, str] | None = None,
                retry: bool = False) -> HTTPResult:
        """One call, within the deadline; a refused or reset GET is tried once more when
        `retry` and the deadline allow."""
        sent = dict(_BASE_HEADERS)
        if headers:
            sent.update(headers)
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if basic_auth is not None:
            sent.update(make_headers(basic_auth=f"{basic_auth[0]}:{basic_auth[1]}"))
        manager = self._pool_manager(url)
        deadline = WATCHDOG.start(self.deadline)
        _current.deadline = deadline
        response = None
        complete = False
        try:
            try:
                response = manager.urlopen(method, url, body=body, headers=sent, redirect=False,
                                           retries=_GET_RETRY if retry else _NO_RETRY, timeout=self._timeout,
                                           preload_content=False, decode_content=False)
                result = self._read(response, url, deadline)
                complete = True
                return result
            except FlowError:
                raise
            except (HTTPError, OSError, ValueError, HTTPException) as exc:  # everything urllib3 and http.client raise
                raise _failure(exc, url, deadline) from None
        finally:
            _current.deadline = None
            deadline.finish()  # before the connection can go back to its pool
            if response is not None:
                if not complete:
                    response.close()  # a half-read connection is never reused
                response.release_conn()

    def _read(self, response: Any, url: str, deadline: Deadline) -> HTTPResult:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FlowError("provider_response_too_large", detail=f"{url}: Content-Length {declared}")
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # Decoding is bounded per read (urllib3 >= 2.6): a few compressed bytes never
                # expand to more than CHUNK here, so a gzip bomb meets the same cap.
                chunk = response.read(CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes or response.tell() > self.max_bytes:
                    raise FlowError("provider_response_too_large", detail=f"{url}: over {self.max_bytes} bytes")
                chunks.append(chunk)
        except FlowError:
            raise
        except DecodeError:
            raise FlowError("provider_bad_response", detail=f"{url}: body does not decode as its "
                                                            "Content-Encoding says") from None
        if deadline.fired:  # the watchdog ended the body: with no length to check, it may be partial
            raise FlowError("provider_timeout", detail=url)
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # Names lower-cased: HTTP header names are case-insensitive and servers and
        # proxies spell them differently (waitress: Www-Authenticate; HTTP/2: lower case).
        merged = {name.lower(): value for name, value in response.headers.itermerged()}
        return HTTPResult(response.status, ctype, b"".join(chunks), merged)

    def close(self) -> None:
        self._direct.clear()
        for manager in self._via.values():
            manager.clear()


def _failure(exc: BaseException, url: str, deadline: Deadline) -> FlowError:
    """The catalogue code for a transport failure; past the deadline it is always a timeout."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, NewConnectionError) and not deadline.expired:
        # Refused, or no such host; urllib3 files it under ConnectTimeoutError for history's sake.
        return FlowError("provider_unreachable", detail=f"{url}: {exc.__class__.__name__}")
    if deadline.expired or isinstance(exc, TransportTimeout):
        return FlowError("provider_timeout", detail=url)
    if isinstance(exc, SSLError) or (isinstance(exc, ProxyError) and isinstance(exc.original_error, SSLError)):
        return FlowError("provider_tls_error", detail=url)
    return FlowError("provider_unreachable", detail=f"{url}: {exc.__class__.__name__}")
