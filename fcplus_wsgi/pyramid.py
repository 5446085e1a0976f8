"""Pyramid adapter: `config.include('fcplus_wsgi.pyramid')`.

Pyramid applications decide access per view (permissions, ACLs), so this adapter plugs
FranceConnect+ into Pyramid's own security machinery instead of guarding path prefixes:

- a tween serves the flow paths (login, callback, logout, logout callback, JWKS, metrics)
  with the very same code as the WSGI filter (`FCPlusMiddleware.flow_response`), so there is
  one flow, one cookie, one store, whichever way the application is wired;
- a security policy whose identity is the verified session and whose principals carry the
  eIDAS level (`acr:eidas1`, `acr:eidas2`, `acr:eidas3`, cumulative);
- a forbidden view that tells "sign in first" from "sign in again at a higher level"
  (step-up, RFC 9470's idea) from "signed in but not allowed";
- `request.fcplus` for templates and views (identity, login and logout URLs, a logout form).

When the `egg:fcplus_wsgi#fcplus` filter already wraps the application, it runs the flow
and this adapter defers to it (it finds the filter's marker in the environ), so including
both never yields two flows. With `fcplus.use_filter = true` the adapter has no settings of
its own and requires the filter.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden
from pyramid.interfaces import IRendererFactory, ISecurityPolicy
from pyramid.renderers import JSON as JSONRenderer
from pyramid.response import Response as PyramidResponse
from pyramid.security import Denied
from pyramid.tweens import INGRESS as TWEEN_INGRESS
from pyramid.viewderivers import INGRESS
from webob import Response

from .authorize import safe_return_to
from .errors import FlowError
from .events import FlowEvent
from .flow import new_correlation_id
from .identity import ENVIRON_KEY, Identity
from .links import build_login_url
from .middleware import MIDDLEWARE_KEY, FCPlusMiddleware, read_cookie, send, strip_identity, wants_redirect
from .pages import Pages
from .providers import EIDAS_ORDER, acr_satisfies
from .settings import ConfigError, _as_bool
from .stores import StoreError

__all__ = [
    "FCPlusRequest", "FCPlusSecurityPolicy", "LoginRequired", "StepUpRequired", "acr_principals",
    "fcplus_forbidden_view", "includeme",
]

log = logging.getLogger("fcplus_wsgi.pyramid")

PrincipalsCallback = Callable[[Identity, Any], Iterable[str]]

_REGISTRY_KEY = "fcplus_wsgi"
# Keys that only mean something to this adapter; everything else goes to parse_settings.
_ADAPTER_KEYS = ("use_filter", "principals_callback")
# Filter keys that guard paths: in Pyramid, views guard themselves.
_REFUSED_KEYS = {
    "protected_paths": "protect views with permission=... instead",
    "public_paths": "views without a permission are public already",
    "step_up": "require a level per view with fcplus_acr='eidas3' or an ACL granting to 'acr:eidas3'",
}
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


class _Registration:
    """What includeme decided, kept in the registry for the tween and request helpers."""

    def __init__(self, own: FCPlusMiddleware | None) -> None:
        self.own = own
        self.warned_missing_filter = False


def _registration(registry: Any) -> _Registration:
    reg = registry.get(_REGISTRY_KEY) if hasattr(registry, "get") else None
    if not isinstance(reg, _Registration):
        raise ConfigurationError("fcplus_wsgi.pyramid is not included; call config.include('fcplus_wsgi.pyramid').")
    return reg


def _never_called(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The inner app of the adapter's own middleware: only its flow paths are ever used."""
    raise RuntimeError("the fcplus Pyramid adapter never calls its middleware as a WSGI filter")


# -- permits results ---------------------------------------------------------------------------------


class LoginRequired(Denied):
    """Denied to an anonymous user; `acr` is the level a sign-in would need, when one would do."""

    acr: str | None

    def __new__(cls, acr: str | None = None) -> LoginRequired:
        inst = super().__new__(cls, "a sign-in%s is required", f" at {acr}" if acr else "")
        inst.acr = acr
        return inst


