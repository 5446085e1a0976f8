"""Sign-in and sign-out links for application templates, without knowing the paths.

The middleware puts itself in the environ of every request it handles; these helpers
read the configured paths from there, so templates keep working when an operator moves
login_path or logout_path in the ini.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote

from .authorize import safe_return_to

MIDDLEWARE_KEY = "fcplus_wsgi.middleware"


def _settings(environ: Mapping[str, Any]) -> Any:
    middleware = environ.get(MIDDLEWARE_KEY)
    if middleware is None:
        raise LookupError("fcplus_wsgi middleware is not in front of this application")
    return middleware.settings


def login_url(environ: Mapping[str, Any], return_to: str = "/", acr: str | None = None) -> str:
    """The login path that brings the user back to `return_to` (a same-origin path)."""
    target = safe_return_to(return_to)
    if target is None:
        raise ValueError("return_to must be a same-origin path such as /account")
    url = _settings(environ).login_path + "?return_to=" + quote(target, safe="/")
    return url + "&acr=" + quote(acr, safe="") if acr else url


def logout_url(environ: Mapping[str, Any]) -> str:
    """The logout path, for a plain link (the platforms document logout as a GET)."""
    return str(_settings(environ).logout_path)


def logout_form(environ: Mapping[str, Any], label: str = "Se déconnecter", css_class: str = "") -> str:
    """A POST form with one button, for pages that prefer forms to links for state changes."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return (f'<form method="post" action="{escape(logout_url(environ))}">'
            f'<button type="submit"{cls}>{escape(label)}</button></form>')
