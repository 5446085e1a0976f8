"""Sign-in and sign-out links for application templates, without knowing the paths.

The middleware puts itself in the environ of every request it handles; these helpers
read the configured paths from there, so templates keep working when an operator moves
login_path or logout_path in the ini.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from .authorize import check_hint, safe_return_to

MIDDLEWARE_KEY = "fcplus_wsgi.middleware"


def _settings(environ: Mapping[str, Any]) -> Any:
    middleware = environ.get(MIDDLEWARE_KEY)
    if middleware is None:
        raise LookupError("fcplus_wsgi middleware is not in front of this application")
    return middleware.settings


def build_login_url(settings: Any, return_to: str, acr: str | None = None, *, silent: bool = False,
                    **hints: str | None) -> str:
    """The one builder of login-path URLs (links, the middleware's 401 bodies, Pyramid).

    Hints (idp_hint, login_hint, siret_hint) and a silent attempt are checked here against
    the provider's wire profile, so a template that asks for something the platform would
    refuse fails when the page is built, not at the platform with the user stranded.
    """
    target = safe_return_to(return_to)
    if target is None:
        raise ValueError("return_to must be a same-origin path such as /account")
    query = {"return_to": target}
    if acr:
        query["acr"] = acr
    if silent:
        if "none" not in settings.wire.prompt_values:
            raise ValueError(f"{settings.provider_name} does not accept silent logins (prompt=none)")
        query["prompt"] = "none"
    for name, value in hints.items():
        if value is None:
            continue
        if name not in settings.wire.hints:
            accepted = ", ".join(settings.wire.hints) or "none"
            raise ValueError(f"{settings.provider_name} does not accept {name} (login hints it accepts: {accepted})")
        problem = check_hint(name, value)
        if problem:
            raise ValueError(problem)
        query[name] = value
    return str(settings.login_path) + "?" + urlencode(query, safe="/")


def login_url(environ: Mapping[str, Any], return_to: str = "/", acr: str | None = None, *, silent: bool = False,
              idp_hint: str | None = None, login_hint: str | None = None, siret_hint: str | None = None) -> str:
    """The login path that brings the user back to `return_to` (a same-origin path).

    `silent` tries a login without any page at the provider (ProConnect's prompt=none),
    falling back to an interactive one by itself; the hints preselect the identity
    provider, the email or the organisation where the platform accepts them.
    """
    return build_login_url(_settings(environ), return_to, acr, silent=silent, idp_hint=idp_hint,
                           login_hint=login_hint, siret_hint=siret_hint)


def logout_url(environ: Mapping[str, Any]) -> str:
    """The logout path, for a plain link (the platforms document logout as a GET)."""
    return str(_settings(environ).logout_path)


def logout_form(environ: Mapping[str, Any], label: str = "Se déconnecter", css_class: str = "") -> str:
    """A POST form with one button, for pages that prefer forms to links for state changes."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return (f'<form method="post" action="{escape(logout_url(environ))}">'
            f'<button type="submit"{cls}>{escape(label)}</button></form>')
