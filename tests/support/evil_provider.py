"""A scriptable adversarial OpenID provider, and a stack that puts the middleware in front
of a recording app with this provider behind it, all over real loopback HTTP.

The development provider behaves; this one does what a test tells it to. /authorize
answers at once with a 302 back to the redirect_uri (code + state, or an error with any
description), capturing the nonce so that valid tokens can still be minted. /token and
/userinfo answer whatever the per-test scenario returns: a valid nested JWE/JWS encrypted
to the keys the middleware publishes at its jwks_uri, any forged variant, RFC 6749/6750
errors, 5xx, non-JSON, oversized or slow bodies. Discovery can lie about the issuer and
the JWKS can rotate, hold several keys or keys without kid. Transport failures that a
WSGI app cannot produce (TLS with an untrusted certificate, a connection reset) have
their own small servers here.

Tokens are made with jwcrypto the way a provider (or an attacker) would make them, so the
middleware's real parsing and cryptography are what the tests exercise.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import requests
from jwcrypto import jwe, jwk, jws
from jwcrypto.jws import JWSCore
from webob import Request, Response

from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.events import EventBus, FlowEvent, stdlib_log_subscriber
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.devstack import whoami_app
from tests.support.servers import LateApp, serve_wsgi

CLIENT_ID = "evil-client"
SECRET = "evil-secret-" + "z" * 40
ISSUER_PATH = "/api/v2"
DROP = object()  # a claim override that removes the claim

Handler = Callable[[Request, "Grant | None"], Response]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(body=json.dumps(body).encode(), status=status, content_type="application/json",
                        charset=None)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def raw_response(body: bytes, content_type: str = "text/plain", status: int = 200,
                 headers: dict[str, str] | None = None) -> Response:
    response = Response(body=body, status=status, content_type=content_type, charset=None)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def streamed_response(size: int, content_type: str = "application/json") -> Response:
    """A body sent chunked, with no Content-Length, so only the reader's own cap can stop it."""
    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < size:
            piece = b"x" * min(8192, size - sent)
            sent += len(piece)
            yield piece
    response = Response(app_iter=chunks(), content_type=content_type, charset=None)
    response.headers.pop("Content-Length", None)
    return response


# -- keys and token crafting ------------------------------------------------------------------------

def ec_key(kid: str | None = None) -> jwk.JWK:
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    return _named(key, kid)


def rsa_key(kid: str | None = None, size: int = 2048) -> jwk.JWK:
    key = jwk.JWK.generate(kty="RSA", size=size)
    return _named(key, kid)


def _named(key: jwk.JWK, kid: str | None) -> jwk.JWK:
    data = json.loads(key.export_private())
    data["kid"] = kid or key.thumbprint()
    return jwk.JWK(**data)