class StepUpRequired(Denied):
    """Denied to a signed-in user whose session is below `acr`; signing in again at `acr` would do."""

    acr: str

    def __new__(cls, acr: str) -> StepUpRequired:
        inst = super().__new__(cls, "a sign-in at %s is required (step-up)", acr)
        inst.acr = acr
        return inst


def acr_principals(acr: str | None) -> list[str]:
    """`acr:` principals for a session level: eIDAS levels are cumulative (eidas3 holds eidas2
    and eidas1), so an ACL names the minimum level it needs and stronger sessions pass."""
    if acr in EIDAS_ORDER:
        return [f"acr:{level}" for level in EIDAS_ORDER[: EIDAS_ORDER.index(acr) + 1]]
    return [f"acr:{acr}"] if acr else []


def _levels_allowed(mw: FCPlusMiddleware | None) -> tuple[str, ...]:
    """eIDAS levels a new sign-in may ask for, weakest first."""
    allowed = mw.settings.policy.acr_values_allowed if mw is not None else None
    return tuple(level for level in EIDAS_ORDER if allowed is None or level in allowed)


# -- request.fcplus ----------------------------------------------------------------------------------


class FCPlusRequest:
    """`request.fcplus`: the signed-in user and the URLs to sign in and out.

    Created once per request (reified); the session is read from the store at most once.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self._loaded = False
        self._identity: Identity | None = None
        self.store_failed = False

    @property
    def middleware(self) -> FCPlusMiddleware | None:
        """The flow in charge of this request: the WSGI filter when it wraps the app, else our own."""
        active = self.request.environ.get(MIDDLEWARE_KEY)
        if isinstance(active, FCPlusMiddleware):
            return active
        return _registration(self.request.registry).own

    @property
    def from_filter(self) -> bool:
        """True when the WSGI filter runs the flow and attached the identity itself."""
        active = self.request.environ.get(MIDDLEWARE_KEY)
        return isinstance(active, FCPlusMiddleware) and active is not _registration(self.request.registry).own

    @property
    def identity(self) -> Identity | None:
        """The verified identity of the signed-in user, or None."""
        if not self._loaded:
            self._identity = self._load()
            self._loaded = True
        return self._identity

    def _load(self) -> Identity | None:
        environ = self.request.environ
        mw = self.middleware
        if mw is None:
            return None  # use_filter without the filter: fail closed (the tween shows an error page)
        if self.from_filter:
            value = environ.get(ENVIRON_KEY)
            return value if isinstance(value, Identity) else None
        try:
            view = mw.flow.load_session(read_cookie(environ, mw.settings.cookie_name))
        except StoreError as exc:
            log.warning("session store failed while reading a session: %s", exc)
            self.store_failed = True
            return None
        if view is None:
            return None
        if view.ended:
            mw.bus.emit(FlowEvent(step="session_ended", outcome="success", provider=mw.settings.provider_name,
                                  correlation_id=str(view.record.get("cid", "")), extra={"reason": view.ended}))
            return None
        return view.identity

    def acr_at_least(self, level: str) -> bool:
        """Whether the session meets eIDAS `level` (False when nobody is signed in)."""
        ident = self.identity
        return ident is not None and acr_satisfies(ident.acr, (level,))

    def _require(self) -> FCPlusMiddleware:
        mw = self.middleware
        if mw is None:
            raise ConfigError("fcplus.use_filter = true, but this request did not go through the "
                              "egg:fcplus_wsgi#fcplus filter; add the filter to the pipeline.")
        return mw

    def current_path(self) -> str:
        """This request's path and query, as a return_to value."""
        environ = self.request.environ
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe=_PATH_SAFE)
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        return safe_return_to(path) or "/"

    def login_url(self, return_to: str | None = None, acr: str | None = None, *, silent: bool = False,
                  idp_hint: str | None = None, login_hint: str | None = None, siret_hint: str | None = None) -> str:
        """The path that starts a sign-in and comes back to `return_to` (default: this page).

        `acr` asks for a higher eIDAS level than the configured one (step-up); it can never
        lower it. `silent` and the hints are those of fcplus_wsgi.login_url.
        """
        mw = self._require()
        target = self.current_path() if return_to is None else safe_return_to(return_to)
        if target is None:
            raise ValueError("return_to must be a path on this site, such as /account.")
        if acr is not None and acr not in _levels_allowed(mw):
            raise ValueError(f"acr {acr!r} is not accepted by {mw.settings.provider_name}; "
                             f"use one of {', '.join(_levels_allowed(mw))}.")
        return build_login_url(mw.settings, target, acr, silent=silent, idp_hint=idp_hint, login_hint=login_hint,
                               siret_hint=siret_hint)

    def logout_url(self) -> str:
        """The path that signs out here and at the provider."""
        return self._require().settings.logout_path

    def logout_form(self, label: str = "Se déconnecter / Sign out", css_class: str | None = None) -> Markup:
        """A POST form to the logout path (a link would work too; a form keeps prefetchers away)."""
        attrs = Markup(' class="{}"').format(css_class) if css_class else Markup("")
        return Markup('<form method="post" action="{}"{}><button type="submit">{}</button></form>').format(
            self.logout_url(), attrs, label)

    def forget(self) -> list[tuple[str, str]]:
        """End the local session (store and cookie) and return the Set-Cookie headers that clear it.

        The provider session is left alone: that is what logout_url() is for.
        """
        mw = self.middleware
        if mw is None:
            return []
        s = mw.settings
        try:
            record = mw.flow.end_session(read_cookie(self.request.environ, s.cookie_name))
        except StoreError as exc:
            log.warning("session store failed while ending a session: %s", exc)
            record = None
        if record is not None:
            mw.bus.emit(FlowEvent(step="session_ended", outcome="success", provider=s.provider_name,
                                  correlation_id=str(record.get("cid", "")), extra={"reason": "logout"}))
        self._loaded, self._identity = True, None
        for key in (ENVIRON_KEY, "fcplus.claims", "fcplus.id_token_claims", "REMOTE_USER"):
            self.request.environ.pop(key, None)
        response = Response()
        # Same attributes as when it was set: browsers ignore a __Host- deletion without Secure.
        response.set_cookie(s.cookie_name, None, path="/", secure=s.cookie_secure, httponly=True, samesite="lax")
        return [(name, value) for name, value in response.headerlist if name.lower() == "set-cookie"]


