"""Identity stripping, cookie reading and the redirect-or-401 decision."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from webob import Request

from fcplus_wsgi.identity import ENVIRON_KEY
from fcplus_wsgi.middleware import read_cookie, strip_identity, wants_redirect
from tests.support.servers import serve_wsgi

# Every spelling a client may use for the identity headers apps commonly trust.
SPELLINGS = [
    "Remote-User", "remote-user", "REMOTE-USER", "Remote_User", "REMOTE_USER", "rEmOtE-uSeR",
    "X-Remote-User", "x-remote-user", "X_Remote_User", "X-Remote_User",
    "X-Forwarded-User", "x-forwarded-user", "X_Forwarded_User", "X-FORWARDED-USER",
    "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Auth-Request-User", "X-Auth-Request-Email",
    "X-Remote-Email", "Remote-Email", "X-Authenticated-User", "X-User", "X-Auth-User",
    "X-Userinfo", "X-Id-Token", "X-Access-Token", "X-Fcplus-Sub", "Fcplus-Claims", "OIDC-Claim-Sub",
    "OIDC_access_token", "X-OIDC-Email",
    # The rest of oauth2-proxy's set: apps migrating from it authorise on groups.
    "X-Forwarded-Groups", "X-Forwarded-Access-Token", "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token",
]


def cgi_name(header: str) -> str:
    """How WSGI servers (PEP 3333 / CGI) name a request header in environ."""
    return "HTTP_" + header.upper().replace("-", "_")


def base_environ() -> dict[str, Any]:
    environ: dict[str, Any] = Request.blank("/app?x=1", headers={"User-Agent": "ua", "Accept": "text/html",
                                                                 "X-Request-Id": "r1", "Cookie": "a=b"}).environ
    environ["REMOTE_ADDR"] = "127.0.0.1"
    return environ


@pytest.mark.parametrize("header", SPELLINGS)
def test_identity_headers_are_stripped(header: str) -> None:
    environ = base_environ()
    environ[cgi_name(header)] = "admin"
    kept = dict(environ)
    del kept[cgi_name(header)]
    strip_identity(environ)
    assert environ == kept


def test_webob_built_environ_is_stripped() -> None:
    environ = Request.blank("/", headers={h: "admin" for h in SPELLINGS if "_" not in h}).environ
    strip_identity(environ)
    assert not [k for k in environ if "USER" in k or "OIDC" in k or "FCPLUS" in k or "TOKEN" in k]


def test_cgi_variables_and_fcplus_keys_are_stripped() -> None:
    environ = base_environ()
    environ.update({"REMOTE_USER": "admin", "AUTH_TYPE": "Basic", ENVIRON_KEY: object(), "fcplus.claims": {},
                    "fcplus.id_token_claims": {}, "fcplus.anything": 1})
    strip_identity(environ)
    assert not [k for k in environ if k in ("REMOTE_USER", "AUTH_TYPE") or k.startswith("fcplus.")]
    # What is not an identity stays.
    for key in ("HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_COOKIE", "HTTP_X_REQUEST_ID", "PATH_INFO", "QUERY_STRING",
                "REQUEST_METHOD", "wsgi.input", "REMOTE_ADDR", "SERVER_NAME"):
        assert key in environ, key


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _wsgiref(app: Any) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _raw_get(hostport: str, headers: list[str]) -> bytes:
    host, port = hostport.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        request = "GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + "".join(f"{h}\r\n" for h in headers)
        sock.sendall(request.encode() + b"\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("server", ["waitress", "wsgiref"])
def test_real_servers_environ_is_stripped(server: str) -> None:
    """Whatever a real server makes of the spellings, nothing identity-like reaches the app."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ = dict(environ)
        strip_identity(environ)
        seen.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    headers = [f"{h}: admin" for h in SPELLINGS]
    if server == "waitress":
        with serve_wsgi(app, threads=1) as base:
            response = _raw_get(base.removeprefix("http://"), headers)
    else:
        with _wsgiref(app) as hostport:
            response = _raw_get(hostport, headers)
    assert response.startswith(b"HTTP/1.") and b" 200 " in response.split(b"\r\n", 1)[0]
    assert len(seen) == 1
    leaked = {k: v for k, v in seen[0].items() if v == "admin" or (isinstance(v, str) and "admin" in v)}
    assert leaked == {}


# -- read_cookie -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("", None), ("other=1", None),
    ("fcplus=abc", "abc"), ("a=1; fcplus=abc; b=2", "abc"), ("fcplus=first; fcplus=second", "first"),
    ('fcplus="quoted"', "quoted"), ("fcplus-login=x; fcplus=y", "y"), ("xfcplus=1; fcplus=2", "2"),
    ("fcplus-login=x", None), ("myfcplus=x", None), ("fcplus =x", None), ("fcplus=", ""),
    ("  fcplus=spaced  ;x=1", "spaced"), ("fcplus=a=b", "a=b"),
])
def test_read_cookie(header: str | None, expected: str | None) -> None:
    environ = {} if header is None else {"HTTP_COOKIE": header}
    assert read_cookie(environ, "fcplus") == expected