def public_dict(key: jwk.JWK, *, kid: bool = True, alg: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(key.export_public())
    data["use"] = "sig"
    if alg:
        data["alg"] = alg
    if not kid:
        data.pop("kid", None)
    return data


def sign(claims: Any, key: jwk.JWK, alg: str, *, kid: str | bool = True,
         extra_header: dict[str, Any] | None = None) -> str:
    """A compact JWS; kid=True names the key's kid, False omits it, a string forces one."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is True and key.get("kid"):
        header["kid"] = key.get("kid")
    elif isinstance(kid, str):
        header["kid"] = kid
    header.update(extra_header or {})
    token = jws.JWS(json.dumps(claims).encode())
    token.allowed_algs = [alg]
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return str(token.serialize(compact=True))


def sign_raw(payload: bytes, key: jwk.JWK, alg: str, header: dict[str, Any] | str | None = None) -> str:
    """A compact JWS over exact payload bytes with an exact header (a dict, or JSON text for
    what Python's json cannot write, such as 1,000 levels of nesting), signed for real."""
    protected = header if isinstance(header, str) else json.dumps(header or {"alg": alg, "kid": key.get("kid")})
    head = b64url(protected.encode())
    signing_input = f"{head}.{b64url(payload)}".encode()
    # jwcrypto's engine for alg signs the exact bytes; the header stays verbatim (jwcrypto
    # would parse it, and Python's json gives up at about 1,000 levels).
    signature = JWSCore(alg, key, json.dumps({"alg": alg}), payload).engine.sign(key, signing_input)
    return f"{head}.{b64url(payload)}.{b64url(signature)}"


def unsigned(claims: Any) -> str:
    """alg none, assembled by hand: no library should help make one."""
    return b64json({"alg": "none", "typ": "JWT"}) + "." + b64json(claims) + "."


def hs256(claims: Any, secret: bytes, kid: str | None = None) -> str:
    header = {"kid": kid} if kid else None
    return sign(claims, jwk.JWK(kty="oct", k=b64url(secret)), "HS256", kid=False, extra_header=header)


def tamper_signature(compact: str) -> str:
    """Same header and payload, one signature bit flipped."""
    head, payload, signature = compact.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def swap_payload(compact: str, claims: Any) -> str:
    """The original signature over a payload it never signed."""
    head, _, signature = compact.split(".")
    return f"{head}.{b64json(claims)}.{signature}"


def encrypt(inner: str, key: jwk.JWK, alg: str = "RSA-OAEP", enc: str = "A256GCM", *,
            kid: str | bool = True, extra_header: dict[str, Any] | None = None) -> str:
    header: dict[str, Any] = {"alg": alg, "enc": enc, "cty": "JWT"}
    if kid is True and key.get("kid"):
        header["kid"] = key.get("kid")
    elif isinstance(kid, str):
        header["kid"] = kid
    header.update(extra_header or {})
    token = jwe.JWE(inner.encode("ascii"), protected=json.dumps(header))
    token.allowed_algs = [alg, enc]
    token.add_recipient(key)
    return str(token.serialize(compact=True))


# -- the provider ---------------------------------------------------------------------------------

@dataclass
class Grant:
    """One /authorize answered: what the client asked, so /token can mint matching tokens."""

    code: str
    state: str
    nonce: str
    redirect_uri: str
    acr_values: tuple[str, ...]
    access_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    sub: str = field(default_factory=lambda: secrets.token_hex(32) + "v1")
    redeemed: bool = False


class EvilProvider:
    """A WSGI OpenID provider whose every answer a test can replace.

    `mode` picks what a *valid* answer looks like: "fcplus" (ES256 signed, then encrypted with
    RSA-OAEP/A256GCM to the service's published key, userinfo as a nested JWT) or "plain"
    (RS256 signed id_token, JSON userinfo), matching the two middleware configurations.
    """

    def __init__(self, mode: str = "fcplus", *, client_id: str = CLIENT_ID, client_secret: str = SECRET) -> None:
        self.mode = mode
        self.client_id = client_id
        self.client_secret = client_secret
        self.base = ""  # set once the server is bound
        self.client_jwks_uri = ""  # the middleware's jwks_path URL
        self.alg = "ES256" if mode == "fcplus" else "RS256"
        self.signing_key = ec_key() if self.alg == "ES256" else rsa_key()
        # What /jwks publishes; None means the public half of signing_key.
        self.published: list[dict[str, Any]] | None = None
        # Discovery
        self.discovery_issuer: str | None = None  # a lie, when set
        self.discovery_overrides: dict[str, Any] = {}
        self.discovery_handler: Callable[[Request], Response] | None = None
        self.jwks_handler: Callable[[Request], Response] | None = None
        # /authorize: an error to send back instead of a code, extra or replaced parameters.
        self.authorize_error: dict[str, str] | None = None
        self.authorize_extra: dict[str, str] = {}
        # /token and /userinfo: None means the valid default answer.
        self.token_handler: Handler | None = None
        self.userinfo_handler: Handler | None = None
        # Tweaks of the valid answers: claim overrides (DROP removes) and whole-token factories.
        self.id_claims: dict[str, Any] = {}
        self.userinfo_claims: dict[str, Any] = {}
        self.sign_kid = True  # False: valid tokens name no kid in their JWS header
        self.id_token_factory: Callable[[Grant, dict[str, Any]], str] | None = None
        self.userinfo_factory: Callable[[Grant, dict[str, Any]], Response] | None = None
        self.grants: dict[str, Grant] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._client_keys: dict[str, Any] | None = None

    # -- addresses --------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self.base + ISSUER_PATH

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}/{name}"

    def discovery(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "userinfo_endpoint": self.endpoint("userinfo"),
            "jwks_uri": self.endpoint("jwks"),
            "end_session_endpoint": self.endpoint("session/end"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [self.alg],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not DROP}

    def jwks(self) -> dict[str, Any]:
        if self.published is not None:
            return {"keys": self.published}
        return {"keys": [public_dict(self.signing_key, alg=self.alg)]}

    def rotate(self) -> jwk.JWK:
        """A new signing key replaces the old one, in the JWKS and in new tokens."""
        self.signing_key = ec_key() if self.alg == "ES256" else rsa_key()
        self.published = None
        return self.signing_key

    # -- the service's keys, as any provider would get them ---------------------------------------------
    def client_key(self, alg: str = "RSA-OAEP") -> jwk.JWK:
        if self._client_keys is None:
            self._client_keys = requests.get(self.client_jwks_uri, timeout=5).json()
        kty = "EC" if alg == "ECDH-ES" else "RSA"
        for item in self._client_keys["keys"]:
            if item.get("use") == "enc" and item.get("kty") == kty:
                return jwk.JWK(**item)
        raise LookupError(f"the service publishes no {kty} encryption key")

    # -- valid answers, piece by piece -----------------------------------------------------------------
    def id_token_claims(self, grant: Grant, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "sub": grant.sub, "iat": now, "exp": now + 60,
            "nonce": grant.nonce, "auth_time": now,
        }
        if grant.acr_values:
            claims["acr"] = grant.acr_values[0]
        claims.update(self.id_claims)
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def userinfo_claim_set(self, grant: Grant, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": grant.sub, "given_name": "Angela Claire Louise", "family_name": "DUBOIS",
                                  "birthdate": "1962-08-24", "gender": "female"}
        # OpenID Connect Core 5.3.2: a signed userinfo must name issuer and audience; the plain
        # JSON answer carries them too, where they are harmless.
        claims.update(iss=self.issuer, aud=self.client_id)
        claims.update(self.userinfo_claims)
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def wrap(self, claims: dict[str, Any], *, encrypted: bool | None = None) -> str:
        """Sign with the current key, then encrypt to the service in fcplus mode."""
        signed = sign(claims, self.signing_key, self.alg, kid=self.sign_kid)
        if encrypted if encrypted is not None else self.mode == "fcplus":
            return encrypt(signed, self.client_key("RSA-OAEP"))
        return signed

    def mint_id_token(self, grant: Grant) -> str:
        claims = self.id_token_claims(grant)
        if self.id_token_factory is not None:
            return self.id_token_factory(grant, claims)
        return self.wrap(claims)

    def token_body(self, grant: Grant, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": grant.access_token, "token_type": "Bearer", "expires_in": 60,
                                "id_token": self.mint_id_token(grant), "scope": "openid"}
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not DROP}

    def userinfo_body(self, grant: Grant) -> Response:
        claims = self.userinfo_claim_set(grant)
        if self.userinfo_factory is not None:
            return self.userinfo_factory(grant, claims)
        if self.mode == "fcplus":
            return raw_response(self.wrap(claims).encode(), "application/jwt")
        return json_response(claims)

    # -- WSGI ---------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        route = request.path_info[len(ISSUER_PATH):] if request.path_info.startswith(ISSUER_PATH) else ""
        with self._lock:
            self.hits[route] = self.hits.get(route, 0) + 1
        handlers = {
            "/.well-known/openid-configuration": self._discovery, "/jwks": self._jwks,
            "/authorize": self._authorize, "/token": self._token, "/userinfo": self._userinfo,
        }
        handler = handlers.get(route)
        response = handler(request) if handler else Response(status=404)
        return response(environ, start_response)

    def _discovery(self, request: Request) -> Response:
        if self.discovery_handler is not None:
            return self.discovery_handler(request)
        return json_response(self.discovery())

    def _jwks(self, request: Request) -> Response:
        if self.jwks_handler is not None:
            return self.jwks_handler(request)
        return json_response(self.jwks())

    def _authorize(self, request: Request) -> Response:
        q = request.GET
        redirect_uri = q.get("redirect_uri", "")
        state = q.get("state", "")
        params: dict[str, str]
        if self.authorize_error is not None:
            params = {**self.authorize_error, "state": state}
        else:
            grant = Grant(code=secrets.token_urlsafe(24), state=state, nonce=q.get("nonce", ""),
                          redirect_uri=redirect_uri, acr_values=tuple(q.get("acr_values", "").split()))
            with self._lock:
                self.grants[grant.code] = grant
            params = {"code": grant.code, "state": state}
        params.update(self.authorize_extra)
        response = Response(status=302)
        response.location = redirect_uri + "?" + urlencode(params)
        return response

    def grant_for_code(self, code: str | None) -> Grant | None:
        with self._lock:
            return self.grants.get(code or "")

    def grant_for_token(self, token: str | None) -> Grant | None:
        with self._lock:
            return next((g for g in self.grants.values() if g.access_token == token), None)

    def _token(self, request: Request) -> Response:
        grant = self.grant_for_code(request.POST.get("code"))
        if self.token_handler is not None:
            return self.token_handler(request, grant)
        if request.POST.get("client_id") != self.client_id or request.POST.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        if grant is None or grant.redeemed or request.POST.get("redirect_uri") != grant.redirect_uri:
            return json_response({"error": "invalid_grant", "error_description": "code unknown or used"}, 400)
        grant.redeemed = True
        return json_response(self.token_body(grant), headers={"Cache-Control": "no-store"})

    def _userinfo(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        grant = self.grant_for_token(auth[7:] if auth.startswith("Bearer ") else None)
        if self.userinfo_handler is not None:
            return self.userinfo_handler(request, grant)
        if grant is None:
            return raw_response(b"", status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return self.userinfo_body(grant)


# -- servers for transport failures ---------------------------------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "evil-cert.pem", directory / "evil-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def serve_wsgi_tls(app: Any, cert: Path, key: Path) -> Iterator[str]:
    """Serve `app` over https on 127.0.0.1 (waitress speaks no TLS); yields the base URL."""
    server = _ThreadingWSGIServer(("127.0.0.1", 0), _QuietHandler)
    server.set_app(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def reset_server() -> Iterator[str]:
    """Accepts, reads the request, then resets the connection (RST, no HTTP answer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(2)
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the stack ------------------------------------------------------------------------------------

def recording_app(calls: list[dict[str, Any]]) -> Callable[..., Any]:
    """whoami_app, plus every identity-looking environ key the app could be fooled by."""
    inner = whoami_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = b"".join(inner(environ, lambda *a: None))
        seen = json.loads(body)
        seen["environ_keys"] = sorted(k for k in environ if k.startswith(("HTTP_", "fcplus")) or k in (
            "REMOTE_USER", "AUTH_TYPE"))
        calls.append(seen)
        out = json.dumps(seen).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]

    return app


_SERVICE_JWKS: dict[str, Any] = {}


def service_jwks() -> dict[str, Any]:
    """One private JWKS per test process: RSA key generation is the slow part of a stack."""
    if not _SERVICE_JWKS:
        _SERVICE_JWKS.update(generate_private_jwks())
    return _SERVICE_JWKS


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class EventRecorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def failures(self) -> list[FlowEvent]:
        return [e for e in self.events if e.outcome == "failure" and e.step != "provider_request"]

    def errors(self) -> list[str]:
        return [str(e.error) for e in self.failures()]


@dataclass
class EvilStack:
    base: str
    provider: EvilProvider
    middleware: FCPlusMiddleware
    calls: list[dict[str, Any]]
    recorder: EventRecorder
    logs: ListHandler

    def browser(self) -> EvilBrowser:
        return EvilBrowser(self)

    def live_sessions(self) -> int:
        """Sessions in the store: after a refusal there must be none."""
        data = getattr(self.middleware.store, "_data", {})
        return sum(1 for key in list(data) if key.startswith("s:"))


class EvilBrowser:
    """A cookie-keeping client: starts a sign-in, lets the provider answer, returns."""

    def __init__(self, stack: EvilStack) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.http.headers["Accept"] = "text/html,application/xhtml+xml"
        # Passed on each call: REQUESTS_CA_BUNDLE would override a Session-level value.
        self.verify: bool | str = True

    def get(self, path_or_url: str, **kw: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.stack.base + path_or_url
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 15)
        return self.http.get(url, **kw)

    def start(self, path: str = "/private/page") -> str:
        """Open a protected path; returns the provider authorization URL it redirected to."""
        first = self.get(path)
        assert first.status_code == 302, (first.status_code, first.text[:300])
        location = first.headers["Location"]
        assert location.startswith(self.stack.provider.endpoint("authorize")), location
        return location

    def authorize(self, authorize_url: str) -> str:
        """The provider's immediate answer: the callback URL with code+state (or an error)."""
        answer = self.http.get(authorize_url, allow_redirects=False, timeout=15, verify=self.verify)
        assert answer.status_code == 302, answer.status_code
        return str(answer.headers["Location"])

    def login(self, path: str = "/private/page") -> requests.Response:
        """The whole round trip; returns the middleware's answer on the callback."""
        return self.get(self.authorize(self.start(path)))

    def fcplus_cookies(self) -> list[str]:
        return [c.name for c in self.http.cookies if c.name.startswith("fcplus")]


def callback_query(callback_url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(callback_url).query)


@contextmanager
def evil_stack(tmp_path: Path, *, mode: str = "fcplus", settings: dict[str, Any] | None = None,
               provider: EvilProvider | None = None, tls: tuple[Path, Path] | None = None) -> Iterator[EvilStack]:
    """Evil provider + middleware (FC+ policy in "fcplus" mode, plain OIDC in "plain" mode)
    in front of an app that records every call. `tls` serves the provider over https."""
    keys_file = tmp_path / "keys.json"
    if not keys_file.exists():
        keys_file.write_text(json.dumps(service_jwks()))
    provider = provider or EvilProvider(mode)
    calls: list[dict[str, Any]] = []
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    # The log lines operators read: the correlation id on a page must be found there.
    logs = ListHandler()
    logger = logging.getLogger(f"fcplus_wsgi.flow.evil{id(logs)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logs)
    bus.subscribe(stdlib_log_subscriber(logger))
    with ExitStack() as stack:
        late_app = LateApp()
        base = stack.enter_context(serve_wsgi(late_app))
        provider.base = stack.enter_context(serve_wsgi_tls(provider, *tls) if tls else serve_wsgi(provider))
        provider.client_jwks_uri = base + "/oidc/jwks.json"
        config: dict[str, Any] = {
            "issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret,
            "redirect_uri": base + "/oidc/callback", "keys_file": str(keys_file), "session_store": "memory://",
            "cookie_secure": "false", "protected_paths": "/private /api", "http_timeout": "3",
        }
        if mode == "fcplus":
            config.update({"provider": "fcplus-integration", "acr_values": "eidas2"})
        config.update(settings or {})
        config = {k: v for k, v in config.items() if v is not DROP}
        middleware = FCPlusMiddleware(recording_app(calls), config, bus=bus)
        late_app.app = middleware
        try:
            yield EvilStack(base=base, provider=provider, middleware=middleware, calls=calls, recorder=recorder,
                            logs=logs)
        finally:
            middleware.client.close()
            middleware.store.close()
            logger.removeHandler(logs)


# -- what every refusal must look like -------------------------------------------------------------

_SECURITY_HEADER_VALUES = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                           "X-Content-Type-Options": "nosniff"}


def assert_friendly_page(response: requests.Response, status: int | None = None) -> str:
    """A middleware page: html, 4xx/5xx, security headers, correlation id, no traceback.
    Returns the correlation id."""
    assert 400 <= response.status_code < 600, response.status_code
    if status is not None:
        assert response.status_code == status, (response.status_code, status)
    assert response.headers["Content-Type"].startswith("text/html"), response.headers["Content-Type"]
    for name, value in _SECURITY_HEADER_VALUES.items():
        assert response.headers.get(name) == value, name
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    body = response.text
    assert "Traceback" not in body and 'File "' not in body and "<script" not in body.lower()
    cid = response.headers["X-Correlation-ID"]
    assert len(cid) == 12 and all(c in "0123456789abcdef" for c in cid), cid
    assert f'id="correlation-id">{cid}</span>' in body
    return cid


def assert_refused(stack: EvilStack, browser: EvilBrowser, response: requests.Response, code: str) -> str:
    """The refusal a hostile case must end in: the catalogue entry's page and status, the same
    code and correlation id in the events and the log lines, the app never called, and no
    session left that could grant access. Returns the correlation id."""
    from fcplus_wsgi.errors import CATALOGUE

    spec = CATALOGUE[code]
    cid = assert_friendly_page(response, spec.status)
    failures = stack.recorder.failures()
    assert failures, "no failure event was emitted"
    assert failures[-1].error == code, (failures[-1].error, code)
    assert failures[-1].category == spec.category.value
    assert failures[-1].correlation_id == cid, "the page's correlation id is not the logged one"
    assert any(f"correlation_id={cid}" in line and f"error={code}" in line for line in stack.logs.lines)
    has_retry = 'class="button"' in response.text
    assert has_retry == spec.retry, (code, has_retry)
    assert stack.calls == [], "the app was called"
    assert stack.live_sessions() == 0, "a session exists after a refusal"
    after = browser.get("/private/after-refusal")
    assert after.status_code != 200 and stack.calls == []
    return cid
