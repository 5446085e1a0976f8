"""HTML pages of the development provider, rendered with Jinja2 autoescaping.

Pages show French first and English second, like the French State services the
provider stands in for. Each response gets a fresh CSP nonce for its one inline style
block, so the policy can forbid every other inline script and style.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

ACR_LABELS: dict[str, tuple[str, str]] = {
    "eidas1": ("eIDAS faible (eidas1)", "eIDAS low (eidas1)"),
    "eidas2": ("eIDAS substantiel (eidas2)", "eIDAS substantial (eidas2)"),
    "eidas3": ("eIDAS élevé (eidas3)", "eIDAS high (eidas3)"),
}


def acr_label(acr: str) -> tuple[str, str]:
    """French and English labels of an acr value (the value itself when it has no label)."""
    return ACR_LABELS.get(acr, (acr, acr))


@dataclass(frozen=True)
class Page:
    """A rendered page and the Content-Security-Policy that must accompany it."""

    body: str
    csp: str


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, as a CSP source expression."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _csp(nonce: str, form_targets: tuple[str, ...] = (), script: bool = False) -> str:
    # form-action must allow the relying party's origin too: browsers check the
    # redirect that follows a form submission against it.
    form_action = " ".join(("'self'", *form_targets)) if form_targets else "'none'"
    scripts = f"script-src 'nonce-{nonce}'; " if script else ""
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; {scripts}form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'")


def render(template: str, *, form_targets: tuple[str, ...] = (), script: bool = False, **context: Any) -> Page:
    """Render a template; `script` allows its one nonce'd inline script (the form_post response)."""
    nonce = secrets.token_urlsafe(16)
    body = _ENV.get_template(template).render(csp_nonce=nonce, **context)
    return Page(body, _csp(nonce, form_targets, script))


def error_page(title_fr: str, title_en: str, detail_fr: str, detail_en: str) -> Page:
    """A page for errors that must not be redirected (unknown client, bad redirect_uri...)."""
    return render("error.html", title_fr=title_fr, title_en=title_en, detail_fr=detail_fr, detail_en=detail_en)