# -- security policy ---------------------------------------------------------------------------------


class FCPlusSecurityPolicy:
    """A Pyramid 2 security policy over the FranceConnect+ session.

    Principals: `system.Everyone`; when signed in, `system.Authenticated`, `sub:<sub>`,
    `provider:<preset>`, the cumulative `acr:` levels, and whatever `principals_callback(identity,
    request)` derives from the claims (except `acr:` ones: the level comes only from the
    verified session). `permits` checks the context's ACL; when it denies, it says whether a
    sign-in, or a sign-in at a higher level, would have been granted, so the forbidden view
    can send the user to the provider instead of showing a 403.
    """

    def __init__(self, principals_callback: PrincipalsCallback | None = None) -> None:
        self.principals_callback = principals_callback
        self.acl = ACLHelper()

    def identity(self, request: Any) -> Identity | None:
        return request.fcplus.identity

    def authenticated_userid(self, request: Any) -> str | None:
        ident = self.identity(request)
        return ident.sub if ident is not None else None

    def effective_principals(self, request: Any) -> list[str]:
        ident = self.identity(request)
        if ident is None:
            return [Everyone]
        principals = [Everyone, Authenticated, f"sub:{ident.sub}", f"provider:{ident.provider}",
                      *acr_principals(ident.acr)]
        if self.principals_callback is not None:
            principals += [p for p in self.principals_callback(ident, request) if not str(p).startswith("acr:")]
        return principals

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        principals = self.effective_principals(request)
        result = self.acl.permits(context, principals, permission)
        if result:
            return result
        ident = self.identity(request)
        current = ident.acr if ident is not None else None
        for level in _levels_allowed(request.fcplus.middleware):
            if ident is not None and acr_satisfies(current, (level,)):
                continue
            if self.permits_at(request, context, permission, level, principals):
                return StepUpRequired(level) if ident is not None else LoginRequired(level)
        return LoginRequired() if ident is None else result

    def permits_at(self, request: Any, context: Any, permission: str, level: str,
                   principals: list[str] | None = None) -> bool:
        """Whether the ACL would grant `permission` to this user signed in at `level`."""
        base = [p for p in (principals or self.effective_principals(request)) if not p.startswith("acr:")]
        if Authenticated not in base:
            base.append(Authenticated)
        return bool(self.acl.permits(context, base + acr_principals(level), permission))

    def remember(self, request: Any, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """Sessions are born from a verified sign-in only: remembering the current user is a
        no-op, anybody else is a programming error (send them to request.fcplus.login_url())."""
        ident = self.identity(request)
        if ident is not None and ident.sub == userid:
            return []
        raise ValueError("a FranceConnect+ session is created by the sign-in flow only; "
                         "redirect to request.fcplus.login_url() instead of calling remember().")

    def forget(self, request: Any, **kw: Any) -> list[tuple[str, str]]:
        return request.fcplus.forget()


# -- step-up as a view option ------------------------------------------------------------------------


def fcplus_acr_deriver(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """`fcplus_acr='eidas3'` on add_view/view_config: the view needs a session at that level.

    It runs before the permission check, so an anonymous visitor signs in at that level
    directly (one trip to the provider, not two); a signed-in user below it is sent to
    step up only when the view's permission would then be granted, else gets the 403.
    """
    level = info.options.get("fcplus_acr")
    if level is None:
        return view
    allowed = _levels_allowed(_registration(info.registry).own)
    if level not in allowed:
        raise ConfigurationError(f"fcplus_acr={level!r} on a view: use one of {', '.join(allowed)}.")
    permission = getattr(view, "__permission__", None)

    def acr_checked_view(context: Any, request: Any) -> Any:
        ident = request.fcplus.identity
        if ident is None:
            raise HTTPForbidden(f"a sign-in at {level} is required", result=LoginRequired(level))
        if not acr_satisfies(ident.acr, (level,)):
            policy = request.registry.queryUtility(ISecurityPolicy)
            if (permission is not None and isinstance(policy, FCPlusSecurityPolicy)
                    and not policy.permits_at(request, context, permission, level)):
                raise HTTPForbidden(f"{permission!r} is not granted", result=Denied("not granted at %s", level))
            raise HTTPForbidden(f"a sign-in at {level} is required", result=StepUpRequired(level))
        return view(context, request)

    return acr_checked_view


fcplus_acr_deriver.options = ("fcplus_acr",)  # type: ignore[attr-defined]


# -- responses ---------------------------------------------------------------------------------------


class _FlowResponse(PyramidResponse):
    """Sent as built: no Host-based rewriting of relative Location headers (see middleware.send)."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return send(self, environ, start_response)


def _as_pyramid(response: Response) -> _FlowResponse:
    return _FlowResponse(status=response.status, headerlist=list(response.headerlist), app_iter=response.app_iter)


_fallback_pages: Pages | None = None


def _misconfigured(request: Any) -> _FlowResponse:
    global _fallback_pages
    if _fallback_pages is None:
        _fallback_pages = Pages()
    cid = new_correlation_id()
    return _as_pyramid(_fallback_pages.error(FlowError("internal_error"), correlation_id=cid,
                                             accept_language=request.environ.get("HTTP_ACCEPT_LANGUAGE"),
                                             retry_url=None))


def fcplus_forbidden_view(exc: Any, request: Any) -> Any:
    """Forbidden, sorted out: anonymous -> sign in; signed in below the level -> step-up;
    signed in and still not allowed -> a 403 page (JSON for scripts)."""
    helper: FCPlusRequest = request.fcplus
    mw = helper.middleware
    if mw is None:
        return _misconfigured(request)
    environ = request.environ
    ident = helper.identity
    if helper.store_failed:
        return _as_pyramid(mw.pages.error(FlowError("store_unavailable"), correlation_id=new_correlation_id(),
                                          accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"), retry_url=None))
    result = getattr(exc, "result", None)
    level = getattr(result, "acr", None) if isinstance(result, (LoginRequired, StepUpRequired)) else None
    if ident is None:
        defaults = mw.settings.acr_values
        if level and defaults and all(acr_satisfies(d, (level,)) for d in defaults):
            level = None  # the configured level is enough: an ordinary sign-in
        return _as_pyramid(mw.challenge(environ, level))
    if isinstance(result, StepUpRequired) and not acr_satisfies(ident.acr, (result.acr,)):
        return _as_pyramid(mw.challenge(environ, result.acr, step_up=True))
    if not wants_redirect(environ, "auto"):
        response = Response(json_body={"error": "forbidden"}, status=403)
        response.headers["Cache-Control"] = "no-store"
        return response
    return _as_pyramid(mw.pages.notice(
        status=403, fr_title="Accès refusé",
        fr_message="Vous êtes connecté, mais votre compte n'a pas accès à cette page.",
        en_title="Access denied", en_message="You are signed in, but your account may not open this page.",
        link_url="/", fr_link="Retour à l'accueil", en_link="Back to the home page"))


# -- tween -------------------------------------------------------------------------------------------


def flow_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    """Serve the flow paths before routing, unless the WSGI filter already did."""
    reg = _registration(registry)

    def fcplus_tween(request: Any) -> Any:
        environ = request.environ
        if isinstance(environ.get(MIDDLEWARE_KEY), FCPlusMiddleware):
            return handler(request)  # the filter wraps the app: it ran the flow and stripped the environ
        own = reg.own
        if own is None:
            if not reg.warned_missing_filter:
                reg.warned_missing_filter = True
                log.error("fcplus.use_filter = true, but a request arrived without the egg:fcplus_wsgi#fcplus "
                          "filter; every request gets an error page until the filter wraps the application.")
            return _misconfigured(request)
        strip_identity(environ)  # nothing identity-like from the client reaches the app
        environ[MIDDLEWARE_KEY] = own
        response = own.flow_response(environ)
        if response is not None:
            return _as_pyramid(response)
        return handler(request)

    return fcplus_tween


# -- includeme ---------------------------------------------------------------------------------------


def _settings_from(config_settings: Mapping[str, Any]) -> dict[str, Any]:
    return {key[len("fcplus."):]: value for key, value in config_settings.items() if key.startswith("fcplus.")}


def _mapping_as_dict(value: Mapping[str, Any], request: Any) -> dict[str, Any]:
    return dict(value)


def _json_serialises_identity_views(config: Any) -> None:
    """`request.identity.claims` is a read-only view (MappingProxyType) that json.dumps
    refuses; teach the app's `json` renderer to write it as the object it is, so a view
    with renderer="json" can return it. An app's own non-Pyramid json renderer is left alone."""
    def register() -> None:
        factory = config.registry.queryUtility(IRendererFactory, name="json")
        if isinstance(factory, JSONRenderer):
            factory.add_adapter(MappingProxyType, _mapping_as_dict)
    config.action(None, register)


_previous_excepthook: Callable[..., Any] | None = None


def _config_error_exits_in_one_sentence() -> None:
    """Under pserve nothing catches an include's ConfigError: the interpreter would print a
    35-line Paste and Pyramid traceback around the one sentence that matters (servers that
    catch it themselves, such as gunicorn, print it their own way). An uncaught ConfigError is
    printed alone; everything else, and every ConfigError a caller catches, is untouched (the
    hook only sees what nobody caught)."""
    global _previous_excepthook
    if _previous_excepthook is not None:
        return
    _previous_excepthook = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if isinstance(value, ConfigError):
            print(f"fcplus-wsgi: configuration error: {value}", file=sys.stderr)
            return
        assert _previous_excepthook is not None
        _previous_excepthook(kind, value, tb)
    sys.excepthook = hook


def includeme(config: Any) -> None:
    """Read `fcplus.*` settings, then register the tween, security policy, forbidden view,
    `request.fcplus` and the `fcplus_acr` view option.

    The security policy and forbidden view are defaults: an application that calls
    set_security_policy or add_forbidden_view itself overrides them (Pyramid gives the
    includer's directives precedence), and can reuse FCPlusSecurityPolicy and
    fcplus_forbidden_view inside its own. A ConfigError still reaches the caller; left
    uncaught, it ends the process with its one sentence.
    """
    try:
        _include(config)
    except ConfigError:
        _config_error_exits_in_one_sentence()
        raise


def _include(config: Any) -> None:
    raw = _settings_from(config.get_settings() or {})
    use_filter = _as_bool("fcplus.use_filter", raw.pop("use_filter", False))
    dotted = raw.pop("principals_callback", None)
    try:
        callback = config.maybe_dotted(dotted)
    except (ImportError, ValueError, AttributeError, ConfigurationError):
        raise ConfigError(f"fcplus.principals_callback = {dotted} cannot be imported; write it as "
                          "package.module:function.") from None
    if callback is not None and not callable(callback):
        raise ConfigError("fcplus.principals_callback must name a callable (identity, request) -> principals.")
    own: FCPlusMiddleware | None = None
    if use_filter:
        if raw:
            raise ConfigError(f"fcplus.{sorted(raw)[0]} is set, but fcplus.use_filter = true takes every setting "
                              "from the egg:fcplus_wsgi#fcplus filter; remove it or drop fcplus.use_filter.")
    else:
        if not raw:
            raise ConfigError("no fcplus.* settings: add fcplus.provider, fcplus.client_id, ... to the app section, "
                              "or set fcplus.use_filter = true when the egg:fcplus_wsgi#fcplus filter wraps the app.")
        for key, how in _REFUSED_KEYS.items():
            if key in raw:
                raise ConfigError(f"fcplus.{key} has no effect with config.include('fcplus_wsgi.pyramid'): {how}.")
        try:
            own = FCPlusMiddleware(_never_called, raw)
        except ConfigError as exc:
            raise ConfigError(f"in the fcplus.* settings: {exc}") from None
    config.registry[_REGISTRY_KEY] = _Registration(own)
    config.add_request_method(FCPlusRequest, "fcplus", reify=True)
    config.add_tween("fcplus_wsgi.pyramid.flow_tween_factory", under=TWEEN_INGRESS)
    config.add_view_deriver(fcplus_acr_deriver, name="fcplus_acr", under=INGRESS, over="secured_view")
    config.set_security_policy(FCPlusSecurityPolicy(principals_callback=callback))
    config.add_forbidden_view(fcplus_forbidden_view)
    _json_serialises_identity_views(config)
    config.add_subscriber(_button_renderer_globals, "pyramid.events.BeforeRender")


def _button_renderer_globals(event: Any) -> None:
    """`fcplus_button(return_to, ...)` and `fcplus_button_styles(nonce)` in every template, so
    Pyramid pages show the same official button (fcplus_wsgi.buttons) as the login page."""
    from .buttons import button_styles, login_button

    request = event.get("request")
    if request is None or "fcplus_button" in event:
        return

    def fcplus_button(return_to: str = "/", platform: str | None = None, **options: Any) -> Markup:
        active = request.environ.get(MIDDLEWARE_KEY)  # the filter's, when it wraps the app
        mw = active if isinstance(active, FCPlusMiddleware) else _registration(request.registry).own
        return login_button({MIDDLEWARE_KEY: mw}, return_to, platform, **options)

    event["fcplus_button"] = fcplus_button
    event["fcplus_button_styles"] = button_styles
