"""The WSGI layer: route the few flow paths, guard protected paths, pass the rest through.

The hot path (an authenticated request to the app) is kept lean: no WebOb request
object, one cookie lookup, one store read, one AES-GCM open. Everything the app could
mistake for an identity (REMOTE_USER, fcplus.* keys, Remote-User-like headers) is
removed from every request before anything else happens, and set again only from a
verified session.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from webob import Request, Response

from .authorize import check_hint, safe_return_to
from .client import ProviderClient, flow_correlation_id
from .errors import FlowError
from .events import EventBus, FlowEvent, stdlib_log_subscriber
from .flow import Flow, SilentLoginFailed, new_correlation_id
from .identity import ENVIRON_KEY, Identity, mutable_copy
from .keys import KeyFileError, ServiceKeys, load_keys_file
from .links import MIDDLEWARE_KEY, build_login_url
from .pages import Pages, PageTemplateError, secure
from .pending import LoginCookie
from .providers import EIDAS_ORDER, LOGIN_HINTS, acr_satisfies
from .settings import ConfigError, Settings, parse_settings
from .stores import Store, StoreError, open_store
from .stores.base import remember

if TYPE_CHECKING:
    from .observability import Observability

log = logging.getLogger("fcplus_wsgi")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Request headers a downstream app or framework might read as "the authenticated user".
# WSGI servers map both `Remote-User` and `Remote_User` to HTTP_REMOTE_USER, so the
# normalised names cover every spelling that reaches the environ.
_SPOOFABLE = frozenset({
    "REMOTE_USER", "AUTH_TYPE", "HTTP_REMOTE_USER", "HTTP_X_REMOTE_USER", "HTTP_X_FORWARDED_USER",
    "HTTP_X_AUTH_USER", "HTTP_X_USER", "HTTP_X_AUTH_REQUEST_USER", "HTTP_X_AUTH_REQUEST_EMAIL",
    "HTTP_X_FORWARDED_EMAIL", "HTTP_X_FORWARDED_PREFERRED_USERNAME", "HTTP_X_REMOTE_EMAIL", "HTTP_REMOTE_EMAIL",
    "HTTP_X_AUTHENTICATED_USER", "HTTP_X_USERINFO", "HTTP_X_ID_TOKEN", "HTTP_X_ACCESS_TOKEN",
    # The rest of oauth2-proxy's set: apps migrating from it authorise on these.
    "HTTP_X_FORWARDED_GROUPS", "HTTP_X_FORWARDED_ACCESS_TOKEN", "HTTP_X_AUTH_REQUEST_GROUPS",
    "HTTP_X_AUTH_REQUEST_PREFERRED_USERNAME", "HTTP_X_AUTH_REQUEST_ACCESS_TOKEN",
})
_SPOOFABLE_PREFIXES = ("fcplus.", "HTTP_X_FCPLUS", "HTTP_FCPLUS", "HTTP_OIDC_", "HTTP_X_OIDC_")
LOGIN_QUERY_HINTS = LOGIN_HINTS  # query parameters of the login path, named as the platforms name them
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# Set on every request, so adapters further in (fcplus_wsgi.pyramid) know a filter already
# runs the flow and defer to it. Only in-process code can set a key without the HTTP_ prefix.


# Every spoofable prefix contains one of these marks, so three substring searches over the
# joined keys (C speed) and one set test clear a clean environ; the per-key loop runs only
# when a mark or a listed key is present (almost never). This runs on every request.
_SPOOF_MARKS = ("FCPLUS", "OIDC_", "fcplus.")
assert all(any(mark in prefix for mark in _SPOOF_MARKS) for prefix in _SPOOFABLE_PREFIXES)


def strip_identity(environ: dict[str, Any]) -> None:
    joined = "\n".join(environ)
    if _SPOOFABLE.isdisjoint(environ) and "FCPLUS" not in joined and "OIDC_" not in joined \
            and "fcplus." not in joined:
        return
    for key in [k for k in environ if k in _SPOOFABLE or k.startswith(_SPOOFABLE_PREFIXES)]:
        del environ[key]


def read_cookie(environ: Mapping[str, Any], name: str) -> str | None:
    """The value of one cookie; the first wins, as browsers send the most specific first."""
    header = environ.get("HTTP_COOKIE")
    if not header:
        return None
    prefix = name + "="
    start = header.find(prefix)
    while start != -1:
        if start == 0 or header[start - 1] in " ;":  # a whole name, not the tail of another
            end = header.find(";", start)
            return header[start + len(prefix): end if end != -1 else len(header)].strip().strip('"')
        start = header.find(prefix, start + 1)
    return None


def wants_redirect(environ: Mapping[str, Any], mode: str) -> bool:
    """Navigation (redirect to the provider) or script (401)? Fetch Metadata first, then
    X-Requested-With, then Accept; non-GET requests never get a redirect they would replay."""
    if mode != "auto":
        return mode == "redirect"
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return False
    if environ.get("HTTP_X_REQUESTED_WITH", "").lower() == "xmlhttprequest":
        return False
    fetch_mode = environ.get("HTTP_SEC_FETCH_MODE")
    if fetch_mode and fetch_mode != "navigate":
        return False
    dest = environ.get("HTTP_SEC_FETCH_DEST")
    if dest and dest != "document":
        return False
    accept = environ.get("HTTP_ACCEPT", "")
    if accept and "text/html" not in accept and "*/*" not in accept:
        return False
    return True


def send(response: Response, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Start a WebOb response without its Host-based rewriting of relative Location headers:
    redirect targets here are configured URLs or checked same-origin paths, never built
    from what the client says the host is."""
    start_response(response.status, response.headerlist)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else response.app_iter


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def wsgi_path(configured: str) -> str:
    """A configured path in the form PEP 3333 servers give PATH_INFO: percent-decoded UTF-8
    bytes read as latin-1. Without this, `protected_paths = /démarches` would never match
    a request for /d%C3%A9marches, and that page would pass through unprotected."""
    return unquote(configured).encode("utf-8").decode("latin-1")