def test_read_cookie_host_prefixed_names() -> None:
    environ = {"HTTP_COOKIE": "__Host-fcplus-login=b; __Host-fcplus=s"}
    assert read_cookie(environ, "__Host-fcplus") == "s"
    assert read_cookie(environ, "__Host-fcplus-login") == "b"
    assert read_cookie({"HTTP_COOKIE": "fcplus=plain"}, "__Host-fcplus") is None


# -- wants_redirect --------------------------------------------------------------------------------

NAVIGATION = {"REQUEST_METHOD": "GET", "HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8",
              "HTTP_SEC_FETCH_MODE": "navigate", "HTTP_SEC_FETCH_DEST": "document"}


@pytest.mark.parametrize(("changes", "redirect"), [
    ({}, True),
    ({"HTTP_SEC_FETCH_MODE": None, "HTTP_SEC_FETCH_DEST": None}, True),           # older browsers
    ({"HTTP_ACCEPT": None, "HTTP_SEC_FETCH_MODE": None, "HTTP_SEC_FETCH_DEST": None}, True),  # curl-like
    ({"REQUEST_METHOD": "HEAD"}, True),
    ({"HTTP_SEC_FETCH_MODE": "cors"}, False), ({"HTTP_SEC_FETCH_MODE": "no-cors"}, False),
    ({"HTTP_SEC_FETCH_MODE": "same-origin"}, False), ({"HTTP_SEC_FETCH_MODE": "websocket"}, False),
    ({"HTTP_SEC_FETCH_DEST": "empty"}, False), ({"HTTP_SEC_FETCH_DEST": "iframe"}, False),
    ({"HTTP_SEC_FETCH_DEST": "image"}, False), ({"HTTP_SEC_FETCH_DEST": "script"}, False),
    ({"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}, False), ({"HTTP_X_REQUESTED_WITH": "xmlhttprequest"}, False),
    ({"HTTP_SEC_FETCH_MODE": None, "HTTP_SEC_FETCH_DEST": None, "HTTP_ACCEPT": "application/json"}, False),
    ({"HTTP_SEC_FETCH_MODE": None, "HTTP_SEC_FETCH_DEST": None, "HTTP_ACCEPT": "*/*"}, True),
    ({"HTTP_SEC_FETCH_MODE": None, "HTTP_SEC_FETCH_DEST": None, "HTTP_ACCEPT": "image/png"}, False),
    ({"REQUEST_METHOD": "POST"}, False), ({"REQUEST_METHOD": "PUT"}, False), ({"REQUEST_METHOD": "DELETE"}, False),
    ({"REQUEST_METHOD": "OPTIONS"}, False),
])
def test_wants_redirect_auto(changes: dict[str, Any], redirect: bool) -> None:
    environ = {k: v for k, v in {**NAVIGATION, **changes}.items() if v is not None}
    assert wants_redirect(environ, "auto") is redirect


def test_wants_redirect_override_modes() -> None:
    script = {**NAVIGATION, "HTTP_SEC_FETCH_MODE": "cors", "REQUEST_METHOD": "POST"}
    assert wants_redirect(script, "redirect") is True
    assert wants_redirect(NAVIGATION, "401") is False
    assert wants_redirect(NAVIGATION, "auto") is True


def test_remembered_path_judgements_are_bounded_and_long_paths_never_kept() -> None:
    """A scan of random paths must not grow the per-path judgements without limit."""
    from fcplus_wsgi.middleware import _JUDGED_PATH_MAX, _JUDGED_PATHS, FCPlusMiddleware

    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return []

    mw = FCPlusMiddleware(app, {"issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s",
                                "redirect_uri": "http://127.0.0.1:8000/cb", "session_store": "memory://",
                                "cookie_secure": "false", "protected_paths": "/private"})
    for i in range(3 * _JUDGED_PATHS):
        environ = base_environ()
        environ["PATH_INFO"] = f"/public/{i}"
        mw(environ, lambda status, headers, exc_info=None: None)
    assert len(mw._judged) <= _JUDGED_PATHS
    long_path = "/public/" + "x" * _JUDGED_PATH_MAX
    environ = base_environ()
    environ["PATH_INFO"] = long_path
    mw(environ, lambda status, headers, exc_info=None: None)
    assert long_path not in mw._judged
    assert len(calls) == 3 * _JUDGED_PATHS + 1