def url_path(environ_path: str) -> str:
    """An environ path back to a percent-encoded URL path (the inverse of the above)."""
    try:
        raw = environ_path.encode("latin-1")
    except UnicodeEncodeError:  # a server that did not follow PEP 3333
        raw = environ_path.encode("utf-8")
    return quote(raw, safe="/:@!$&'()*+,;=-._~")


def dot_free(path: str) -> str:
    """The path with '.', '..' and empty segments resolved (RFC 3986 5.2.4).

    Servers hand PATH_INFO over as sent; some applications (Pyramid traversal, static file
    servers) resolve dot segments, so /public/../private must not be judged public."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments) + ("/" if path.endswith("/") and segments else "")


# Judgements of request paths kept per middleware: enough for every route of an app;
# longer paths (or a scan of random ones) are judged each time, never kept.
_JUDGED_PATHS = 1024
_JUDGED_PATH_MAX = 256
_Judgement = tuple[Callable[[dict[str, Any]], Response] | None, bool, bool, str | None]


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    for prefix in prefixes:
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
            return True
    return False


class FCPlusMiddleware:
    """Wrap a WSGI app so protected paths require a FranceConnect+ (or OIDC) sign-in."""

    def __init__(self, app: WSGIApp, settings: Settings | Mapping[str, Any], *, store: Store | None = None,
                 client: ProviderClient | None = None, service_keys: ServiceKeys | None = None,
                 bus: EventBus | None = None, clock: Callable[[], float] = time.time,
                 pages: Pages | None = None) -> None:
        self.app = app
        self.settings = s = settings if isinstance(settings, Settings) else parse_settings(settings)
        if service_keys is None and s.keys_file:
            try:
                service_keys = load_keys_file(s.keys_file)
            except KeyFileError as exc:
                raise ConfigError(str(exc)) from None
        if s.policy.require_encryption:
            if service_keys is None or not any(service_keys.has_encryption_key(a) for a in s.policy.encryption_algs):
                raise ConfigError(f"keys_file holds no encryption key usable with {s.provider_name} "
                                  f"({', '.join(s.policy.encryption_algs)}); generate one with `fcplus-wsgi keys generate`.")
        self.service_keys = service_keys
        if store is None:
            try:
                store = open_store(s.session_store, clock=clock)
            except StoreError as exc:
                raise ConfigError(f"session_store: {exc}") from None
        self.store = store
        if bus is None:
            bus = EventBus()
            if not s.structlog:  # the structlog plugin replaces the plain log lines
                bus.subscribe(stdlib_log_subscriber())
        self.bus = bus
        self.observability: Observability | None = None
        if s.metrics or s.structlog:
            from .observability import Observability  # imported only when asked for

            self.observability = Observability(s, bus)
            store = self.store = self.observability.wrap_store(store)
        self.client = client or ProviderClient(
            s.issuer, timeout=s.http_timeout, ca_bundle=s.ca_bundle, max_bytes=s.max_response_bytes,
            jwks_refresh_interval=s.jwks_refresh_interval, observe=self._observe_provider_call, wire=s.wire)
        self.flow = Flow(s, client=self.client, store=store, service_keys=service_keys, bus=bus, clock=clock)
        if pages is None:
            try:
                pages = Pages((s.templates_dir,) if s.templates_dir else (), messages=s.messages)
            except PageTemplateError as exc:
                raise ConfigError(f"templates_dir {s.templates_dir}: {exc}") from None
        self.pages = pages
        self._login_platform: str | None = None
        if s.login_page:
            from .buttons import UnknownPlatformError, platform_for

            try:
                self._login_platform = platform_for(s)
            except UnknownPlatformError as exc:
                raise ConfigError(f"login_page = true, but {exc}.") from None
        routes: dict[str, Callable[[dict[str, Any]], Response]] = {
            s.login_path: self._login,
            s.callback_path: self._callback,
            s.logout_path: self._logout,
            s.jwks_path: self._jwks,
        }
        if s.logout_callback_path:
            routes[s.logout_callback_path] = self._logout_callback
        if s.metrics_path and self.observability is not None:
            routes[s.metrics_path] = self.observability.metrics_endpoint
        # Paths compared with the environ are kept in the environ's own form (see wsgi_path).
        self._routes = {wsgi_path(path): handler for path, handler in routes.items()}
        self._public = tuple(wsgi_path(p) for p in s.public_paths)
        self._protected = tuple(wsgi_path(p) for p in s.protected_paths)
        self._step_up = tuple((wsgi_path(p), acr) for p, acr in s.step_up)
        self._judged: dict[str, _Judgement] = {}

    def _observe_provider_call(self, endpoint: str, seconds: float, outcome: str, reason: str | None = None) -> None:
        extra = {"endpoint": endpoint, "reason": reason} if reason else {"endpoint": endpoint}
        self.bus.emit(FlowEvent(step="provider_request", outcome="success" if outcome == "success" else "failure",
                                provider=self.settings.provider_name, correlation_id=flow_correlation_id.get(),
                                duration=seconds,
                                error=None if outcome == "success" else outcome, extra=extra))

    # -- WSGI entry ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        strip_identity(environ)
        environ[MIDDLEWARE_KEY] = self
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        route, public, protected, need = self._judged.get(path) or self._judge(path)
        if route is not None:
            return send(self._serve(route, environ), environ, start_response)
        if public or (need is None and not protected):
            self._attach_optional(environ)
            return self.app(environ, start_response)

        s = self.settings
        session_id = read_cookie(environ, s.cookie_name)
        view = None
        if session_id is not None:
            try:
                view = self.flow.load_session(session_id)
            except StoreError as exc:
                cid = new_correlation_id()
                log.warning("session store failed on a protected path correlation_id=%s: %s", cid, exc)
                self.bus.emit(FlowEvent(step="session_ended", outcome="failure", provider=s.provider_name,
                                        correlation_id=cid, extra={"reason": "store_error"}))
                page = self._error_page(environ, FlowError("store_unavailable"), cid, retry=None)
                return send(page, environ, start_response)
        if view is not None and view.ended is None:
            if need is not None and not acr_satisfies(view.record.get("acr"), (need,)):
                return send(self.challenge(environ, need, step_up=True), environ, start_response)
            self._attach(environ, view.identity)
            return self.app(environ, start_response)
        if view is not None and view.ended:
            self.bus.emit(FlowEvent(step="session_ended", outcome="success", provider=s.provider_name,
                                    correlation_id=str(view.record.get("cid", "")), extra={"reason": view.ended}))
        return send(self._unauthenticated(environ, need), environ, start_response)

    def flow_response(self, environ: dict[str, Any]) -> Response | None:
        """The response for a flow path (login, callback, logout, ...), or None for any other
        path; framework adapters call this to serve the flow without a second implementation."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        route = (self._judged.get(path) or self._judge(path))[0]
        return None if route is None else self._serve(route, environ)

    def _judge(self, path: str) -> _Judgement:
        """What a request path is: a flow route, public, protected, the level it demands.

        Judged once per distinct path and remembered (bounded, short paths only), since
        every request asks and the answer depends on the settings alone. The path is judged
        as sent and, when it has dot or empty segments, as an application resolving them
        would see it too; the stricter answer wins."""
        route = self._routes.get(path.rstrip("/") or "/")
        if "/." in path or "//" in path:
            paths: tuple[str, ...] = (path, dot_free(path))
            public = all(_under(p, self._public) for p in paths)
            protected = any(_under(p, self._protected) for p in paths)
        else:
            paths = (path,)
            public, protected = _under(path, self._public), _under(path, self._protected)
        need = self._strongest(self.step_up_level(p) for p in paths) if self._step_up else None
        judgement = (route, public, protected, need)
        if len(path) <= _JUDGED_PATH_MAX:
            remember(self._judged, path, judgement, _JUDGED_PATHS)
        return judgement

    def _serve(self, route: Callable[[dict[str, Any]], Response], environ: dict[str, Any]) -> Response:
        try:
            return route(environ)
        except Exception:
            cid = new_correlation_id()
            log.exception("unexpected error on a flow path correlation_id=%s", cid)
            return self._error_page(environ, FlowError("internal_error"), cid, retry=self.settings.login_path)

    def step_up_level(self, path: str) -> str | None:
        """The strongest eIDAS level the `step_up` setting demands for this environ path, if any."""
        return self._strongest(acr for prefix, acr in self._step_up if _under(path, (prefix,)))

    @staticmethod
    def _strongest(levels: Iterable[str | None]) -> str | None:
        found = [level for level in levels if level is not None]
        return max(found, key=EIDAS_ORDER.index) if found else None

    def challenge(self, environ: dict[str, Any], acr: str | None = None, *, step_up: bool = False) -> Response:
        """Send the browser to the provider (or a script a 401) to sign in, at `acr` when given;
        `step_up` says a live session is below that level (RFC 9470's insufficient_user_authentication)."""
        return self._unauthenticated(environ, acr, step_up)

    @staticmethod
    def _attach(environ: dict[str, Any], ident: Identity) -> None:
        environ[ENVIRON_KEY] = ident
        environ["REMOTE_USER"] = ident.sub
        # Fresh dicts per request: the Identity is shared by the session cache and read-only.
        environ["fcplus.claims"] = mutable_copy(ident.claims)
        environ["fcplus.id_token_claims"] = mutable_copy(ident.id_token_claims)

    def _attach_optional(self, environ: dict[str, Any]) -> None:
        """On public paths, say who is signed in when that is cheap and safe to know."""
        session_id = read_cookie(environ, self.settings.cookie_name)
        if session_id is None:
            return
        try:
            view = self.flow.load_session(session_id)
        except StoreError:
            return  # public paths keep working while the store is down
        if view is not None and view.ended is None:
            self._attach(environ, view.identity)

    # -- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _request_id(environ: Mapping[str, Any]) -> str | None:
        value = environ.get("HTTP_X_REQUEST_ID")
        return value if isinstance(value, str) and _REQUEST_ID.fullmatch(value) else None

    def _login_url(self, return_to: str, acr: str | None = None) -> str:
        return build_login_url(self.settings, return_to, acr)

    def _error_page(self, environ: Mapping[str, Any], exc: FlowError, cid: str, retry: str | None) -> Response:
        return self.pages.error(exc, correlation_id=cid, accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"),
                                retry_url=retry)

    def _refuse(self, environ: Mapping[str, Any], step: str, exc: FlowError, retry: str | None) -> Response:
        """An error page for a refusal made here, before the flow ran: emit its event so the
        correlation id on the page is found in the logs, as for every other failure."""
        cid = new_correlation_id()
        self.bus.emit(FlowEvent(step=step, outcome="failure", provider=self.settings.provider_name, correlation_id=cid,
                                request_id=self._request_id(environ), error=exc.code,
                                category=exc.spec.category.value))
        return self._error_page(environ, exc, cid, retry=retry)

    def _clear_session_cookie(self, response: Response) -> None:
        """Expire the session cookie with the attributes it was set with: browsers ignore a
        deletion of a __Host- (or Secure) cookie that does not itself carry Secure."""
        s = self.settings
        response.set_cookie(s.cookie_name, "", max_age=0, path="/", secure=s.cookie_secure, httponly=True,
                            samesite="lax")

    def _set_browser_cookie(self, response: Response, value: str) -> None:
        s = self.settings
        response.set_cookie(s.pending_cookie_name, value, max_age=s.pending_login_ttl, path="/",
                            secure=s.cookie_secure, httponly=True, samesite="lax")

    def _redirect(self, location: str, status: int = 302) -> Response:
        response = Response(status=status)
        response.location = location
        return secure(response)

    def _begin(self, environ: dict[str, Any], return_to: str, acr: tuple[str, ...] | None = None, *,
               prompt: str | None = None, hints: Mapping[str, str] | None = None,
               browser: str | None = None) -> Response:
        """Redirect to the provider; the login cookie comes back with this login's sealed entry
        added (`browser`: the cookie as the callback just left it, for a silent retry)."""
        defaults = self.settings.acr_values
        if acr and defaults and all(acr_satisfies(d, acr) for d in defaults):
            acr = None  # a requested level may raise the configured one, never lower it
        if browser is None:
            browser = read_cookie(environ, self.settings.pending_cookie_name)
        try:
            start = self.flow.start_login(return_to=return_to, browser_secret=browser, acr_values=acr,
                                          request_id=self._request_id(environ), prompt=prompt, hints=hints)
        except FlowError as exc:
            return self._error_page(environ, exc, exc.correlation_id or new_correlation_id(),
                                    retry=self._login_url(return_to))
        response = self._redirect(start.url)
        if start.browser_secret != browser:
            self._set_browser_cookie(response, start.browser_secret)
        return response

    def _unauthenticated(self, environ: dict[str, Any], acr: str | None = None, step_up: bool = False) -> Response:
        path_qs = url_path(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            path_qs += "?" + environ["QUERY_STRING"]
        return_to = safe_return_to(path_qs) or "/"
        if wants_redirect(environ, self.settings.unauthenticated):
            if self._login_platform is not None:  # the login page shows the button first
                return self._redirect(self._login_url(return_to, acr), 303)
            return self._begin(environ, return_to, (acr,) if acr else None)
        error = "insufficient_user_authentication" if step_up else "login_required"
        login_url = self._login_url(return_to, acr)
        data = {"error": error, "login_url": login_url}
        # The header says what the body says, so a client reading either one can sign in again
        # at the right level and come back to the same page (RFC 9470 for the error name).
        challenge = f'OpenIDConnect realm="fcplus", error="{error}", login_url="{login_url}"'
        if acr:
            data["acr_values"] = acr
            challenge += f', acr_values="{acr}"'
        response = Response(body=json.dumps(data).encode(), status=401, content_type="application/json", charset=None)
        response.headers["WWW-Authenticate"] = challenge
        return secure(response)

    # -- flow paths -----------------------------------------------------------------------------------
    def _login(self, environ: dict[str, Any]) -> Response:
        """The login path: `return_to`, and optionally `acr`, `prompt=none` (a silent attempt)
        and the hints the platform accepts, each checked before anything is sent."""
        request = Request(environ)
        values = request.GET.getall("return_to")
        raw = values[0] if len(values) == 1 else None if values else "/"
        return_to = safe_return_to(raw) if raw is not None else None
        if return_to is None:
            return self._refuse(environ, "login_redirect", FlowError("return_to_invalid"), self.settings.login_path)
        wire = self.settings.wire
        single: dict[str, str] = {}
        for name in ("acr", "prompt", *LOGIN_QUERY_HINTS):
            found = request.GET.getall(name)
            if len(found) > 1:
                return self._bad_login_parameter(environ, f"repeated {name}")
            if found:
                single[name] = found[0]
        acr = None
        if "acr" in single:
            allowed = self.settings.policy.acr_values_allowed
            requested = tuple(single["acr"].split())
            if not requested or (allowed is not None and not set(requested) <= set(allowed)):
                return self._bad_login_parameter(environ, "acr not allowed")
            acr = requested
        prompt = single.get("prompt")
        if prompt is not None and (prompt != "none" or "none" not in wire.prompt_values):
            return self._bad_login_parameter(environ, "prompt not allowed")
        hints: dict[str, str] = {}
        for name in LOGIN_QUERY_HINTS:
            if name in single:
                problem = (check_hint(name, single[name]) if name in wire.hints
                           else f"{name} not accepted by {self.settings.provider_name}")
                if problem:
                    return self._bad_login_parameter(environ, problem)
                hints[name] = single[name]
        choice = request.GET.getall("choice")
        if len(choice) > 1 or (choice and choice[0] not in (self._login_platform, *self._button_platforms())):
            return self._bad_login_parameter(environ, "choice is not a configured provider")
        if self._login_platform is not None and not choice and prompt is None:
            return self._login_page(environ, request, return_to)
        return self._begin(environ, return_to, acr, prompt=prompt, hints=hints)

    def _button_platforms(self) -> tuple[str, ...]:
        """The button names a login link may carry as `choice` (fcplus_wsgi.buttons adds it so
        its button goes straight to the provider even when the login page is on)."""
        from .buttons import PLATFORMS

        return (self.settings.preset.platform,) if self.settings.preset.platform in PLATFORMS else ()

    def _login_page(self, environ: dict[str, Any], request: Request, return_to: str) -> Response:
        """The page at login_path (setting login_page): the platform's button, which comes back
        here with `choice` and every parameter of this request (return_to, acr, hints) kept."""
        from .buttons import button_context

        platform = str(self._login_platform)
        query = [(k, v) for k, v in request.GET.items() if k != "choice"]
        href = self.settings.login_path + "?" + urlencode([*query, ("choice", platform)], safe="/")
        contexts = {lang: button_context(platform, href, lang=lang) for lang in ("fr", "en")}
        return self.pages.login(buttons=[contexts], return_to=return_to,
                                accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"))

    def _bad_login_parameter(self, environ: dict[str, Any], detail: str) -> Response:
        return self._refuse(environ, "login_redirect", FlowError("login_parameter_invalid", detail=detail),
                            self.settings.login_path)

    def _callback(self, environ: dict[str, Any]) -> Response:
        s = self.settings
        browser = read_cookie(environ, s.pending_cookie_name)
        try:
            params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, max_num_fields=32)
        except ValueError:  # parse_qs: too many fields
            return self._refuse(environ, "callback", FlowError("callback_malformed"), s.login_path)
        # Whatever the outcome, the browser's entry for this state is marked used.
        spent = self._spent_cookie(browser, params.get("state"))
        try:
            done = self.flow.finish_login(params, browser_secret=browser, request_id=self._request_id(environ))
        except FlowError as exc:
            # Retry the same login: back to the same page, at the same level (a refused step-up
            # must not come back as a plain sign-in that the page would refuse again).
            raised = " ".join(exc.acr) if exc.acr and tuple(exc.acr) != tuple(s.acr_values) else None
            retry = self._login_url(exc.return_to, raised) if exc.return_to else s.login_path
            page = self._error_page(environ, exc, exc.correlation_id or new_correlation_id(), retry=retry)
            if spent is not None:
                self._set_browser_cookie(page, spent)
            return page
        except SilentLoginFailed as silent:
            # The platform needs the user (no SSO session there): ask again, interactively.
            interactive = s.prompt if s.prompt and s.prompt != "none" else ""
            return self._begin(environ, silent.return_to, silent.acr or None, prompt=interactive,
                               hints=silent.hints, browser=spent or browser)
        old = read_cookie(environ, s.cookie_name)
        if old:
            try:
                self.flow.end_session(old)  # never keep a session id from before the login
            except StoreError:
                pass
        response = self._redirect(done.return_to, 303)
        response.set_cookie(s.cookie_name, done.session_id, path="/", secure=s.cookie_secure, httponly=True,
                            samesite="lax")
        if spent is not None:
            self._set_browser_cookie(response, spent)
        return response

    @staticmethod
    def _spent_cookie(browser: str | None, states: list[str] | None) -> str | None:
        """The login cookie with the callback's state marked used, or None when unchanged."""
        cookie = LoginCookie.parse(browser)
        if cookie is None or not states or len(states) != 1:
            return None
        value = cookie.spent(states[0]).render()
        return value if value != browser else None

    def _jwks(self, environ: dict[str, Any]) -> Response:
        if self.service_keys is None:
            response = Response(status=404, body=b'{"keys":[]}', content_type="application/json", charset=None)
        else:
            response = Response(body=self.service_keys.public_json, content_type="application/json", charset=None)
        response.headers["Cache-Control"] = "public, max-age=60"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _logout(self, environ: dict[str, Any]) -> Response:
        s = self.settings
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST", "HEAD"):
            return secure(Response(status=405))
        # A form posted from another site is confirmed too: the browser would apply the cookie's
        # deletion. Without Fetch Metadata a POST goes on (our own pages send no Origin: no-referrer).
        cross_post = method == "POST" and environ.get("HTTP_SEC_FETCH_SITE") not in (None, "same-origin", "none")
        if method == "HEAD" or cross_post or (method == "GET" and not self._own_page_asked(environ)):
            return self.pages.notice(
                fr_title="Se déconnecter ?", fr_message="Confirmez-vous la déconnexion ?",
                en_title="Sign out?", en_message="Do you want to sign out?",
                fr_cancel="Annuler et revenir à l'accueil", en_cancel="Cancel and go back to the home page",
                cancel_url="/", form_action=s.logout_path, form_targets=(_origin(s.issuer),),
                accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"))
        session_id = read_cookie(environ, s.cookie_name)
        browser = read_cookie(environ, s.pending_cookie_name)
        try:
            done = self.flow.start_logout(session_id, browser_secret=browser, request_id=self._request_id(environ))
        except FlowError as exc:  # the store failed: say so, and drop the cookie all the same
            page = self._error_page(environ, exc, exc.correlation_id or new_correlation_id(), retry=s.logout_path)
            self._clear_session_cookie(page)
            return page
        if done.provider_unreachable:
            response = self.pages.notice(
                status=503,
                fr_title="Vous êtes déconnecté de ce service",
                fr_message="Le fournisseur d'identité n'a pas pu être joint : votre session chez lui est peut-être "
                           "encore ouverte. Fermez votre navigateur si vous utilisez un poste partagé.",
                en_title="You are signed out of this service",
                en_message="The identity provider could not be reached: your session there may still be open. "
                           "Close your browser if you are on a shared computer.",
                link_url=s.logout_landing_path, fr_link="Retour à l'accueil", en_link="Back to the home page")
        else:
            response = self._redirect(done.target, 303)
        self._clear_session_cookie(response)
        if done.browser_secret and done.browser_secret != browser:
            self._set_browser_cookie(response, done.browser_secret)
        return response

    def _own_page_asked(self, environ: Mapping[str, Any]) -> bool:
        """Did this GET logout come from the service's own pages (or the user's own typing)?

        Fetch Metadata says so when the browser sends it: same-origin, or none for a typed
        URL or a bookmark. Without it (older browsers, clients stripping it), only an Origin
        or Referer of the service's own origin (redirect_uri's, never Host) counts: a link on
        another site can suppress both, so their absence asks for confirmation."""
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None:
            return site in ("same-origin", "none")
        came_from = environ.get("HTTP_ORIGIN") or environ.get("HTTP_REFERER")
        return bool(came_from) and _origin(str(came_from)) == _origin(self.settings.redirect_uri)

    def _logout_callback(self, environ: dict[str, Any]) -> Response:
        s = self.settings
        try:
            params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, max_num_fields=32)
        except ValueError:  # too many fields: no trustworthy state, so the neutral page below
            params = {}
        ok = self.flow.finish_logout(params, browser_secret=read_cookie(environ, s.pending_cookie_name),
                                     request_id=self._request_id(environ))
        try:
            self.flow.end_session(read_cookie(environ, s.cookie_name))
        except StoreError:
            pass
        if ok:
            response = self._redirect(s.logout_landing_path, 303)
        else:
            response = self.pages.notice(
                fr_title="Vous êtes déconnecté", fr_message="Votre session sur ce service est terminée.",
                en_title="You are signed out", en_message="Your session on this service has ended.",
                link_url=s.logout_landing_path, fr_link="Retour à l'accueil", en_link="Back to the home page")
        self._clear_session_cookie(response)
        return response


def make_middleware(app: WSGIApp, **settings: Any) -> FCPlusMiddleware:
    """Wrap `app`; settings are the ini keys as keyword arguments."""
    return FCPlusMiddleware(app, settings)
